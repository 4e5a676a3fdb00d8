// dawin-kernels: multi-head attention, f16 or bf16 in and out, f32 softmax and accumulation.
//
//   attention_T  per (batch, head): softmax(q kᵀ · scale) v, head dim ≤ 64 and even (zero-padded
//                to 64 in shared memory), online softmax over chunks of 64 keys held in shared
//                memory (any sequence length)
//
// T is f16 or bf16 (half_types.cuh). CPU reference: crates/dawin-vit/src/cpu.rs (attention);
// emulation/emulate_forward.cpp checks it on the host. Compiled for compute_80 with the other
// kernels of the forward. The exact C signatures are mirrored in crates/dawin-kernels/src/source.rs.

#include "half_types.cuh"

#define ATT_THREADS 128
#define ATT_QPW 8    // queries per warp
#define ATT_QB 32    // queries per block (4 warps)
#define ATT_KC 64    // keys per shared-memory chunk
#define ATT_HEAD_DIM 64  // largest head dimension (shared-memory rows)

// ---------------------------------------------------------------------------------------------
// Attention. qkv: T [batch·seq, 3·heads·hd] (q | k | v, head h at columns h·hd of each third);
// out: T [batch·seq, heads·hd], hd ≤ 64 even (dims hd..63 are zeros in shared memory). Grid (ceil(seq / 32), heads, batch), 128 threads: each warp owns
// 8 queries; keys and values go through shared memory (f32) in chunks of 64; per chunk each lane
// scores keys lane and lane + 32, the warp updates the running max / sum (online softmax) and
// each lane accumulates output dims 2·lane, 2·lane + 1.

struct alignas(16) AttSmem {
    float k[ATT_KC][ATT_HEAD_DIM + 1];
    float v[ATT_KC][ATT_HEAD_DIM];
    float q[ATT_THREADS / 32][ATT_QPW][ATT_HEAD_DIM];
    float p[ATT_THREADS / 32][ATT_KC];
};

template <class D>
__device__ __forceinline__ void attention_impl(const u16* qkv, u16* out, u32 batch, u32 seq, u32 heads, u32 hd, float scale) {
    __shared__ AttSmem sm;
    const u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const u32 h = blockIdx.y, b = blockIdx.z;
    const u32 width = heads * hd, ld = 3u * width;
    const u64 base = (u64)b * seq * ld + (u64)h * hd;
    const u32 q0 = blockIdx.x * ATT_QB + warp * ATT_QPW;
    (void)batch;

    for (u32 i = threadIdx.x; i < ATT_QPW * (ATT_THREADS / 32) * ATT_HEAD_DIM; i += ATT_THREADS) {
        const u32 w = i / (ATT_QPW * ATT_HEAD_DIM), qi = (i / ATT_HEAD_DIM) % ATT_QPW, d = i % ATT_HEAD_DIM;
        const u32 q = blockIdx.x * ATT_QB + w * ATT_QPW + qi;
        sm.q[w][qi][d] = (q < seq && d < hd) ? D::to_f32(qkv[base + (u64)q * ld + d]) * scale : 0.0f;
    }
    float mrun[ATT_QPW], lrun[ATT_QPW], o0[ATT_QPW], o1[ATT_QPW];
#pragma unroll
    for (int i = 0; i < ATT_QPW; ++i) {
        mrun[i] = __int_as_float(0xff800000);
        lrun[i] = 0.0f;
        o0[i] = 0.0f;
        o1[i] = 0.0f;
    }
    for (u32 k0 = 0; k0 < seq; k0 += ATT_KC) {
        __syncthreads();  // previous chunk consumed (and q written, on the first pass)
        for (u32 i = threadIdx.x; i < ATT_KC * ATT_HEAD_DIM; i += ATT_THREADS) {
            const u32 j = i / ATT_HEAD_DIM, d = i % ATT_HEAD_DIM;
            const bool in = k0 + j < seq && d < hd;
            const u64 row = base + (u64)(k0 + j) * ld;
            sm.k[j][d] = in ? D::to_f32(qkv[row + width + d]) : 0.0f;
            sm.v[j][d] = in ? D::to_f32(qkv[row + 2u * width + d]) : 0.0f;
        }
        __syncthreads();
        const bool in0 = k0 + lane < seq, in1 = k0 + lane + 32u < seq;
#pragma unroll
        for (int qi = 0; qi < ATT_QPW; ++qi) {
            if (q0 + (u32)qi >= seq) continue;  // warp-uniform
            float s0 = 0.0f, s1 = 0.0f;
#pragma unroll 16
            for (int d = 0; d < ATT_HEAD_DIM; ++d) {
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
            const u32 nk = seq - k0 < ATT_KC ? seq - k0 : ATT_KC;
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
    for (int qi = 0; qi < ATT_QPW; ++qi) {
        const u32 q = q0 + (u32)qi;
        if (q >= seq || 2u * lane >= hd) continue;
        const float inv = 1.0f / lrun[qi];
        const u64 o = ((u64)b * seq + q) * width + (u64)h * hd + 2u * lane;
        out[o] = D::from_f32(o0[qi] * inv);
        out[o + 1] = D::from_f32(o1[qi] * inv);
    }
}

extern "C" __global__ void attention_f16(const u16* qkv, u16* out, u32 batch, u32 seq, u32 heads, u32 hd, float scale) {
    attention_impl<F16>(qkv, out, batch, seq, heads, hd, scale);
}
extern "C" __global__ void attention_bf16(const u16* qkv, u16* out, u32 batch, u32 seq, u32 heads, u32 hd, float scale) {
    attention_impl<BF16>(qkv, out, batch, seq, heads, hd, scale);
}

