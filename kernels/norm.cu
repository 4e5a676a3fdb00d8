// dawin-kernels: row normalisations of an f32 matrix, f16 or bf16 parameters.
//
//   layer_norm_T    y = Σ_s c_s (γ_s ⊙ (x − μ)/√(σ² + ε) + β_s), μ, σ² in f32 (two passes), y f32
//                   or T, over up to DAWIN_MAX_SETS parameter sets (blend.cuh)
//   l2_normalize_T  f = x / ‖x‖₂ (a zero row stays zero), written as f32 and as T
//
// One warp per row, 8 rows per block. T is f16 or bf16 (half_types.cuh). CPU references:
// crates/dawin-vit/src/cpu.rs (layer_norm, l2_normalize_rows); emulation/emulate_forward.cpp
// checks them on the host. Compiled for compute_80 with the other kernels of the forward. The
// exact C signatures are mirrored in crates/dawin-kernels/src/source.rs.

#include "half_types.cuh"
#include "blend.cuh"

// ---------------------------------------------------------------------------------------------
// Parameters (passed by value as __grid_constant__). Layout mirrored in
// crates/dawin-kernels/src/ops.rs; size checked against the PTX by the registry tests.

// 184 bytes.
struct LayerNormParams {
    u64 in;                    // const float*, row r at in + r·in_stride
    u64 out;                   // T* or float*, row r at out + r·out_stride
    u64 gamma[DAWIN_MAX_SETS];  // const T* [d]
    u64 beta[DAWIN_MAX_SETS];  // const T* [d]
    u64 coef;                  // const float* [rows / rows_per_coef, sets], or 0
    u32 rows, d, in_stride, out_stride, rows_per_coef, sets, out_f32;
    float eps;
};

// ---------------------------------------------------------------------------------------------
// Layer norm: one warp per row, 8 rows per block.

template <class D> __device__ __forceinline__ void layer_norm_impl(const LayerNormParams& p) {
    const u32 lane = threadIdx.x & 31u;
    const u32 row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= p.rows) return;  // the whole warp leaves together
    const float* x = reinterpret_cast<const float*>(p.in) + (u64)row * p.in_stride;
    float sum = 0.0f;
    for (u32 c = lane; c < p.d; c += 32u) sum += x[c];
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    const float mean = sum / (float)p.d;
    float sq = 0.0f;
    for (u32 c = lane; c < p.d; c += 32u) {
        const float t = x[c] - mean;
        sq += t * t;
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, off);
    const float rstd = 1.0f / sqrtf(sq / (float)p.d + p.eps);
    const float* coef = reinterpret_cast<const float*>(p.coef);
    for (u32 c = lane; c < p.d; c += 32u) {
        const float nrm = (x[c] - mean) * rstd;
        float y = 0.0f;
        for (u32 s = 0; s < p.sets; ++s) {
            const float cf = blend_coef(coef, p.sets, row, p.rows_per_coef, s);
            const float gm = D::to_f32(reinterpret_cast<const u16*>(p.gamma[s])[c]);
            const float bt = D::to_f32(reinterpret_cast<const u16*>(p.beta[s])[c]);
            y += cf * (gm * nrm + bt);
        }
        const u64 o = (u64)row * p.out_stride + c;
        if (p.out_f32) reinterpret_cast<float*>(p.out)[o] = y;
        else reinterpret_cast<u16*>(p.out)[o] = D::from_f32(y);
    }
}

extern "C" __global__ void layer_norm_f16(const __grid_constant__ LayerNormParams p) { layer_norm_impl<F16>(p); }
extern "C" __global__ void layer_norm_bf16(const __grid_constant__ LayerNormParams p) { layer_norm_impl<BF16>(p); }

// ---------------------------------------------------------------------------------------------
// L2 normalisation of f32 rows [rows, d]: one warp per row, 8 rows per block.

template <class D> __device__ __forceinline__ void l2_normalize_impl(const float* x, float* feats, u16* out, u32 rows, u32 d) {
    const u32 lane = threadIdx.x & 31u;
    const u32 row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    const float* xr = x + (u64)row * d;
    float sq = 0.0f;
    for (u32 c = lane; c < d; c += 32u) sq += xr[c] * xr[c];
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, off);
    const float inv = sq > 0.0f ? 1.0f / sqrtf(sq) : 1.0f;
    for (u32 c = lane; c < d; c += 32u) {
        const float v = xr[c] * inv;
        feats[(u64)row * d + c] = v;
        out[(u64)row * d + c] = D::from_f32(v);
    }
}

extern "C" __global__ void l2_normalize_f16(const float* x, float* feats, u16* out, u32 rows, u32 d) {
    l2_normalize_impl<F16>(x, feats, out, rows, d);
}
extern "C" __global__ void l2_normalize_bf16(const float* x, float* feats, u16* out, u32 rows, u32 d) {
    l2_normalize_impl<BF16>(x, feats, out, rows, d);
}

