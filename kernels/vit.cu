// dawin-kernels: the CLIP ViT forward (crates/dawin-vit, module `cuda`), fp16 or bf16 weights and
// activations, f32 accumulation on the tensor cores, f32 residual stream.
//
//   vit_im2col_T     cols[b·P + p, c·ps·ps + ky·ps + kx] = img[b, c, gy·ps + ky, gx·ps + kx]
//                    (stride = kernel size; columns K..ld-1 are written as zeros)
//   vit_gemm_T       out[i, n] = epi( Σ_k A[i, k] W[n, k] + bias[n] ) (+ res[i, n])
//                    (vit_gemm_lds_T, vit_gemm_blend_lds_T: the same with plain 32-bit shared
//                    loads of the fragments instead of ldmatrix)
//                    epi = identity or QuickGELU x·σ(1.702x); out f32 or T
//   vit_gemm_blend_T out[i, n] = Σ_s c[i, s] (Σ_k A[i, k] W_s[n, k] + bias_s[n]) (+ res[i, n])
//                    over S ≤ 8 weight sets in one launch (issue #8): with c[i, 0] = 1 − Σ_j w_ij
//                    and c[i, j] = w_ij this is Y0 + Σ_j w_ij (Y_j − Y0), per row i
//   vit_embed_T      x[b, 0] = Σ_s c_s (cls_s + pos_s[0]); x[b, 1 + p] = patch[b·P + p] + Σ_s c_s pos_s[1 + p]
//   vit_layernorm_T  y = Σ_s c_s (γ_s ⊙ (x − μ)/√(σ² + ε) + β_s), μ, σ² in f32 (two passes), y f32 or T
//   vit_attention_T  per (batch, head): softmax(q kᵀ · scale) v, head dim ≤ 64 and even (zero-padded
//                    to 64 in shared memory), online softmax over
//                    chunks of 64 keys held in shared memory (any sequence length)
//   vit_l2norm_T     f = x / ‖x‖₂ (a zero row stays zero), written as f32 and as T
//
// T is f16 or bf16. Coefficients c are f32 [batch, S], row i uses c[i / rows_per_coef]; without
// coefficients (coef = 0) S is 1 and c = 1. The CPU references are in crates/dawin-vit/src/cpu.rs
// (forward) and cpu/blended.rs; emulation/emulate_vit.cpp checks every kernel on the host.
//
// GEMM: A [M, lda] row-major (activations), W [N, K] row-major (a PyTorch Linear weight, i.e. the
// "col" operand of mma), block tile 128×128×32, 8 warps as 2×4 (warp tile 64×32 = 4×4 mma tiles
// of m16n8k16), shared memory double-buffered through registers (the next tile's global loads are
// in flight while the current one is multiplied). Requirements (checked on the host): K, lda and
// ldo multiples of 8, A, W pointers 16-byte aligned; M and N arbitrary (rows and columns beyond
// them are zero-filled on load and not stored).
//
// Tensor cores through inline PTX mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16} (sm_80+,
// hence this file is compiled for compute_80). Fragments are loaded from shared memory exactly as
// the PTX ISA documents the lane layout (groupID = lane >> 2, tig = lane & 3):
//   A: a0a1 (row g, cols 2tig..+1), a2a3 (row g+8), a4a5 (row g, cols +8), a6a7 (row g+8, cols +8)
//   B: b0b1 (k = 2tig..+1, col g), b2b3 (k + 8)
//   C: c0c1 (row g, cols 2tig..+1), c2c3 (row g+8)
// so the host emulation (DAWIN_HOST_EMULATION) replaces the one mma instruction by a warp-collective
// C++ function following the same layout.
//
// Element types and half-precision conversions come from half_types.cuh (shared with merge.cu).
// The exact C signatures are mirrored in crates/dawin-kernels/src/source.rs.

#include "half_types.cuh"

// Must match VIT_MAX_SETS in crates/dawin-kernels/src/source.rs.
#define VIT_MAX_SETS 8

#define VIT_BM 128
#define VIT_BN 128
#define VIT_BK 32
#define VIT_SMEM_LD 40  // halves per shared-memory row: 32 + 8 padding (conflict-free fragments)
#define VIT_GEMM_THREADS 256

#define VIT_ATT_THREADS 128
#define VIT_ATT_QPW 8    // queries per warp
#define VIT_ATT_QB 32    // queries per block (4 warps)
#define VIT_ATT_KC 64    // keys per shared-memory chunk
#define VIT_HEAD_DIM 64  // largest head dimension (shared-memory rows)

// ---------------------------------------------------------------------------------------------
// Tensor-core building blocks.

// D = A·B + C on one m16n8k16 tile, f32 accumulators, per the PTX ISA fragment layout.
template <int BF> __device__ __forceinline__ void vit_mma(float* d, const u32* a, const u32* b) {
#ifdef DAWIN_HOST_EMULATION
    dawin_emu_mma_m16n8k16(BF, a, b, d);
#else
    if (BF) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, {%0,%1,%2,%3};"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    } else {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, {%0,%1,%2,%3};"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
#endif
}

// Four 8×8 b16 matrices from shared memory (ldmatrix.x4): lanes 8j..8j+7 give the row
// addresses of matrix j (16-byte aligned), and lane i receives in d[j] the word of matrix j
// holding row i / 4, columns 2(i % 4) and 2(i % 4) + 1 — the mma fragment layout above.
__device__ __forceinline__ void vit_ldmatrix_x4(const u16* p, u32* d) {
#ifdef DAWIN_HOST_EMULATION
    dawin_emu_ldmatrix_x4(p, d);
#else
    u32 a;
    asm volatile("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                 : "r"(a)
                 : "memory");
#endif
}

__device__ __forceinline__ float vit_quick_gelu(float x) { return x / (1.0f + expf(-1.702f * x)); }

__device__ __forceinline__ float vit_coef(const float* coef, u32 sets, u32 row, u32 rows_per_coef, u32 s) {
    return coef == 0 ? 1.0f : coef[(u64)(row / rows_per_coef) * sets + s];
}

// ---------------------------------------------------------------------------------------------
// Parameter structs (passed by value as __grid_constant__). Layouts mirrored in
// crates/dawin-kernels/src/vit.rs; sizes checked against the PTX by the registry tests.

// 200 bytes.
struct VitGemmParams {
    u64 a;                     // const T* [m, lda]
    u64 w[VIT_MAX_SETS];       // const T* [n, k] per set
    u64 bias[VIT_MAX_SETS];    // const T* [n] per set, or 0
    u64 out;                   // T* or float* [m, ldo]
    u64 res;                   // const float* [m, ldo] added after the epilogue, or 0 (may equal out)
    u64 coef;                  // const float* [m / rows_per_coef, sets], or 0 (blend kernel only)
    u32 m, n, k, lda, ldo;
    u32 sets;                  // weight sets (blend kernel; 1 otherwise)
    u32 rows_per_coef;
    u32 gelu;                  // 1: QuickGELU after the bias
    u32 out_f32;               // 1: out is float*
    u32 pad;
};

// 184 bytes.
struct VitLnParams {
    u64 in;                    // const float*, row r at in + r·in_stride
    u64 out;                   // T* or float*, row r at out + r·out_stride
    u64 gamma[VIT_MAX_SETS];   // const T* [d]
    u64 beta[VIT_MAX_SETS];    // const T* [d]
    u64 coef;                  // const float* [rows / rows_per_coef, sets], or 0
    u32 rows, d, in_stride, out_stride, rows_per_coef, sets, out_f32;
    float eps;
};

// 168 bytes.
struct VitEmbedParams {
    u64 patches;               // const float* [batch·np, width] (patch GEMM output)
    u64 out;                   // float* [batch·(np + 1), width]
    u64 cls[VIT_MAX_SETS];     // const T* [width]
    u64 pos[VIT_MAX_SETS];     // const T* [(np + 1), width]
    u64 coef;                  // const float* [batch, sets], or 0
    u32 batch, np, width, sets;
};

// ---------------------------------------------------------------------------------------------
// im2col of f32 images [batch, 3, S, S] into T [batch·G², ld], G = S / ps.

template <class D>
__device__ __forceinline__ void vit_im2col(const float* img, u16* out, u32 batch, u32 size, u32 ps, u32 ld) {
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

extern "C" __global__ void vit_im2col_f16(const float* img, u16* out, u32 batch, u32 size, u32 ps, u32 ld) {
    vit_im2col<F16>(img, out, batch, size, ps, ld);
}
extern "C" __global__ void vit_im2col_bf16(const float* img, u16* out, u32 batch, u32 size, u32 ps, u32 ld) {
    vit_im2col<BF16>(img, out, batch, size, ps, ld);
}

// ---------------------------------------------------------------------------------------------
// GEMM.

struct alignas(16) VitGemmSmem {
    u16 a[2][VIT_BM][VIT_SMEM_LD];
    u16 b[2][VIT_BN][VIT_SMEM_LD];
};

// Global -> registers: this thread's two 16-byte chunks of the A tile and of the W tile
// (chunk c: row c / 4, columns (c % 4)·8 .. +8); out-of-range chunks are zeros.
__device__ __forceinline__ void vit_gemm_load(const u16* a, u32 lda, u32 m, const u16* w, u32 n, u32 k, u32 bm, u32 bn,
                                              u32 k0, uint4* ra, uint4* rb) {
    const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const u32 c = threadIdx.x + (u32)i * VIT_GEMM_THREADS;
        const u32 r = c >> 2, kc = k0 + (c & 3u) * 8u;
        const bool kin = kc < k;
        ra[i] = (kin && bm + r < m) ? *reinterpret_cast<const uint4*>(a + (u64)(bm + r) * lda + kc) : zero;
        rb[i] = (kin && bn + r < n) ? *reinterpret_cast<const uint4*>(w + (u64)(bn + r) * k + kc) : zero;
    }
}

__device__ __forceinline__ void vit_gemm_store_smem(VitGemmSmem& sm, int buf, const uint4* ra, const uint4* rb) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const u32 c = threadIdx.x + (u32)i * VIT_GEMM_THREADS;
        const u32 r = c >> 2, col = (c & 3u) * 8u;
        *reinterpret_cast<uint4*>(&sm.a[buf][r][col]) = ra[i];
        *reinterpret_cast<uint4*>(&sm.b[buf][r][col]) = rb[i];
    }
}

__device__ __forceinline__ u32 vit_ld32(const u16* p) { return *reinterpret_cast<const u32*>(p); }

// acc[mt][nt][4] += A[bm.., :] · W[bn.., :]ᵀ over the whole K. Fragments come from shared
// memory through ldmatrix.x4 (LDSM: 4 + 2 instructions per warp and k16 step) or through 32-bit
// loads (24 per warp and k16 step; the `_lds` kernels, kept for comparison and as a fallback).
template <class D, bool LDSM>
__device__ __forceinline__ void vit_gemm_mainloop(VitGemmSmem& sm, const u16* a, u32 lda, u32 m, const u16* w, u32 n,
                                                  u32 k, u32 bm, u32 bn, float (&acc)[4][4][4]) {
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const u32 wm = (warp >> 2) * 64u, wn = (warp & 3u) * 32u;
    const u32 g = lane >> 2, tig = lane & 3u;
    const u32 ktiles = (k + VIT_BK - 1) / VIT_BK;
    uint4 ra[2], rb[2];
    vit_gemm_load(a, lda, m, w, n, k, bm, bn, 0, ra, rb);
    vit_gemm_store_smem(sm, 0, ra, rb);
    __syncthreads();
    for (u32 kt = 0; kt < ktiles; ++kt) {
        const int buf = (int)(kt & 1u);
        const bool more = kt + 1 < ktiles;
        if (more) vit_gemm_load(a, lda, m, w, n, k, bm, bn, (kt + 1) * VIT_BK, ra, rb);
#pragma unroll
        for (u32 kk = 0; kk < VIT_BK; kk += 16) {
            u32 af[4][4], bf[4][2];
            if (LDSM) {
                const u32 q = lane >> 3, r = lane & 7u;
#pragma unroll
                for (int mt = 0; mt < 4; ++mt)  // matrices: (rows 0-7 | 8-15) × (k 0-7 | 8-15)
                    vit_ldmatrix_x4(&sm.a[buf][wm + (u32)mt * 16u + r + (q & 1u) * 8u][kk + (q >> 1) * 8u], af[mt]);
#pragma unroll
                for (int np = 0; np < 2; ++np) {  // matrices: (n-tile 2np, 2np+1) × (k 0-7, 8-15)
                    u32 d[4];
                    vit_ldmatrix_x4(&sm.b[buf][wn + (2u * (u32)np + (q >> 1)) * 8u + r][kk + (q & 1u) * 8u], d);
                    bf[2 * np][0] = d[0];
                    bf[2 * np][1] = d[1];
                    bf[2 * np + 1][0] = d[2];
                    bf[2 * np + 1][1] = d[3];
                }
            } else {
#pragma unroll
                for (int mt = 0; mt < 4; ++mt) {
                    const u32 r0 = wm + (u32)mt * 16u + g;
                    af[mt][0] = vit_ld32(&sm.a[buf][r0][kk + 2u * tig]);
                    af[mt][1] = vit_ld32(&sm.a[buf][r0 + 8u][kk + 2u * tig]);
                    af[mt][2] = vit_ld32(&sm.a[buf][r0][kk + 8u + 2u * tig]);
                    af[mt][3] = vit_ld32(&sm.a[buf][r0 + 8u][kk + 8u + 2u * tig]);
                }
#pragma unroll
                for (int nt = 0; nt < 4; ++nt) {
                    const u32 n0 = wn + (u32)nt * 8u + g;
                    bf[nt][0] = vit_ld32(&sm.b[buf][n0][kk + 2u * tig]);
                    bf[nt][1] = vit_ld32(&sm.b[buf][n0][kk + 8u + 2u * tig]);
                }
            }
#pragma unroll
            for (int mt = 0; mt < 4; ++mt) {
#pragma unroll
                for (int nt = 0; nt < 4; ++nt) vit_mma<D::BF>(acc[mt][nt], af[mt], bf[nt]);
            }
        }
        if (more) vit_gemm_store_smem(sm, buf ^ 1, ra, rb);
        __syncthreads();
    }
}

template <class D, bool BLEND, bool LDSM> __device__ __forceinline__ void vit_gemm(const VitGemmParams& p) {
    __shared__ VitGemmSmem sm;
    const u32 bn = blockIdx.x * VIT_BN, bm = blockIdx.y * VIT_BM;
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const u32 wm = (warp >> 2) * 64u, wn = (warp & 3u) * 32u;
    const u32 g = lane >> 2, tig = lane & 3u;
    const u16* a = reinterpret_cast<const u16*>(p.a);

    float acc[4][4][4];
    float tot[BLEND ? 4 : 1][4][4];
    const u32 sets = BLEND ? p.sets : 1u;
    for (u32 s = 0; s < sets; ++s) {
#pragma unroll
        for (int mt = 0; mt < 4; ++mt)
#pragma unroll
            for (int nt = 0; nt < 4; ++nt)
#pragma unroll
                for (int e = 0; e < 4; ++e) acc[mt][nt][e] = 0.0f;
        vit_gemm_mainloop<D, LDSM>(sm, a, p.lda, p.m, reinterpret_cast<const u16*>(p.w[s]), p.n, p.k, bm, bn, acc);
        const u16* bias = reinterpret_cast<const u16*>(p.bias[s]);
#pragma unroll
        for (int mt = 0; mt < 4; ++mt) {
            float cf[2] = {1.0f, 1.0f};
            if (BLEND) {
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const u32 r = bm + wm + (u32)mt * 16u + g + 8u * (u32)h;
                    cf[h] = r < p.m ? vit_coef(reinterpret_cast<const float*>(p.coef), sets, r, p.rows_per_coef, s) : 0.0f;
                }
            }
#pragma unroll
            for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const u32 c = bn + wn + (u32)nt * 8u + 2u * tig + (u32)(e & 1);
                    float v = acc[mt][nt][e];
                    if (bias != 0 && c < p.n) v += D::to_f32(bias[c]);
                    if (BLEND) {
                        const float t = cf[e >> 1] * v;
                        tot[BLEND ? mt : 0][nt][e] = s == 0 ? t : tot[BLEND ? mt : 0][nt][e] + t;
                    } else {
                        acc[mt][nt][e] = v;
                    }
                }
            }
        }
    }
    const float* res = reinterpret_cast<const float*>(p.res);
#pragma unroll
    for (int mt = 0; mt < 4; ++mt) {
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const u32 r = bm + wm + (u32)mt * 16u + g + 8u * (u32)(e >> 1);
                const u32 c = bn + wn + (u32)nt * 8u + 2u * tig + (u32)(e & 1);
                if (r >= p.m || c >= p.n) continue;
                float v = BLEND ? tot[BLEND ? mt : 0][nt][e] : acc[mt][nt][e];
                if (p.gelu) v = vit_quick_gelu(v);
                const u64 o = (u64)r * p.ldo + c;
                if (res != 0) v += res[o];
                if (p.out_f32) reinterpret_cast<float*>(p.out)[o] = v;
                else reinterpret_cast<u16*>(p.out)[o] = D::from_f32(v);
            }
        }
    }
}

extern "C" __global__ void vit_gemm_f16(const __grid_constant__ VitGemmParams p) {
    vit_gemm<F16, false, true>(p);
}
extern "C" __global__ void vit_gemm_bf16(const __grid_constant__ VitGemmParams p) {
    vit_gemm<BF16, false, true>(p);
}
extern "C" __global__ void vit_gemm_lds_f16(const __grid_constant__ VitGemmParams p) {
    vit_gemm<F16, false, false>(p);
}
extern "C" __global__ void vit_gemm_lds_bf16(const __grid_constant__ VitGemmParams p) {
    vit_gemm<BF16, false, false>(p);
}
extern "C" __global__ void vit_gemm_blend_f16(const __grid_constant__ VitGemmParams p) {
    vit_gemm<F16, true, true>(p);
}
extern "C" __global__ void vit_gemm_blend_bf16(const __grid_constant__ VitGemmParams p) {
    vit_gemm<BF16, true, true>(p);
}
extern "C" __global__ void vit_gemm_blend_lds_f16(const __grid_constant__ VitGemmParams p) {
    vit_gemm<F16, true, false>(p);
}
extern "C" __global__ void vit_gemm_blend_lds_bf16(const __grid_constant__ VitGemmParams p) {
    vit_gemm<BF16, true, false>(p);
}

// ---------------------------------------------------------------------------------------------
// Class and position embeddings (element-wise, grid-stride).

template <class D> __device__ __forceinline__ void vit_embed(const VitEmbedParams& p) {
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
            const float c = vit_coef(coef, p.sets, b, 1u, s);
            float v = D::to_f32(reinterpret_cast<const u16*>(p.pos[s])[(u64)t * p.width + col]);
            if (t == 0) v += D::to_f32(reinterpret_cast<const u16*>(p.cls[s])[col]);
            add += c * v;
        }
        out[i] = (t == 0 ? 0.0f : patches[((u64)b * p.np + t - 1u) * p.width + col]) + add;
    }
}

extern "C" __global__ void vit_embed_f16(const __grid_constant__ VitEmbedParams p) { vit_embed<F16>(p); }
extern "C" __global__ void vit_embed_bf16(const __grid_constant__ VitEmbedParams p) { vit_embed<BF16>(p); }

// ---------------------------------------------------------------------------------------------
// Layer norm: one warp per row, 8 rows per block.

template <class D> __device__ __forceinline__ void vit_layernorm(const VitLnParams& p) {
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
            const float cf = vit_coef(coef, p.sets, row, p.rows_per_coef, s);
            const float gm = D::to_f32(reinterpret_cast<const u16*>(p.gamma[s])[c]);
            const float bt = D::to_f32(reinterpret_cast<const u16*>(p.beta[s])[c]);
            y += cf * (gm * nrm + bt);
        }
        const u64 o = (u64)row * p.out_stride + c;
        if (p.out_f32) reinterpret_cast<float*>(p.out)[o] = y;
        else reinterpret_cast<u16*>(p.out)[o] = D::from_f32(y);
    }
}

extern "C" __global__ void vit_layernorm_f16(const __grid_constant__ VitLnParams p) { vit_layernorm<F16>(p); }
extern "C" __global__ void vit_layernorm_bf16(const __grid_constant__ VitLnParams p) { vit_layernorm<BF16>(p); }

// ---------------------------------------------------------------------------------------------
// Attention. qkv: T [batch·seq, 3·heads·hd] (q | k | v, head h at columns h·hd of each third);
// out: T [batch·seq, heads·hd], hd ≤ 64 even (dims hd..63 are zeros in shared memory). Grid (ceil(seq / 32), heads, batch), 128 threads: each warp owns
// 8 queries; keys and values go through shared memory (f32) in chunks of 64; per chunk each lane
// scores keys lane and lane + 32, the warp updates the running max / sum (online softmax) and
// each lane accumulates output dims 2·lane, 2·lane + 1.

struct alignas(16) VitAttSmem {
    float k[VIT_ATT_KC][VIT_HEAD_DIM + 1];
    float v[VIT_ATT_KC][VIT_HEAD_DIM];
    float q[VIT_ATT_THREADS / 32][VIT_ATT_QPW][VIT_HEAD_DIM];
    float p[VIT_ATT_THREADS / 32][VIT_ATT_KC];
};

template <class D>
__device__ __forceinline__ void vit_attention(const u16* qkv, u16* out, u32 batch, u32 seq, u32 heads, u32 hd, float scale) {
    __shared__ VitAttSmem sm;
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const u32 h = blockIdx.y, b = blockIdx.z;
    const u32 width = heads * hd, ld = 3u * width;
    const u64 base = (u64)b * seq * ld + (u64)h * hd;
    const u32 q0 = blockIdx.x * VIT_ATT_QB + warp * VIT_ATT_QPW;
    (void)batch;

    for (u32 i = threadIdx.x; i < VIT_ATT_QPW * (VIT_ATT_THREADS / 32) * VIT_HEAD_DIM; i += VIT_ATT_THREADS) {
        const u32 w = i / (VIT_ATT_QPW * VIT_HEAD_DIM), qi = (i / VIT_HEAD_DIM) % VIT_ATT_QPW, d = i % VIT_HEAD_DIM;
        const u32 q = blockIdx.x * VIT_ATT_QB + w * VIT_ATT_QPW + qi;
        sm.q[w][qi][d] = (q < seq && d < hd) ? D::to_f32(qkv[base + (u64)q * ld + d]) * scale : 0.0f;
    }
    float mrun[VIT_ATT_QPW], lrun[VIT_ATT_QPW], o0[VIT_ATT_QPW], o1[VIT_ATT_QPW];
#pragma unroll
    for (int i = 0; i < VIT_ATT_QPW; ++i) {
        mrun[i] = __int_as_float(0xff800000);
        lrun[i] = 0.0f;
        o0[i] = 0.0f;
        o1[i] = 0.0f;
    }
    for (u32 k0 = 0; k0 < seq; k0 += VIT_ATT_KC) {
        __syncthreads();  // previous chunk consumed (and q written, on the first pass)
        for (u32 i = threadIdx.x; i < VIT_ATT_KC * VIT_HEAD_DIM; i += VIT_ATT_THREADS) {
            const u32 j = i / VIT_HEAD_DIM, d = i % VIT_HEAD_DIM;
            const bool in = k0 + j < seq && d < hd;
            const u64 row = base + (u64)(k0 + j) * ld;
            sm.k[j][d] = in ? D::to_f32(qkv[row + width + d]) : 0.0f;
            sm.v[j][d] = in ? D::to_f32(qkv[row + 2u * width + d]) : 0.0f;
        }
        __syncthreads();
        const bool in0 = k0 + lane < seq, in1 = k0 + lane + 32u < seq;
#pragma unroll
        for (int qi = 0; qi < VIT_ATT_QPW; ++qi) {
            if (q0 + (u32)qi >= seq) continue;  // warp-uniform
            float s0 = 0.0f, s1 = 0.0f;
#pragma unroll 16
            for (int d = 0; d < VIT_HEAD_DIM; ++d) {
                const float qd = sm.q[warp][qi][d];
                s0 += qd * sm.k[lane][d];
                s1 += qd * sm.k[lane + 32u][d];
            }
            const float NEG_INF = __int_as_float(0xff800000);
            s0 = in0 ? s0 : NEG_INF;
            s1 = in1 ? s1 : NEG_INF;
            float mc = fmaxf(s0, s1);
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) mc = fmaxf(mc, __shfl_xor_sync(0xffffffffu, mc, off));
            const float mnew = fmaxf(mrun[qi], mc);
            const float alpha = expf(mrun[qi] - mnew);
            const float p0 = in0 ? expf(s0 - mnew) : 0.0f;
            const float p1 = in1 ? expf(s1 - mnew) : 0.0f;
            float ps = p0 + p1;
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) ps += __shfl_xor_sync(0xffffffffu, ps, off);
            lrun[qi] = lrun[qi] * alpha + ps;
            mrun[qi] = mnew;
            sm.p[warp][lane] = p0;
            sm.p[warp][lane + 32u] = p1;
            __syncwarp();
            float a0 = o0[qi] * alpha, a1 = o1[qi] * alpha;
            const u32 nk = seq - k0 < VIT_ATT_KC ? seq - k0 : VIT_ATT_KC;
            for (u32 j = 0; j < nk; ++j) {
                const float pj = sm.p[warp][j];
                a0 += pj * sm.v[j][2u * lane];
                a1 += pj * sm.v[j][2u * lane + 1u];
            }
            o0[qi] = a0;
            o1[qi] = a1;
            __syncwarp();
        }
    }
#pragma unroll
    for (int qi = 0; qi < VIT_ATT_QPW; ++qi) {
        const u32 q = q0 + (u32)qi;
        if (q >= seq || 2u * lane >= hd) continue;
        const float inv = 1.0f / lrun[qi];
        const u64 o = ((u64)b * seq + q) * width + (u64)h * hd + 2u * lane;
        out[o] = D::from_f32(o0[qi] * inv);
        out[o + 1] = D::from_f32(o1[qi] * inv);
    }
}

extern "C" __global__ void vit_attention_f16(const u16* qkv, u16* out, u32 batch, u32 seq, u32 heads, u32 hd, float scale) {
    vit_attention<F16>(qkv, out, batch, seq, heads, hd, scale);
}
extern "C" __global__ void vit_attention_bf16(const u16* qkv, u16* out, u32 batch, u32 seq, u32 heads, u32 hd, float scale) {
    vit_attention<BF16>(qkv, out, batch, seq, heads, hd, scale);
}

// ---------------------------------------------------------------------------------------------
// L2 normalisation of f32 rows [rows, d]: one warp per row, 8 rows per block.

template <class D> __device__ __forceinline__ void vit_l2norm(const float* x, float* feats, u16* out, u32 rows, u32 d) {
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

extern "C" __global__ void vit_l2norm_f16(const float* x, float* feats, u16* out, u32 rows, u32 d) {
    vit_l2norm<F16>(x, feats, out, rows, d);
}
extern "C" __global__ void vit_l2norm_bf16(const float* x, float* feats, u16* out, u32 rows, u32 d) {
    vit_l2norm<BF16>(x, feats, out, rows, d);
}
