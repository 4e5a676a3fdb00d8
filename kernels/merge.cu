// dawin-kernels: merge kernels for DaWin.
//
//   lerp             out = (1 - l) a + l b
//   multi_lerp       out_k = (1 - l_k) a + l_k b for K coefficients, one read of a and b
//   task_arith       out = t0 + sum_j w_j (t_j - t0) for M models in one pass, evaluated as
//                    (1 - sum_j w_j) t0 + sum_j w_j t_j (exact for one model with w = 1)
//   cast             dst = D(src)
//
// for f32, f16 and bf16 parameters with f32 arithmetic. Every kernel has a CPU reference in
// dawin_core::merge and computes exactly what it computes, operation by operation:
//   * products and sums are __fmul_rn / __fadd_rn / __fsub_rn, so no multiply-add is contracted
//     and the f32 result is bit-identical to the Rust reference (Rust never contracts);
//   * one rounding to the output dtype, round-to-nearest-even (f16: cvt.rn.f16.f32; bf16: the
//     same bit operations as the `half` crate, NaN kept NaN with its quiet bit set);
//   * lerp with l == 0 copies a and with l == 1 copies b, bit for bit.
//
// Layout: grid-stride loops over 16-byte vectors (4 f32 or 8 f16/bf16 per thread and step; casts:
// packs of 8 elements) when every pointer is 16-byte aligned, then a scalar loop over the tail
// (fewer elements than one vector). When a pointer is not 16-byte aligned the whole range
// goes through the scalar loop. The arena of dawin-kernels aligns every tensor to 256 bytes.
//
// Element types and half-precision conversions come from half_types.cuh (shared with the
// forward's kernels). The exact C signatures are mirrored in crates/dawin-kernels/src/source.rs;
// keep both in step (a CPU test checks them against this file and the shipped PTX).

#include "half_types.cuh"

// Must match MAX_OUTPUTS / MAX_MODELS in crates/dawin-kernels/src/source.rs.
#define DAWIN_MAX_OUTPUTS 16
#define DAWIN_MAX_MODELS 32

// ---------------------------------------------------------------------------------------------
// Packs of N elements held as raw 32-bit words, loaded and stored as whole 16-byte vectors.
// Vec<D> is one 16-byte vector (4 f32 or 8 f16/bf16): a warp then reads and writes 512
// contiguous bytes per instruction. Casts use packs of 8 on both sides (two vectors of f32).

template <class D, int N> struct Pack {
    static constexpr int LEN = N;            // elements
    static constexpr int SIZE = (int)sizeof(typename D::T);
    static constexpr int NW = N * SIZE / 4;  // 32-bit words
    static constexpr int NV = NW / 4;        // 16-byte vectors
    u32 w[NW];

    static __device__ __forceinline__ Pack load(const typename D::T* p, u64 c) {
        const uint4* v = reinterpret_cast<const uint4*>(p) + c * NV;
        Pack r;
#pragma unroll
        for (int j = 0; j < NV; ++j) {
            const uint4 x = v[j];
            r.w[4 * j] = x.x;
            r.w[4 * j + 1] = x.y;
            r.w[4 * j + 2] = x.z;
            r.w[4 * j + 3] = x.w;
        }
        return r;
    }
    __device__ __forceinline__ void store(typename D::T* p, u64 c) const {
        uint4* v = reinterpret_cast<uint4*>(p) + c * NV;
#pragma unroll
        for (int j = 0; j < NV; ++j) v[j] = make_uint4(w[4 * j], w[4 * j + 1], w[4 * j + 2], w[4 * j + 3]);
    }
    __device__ __forceinline__ float get(int i) const {
        if constexpr (SIZE == 4) {
            return __uint_as_float(w[i]);
        } else {
            const u32 word = w[i >> 1];
            return D::to_f32((u16)((i & 1) ? (word >> 16) : (word & 0xffffu)));
        }
    }
    __device__ __forceinline__ void set(int i, float f) {
        if constexpr (SIZE == 4) {
            w[i] = __float_as_uint(f);
        } else {
            const u32 h = (u32)D::from_f32(f);
            const u32 word = w[i >> 1];
            w[i >> 1] = (i & 1) ? ((word & 0x0000ffffu) | (h << 16)) : ((word & 0xffff0000u) | h);
        }
    }
};

template <class D> using Vec = Pack<D, 16 / (int)sizeof(typename D::T)>;

// Elements per pack of the cast kernels.
#define CAST_PACK 8

__device__ __forceinline__ bool aligned16(const void* p) { return (((u64)p) & 15ull) == 0; }

__device__ __forceinline__ u64 global_thread() {
    return (u64)blockIdx.x * (u64)blockDim.x + (u64)threadIdx.x;
}

__device__ __forceinline__ u64 grid_threads() { return (u64)gridDim.x * (u64)blockDim.x; }

// The f32 formulas of the CPU references (dawin_core::merge), without contraction.
__device__ __forceinline__ float lerp_f32(float a, float b, float l) {
    return __fadd_rn(__fmul_rn(1.0f - l, a), __fmul_rn(l, b));
}

// One element: l == 0 and l == 1 copy the raw input, as the reference does.
template <class D>
__device__ __forceinline__ typename D::T lerp_elem(typename D::T a, typename D::T b, float l) {
    if (l == 0.0f) return a;
    if (l == 1.0f) return b;
    return D::from_f32(lerp_f32(D::to_f32(a), D::to_f32(b), l));
}

template <class D>
__device__ __forceinline__ Vec<D> lerp_vec(const Vec<D>& a, const Vec<D>& b, float l) {
    if (l == 0.0f) return a;
    if (l == 1.0f) return b;
    Vec<D> r{};
#pragma unroll
    for (int i = 0; i < Vec<D>::LEN; ++i) r.set(i, lerp_f32(a.get(i), b.get(i), l));
    return r;
}

// ---------------------------------------------------------------------------------------------
// lerp

template <class D>
__device__ __forceinline__ void lerp_impl(const typename D::T* __restrict__ a,
                                          const typename D::T* __restrict__ b, float l,
                                          typename D::T* __restrict__ out, u64 n) {
    const u64 tid = global_thread();
    const u64 stride = grid_threads();
    u64 head = 0;
    if (aligned16(a) && aligned16(b) && aligned16(out)) {
        const u64 nvec = n / Vec<D>::LEN;
        for (u64 c = tid; c < nvec; c += stride) {
            Vec<D> x = Vec<D>::load(a, c);
            Vec<D> y = Vec<D>::load(b, c);
            lerp_vec<D>(x, y, l).store(out, c);
        }
        head = nvec * Vec<D>::LEN;
    }
    for (u64 i = head + tid; i < n; i += stride) out[i] = lerp_elem<D>(a[i], b[i], l);
}

// ---------------------------------------------------------------------------------------------
// multi_lerp: K outputs from one read of a and b. Output pointers and coefficients are passed by
// value in a struct (kernel parameter space), so there is no upload before the launch; the
// struct is __grid_constant__ (sm_70+), so indexing it with a run-time k reads parameter space
// directly instead of copying the struct to local memory.

struct MultiLerpParams {
    u64 out[DAWIN_MAX_OUTPUTS];      // device pointers to the K outputs
    float lambda[DAWIN_MAX_OUTPUTS]; // coefficients
    u32 k;                           // number of outputs, 1..=DAWIN_MAX_OUTPUTS
    u32 pad;
};

template <class D>
__device__ __forceinline__ void multi_lerp_impl(const typename D::T* __restrict__ a,
                                                const typename D::T* __restrict__ b,
                                                const MultiLerpParams& p, u64 n) {
    typedef typename D::T T;
    const u64 tid = global_thread();
    const u64 stride = grid_threads();
    bool all_aligned = aligned16(a) && aligned16(b);
    for (u32 k = 0; k < p.k; ++k) all_aligned = all_aligned && aligned16((const void*)p.out[k]);
    u64 head = 0;
    if (all_aligned) {
        const u64 nvec = n / Vec<D>::LEN;
        for (u64 c = tid; c < nvec; c += stride) {
            Vec<D> x = Vec<D>::load(a, c);
            Vec<D> y = Vec<D>::load(b, c);
            for (u32 k = 0; k < p.k; ++k) lerp_vec<D>(x, y, p.lambda[k]).store((T*)p.out[k], c);
        }
        head = nvec * Vec<D>::LEN;
    }
    for (u64 i = head + tid; i < n; i += stride) {
        const T x = a[i];
        const T y = b[i];
        for (u32 k = 0; k < p.k; ++k) ((T*)p.out[k])[i] = lerp_elem<D>(x, y, p.lambda[k]);
    }
}

// ---------------------------------------------------------------------------------------------
// task_arith: out = t0 + sum_j w_j (t_j - t0), evaluated as c0 t0 + sum_j w_j t_j with
// c0 = 1 - (w_1 + ... + w_M) (sums in model order), accumulated in f32, rounded once. This form has
// no cancellation: one model with w = 1 gives t_1 exactly, all w = 0 give t0.

struct TaskArithParams {
    u64 model[DAWIN_MAX_MODELS];     // device pointers to the M fine-tuned models
    float weight[DAWIN_MAX_MODELS];  // w_j
    u32 m;                           // number of models, 1..=DAWIN_MAX_MODELS
    u32 pad;
};

template <class D>
__device__ __forceinline__ void task_arith_impl(const typename D::T* __restrict__ base,
                                                const TaskArithParams& p,
                                                typename D::T* __restrict__ out, u64 n) {
    typedef typename D::T T;
    const u64 tid = global_thread();
    const u64 stride = grid_threads();
    bool all_aligned = aligned16(base) && aligned16(out);
    for (u32 j = 0; j < p.m; ++j) all_aligned = all_aligned && aligned16((const void*)p.model[j]);
    float wsum = 0.0f;
    for (u32 j = 0; j < p.m; ++j) wsum = __fadd_rn(wsum, p.weight[j]);
    const float c0 = __fsub_rn(1.0f, wsum);
    u64 head = 0;
    if (all_aligned) {
        const u64 nvec = n / Vec<D>::LEN;
        for (u64 c = tid; c < nvec; c += stride) {
            const Vec<D> t0 = Vec<D>::load(base, c);
            float acc[Vec<D>::LEN];
#pragma unroll
            for (int i = 0; i < Vec<D>::LEN; ++i) acc[i] = __fmul_rn(c0, t0.get(i));
            for (u32 j = 0; j < p.m; ++j) {
                const Vec<D> t = Vec<D>::load((const T*)p.model[j], c);
                const float w = p.weight[j];
#pragma unroll
                for (int i = 0; i < Vec<D>::LEN; ++i)
                    acc[i] = __fadd_rn(acc[i], __fmul_rn(w, t.get(i)));
            }
            Vec<D> r{};
#pragma unroll
            for (int i = 0; i < Vec<D>::LEN; ++i) r.set(i, acc[i]);
            r.store(out, c);
        }
        head = nvec * Vec<D>::LEN;
    }
    for (u64 i = head + tid; i < n; i += stride) {
        float acc = __fmul_rn(c0, D::to_f32(base[i]));
        for (u32 j = 0; j < p.m; ++j) {
            const float t = D::to_f32(((const T*)p.model[j])[i]);
            acc = __fadd_rn(acc, __fmul_rn(p.weight[j], t));
        }
        out[i] = D::from_f32(acc);
    }
}

// ---------------------------------------------------------------------------------------------
// cast

template <class S, class D>
__device__ __forceinline__ void cast_impl(const typename S::T* __restrict__ src,
                                          typename D::T* __restrict__ dst, u64 n) {
    const u64 tid = global_thread();
    const u64 stride = grid_threads();
    u64 head = 0;
    if (aligned16(src) && aligned16(dst)) {
        const u64 nvec = n / CAST_PACK;
        for (u64 c = tid; c < nvec; c += stride) {
            const Pack<S, CAST_PACK> x = Pack<S, CAST_PACK>::load(src, c);
            Pack<D, CAST_PACK> y{};
#pragma unroll
            for (int i = 0; i < CAST_PACK; ++i) y.set(i, x.get(i));
            y.store(dst, c);
        }
        head = nvec * CAST_PACK;
    }
    for (u64 i = head + tid; i < n; i += stride) dst[i] = D::from_f32(S::to_f32(src[i]));
}

// ---------------------------------------------------------------------------------------------
// Entry points. Element pointers are `const float*` for f32 and `const u16*` (raw bits) for
// f16 / bf16; n is the number of elements.

extern "C" __global__ void lerp_f32(const float* a, const float* b, float lambda, float* out, u64 n) { lerp_impl<F32>(a, b, lambda, out, n); }
extern "C" __global__ void lerp_f16(const u16* a, const u16* b, float lambda, u16* out, u64 n) { lerp_impl<F16>(a, b, lambda, out, n); }
extern "C" __global__ void lerp_bf16(const u16* a, const u16* b, float lambda, u16* out, u64 n) { lerp_impl<BF16>(a, b, lambda, out, n); }

extern "C" __global__ void multi_lerp_f32(const float* a, const float* b, const __grid_constant__ MultiLerpParams p, u64 n) { multi_lerp_impl<F32>(a, b, p, n); }
extern "C" __global__ void multi_lerp_f16(const u16* a, const u16* b, const __grid_constant__ MultiLerpParams p, u64 n) { multi_lerp_impl<F16>(a, b, p, n); }
extern "C" __global__ void multi_lerp_bf16(const u16* a, const u16* b, const __grid_constant__ MultiLerpParams p, u64 n) { multi_lerp_impl<BF16>(a, b, p, n); }

extern "C" __global__ void task_arith_f32(const float* base, const __grid_constant__ TaskArithParams p, float* out, u64 n) { task_arith_impl<F32>(base, p, out, n); }
extern "C" __global__ void task_arith_f16(const u16* base, const __grid_constant__ TaskArithParams p, u16* out, u64 n) { task_arith_impl<F16>(base, p, out, n); }
extern "C" __global__ void task_arith_bf16(const u16* base, const __grid_constant__ TaskArithParams p, u16* out, u64 n) { task_arith_impl<BF16>(base, p, out, n); }

extern "C" __global__ void cast_f32_f16(const float* src, u16* dst, u64 n) { cast_impl<F32, F16>(src, dst, n); }
extern "C" __global__ void cast_f32_bf16(const float* src, u16* dst, u64 n) { cast_impl<F32, BF16>(src, dst, n); }
extern "C" __global__ void cast_f16_f32(const u16* src, float* dst, u64 n) { cast_impl<F16, F32>(src, dst, n); }
extern "C" __global__ void cast_bf16_f32(const u16* src, float* dst, u64 n) { cast_impl<BF16, F32>(src, dst, n); }
extern "C" __global__ void cast_f16_bf16(const u16* src, u16* dst, u64 n) { cast_impl<F16, BF16>(src, dst, n); }
extern "C" __global__ void cast_bf16_f16(const u16* src, u16* dst, u64 n) { cast_impl<BF16, F16>(src, dst, n); }
