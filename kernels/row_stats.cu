// dawin-kernels: per-row statistics of a row-major f32 logits matrix [n_rows, n_cols] at a
// temperature T > 0, one warp per row, two passes over the row (the second one hits L1/L2).
//
// With z the raw logits of a row, u_c = z_c / T, m = max_c u_c (= z_max / T: division by T > 0
// is monotonic), p = softmax(u), r = sum_{c != argmax} exp(u_c - m) and s = 1 + r:
//
//   logsumexp        lse = m + log1p(r)                     (ln sum_c exp(u_c))
//   entropy          H = log1p(r) - (sum_c exp(u_c - m) (u_c - m)) / s
//                                                           (= lse - sum_c p_c u_c)
//   max_logit        z_max (raw, not divided by T)
//   argmax           first index of the maximum
//   max_prob         1 / s                                  (= max_c p_c)
//   top1_minus_top2  (1 - exp(u_(2) - m)) / s               (p_(1) - p_(2); 1 when n_cols == 1)
//   ce               max(lse - z_y / T, 0)                  (when labels are given)
//
// Computing log1p(r) instead of log(s) keeps the entropy of confident rows (r << 1e-7) accurate.
// Entropy and cross-entropy are clamped at 0 (rounding can leave them a hair below), as in the
// CPU reference.
// A row with a non-finite logit gets `bad_col` = its first non-finite column and NaN statistics;
// the Rust side turns that into the error of the CPU reference (dawin_core::stats).
//
// The integer typedefs come from half_types.cuh. The exact C signature is mirrored in
// crates/dawin-kernels/src/source.rs and the output struct in RowStatsRaw there.

#include "half_types.cuh"

#define NO_BAD_COL 0xffffffffu

// 32 bytes per row; must match RowStatsRaw in crates/dawin-kernels/src/gpu.rs.
struct RowStatsOut {
    float entropy;
    float logsumexp;
    float max_logit;
    u32 argmax;
    float max_prob;
    float top1_minus_top2;
    u32 bad_col;   // first non-finite column of the row, or 0xffffffff
    float ce;      // cross-entropy against the label, NaN when no labels were given
};

__device__ __forceinline__ bool not_finite(float x) {
    return (__float_as_uint(x) & 0x7f800000u) == 0x7f800000u;
}

// Top-2 of a set of values: (v1 at index i1) >= v2; ties on v1 keep the smaller index.
struct Top2 {
    float v1;
    u32 i1;
    float v2;
};

__device__ __forceinline__ Top2 top2_merge(Top2 a, Top2 b) {
    Top2 r;
    const bool a_wins = (a.v1 > b.v1) || (a.v1 == b.v1 && a.i1 < b.i1);
    if (a_wins) {
        r.v1 = a.v1;
        r.i1 = a.i1;
        r.v2 = fmaxf(a.v2, b.v1);
    } else {
        r.v1 = b.v1;
        r.i1 = b.i1;
        r.v2 = fmaxf(b.v2, a.v1);
    }
    return r;
}

extern "C" __global__ void row_stats_f32(const float* logits, u32 n_rows, u32 n_cols, float temperature, const long long* labels, RowStatsOut* out) {
    const u32 lane = threadIdx.x & 31u;
    const u32 warps_per_block = blockDim.x >> 5;
    const u64 row = (u64)blockIdx.x * warps_per_block + (threadIdx.x >> 5);
    if (row >= n_rows) return;  // whole warp leaves together
    const float* z = logits + row * (u64)n_cols;
    const float NEG_INF = __int_as_float(0xff800000);
    const float NAN_F = __int_as_float(0x7fffffff);

    // Pass 1: top-2 of the raw logits, first non-finite column.
    Top2 t;
    t.v1 = NEG_INF;
    t.i1 = NO_BAD_COL;
    t.v2 = NEG_INF;
    u32 bad = NO_BAD_COL;
    for (u32 c = lane; c < n_cols; c += 32u) {
        const float x = z[c];
        if (not_finite(x)) {
            bad = min(bad, c);
        } else if (x > t.v1) {  // strict: a lane visits its columns in increasing order
            t.v2 = t.v1;
            t.v1 = x;
            t.i1 = c;
        } else if (x > t.v2) {
            t.v2 = x;
        }
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        Top2 o;
        o.v1 = __shfl_xor_sync(0xffffffffu, t.v1, off);
        o.i1 = __shfl_xor_sync(0xffffffffu, t.i1, off);
        o.v2 = __shfl_xor_sync(0xffffffffu, t.v2, off);
        t = top2_merge(t, o);
        bad = min(bad, __shfl_xor_sync(0xffffffffu, bad, off));
    }

    RowStatsOut o;
    if (bad != NO_BAD_COL) {
        o.entropy = NAN_F;
        o.logsumexp = NAN_F;
        o.max_logit = NAN_F;
        o.argmax = 0;
        o.max_prob = NAN_F;
        o.top1_minus_top2 = NAN_F;
        o.bad_col = bad;
        o.ce = NAN_F;
        if (lane == 0) out[row] = o;
        return;
    }

    // Pass 2: r = sum_{c != argmax} exp(u_c - m), q = sum_c exp(u_c - m) (u_c - m).
    const float m = t.v1 / temperature;
    float r = 0.0f;
    float q = 0.0f;
    for (u32 c = lane; c < n_cols; c += 32u) {
        if (c == t.i1) continue;
        const float d = z[c] / temperature - m;
        const float e = expf(d);
        r += e;
        q += e * d;
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        r += __shfl_xor_sync(0xffffffffu, r, off);
        q += __shfl_xor_sync(0xffffffffu, q, off);
    }

    if (lane == 0) {
        const float s = 1.0f + r;
        const float log_s = log1pf(r);
        o.logsumexp = m + log_s;
        o.entropy = fmaxf(log_s - q / s, 0.0f);
        o.max_logit = t.v1;
        o.argmax = t.i1;
        o.max_prob = 1.0f / s;
        const float p2 = (n_cols > 1u) ? expf(t.v2 / temperature - m) : 0.0f;
        o.top1_minus_top2 = (1.0f - p2) / s;
        o.bad_col = NO_BAD_COL;
        o.ce = NAN_F;
        if (labels != 0) {
            const long long y = labels[row];
            if (y >= 0 && y < (long long)n_cols) o.ce = fmaxf(o.logsumexp - z[y] / temperature, 0.0f);
        }
        out[row] = o;
    }
}
