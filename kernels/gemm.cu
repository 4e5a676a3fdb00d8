// dawin-kernels: a tensor-core GEMM with fused epilogues, f16 or bf16 inputs, f32 accumulation.
//
//   gemm_T        out[i, n] = γ[n] · act( Σ_k A[i, k] W[n, k] + bias[n] ) (+ out[i, n] when res = out)
//                 act = identity, QuickGELU x·σ(1.702x) or exact GELU x·½(1 + erf(x/√2));
//                 γ = 1 or a per-column scale (LayerScale); out f32 or T
//   gemm_blend_T  out[i, n] = γ_i[n] · act( Σ_s c[i, s] (Σ_k A[i, k] W_s[n, k] + bias_s[n]) ) (+ res[i, n])
//                 with γ_i[n] = Σ_s c[i, s] γ_s[n] (the merged model's LayerScale times the
//                 merged model's linear map), over S ≤ DAWIN_MAX_SETS weight sets in one launch
//                 (blend.cuh)
//   gemm_lds_T, gemm_blend_lds_T: the same with plain 32-bit shared loads of the fragments
//                 instead of ldmatrix (for comparison and as a fallback)
//
// T is f16 or bf16 (half_types.cuh). A [M, lda] row-major (activations), W [N, K] row-major (a
// PyTorch Linear weight, i.e. the "col" operand of mma), block tile 128×128×32, 8 warps as 2×4
// (warp tile 64×32 = 4×4 mma tiles of m16n8k16), shared memory double-buffered through registers
// (the next tile's global loads are in flight while the current one is multiplied).
// Requirements (checked on the host, crates/dawin-kernels/src/gemm.rs): K, lda multiples of 8,
// A, W pointers 16-byte aligned; M and N arbitrary (rows and columns beyond them are zero-filled
// on load and not stored).
//
// Tensor cores through inline PTX mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16} (sm_80+,
// hence this file is compiled for compute_80). Fragments are loaded from shared memory exactly as
// the PTX ISA documents the lane layout (groupID = lane >> 2, tig = lane & 3):
//   A: a0a1 (row g, cols 2tig..+1), a2a3 (row g+8), a4a5 (row g, cols +8), a6a7 (row g+8, cols +8)
//   B: b0b1 (k = 2tig..+1, col g), b2b3 (k + 8)
//   C: c0c1 (row g, cols 2tig..+1), c2c3 (row g+8)
// so the host emulation (DAWIN_HOST_EMULATION) replaces the one mma instruction by a warp-collective
// C++ function following the same layout. CPU reference: crates/dawin-vit/src/cpu.rs (linear);
// emulation/emulate_forward.cpp checks every variant on the host. The exact C signatures are
// mirrored in crates/dawin-kernels/src/source.rs.

#include "half_types.cuh"
#include "blend.cuh"

#define GEMM_BM 128
#define GEMM_BN 128
#define GEMM_BK 32
#define GEMM_SMEM_LD 40  // halves per shared-memory row: 32 + 8 padding (conflict-free fragments)
#define GEMM_THREADS 256

// ---------------------------------------------------------------------------------------------
// Tensor-core building blocks.

// D = A·B + C on one m16n8k16 tile, f32 accumulators, per the PTX ISA fragment layout.
template <int BF> __device__ __forceinline__ void mma_m16n8k16(float* d, const u32* a, const u32* b) {
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
__device__ __forceinline__ void ldmatrix_x4(const u16* p, u32* d) {
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

__device__ __forceinline__ float quick_gelu(float x) { return x / (1.0f + expf(-1.702f * x)); }
// PyTorch's nn.GELU() (approximate='none'): x · 0.5 · (1 + erf(x · M_SQRT1_2)), with CUDA's erff.
// Not inlined: the epilogue applies it to 64 accumulators per thread, fully unrolled, and 64
// inlined copies of erff per kernel would double the size of gemm.ptx (a call per element in
// the epilogue only; ptxas: no spills, no stack).
__device__ __noinline__ float gelu_erf(float x) { return x * 0.5f * (1.0f + erff(x * 0.70710678118654752f)); }

#define GEMM_ACT_NONE 0
#define GEMM_ACT_QUICK_GELU 1
#define GEMM_ACT_GELU 2

__device__ __forceinline__ float gemm_act(u32 act, float x) {
    return act == GEMM_ACT_QUICK_GELU ? quick_gelu(x) : act == GEMM_ACT_GELU ? gelu_erf(x) : x;
}

// ---------------------------------------------------------------------------------------------
// Parameters (passed by value as __grid_constant__). Layout mirrored in
// crates/dawin-kernels/src/gemm.rs; size checked against the PTX by the registry tests.

// 264 bytes.
struct GemmParams {
    u64 a;                     // const T* [m, lda]
    u64 w[DAWIN_MAX_SETS];     // const T* [n, k] per set
    u64 bias[DAWIN_MAX_SETS];  // const T* [n] per set, or 0
    u64 scale[DAWIN_MAX_SETS]; // const T* [n] per set (LayerScale γ_s), or 0 (every set or none)
    u64 out;                   // T* or float* [m, ldo]
    u64 res;                   // const float* [m, ldo] added after the epilogue, or 0 (may equal out)
    u64 coef;                  // const float* [m / rows_per_coef, sets], or 0 (blend kernel only)
    u32 m, n, k, lda, ldo;
    u32 sets;                  // weight sets (blend kernel; 1 otherwise)
    u32 rows_per_coef;
    u32 act;                   // GEMM_ACT_*: after the bias (and the blend)
    u32 out_f32;               // 1: out is float*
    u32 pad;
};

// ---------------------------------------------------------------------------------------------
// GEMM.

struct alignas(16) GemmSmem {
    u16 a[2][GEMM_BM][GEMM_SMEM_LD];
    u16 b[2][GEMM_BN][GEMM_SMEM_LD];
};

// Global -> registers: this thread's two 16-byte chunks of the A tile and of the W tile
// (chunk c: row c / 4, columns (c % 4)·8 .. +8); out-of-range chunks are zeros.
__device__ __forceinline__ void gemm_load(const u16* a, u32 lda, u32 m, const u16* w, u32 n, u32 k, u32 bm, u32 bn,
                                              u32 k0, uint4* ra, uint4* rb) {
    const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const u32 c = threadIdx.x + (u32)i * GEMM_THREADS;
        const u32 r = c >> 2, kc = k0 + (c & 3u) * 8u;
        const bool kin = kc < k;
        ra[i] = (kin && bm + r < m) ? *reinterpret_cast<const uint4*>(a + (u64)(bm + r) * lda + kc) : zero;
        rb[i] = (kin && bn + r < n) ? *reinterpret_cast<const uint4*>(w + (u64)(bn + r) * k + kc) : zero;
    }
}

__device__ __forceinline__ void gemm_store_smem(GemmSmem& sm, int buf, const uint4* ra, const uint4* rb) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        const u32 c = threadIdx.x + (u32)i * GEMM_THREADS;
        const u32 r = c >> 2, col = (c & 3u) * 8u;
        *reinterpret_cast<uint4*>(&sm.a[buf][r][col]) = ra[i];
        *reinterpret_cast<uint4*>(&sm.b[buf][r][col]) = rb[i];
    }
}

__device__ __forceinline__ u32 ld_shared32(const u16* p) { return *reinterpret_cast<const u32*>(p); }

// acc[mt][nt][4] += A[bm.., :] · W[bn.., :]ᵀ over the whole K. Fragments come from shared
// memory through ldmatrix.x4 (LDSM: 4 + 2 instructions per warp and k16 step) or through 32-bit
// loads (24 per warp and k16 step; the `_lds` kernels, kept for comparison and as a fallback).
template <class D, bool LDSM>
__device__ __forceinline__ void gemm_mainloop(GemmSmem& sm, const u16* a, u32 lda, u32 m, const u16* w, u32 n,
                                                  u32 k, u32 bm, u32 bn, float (&acc)[4][4][4]) {
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const u32 wm = (warp >> 2) * 64u, wn = (warp & 3u) * 32u;
    const u32 g = lane >> 2, tig = lane & 3u;
    const u32 ktiles = (k + GEMM_BK - 1) / GEMM_BK;
    uint4 ra[2], rb[2];
    gemm_load(a, lda, m, w, n, k, bm, bn, 0, ra, rb);
    gemm_store_smem(sm, 0, ra, rb);
    __syncthreads();
    for (u32 kt = 0; kt < ktiles; ++kt) {
        const int buf = (int)(kt & 1u);
        const bool more = kt + 1 < ktiles;
        if (more) gemm_load(a, lda, m, w, n, k, bm, bn, (kt + 1) * GEMM_BK, ra, rb);
#pragma unroll
        for (u32 kk = 0; kk < GEMM_BK; kk += 16) {
            u32 af[4][4], bf[4][2];
            if (LDSM) {
                const u32 q = lane >> 3, r = lane & 7u;
#pragma unroll
                for (int mt = 0; mt < 4; ++mt)  // matrices: (rows 0-7 | 8-15) × (k 0-7 | 8-15)
                    ldmatrix_x4(&sm.a[buf][wm + (u32)mt * 16u + r + (q & 1u) * 8u][kk + (q >> 1) * 8u], af[mt]);
#pragma unroll
                for (int np = 0; np < 2; ++np) {  // matrices: (n-tile 2np, 2np+1) × (k 0-7, 8-15)
                    u32 d[4];
                    ldmatrix_x4(&sm.b[buf][wn + (2u * (u32)np + (q >> 1)) * 8u + r][kk + (q & 1u) * 8u], d);
                    bf[2 * np][0] = d[0];
                    bf[2 * np][1] = d[1];
                    bf[2 * np + 1][0] = d[2];
                    bf[2 * np + 1][1] = d[3];
                }
            } else {
#pragma unroll
                for (int mt = 0; mt < 4; ++mt) {
                    const u32 r0 = wm + (u32)mt * 16u + g;
                    af[mt][0] = ld_shared32(&sm.a[buf][r0][kk + 2u * tig]);
                    af[mt][1] = ld_shared32(&sm.a[buf][r0 + 8u][kk + 2u * tig]);
                    af[mt][2] = ld_shared32(&sm.a[buf][r0][kk + 8u + 2u * tig]);
                    af[mt][3] = ld_shared32(&sm.a[buf][r0 + 8u][kk + 8u + 2u * tig]);
                }
#pragma unroll
                for (int nt = 0; nt < 4; ++nt) {
                    const u32 n0 = wn + (u32)nt * 8u + g;
                    bf[nt][0] = ld_shared32(&sm.b[buf][n0][kk + 2u * tig]);
                    bf[nt][1] = ld_shared32(&sm.b[buf][n0][kk + 8u + 2u * tig]);
                }
            }
#pragma unroll
            for (int mt = 0; mt < 4; ++mt) {
#pragma unroll
                for (int nt = 0; nt < 4; ++nt) mma_m16n8k16<D::BF>(acc[mt][nt], af[mt], bf[nt]);
            }
        }
        if (more) gemm_store_smem(sm, buf ^ 1, ra, rb);
        __syncthreads();
    }
}

template <class D, bool BLEND, bool LDSM> __device__ __forceinline__ void gemm_impl(const GemmParams& p) {
    __shared__ GemmSmem sm;
    const u32 bn = blockIdx.x * GEMM_BN, bm = blockIdx.y * GEMM_BM;
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
        gemm_mainloop<D, LDSM>(sm, a, p.lda, p.m, reinterpret_cast<const u16*>(p.w[s]), p.n, p.k, bm, bn, acc);
        const u16* bias = reinterpret_cast<const u16*>(p.bias[s]);
#pragma unroll
        for (int mt = 0; mt < 4; ++mt) {
            float cf[2] = {1.0f, 1.0f};
            if (BLEND) {
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const u32 r = bm + wm + (u32)mt * 16u + g + 8u * (u32)h;
                    cf[h] = r < p.m ? blend_coef(reinterpret_cast<const float*>(p.coef), sets, r, p.rows_per_coef, s) : 0.0f;
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
    // LayerScale of the blend: γ_i[c] = Σ_s c[i, s] γ_s[c] (the merged model's factor), into acc,
    // which the blend no longer needs; one pass per set, the set's coefficients and factors
    // loaded once per row and column of this thread.
    const bool scaled = p.scale[0] != 0;
    if (BLEND && scaled) {
        for (u32 s = 0; s < sets; ++s) {
            const u16* gs = reinterpret_cast<const u16*>(p.scale[s]);
            float gcol[4][2];
#pragma unroll
            for (int nt = 0; nt < 4; ++nt)
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const u32 c = bn + wn + (u32)nt * 8u + 2u * tig + (u32)e;
                    gcol[nt][e] = c < p.n ? D::to_f32(gs[c]) : 0.0f;
                }
#pragma unroll
            for (int mt = 0; mt < 4; ++mt)
#pragma unroll
                for (int h = 0; h < 2; ++h) {
                    const u32 r = bm + wm + (u32)mt * 16u + g + 8u * (u32)h;
                    const float cf = r < p.m ? blend_coef(reinterpret_cast<const float*>(p.coef), sets, r, p.rows_per_coef, s) : 0.0f;
#pragma unroll
                    for (int nt = 0; nt < 4; ++nt)
#pragma unroll
                        for (int e = 0; e < 2; ++e) {
                            const float t = cf * gcol[nt][e];
                            acc[mt][nt][2 * h + e] = s == 0 ? t : acc[mt][nt][2 * h + e] + t;
                        }
                }
        }
    }
    const u16* scale0 = reinterpret_cast<const u16*>(p.scale[0]);
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
                v = gemm_act(p.act, v);
                if (scaled) v *= BLEND ? acc[mt][nt][e] : D::to_f32(scale0[c]);
                const u64 o = (u64)r * p.ldo + c;
                if (res != 0) v += res[o];
                if (p.out_f32) reinterpret_cast<float*>(p.out)[o] = v;
                else reinterpret_cast<u16*>(p.out)[o] = D::from_f32(v);
            }
        }
    }
}

extern "C" __global__ void gemm_f16(const __grid_constant__ GemmParams p) {
    gemm_impl<F16, false, true>(p);
}
extern "C" __global__ void gemm_bf16(const __grid_constant__ GemmParams p) {
    gemm_impl<BF16, false, true>(p);
}
extern "C" __global__ void gemm_lds_f16(const __grid_constant__ GemmParams p) {
    gemm_impl<F16, false, false>(p);
}
extern "C" __global__ void gemm_lds_bf16(const __grid_constant__ GemmParams p) {
    gemm_impl<BF16, false, false>(p);
}
extern "C" __global__ void gemm_blend_f16(const __grid_constant__ GemmParams p) {
    gemm_impl<F16, true, true>(p);
}
extern "C" __global__ void gemm_blend_bf16(const __grid_constant__ GemmParams p) {
    gemm_impl<BF16, true, true>(p);
}
extern "C" __global__ void gemm_blend_lds_f16(const __grid_constant__ GemmParams p) {
    gemm_impl<F16, true, false>(p);
}
extern "C" __global__ void gemm_blend_lds_bf16(const __grid_constant__ GemmParams p) {
    gemm_impl<BF16, true, false>(p);
}
