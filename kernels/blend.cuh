// dawin-kernels: per-row blend coefficients, shared by the kernels that take up to
// DAWIN_MAX_SETS parameter sets in one launch (gemm.cu, norm.cu, embed.cu).
//
// A blended launch evaluates, for output row i, Σ_s c[i, s] · op(θ_s; x_i) with the coefficients
// c an f32 matrix [⌈rows / rows_per_coef⌉, sets] (row i uses c[i / rows_per_coef]); with
// c[i, 0] = 1 − Σ_j w_ij and c[i, j] = w_ij this is op(θ0) + Σ_j w_ij (op(θ_j) − op(θ0)), the
// per-sample interpolation of DaWin (issue #8). Without coefficients (coef == 0) there is one set
// and c = 1.
#ifndef DAWIN_BLEND_CUH
#define DAWIN_BLEND_CUH

#include "half_types.cuh"

// Must match MAX_SETS in crates/dawin-kernels/src/source.rs.
#define DAWIN_MAX_SETS 8

__device__ __forceinline__ float blend_coef(const float* coef, u32 sets, u32 row, u32 rows_per_coef, u32 s) {
    return coef == 0 ? 1.0f : coef[(u64)(row / rows_per_coef) * sets + s];
}

#endif  // DAWIN_BLEND_CUH
