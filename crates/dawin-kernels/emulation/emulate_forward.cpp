// Runs the kernels of the forward (kernels/gemm.cu, attention.cu, norm.cu, embed.cu) on the CPU through emu.h and checks them against small
// independent references in double precision: every element written, nothing written outside
// the output, results as the formulas say. Sizes are chosen to hit the tails: M and N not
// multiples of the 128×128 GEMM tile (N not even a multiple of 8), K not a multiple of the
// 32-wide K tile, lda > K, sequences of 1, 50 and 70 tokens (one and two 64-key chunks, one and
// three 32-query blocks), both fragment loads of the GEMM (ldmatrix and 32-bit loads), a blended GEMM / layer norm / embedding over 3 weight sets with
// coefficients that select one set exactly (λ = 0 and 1) and random ones, the GEMM's epilogues
// (QuickGELU, exact GELU, LayerScale γ plain and blended, residual), and head dims 64, 32, 8, 1
// and 9 (attention_*) and 65, 80, 88, 104, 127, 128 (attention_wide_*: ViT-H, g, bigG).
//
//   g++ -std=c++20 -O1 -ffp-contract=off -pthread -Wno-unknown-pragmas \
//       -fsanitize=address,undefined -fno-sanitize-recover=all emulate_forward.cpp -o emulate_forward
//
// Called by scripts/check_kernels.sh. Prints the number of checks and the largest errors;
// exit status 1 on the first failure.

#define DAWIN_HOST_EMULATION 1
#include "emu.h"

#include "../kernels/gemm.cu"
#include "../kernels/attention.cu"
#include "../kernels/norm.cu"
#include "../kernels/embed.cu"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>

static int g_checks = 0;
static std::map<std::string, double> g_max_err;  // largest error / tolerance per check group

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        ++g_checks;                                                          \
        if (!(cond)) {                                                       \
            std::fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);        \
            std::fprintf(stderr, __VA_ARGS__);                               \
            std::fprintf(stderr, "\n");                                      \
            std::exit(1);                                                    \
        }                                                                    \
    } while (0)

static std::mt19937_64 rng(2024);
static float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); }

// ---- independent conversions (reference side) ----
static u16 ref_to_half(bool bf, float f) {
    if (!bf) return dawin_emu_f32_to_f16(f);  // _Float16: IEEE round to nearest even
    unsigned x = __float_as_uint(f);
    unsigned lo = x & 0xffff, hi = x >> 16;
    if (lo > 0x8000 || (lo == 0x8000 && (hi & 1))) hi += 1;
    return (u16)hi;
}
static float ref_from_half(bool bf, u16 h) { return bf ? __uint_as_float((unsigned)h << 16) : dawin_emu_f16_to_f32(h); }
// Unit roundoff of the 16-bit type.
static double ulp_rel(bool bf) { return bf ? 1.0 / 256.0 : 1.0 / 2048.0; }

static const u16 SENT16 = 0x7e5a;
static const float SENTF = 12345.678f;

// A buffer with guard elements after the end (the start is checked by ASan and the guard).
template <class T> struct Guarded {
    std::vector<T> v;
    size_t n;
    T sent;
    Guarded(size_t n_, T s) : v(n_ + 64 + 8, s), n(n_), sent(s) {}
    T* ptr() { return v.data() + 8; }
    T& operator[](size_t i) { return v[8 + i]; }
    void guards(const char* what) {
        for (size_t i = 0; i < 8; ++i) CHECK(v[i] == sent, "%s: wrote before the output", what);
        for (size_t i = 8 + n; i < v.size(); ++i) CHECK(v[i] == sent, "%s: wrote after the output", what);
    }
};

static std::vector<u16> random_half(bool bf, size_t n, float scale) {
    std::vector<u16> h(n);
    for (auto& x : h) x = ref_to_half(bf, uniform(-scale, scale));
    return h;
}

static void record(const std::string& group, double err_over_tol) {
    double& m = g_max_err[group];
    m = std::max(m, err_over_tol);
}

// |got − want| ≤ abs + rel·|want|; records the ratio to the tolerance.
static void close(const std::string& group, double got, double want, double abs, double rel, const char* what, size_t i) {
    const double tol = abs + rel * std::fabs(want);
    const double err = std::fabs(got - want);
    record(group, err / tol);
    CHECK(err <= tol, "%s[%zu]: got %.8g, want %.8g (tolerance %.3g)", what, i, got, want, tol);
}

// ---------------------------------------------------------------------------------------------

static void test_im2col(bool bf) {
    const u32 batch = 2, size = 12, ps = 4, g = size / ps, kdim = 3 * ps * ps, ld = 56;
    std::vector<float> img(batch * 3 * size * size);
    for (auto& x : img) x = uniform(-2, 2);
    Guarded<u16> out((size_t)batch * g * g * ld, SENT16);
    for (unsigned grid : {1u, 7u}) {
        emu_launch_blocks({grid, 1, 1}, 64, [&] {
            if (bf) im2col_bf16(img.data(), out.ptr(), batch, size, ps, ld);
            else im2col_f16(img.data(), out.ptr(), batch, size, ps, ld);
        });
        out.guards("im2col");
        for (u32 b = 0; b < batch; ++b)
            for (u32 gy = 0; gy < g; ++gy)
                for (u32 gx = 0; gx < g; ++gx)
                    for (u32 col = 0; col < ld; ++col) {
                        float want = 0.0f;
                        if (col < kdim) {
                            const u32 c = col / (ps * ps), ky = (col / ps) % ps, kx = col % ps;
                            want = img[((b * 3 + c) * size + gy * ps + ky) * size + gx * ps + kx];
                        }
                        const size_t i = ((size_t)(b * g + gy) * g + gx) * ld + col;
                        CHECK(out[i] == ref_to_half(bf, want), "im2col %s [%zu]", bf ? "bf16" : "f16", i);
                    }
    }
}

// ---------------------------------------------------------------------------------------------

struct GemmCase {
    u32 m, n, k, lda;
    bool bias;
    u32 act;            // GEMM_ACT_*: 0 none, 1 QuickGELU, 2 exact GELU
    bool residual, out_f32;
    u32 sets;           // 0: the plain kernel; ≥ 1: the blend kernel with this many sets
    u32 rows_per_coef;  // blend kernel
    bool scale = false; // LayerScale γ per set
};

// Exact GELU in double precision: x·Φ(x), Φ(x) = ½ erfc(−x/√2) (std::erfc: no cancellation for
// x ≪ 0, an independent formula from the kernel's x·½(1 + erf(x/√2))).
static double ref_gelu(double x) { return x * 0.5 * std::erfc(-x / std::sqrt(2.0)); }

static void test_gemm(bool bf, const GemmCase& c, bool lds) {
    const u32 ldo = (c.n + 7) / 8 * 8 + 8;
    const u32 nsets = std::max(c.sets, 1u);
    auto a = random_half(bf, (size_t)c.m * c.lda, 1.0f);
    std::vector<std::vector<u16>> w(nsets), bias(nsets), gamma(nsets);
    for (u32 s = 0; s < nsets; ++s) {
        w[s] = random_half(bf, (size_t)c.n * c.k, 0.5f);
        bias[s] = random_half(bf, c.n, 0.5f);
        gamma[s] = random_half(bf, c.n, 1.5f);
    }
    const u32 groups = (c.m + std::max(c.rows_per_coef, 1u) - 1) / std::max(c.rows_per_coef, 1u);
    std::vector<float> coef((size_t)groups * nsets);
    for (u32 gidx = 0; gidx < groups; ++gidx) {
        // group 0: set 0 only (λ = 0), group 1: set 1 only (λ = 1), others random (Σ = 1).
        float sum = 0.0f;
        for (u32 s = 1; s < nsets; ++s) {
            float v = gidx == 0 ? 0.0f : gidx == 1 ? (s == 1 ? 1.0f : 0.0f) : uniform(-0.2f, 0.8f);
            coef[gidx * nsets + s] = v;
            sum += v;
        }
        coef[gidx * nsets] = 1.0f - sum;
    }
    std::vector<float> res((size_t)c.m * ldo);
    for (auto& x : res) x = uniform(-3, 3);

    Guarded<float> outf((size_t)c.m * ldo, SENTF);
    Guarded<u16> outh((size_t)c.m * ldo, SENT16);
    // Elements of the output rows that are not columns < n keep their sentinel.
    if (c.residual) {
        for (size_t i = 0; i < (size_t)c.m * ldo; ++i) outf[i] = res[i];
    }
    GemmParams p{};
    p.a = (u64)a.data();
    for (u32 s = 0; s < nsets; ++s) {
        p.w[s] = (u64)w[s].data();
        p.bias[s] = c.bias ? (u64)bias[s].data() : 0;
        p.scale[s] = c.scale ? (u64)gamma[s].data() : 0;
    }
    p.out = c.out_f32 ? (u64)outf.ptr() : (u64)outh.ptr();
    p.res = c.residual ? (u64)outf.ptr() : 0;  // in place, as the residual stream does
    p.coef = c.sets ? (u64)coef.data() : 0;
    p.m = c.m;
    p.n = c.n;
    p.k = c.k;
    p.lda = c.lda;
    p.ldo = ldo;
    p.sets = nsets;
    p.rows_per_coef = std::max(c.rows_per_coef, 1u);
    p.act = c.act;
    p.out_f32 = c.out_f32;
    const EmuDim3 grid{(c.n + GEMM_BN - 1) / GEMM_BN, (c.m + GEMM_BM - 1) / GEMM_BM, 1};
    emu_launch_blocks(grid, GEMM_THREADS, [&] {
        if (c.sets) {
            if (lds) bf ? gemm_blend_lds_bf16(p) : gemm_blend_lds_f16(p);
            else bf ? gemm_blend_bf16(p) : gemm_blend_f16(p);
        } else {
            if (lds) bf ? gemm_lds_bf16(p) : gemm_lds_f16(p);
            else bf ? gemm_bf16(p) : gemm_f16(p);
        }
    });
    outf.guards("gemm f32 out");
    outh.guards("gemm T out");
    char what[160];
    std::snprintf(what, sizeof what, "gemm %s%s%s m=%u n=%u k=%u lda=%u bias=%d act=%u scale=%d res=%d f32=%d sets=%u", c.sets ? "blend " : "", lds ? "lds " : "ldmatrix ",
                  bf ? "bf16" : "f16", c.m, c.n, c.k, c.lda, c.bias, c.act, c.scale, c.residual, c.out_f32, c.sets);
    const std::string group = std::string(c.sets ? "gemm_blend_" : "gemm_") + (bf ? "bf16" : "f16") + (c.out_f32 ? "_f32out" : "_Tout");
    for (u32 i = 0; i < c.m; ++i) {
        for (u32 j = 0; j < ldo; ++j) {
            const size_t o = (size_t)i * ldo + j;
            if (j >= c.n) {
                if (c.out_f32) CHECK(outf[o] == (c.residual ? res[o] : SENTF), "%s: column %u >= n written", what, j);
                else CHECK(outh[o] == SENT16, "%s: column %u >= n written", what, j);
                continue;
            }
            double want = 0.0, mag = 0.0, gm = 0.0, gmag = 0.0;
            for (u32 s = 0; s < nsets; ++s) {
                double y = 0.0, ym = 0.0;
                for (u32 kk = 0; kk < c.k; ++kk) {
                    const double t = (double)ref_from_half(bf, a[(size_t)i * c.lda + kk]) * ref_from_half(bf, w[s][(size_t)j * c.k + kk]);
                    y += t;
                    ym += std::fabs(t);
                }
                if (c.bias) {
                    y += ref_from_half(bf, bias[s][j]);
                    ym += std::fabs(ref_from_half(bf, bias[s][j]));
                }
                const double cf = c.sets ? coef[(size_t)(i / p.rows_per_coef) * nsets + s] : 1.0;
                want += cf * y;
                mag += std::fabs(cf) * ym;
                gm += cf * ref_from_half(bf, gamma[s][j]);
                gmag += std::fabs(cf * ref_from_half(bf, gamma[s][j]));
            }
            if (c.act == 1) want = want / (1.0 + std::exp(-1.702 * want));
            if (c.act == 2) want = ref_gelu(want);
            if (c.scale) {
                // γ_i = Σ_s c_s γ_s (the merged model's LayerScale) times the blended branch.
                want *= gm;
                mag = mag * gmag + 1e-6 * gmag;
            }
            if (c.residual) want += res[o];
            // f32 accumulation of up to k + sets terms of magnitude `mag`: a few ulps of f32 each.
            const double acc_tol = 1e-6 * (c.k + 8 * nsets) * mag + 1e-6;
            if (c.out_f32) close(group, outf[o], want, acc_tol, 1e-6, what, o);
            else close(group, ref_from_half(bf, outh[o]), want, acc_tol, ulp_rel(bf), what, o);
        }
    }
}

// ---------------------------------------------------------------------------------------------

static void test_embed(bool bf, u32 sets) {
    const u32 batch = 3, np = 4, width = 24, seq = np + 1;
    std::vector<float> patches((size_t)batch * np * width);
    for (auto& x : patches) x = uniform(-1, 1);
    std::vector<std::vector<u16>> cls(sets), pos(sets);
    for (u32 s = 0; s < sets; ++s) {
        cls[s] = random_half(bf, width, 1.0f);
        pos[s] = random_half(bf, (size_t)seq * width, 1.0f);
    }
    std::vector<float> coef((size_t)batch * sets);
    for (auto& x : coef) x = uniform(-0.5f, 1.0f);
    Guarded<float> out((size_t)batch * seq * width, SENTF);
    EmbedParams p{};
    p.patches = (u64)patches.data();
    p.out = (u64)out.ptr();
    for (u32 s = 0; s < sets; ++s) {
        p.cls[s] = (u64)cls[s].data();
        p.pos[s] = (u64)pos[s].data();
    }
    p.coef = sets > 1 ? (u64)coef.data() : 0;
    p.batch = batch;
    p.np = np;
    p.width = width;
    p.sets = sets;
    emu_launch_blocks({2, 1, 1}, 64, [&] {
        if (bf) embed_tokens_bf16(p);
        else embed_tokens_f16(p);
    });
    out.guards("embed");
    for (u32 b = 0; b < batch; ++b)
        for (u32 t = 0; t < seq; ++t)
            for (u32 col = 0; col < width; ++col) {
                double want = t == 0 ? 0.0 : patches[((size_t)b * np + t - 1) * width + col];
                for (u32 s = 0; s < sets; ++s) {
                    const double cf = sets > 1 ? coef[b * sets + s] : 1.0;
                    double v = ref_from_half(bf, pos[s][(size_t)t * width + col]);
                    if (t == 0) v += ref_from_half(bf, cls[s][col]);
                    want += cf * v;
                }
                const size_t i = ((size_t)b * seq + t) * width + col;
                close(std::string("embed_") + (bf ? "bf16" : "f16"), out[i], want, 1e-5, 1e-6, "embed", i);
            }
}

// ---------------------------------------------------------------------------------------------

static void test_layernorm(bool bf, u32 rows, u32 d, u32 in_stride, bool out_f32, u32 sets, u32 rows_per_coef) {
    const u32 out_stride = d + 8;
    std::vector<float> x((size_t)rows * in_stride);
    for (auto& v : x) v = uniform(-2, 3);
    std::vector<std::vector<u16>> gamma(sets), beta(sets);
    for (u32 s = 0; s < sets; ++s) {
        gamma[s] = random_half(bf, d, 1.5f);
        beta[s] = random_half(bf, d, 0.5f);
    }
    const u32 groups = (rows + rows_per_coef - 1) / rows_per_coef;
    std::vector<float> coef((size_t)groups * sets);
    for (auto& v : coef) v = uniform(-0.3f, 1.0f);
    Guarded<float> outf((size_t)rows * out_stride, SENTF);
    Guarded<u16> outh((size_t)rows * out_stride, SENT16);
    LayerNormParams p{};
    p.in = (u64)x.data();
    p.out = out_f32 ? (u64)outf.ptr() : (u64)outh.ptr();
    for (u32 s = 0; s < sets; ++s) {
        p.gamma[s] = (u64)gamma[s].data();
        p.beta[s] = (u64)beta[s].data();
    }
    p.coef = sets > 1 ? (u64)coef.data() : 0;
    p.rows = rows;
    p.d = d;
    p.in_stride = in_stride;
    p.out_stride = out_stride;
    p.rows_per_coef = rows_per_coef;
    p.sets = sets;
    p.out_f32 = out_f32;
    p.eps = 1e-5f;
    emu_launch_blocks({(rows + 7) / 8, 1, 1}, 256, [&] {
        if (bf) layer_norm_bf16(p);
        else layer_norm_f16(p);
    });
    outf.guards("layernorm");
    outh.guards("layernorm");
    const std::string group = std::string("layernorm_") + (bf ? "bf16" : "f16") + (out_f32 ? "_f32out" : "_Tout");
    for (u32 r = 0; r < rows; ++r) {
        double mean = 0.0, var = 0.0;
        for (u32 c = 0; c < d; ++c) mean += x[(size_t)r * in_stride + c];
        mean /= d;
        for (u32 c = 0; c < d; ++c) var += (x[(size_t)r * in_stride + c] - mean) * (x[(size_t)r * in_stride + c] - mean);
        var /= d;
        for (u32 c = 0; c < out_stride; ++c) {
            const size_t o = (size_t)r * out_stride + c;
            if (c >= d) {
                CHECK(out_f32 ? outf[o] == SENTF : outh[o] == SENT16, "layernorm wrote column %u >= d", c);
                continue;
            }
            const double n = (x[(size_t)r * in_stride + c] - mean) / std::sqrt(var + 1e-5);
            double want = 0.0, mag = 0.0;
            for (u32 s = 0; s < sets; ++s) {
                const double cf = sets > 1 ? coef[(size_t)(r / rows_per_coef) * sets + s] : 1.0;
                const double g = ref_from_half(bf, gamma[s][c]), b = ref_from_half(bf, beta[s][c]);
                want += cf * (g * n + b);
                mag += std::fabs(cf) * (std::fabs(g * n) + std::fabs(b));
            }
            if (out_f32) close(group, outf[o], want, 2e-5 * (mag + 1), 1e-6, "layernorm", o);
            else close(group, ref_from_half(bf, outh[o]), want, 2e-5 * (mag + 1), ulp_rel(bf), "layernorm", o);
        }
    }
}

// ---------------------------------------------------------------------------------------------

static void test_attention(bool bf, u32 batch, u32 seq, u32 heads, u32 hd) {
    const u32 width = heads * hd, ld = 3 * width;
    const float scale = 1.0f / std::sqrt((float)hd);
    auto qkv = random_half(bf, (size_t)batch * seq * ld, 1.5f);
    Guarded<u16> out((size_t)batch * seq * width, SENT16);
    // The launcher's choice (crates/dawin-kernels/src/ops.rs, AttentionShape::kernel).
    const bool wide = hd > 64;
    const u32 qb = wide ? 24 : 32;
    const EmuDim3 grid{(seq + qb - 1) / qb, heads, batch};
    emu_launch_blocks(grid, ATT_THREADS, [&] {
        if (wide) bf ? attention_wide_bf16(qkv.data(), out.ptr(), batch, seq, heads, hd, scale)
                     : attention_wide_f16(qkv.data(), out.ptr(), batch, seq, heads, hd, scale);
        else bf ? attention_bf16(qkv.data(), out.ptr(), batch, seq, heads, hd, scale)
                : attention_f16(qkv.data(), out.ptr(), batch, seq, heads, hd, scale);
    });
    out.guards("attention");
    auto at = [&](u32 b, u32 t, u32 col) { return (double)ref_from_half(bf, qkv[((size_t)b * seq + t) * ld + col]); };
    const std::string group = std::string(wide ? "attention_wide_" : "attention_") + (bf ? "bf16" : "f16");
    std::vector<double> s(seq);
    for (u32 b = 0; b < batch; ++b)
        for (u32 h = 0; h < heads; ++h)
            for (u32 q = 0; q < seq; ++q) {
                double m = -1e300;
                for (u32 j = 0; j < seq; ++j) {
                    double dot = 0.0;
                    for (u32 d = 0; d < hd; ++d) dot += at(b, q, h * hd + d) * at(b, j, width + h * hd + d);
                    s[j] = dot * scale;
                    m = std::max(m, s[j]);
                }
                double z = 0.0;
                for (u32 j = 0; j < seq; ++j) z += (s[j] = std::exp(s[j] - m));
                for (u32 d = 0; d < hd; ++d) {
                    double want = 0.0, mag = 0.0;
                    for (u32 j = 0; j < seq; ++j) {
                        want += s[j] / z * at(b, j, 2 * width + h * hd + d);
                        mag += s[j] / z * std::fabs(at(b, j, 2 * width + h * hd + d));
                    }
                    const size_t o = ((size_t)b * seq + q) * width + h * hd + d;
                    // f32 scores (hd-term dots of values ≤ 1.5²/√hd), expf, f32 sums over seq keys.
                    close(group, ref_from_half(bf, out[o]), want, 2e-5 * (mag + 1) * (1 + seq / 16.0), ulp_rel(bf), "attention", o);
                }
            }
}

// ---------------------------------------------------------------------------------------------

static void test_l2norm(bool bf) {
    const u32 rows = 11, d = 40;
    std::vector<float> x((size_t)rows * d);
    for (auto& v : x) v = uniform(-3, 3);
    for (u32 c = 0; c < d; ++c) x[(size_t)3 * d + c] = 0.0f;  // a zero row stays zero
    Guarded<float> feats((size_t)rows * d, SENTF);
    Guarded<u16> out((size_t)rows * d, SENT16);
    emu_launch_blocks({(rows + 7) / 8, 1, 1}, 256, [&] {
        if (bf) l2_normalize_bf16(x.data(), feats.ptr(), out.ptr(), rows, d);
        else l2_normalize_f16(x.data(), feats.ptr(), out.ptr(), rows, d);
    });
    feats.guards("l2norm");
    out.guards("l2norm");
    for (u32 r = 0; r < rows; ++r) {
        double n = 0.0;
        for (u32 c = 0; c < d; ++c) n += (double)x[(size_t)r * d + c] * x[(size_t)r * d + c];
        n = std::sqrt(n);
        for (u32 c = 0; c < d; ++c) {
            const size_t i = (size_t)r * d + c;
            const double want = n > 0 ? x[i] / n : 0.0;
            close(std::string("l2norm_") + (bf ? "bf16" : "f16"), feats[i], want, 1e-7, 1e-6, "l2norm", i);
            CHECK(out[i] == ref_to_half(bf, feats[i]), "l2norm T copy [%zu]", i);
        }
    }
}

int main() {
    for (bool bf : {false, true}) {
        test_im2col(bf);
        for (bool lds : {false, true}) {
            // plain GEMMs: one tile, tails in M, N (not a multiple of 8), K; lda > K; all epilogues
            // fields: m, n, k, lda, bias, act, residual, out_f32, sets, rows_per_coef, scale
            test_gemm(bf, {1, 8, 8, 8, true, 0, false, true, 0, 1}, lds);
            test_gemm(bf, {130, 136, 72, 72, true, 0, false, false, 0, 1}, lds);
            test_gemm(bf, {70, 100, 40, 48, true, 1, false, false, 0, 1}, lds);
            test_gemm(bf, {70, 100, 40, 48, true, 2, false, false, 0, 1}, lds);   // exact GELU
            test_gemm(bf, {129, 24, 96, 104, true, 0, true, true, 0, 1}, lds);
            test_gemm(bf, {129, 24, 96, 104, true, 0, true, true, 0, 1, true}, lds);  // LayerScale
            test_gemm(bf, {33, 40, 16, 16, false, 0, false, true, 0, 1}, lds);
            // blended: 3 sets (λ = 0, λ = 1 and random rows), with GELU, with a residual; 1 set
            test_gemm(bf, {37, 72, 48, 48, true, 1, false, false, 3, 5}, lds);
            test_gemm(bf, {37, 72, 48, 48, true, 2, false, false, 3, 5}, lds);    // exact GELU
            test_gemm(bf, {140, 20, 40, 40, true, 0, true, true, 3, 7}, lds);
            test_gemm(bf, {140, 20, 40, 40, true, 0, true, true, 3, 7, true}, lds);  // blended γ
            test_gemm(bf, {9, 16, 24, 24, true, 0, false, true, 1, 1}, lds);
            test_gemm(bf, {9, 16, 24, 24, true, 0, true, true, 1, 1, true}, lds);
            test_gemm(bf, {20, 16, 24, 24, false, 0, false, true, 2, 10}, lds);
        }
        test_embed(bf, 1);
        test_embed(bf, 3);
        test_layernorm(bf, 37, 72, 72, false, 1, 1);
        test_layernorm(bf, 5, 40, 40 * 7, true, 1, 1);  // class tokens of a [5, 7, 40] stream
        test_layernorm(bf, 19, 48, 48, false, 3, 4);
        test_attention(bf, 2, 50, 2, 64);
        test_attention(bf, 1, 70, 1, 64);
        test_attention(bf, 2, 1, 1, 64);
        test_attention(bf, 1, 37, 3, 32);  // the test fixture's head dimension
        test_attention(bf, 1, 5, 2, 8);
        test_attention(bf, 1, 9, 2, 1);
        test_attention(bf, 1, 20, 2, 9);    // odd head dims
        test_attention(bf, 1, 50, 3, 48);   // the arch_hw48 fixture's head dimension
        // attention_wide_*: ViT-H/14 (80), g/14 (88), bigG/14 (104); 33 and 70 keys are two and
        // three 32-key chunks, 50 queries three 24-query blocks.
        test_attention(bf, 1, 50, 2, 80);
        test_attention(bf, 1, 33, 1, 88);
        test_attention(bf, 2, 70, 1, 104);
        test_attention(bf, 1, 1, 2, 128);
        test_attention(bf, 1, 25, 1, 65);
        test_attention(bf, 1, 24, 1, 127);
        test_l2norm(bf);
    }
    std::printf("forward kernels emulation: %d checks passed; largest error / tolerance per group:\n", g_checks);
    for (auto& [k, v] : g_max_err) std::printf("  %-24s %.3f\n", k.c_str(), v);
    return 0;
}
