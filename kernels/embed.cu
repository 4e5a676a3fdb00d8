// dawin-kernels: the input side of a vision transformer, f16 or bf16.
//
//   im2col_T        cols[b·P + p, c·ps·ps + ky·ps + kx] = img[b, c, gy·ps + ky, gx·ps + kx]
//                   (stride = kernel size; columns K..ld-1 are written as zeros): a patch
//                   embedding (a conv of stride = kernel) becomes a GEMM of cols
//   embed_tokens_T  x[b, 0] = Σ_s c_s (cls_s + pos_s[0]); x[b, 1 + p] = patch[b·P + p] + Σ_s c_s pos_s[1 + p]
//                   over up to DAWIN_MAX_SETS parameter sets (blend.cuh; coefficients [batch, S])
//
// Element-wise, grid-stride. T is f16 or bf16 (half_types.cuh). CPU references:
// crates/dawin-vit/src/cpu.rs (im2col, embed); emulation/emulate_forward.cpp checks them on the
// host. Compiled for compute_80 with the other kernels of the forward. The exact C signatures are
// mirrored in crates/dawin-kernels/src/source.rs.

#include "half_types.cuh"
#include "blend.cuh"

// ---------------------------------------------------------------------------------------------
// Parameters (passed by value as __grid_constant__). Layout mirrored in
// crates/dawin-kernels/src/ops.rs; size checked against the PTX by the registry tests.

// 168 bytes.
struct EmbedParams {
    u64 patches;               // const float* [batch·np, width] (patch GEMM output)
    u64 out;                   // float* [batch·(np + 1), width]
    u64 cls[DAWIN_MAX_SETS];  // const T* [width]
    u64 pos[DAWIN_MAX_SETS];  // const T* [(np + 1), width]
    u64 coef;                  // const float* [batch, sets], or 0
    u32 batch, np, width, sets;
};

// ---------------------------------------------------------------------------------------------
// im2col of f32 images [batch, 3, S, S] into T [batch·G², ld], G = S / ps.

template <class D>
__device__ __forceinline__ void im2col_impl(const float* img, u16* out, u32 batch, u32 size, u32 ps, u32 ld) {
    const u32 g = size / ps;
    const u32 kdim = 3u * ps * ps;
    const u64 total = (u64)batch * g * g * ld;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (u64)gridDim.x * blockDim.x) {
        const u32 col = (u32)(i % ld);
        const u64 row = i / ld;
        float v = 0.0f;
        if (col < kdim) {
            const u32 b = (u32)(row / ((u64)g * g));
            const u32 pi = (u32)(row % ((u64)g * g));
            const u32 gy = pi / g, gx = pi % g;
            const u32 c = col / (ps * ps), r = col % (ps * ps);
            const u32 ky = r / ps, kx = r % ps;
            v = img[(((u64)b * 3u + c) * size + gy * ps + ky) * size + gx * ps + kx];
        }
        out[i] = D::from_f32(v);
    }
}

extern "C" __global__ void im2col_f16(const float* img, u16* out, u32 batch, u32 size, u32 ps, u32 ld) {
    im2col_impl<F16>(img, out, batch, size, ps, ld);
}
extern "C" __global__ void im2col_bf16(const float* img, u16* out, u32 batch, u32 size, u32 ps, u32 ld) {
    im2col_impl<BF16>(img, out, batch, size, ps, ld);
}

// ---------------------------------------------------------------------------------------------
// Class and position embeddings (element-wise, grid-stride).

template <class D> __device__ __forceinline__ void embed_tokens_impl(const EmbedParams& p) {
    const u32 seq = p.np + 1u;
    const u64 total = (u64)p.batch * seq * p.width;
    const float* patches = reinterpret_cast<const float*>(p.patches);
    const float* coef = reinterpret_cast<const float*>(p.coef);
    float* out = reinterpret_cast<float*>(p.out);
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (u64)gridDim.x * blockDim.x) {
        const u32 col = (u32)(i % p.width);
        const u64 row = i / p.width;
        const u32 b = (u32)(row / seq), t = (u32)(row % seq);
        float add = 0.0f;
        for (u32 s = 0; s < p.sets; ++s) {
            const float c = blend_coef(coef, p.sets, b, 1u, s);
            float v = D::to_f32(reinterpret_cast<const u16*>(p.pos[s])[(u64)t * p.width + col]);
            if (t == 0) v += D::to_f32(reinterpret_cast<const u16*>(p.cls[s])[col]);
            add += c * v;
        }
        out[i] = (t == 0 ? 0.0f : patches[((u64)b * p.np + t - 1u) * p.width + col]) + add;
    }
}

extern "C" __global__ void embed_tokens_f16(const __grid_constant__ EmbedParams p) { embed_tokens_impl<F16>(p); }
extern "C" __global__ void embed_tokens_bf16(const __grid_constant__ EmbedParams p) { embed_tokens_impl<BF16>(p); }

