// dawin-kernels: multi-head attention, f16 or bf16 in and out, f32 softmax and accumulation.
//
//   attention_T       per (batch, head): softmax(q kᵀ · scale) v for head dims 1 ..= 64
//                     (ViT-B, ViT-L: 64), keys in shared-memory chunks of 64, 8 queries per warp
//   attention_wide_T  the same for head dims 65 ..= 128 (ViT-H/14: 80, g/14: 88, bigG/14: 104),
//                     keys in chunks of 32, 6 queries per warp (the shared memory of both stays
//                     under the 48 KiB of a static allocation)
//
// Online softmax over the key chunks (any sequence length). T is f16 or bf16 (half_types.cuh).
// CPU reference: crates/dawin-vit/src/cpu.rs (attention); emulation/emulate_forward.cpp checks
// both variants on the host. Compiled for compute_80 with the other kernels of the forward. The
// exact C signatures are mirrored in crates/dawin-kernels/src/source.rs.

#include "half_types.cuh"

#define ATT_THREADS 128
#define ATT_WARPS (ATT_THREADS / 32)

// ---------------------------------------------------------------------------------------------
// qkv: T [batch·seq, 3·heads·hd] (q | k | v, head h at columns h·hd of each third);
// out: T [batch·seq, heads·hd]. Grid (ceil(seq / (4·QPW)), heads, batch), 128 threads: each warp
// owns QPW queries; keys and values go through shared memory (f32, head dims hd .. HD zero) in
// chunks of KC; per chunk each lane scores keys lane + 32i (i < KC/32), the warp updates the
// running max / sum (online softmax) and each lane accumulates output dims lane + 32i
// (i < HD/32).

template <int HD, int KC, int QPW> struct alignas(16) AttSmem {
    float k[KC][HD + 1];  // + 1: lane j reads row j, conflict-free
    float v[KC][HD];
    float q[ATT_WARPS][QPW][HD];
    float p[ATT_WARPS][KC];
};

template <class D, int HD, int KC, int QPW>
__device__ __forceinline__ void attention_impl(const u16* qkv, u16* out, u32 batch, u32 seq, u32 heads, u32 hd, float scale) {
    constexpr int KPL = KC / 32;  // keys per lane
    constexpr int DPL = HD / 32;  // output dims per lane
    constexpr u32 QB = QPW * ATT_WARPS;
    __shared__ AttSmem<HD, KC, QPW> sm;
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const u32 h = blockIdx.y, b = blockIdx.z;
    const u32 width = heads * hd, ld = 3u * width;
    const u64 base = (u64)b * seq * ld + (u64)h * hd;
    const u32 q0 = blockIdx.x * QB + warp * QPW;
    const u32 hd16 = (hd + 15u) & ~15u;  // score loop bound: dims hd .. hd16 are zeros
    (void)batch;

    for (u32 i = threadIdx.x; i < QB * HD; i += ATT_THREADS) {
        const u32 w = i / (QPW * HD), qi = (i / HD) % QPW, d = i % HD;
        const u32 q = blockIdx.x * QB + w * QPW + qi;
        sm.q[w][qi][d] = (q < seq && d < hd) ? D::to_f32(qkv[base + (u64)q * ld + d]) * scale : 0.0f;
    }
    float mrun[QPW], lrun[QPW], o[QPW][DPL];
#pragma unroll
    for (int i = 0; i < QPW; ++i) {
        mrun[i] = __int_as_float(0xff800000);
        lrun[i] = 0.0f;
#pragma unroll
        for (int e = 0; e < DPL; ++e) o[i][e] = 0.0f;
    }
    for (u32 k0 = 0; k0 < seq; k0 += KC) {
        __syncthreads();  // previous chunk consumed (and q written, on the first pass)
        for (u32 i = threadIdx.x; i < KC * HD; i += ATT_THREADS) {
            const u32 j = i / HD, d = i % HD;
            const bool in = k0 + j < seq && d < hd;
            const u64 row = base + (u64)(k0 + j) * ld;
            sm.k[j][d] = in ? D::to_f32(qkv[row + width + d]) : 0.0f;
            sm.v[j][d] = in ? D::to_f32(qkv[row + 2u * width + d]) : 0.0f;
        }
        __syncthreads();
        bool in[KPL];
#pragma unroll
        for (int i = 0; i < KPL; ++i) in[i] = k0 + lane + 32u * (u32)i < seq;
        const u32 nk = seq - k0 < (u32)KC ? seq - k0 : (u32)KC;
#pragma unroll
        for (int qi = 0; qi < QPW; ++qi) {
            if (q0 + (u32)qi >= seq) continue;  // warp-uniform
            float s[KPL];
#pragma unroll
            for (int i = 0; i < KPL; ++i) s[i] = 0.0f;
            for (u32 d0 = 0; d0 < hd16; d0 += 16) {
#pragma unroll
                for (u32 d = d0; d < d0 + 16u; ++d) {
                    const float qd = sm.q[warp][qi][d];
#pragma unroll
                    for (int i = 0; i < KPL; ++i) s[i] += qd * sm.k[lane + 32u * (u32)i][d];
                }
            }
            const float NEG_INF = __int_as_float(0xff800000);
            float mc = NEG_INF;
#pragma unroll
            for (int i = 0; i < KPL; ++i) {
                s[i] = in[i] ? s[i] : NEG_INF;
                mc = fmaxf(mc, s[i]);
            }
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) mc = fmaxf(mc, __shfl_xor_sync(0xffffffffu, mc, off));
            const float mnew = fmaxf(mrun[qi], mc);
            const float alpha = expf(mrun[qi] - mnew);
            float ps = 0.0f;
#pragma unroll
            for (int i = 0; i < KPL; ++i) {
                const float pi = in[i] ? expf(s[i] - mnew) : 0.0f;
                sm.p[warp][lane + 32u * (u32)i] = pi;
                ps += pi;
            }
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) ps += __shfl_xor_sync(0xffffffffu, ps, off);
            lrun[qi] = lrun[qi] * alpha + ps;
            mrun[qi] = mnew;
            __syncwarp();
            float a[DPL];
#pragma unroll
            for (int e = 0; e < DPL; ++e) a[e] = o[qi][e] * alpha;
            for (u32 j = 0; j < nk; ++j) {
                const float pj = sm.p[warp][j];
#pragma unroll
                for (int e = 0; e < DPL; ++e) a[e] += pj * sm.v[j][lane + 32u * (u32)e];
            }
#pragma unroll
            for (int e = 0; e < DPL; ++e) o[qi][e] = a[e];
            __syncwarp();
        }
    }
#pragma unroll
    for (int qi = 0; qi < QPW; ++qi) {
        const u32 q = q0 + (u32)qi;
        if (q >= seq) continue;
        const float inv = 1.0f / lrun[qi];
        const u64 row = ((u64)b * seq + q) * width + (u64)h * hd;
#pragma unroll
        for (int e = 0; e < DPL; ++e) {
            const u32 d = lane + 32u * (u32)e;
            if (d < hd) out[row + d] = D::from_f32(o[qi][e] * inv);
        }
    }
}

// Head dims ≤ 64: 8 queries per warp (32 per block), chunks of 64 keys; 42 KiB of shared memory.
extern "C" __global__ void attention_f16(const u16* qkv, u16* out, u32 batch, u32 seq, u32 heads, u32 hd, float scale) {
    attention_impl<F16, 64, 64, 8>(qkv, out, batch, seq, heads, hd, scale);
}
extern "C" __global__ void attention_bf16(const u16* qkv, u16* out, u32 batch, u32 seq, u32 heads, u32 hd, float scale) {
    attention_impl<BF16, 64, 64, 8>(qkv, out, batch, seq, heads, hd, scale);
}
// Head dims 65 ..= 128: 6 queries per warp (24 per block), chunks of 32 keys; 45 KiB.
extern "C" __global__ void attention_wide_f16(const u16* qkv, u16* out, u32 batch, u32 seq, u32 heads, u32 hd, float scale) {
    attention_impl<F16, 128, 32, 6>(qkv, out, batch, seq, heads, hd, scale);
}
extern "C" __global__ void attention_wide_bf16(const u16* qkv, u16* out, u32 batch, u32 seq, u32 heads, u32 hd, float scale) {
    attention_impl<BF16, 128, 32, 6>(qkv, out, batch, seq, heads, hd, scale);
}
