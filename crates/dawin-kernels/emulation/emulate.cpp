// Runs the dawin kernels (kernels/merge.cu, kernels/row_stats.cu) on the CPU through emu.h and
// checks them against small independent references: every element written, nothing written
// outside the output, results as the formulas say. Sizes are not multiples of the vector
// widths, pointers are aligned (vector path + tail) and misaligned (scalar path), grids are
// both exact and too small (grid-stride loops).
//
//   g++ -std=c++20 -O1 -ffp-contract=off -pthread -Wno-unknown-pragmas \
//       -fsanitize=address,undefined -fno-sanitize-recover=all emulate.cpp -o emulate && ./emulate
//
// The sanitizers make a misaligned 16-byte vector access (uint4 is alignas(16) in emu.h) or an
// access outside a buffer fail the run. Called by scripts/check_kernels.sh. Exit status 1 on
// the first failure.

#define DAWIN_HOST_EMULATION 1
#include "emu.h"

#include "../kernels/merge.cu"
#include "../kernels/row_stats.cu"

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

static int g_checks = 0;

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

static std::mt19937_64 rng(12345);

static float uniform(float lo, float hi) {
    return std::uniform_real_distribution<float>(lo, hi)(rng);
}

// ---- independent element conversions (reference side) ----
static u16 ref_f16(float f) { return dawin_emu_f32_to_f16(f); }
static float ref_f16_to_f32(u16 h) { return dawin_emu_f16_to_f32(h); }
static u16 ref_bf16(float f) {
    // Round to nearest even by the definition: compare the discarded half with the halfway point.
    unsigned x = __float_as_uint(f);
    if (std::isnan(f)) return (u16)((x >> 16) | 0x40);
    unsigned lo = x & 0xffff, hi = x >> 16;
    if (lo > 0x8000 || (lo == 0x8000 && (hi & 1))) hi += 1;
    return (u16)hi;
}
static float ref_bf16_to_f32(u16 h) { return __uint_as_float((unsigned)h << 16); }

enum class Dt { F32, F16, BF16 };
static const char* dt_name(Dt d) { return d == Dt::F32 ? "f32" : d == Dt::F16 ? "f16" : "bf16"; }
static size_t dt_size(Dt d) { return d == Dt::F32 ? 4 : 2; }

// Elements as raw bits in u32 (f32 bits or 16-bit bits).
static float to_f32(Dt d, unsigned b) {
    return d == Dt::F32 ? __uint_as_float(b) : d == Dt::F16 ? ref_f16_to_f32((u16)b) : ref_bf16_to_f32((u16)b);
}
static unsigned from_f32(Dt d, float f) {
    return d == Dt::F32 ? __float_as_uint(f) : d == Dt::F16 ? ref_f16(f) : ref_bf16(f);
}
static unsigned sentinel(Dt d) { return d == Dt::F32 ? 0x7fc0deadu : d == Dt::F16 ? 0x7e5au : 0x7fdau; }

// A typed buffer with guard elements on both sides and an optional misalignment offset.
struct Buf {
    Dt dt;
    size_t n, offset;
    std::vector<unsigned char> mem;  // 64 guard elements, offset, n elements, 64 guard elements
    static constexpr size_t GUARD = 64;
    Buf(Dt d, size_t n_, size_t off = 0) : dt(d), n(n_), offset(off), mem((n_ + off + 2 * GUARD) * dt_size(d) + 16) {
        for (size_t i = 0; i < n + off + 2 * GUARD; ++i) raw_set(i, sentinel(dt));
    }
    unsigned char* base() {  // 16-byte aligned start of the guard region
        uintptr_t p = (uintptr_t)mem.data();
        return (unsigned char*)((p + 15) & ~(uintptr_t)15);
    }
    void raw_set(size_t i, unsigned v) {
        if (dt == Dt::F32) std::memcpy(base() + 4 * i, &v, 4);
        else { u16 h = (u16)v; std::memcpy(base() + 2 * i, &h, 2); }
    }
    unsigned raw_get(size_t i) {
        if (dt == Dt::F32) { unsigned v; std::memcpy(&v, base() + 4 * i, 4); return v; }
        u16 h; std::memcpy(&h, base() + 2 * i, 2); return h;
    }
    void* ptr() { return base() + (GUARD + offset) * dt_size(dt); }
    unsigned get(size_t i) { return raw_get(GUARD + offset + i); }
    void set(size_t i, unsigned v) { raw_set(GUARD + offset + i, v); }
    void fill_random(float scale) { for (size_t i = 0; i < n; ++i) set(i, from_f32(dt, uniform(-scale, scale))); }
    void check_guards(const char* what) {
        for (size_t i = 0; i < GUARD + offset; ++i) CHECK(raw_get(i) == sentinel(dt), "%s: wrote before the output", what);
        for (size_t i = GUARD + offset + n; i < n + offset + 2 * GUARD; ++i) CHECK(raw_get(i) == sentinel(dt), "%s: wrote after the output", what);
    }
};

// Launch configurations: what the Rust side uses (one vector per thread, 256 threads per block)
// and a deliberately small grid so that grid-stride loops take several steps.
struct Cfg { unsigned grid, block; };
static std::vector<Cfg> configs(size_t n, size_t per_thread) {
    size_t threads = (n + per_thread - 1) / per_thread;
    unsigned grid = (unsigned)std::max<size_t>(1, (threads + 255) / 256);
    return {{grid, 256}, {1, 32}, {3, 64}};
}

static const size_t SIZES[] = {1, 3, 4, 5, 7, 8, 9, 15, 17, 255, 1023, 4097};

template <class F> static void with_dtype(Dt d, F f) {
    if (d == Dt::F32) f(F32{});
    else if (d == Dt::F16) f(F16{});
    else f(BF16{});
}

static void test_lerp() {
    for (Dt d : {Dt::F32, Dt::F16, Dt::BF16}) {
        for (size_t n : SIZES) {
            for (size_t off : {0, 1}) {
                for (float l : {0.0f, 1.0f, 0.3f, -0.25f, 1.5f}) {
                    for (Cfg c : configs(n, 16 / dt_size(d))) {
                        Buf a(d, n, off), b(d, n, off), o(d, n, off);
                        a.fill_random(4), b.fill_random(4);
                        with_dtype(d, [&](auto D) {
                            using T = typename decltype(D)::T;
                            emu_launch(c.grid, c.block, false, [&] {
                                lerp_impl<decltype(D)>((const T*)a.ptr(), (const T*)b.ptr(), l, (T*)o.ptr(), n);
                            });
                        });
                        std::string what = std::string("lerp ") + dt_name(d) + " n=" + std::to_string(n) + " off=" + std::to_string(off);
                        o.check_guards(what.c_str());
                        for (size_t i = 0; i < n; ++i) {
                            unsigned want = l == 0.0f ? a.get(i) : l == 1.0f ? b.get(i)
                                : from_f32(d, (1.0f - l) * to_f32(d, a.get(i)) + l * to_f32(d, b.get(i)));
                            CHECK(o.get(i) == want, "%s λ=%g grid=%u: element %zu: got %08x want %08x", what.c_str(), l, c.grid, i, o.get(i), want);
                        }
                    }
                }
            }
        }
    }
}

static void test_multi_lerp() {
    for (Dt d : {Dt::F32, Dt::F16, Dt::BF16}) {
        for (size_t n : SIZES) {
            for (unsigned k : {1u, 3u, 16u}) {
                for (size_t off : {0, 1}) {
                    Buf a(d, n), b(d, n);
                    a.fill_random(2), b.fill_random(2);
                    std::vector<std::unique_ptr<Buf>> outs;
                    MultiLerpParams p{};
                    p.k = k;
                    for (unsigned j = 0; j < k; ++j) {
                        // The last output misaligned when off == 1: everything goes scalar.
                        outs.push_back(std::make_unique<Buf>(d, n, j + 1 == k ? off : 0));
                        p.out[j] = (u64)outs.back()->ptr();
                        p.lambda[j] = j == 0 ? 0.0f : j == 1 ? 1.0f : uniform(-0.5f, 1.5f);
                    }
                    for (Cfg c : configs(n, 16 / dt_size(d))) {
                        with_dtype(d, [&](auto D) {
                            using T = typename decltype(D)::T;
                            emu_launch(c.grid, c.block, false, [&] {
                                multi_lerp_impl<decltype(D)>((const T*)a.ptr(), (const T*)b.ptr(), p, n);
                            });
                        });
                        for (unsigned j = 0; j < k; ++j) {
                            std::string what = std::string("multi_lerp ") + dt_name(d) + " n=" + std::to_string(n) + " k=" + std::to_string(j);
                            outs[j]->check_guards(what.c_str());
                            float l = p.lambda[j];
                            for (size_t i = 0; i < n; ++i) {
                                unsigned want = l == 0.0f ? a.get(i) : l == 1.0f ? b.get(i)
                                    : from_f32(d, (1.0f - l) * to_f32(d, a.get(i)) + l * to_f32(d, b.get(i)));
                                CHECK(outs[j]->get(i) == want, "%s: element %zu", what.c_str(), i);
                            }
                        }
                    }
                }
            }
        }
    }
}

static void test_task_arith() {
    for (Dt d : {Dt::F32, Dt::F16, Dt::BF16}) {
        for (size_t n : SIZES) {
            for (unsigned m : {0u, 1u, 3u, 32u}) {
                for (size_t off : {0, 1}) {
                    Buf base(d, n, off), o(d, n, off);
                    base.fill_random(1);
                    std::vector<std::unique_ptr<Buf>> models;
                    TaskArithParams p{};
                    p.m = m;
                    for (unsigned j = 0; j < m; ++j) {
                        models.push_back(std::make_unique<Buf>(d, n, off));
                        models.back()->fill_random(1);
                        p.model[j] = (u64)models.back()->ptr();
                        p.weight[j] = uniform(-1, 1);
                    }
                    for (Cfg c : configs(n, 16 / dt_size(d))) {
                        with_dtype(d, [&](auto D) {
                            using T = typename decltype(D)::T;
                            emu_launch(c.grid, c.block, false, [&] {
                                task_arith_impl<decltype(D)>((const T*)base.ptr(), p, (T*)o.ptr(), n);
                            });
                        });
                        std::string what = std::string("task_arith ") + dt_name(d) + " n=" + std::to_string(n) + " m=" + std::to_string(m);
                        o.check_guards(what.c_str());
                        for (size_t i = 0; i < n; ++i) {
                            float wsum = 0.0f;
                            for (unsigned j = 0; j < m; ++j) wsum += p.weight[j];
                            float acc = (1.0f - wsum) * to_f32(d, base.get(i));
                            for (unsigned j = 0; j < m; ++j) acc += p.weight[j] * to_f32(d, models[j]->get(i));
                            CHECK(o.get(i) == from_f32(d, acc), "%s: element %zu", what.c_str(), i);
                        }
                    }
                }
            }
        }
    }
}

static void test_cast() {
    const float specials[] = {0.0f, -0.0f, 65504.0f, 65520.0f, 70000.0f, 6.0e-8f, 1.0e-40f,
                              INFINITY, -INFINITY, 1.0f + 1.0f / 256, 1.0f + 3.0f / 256, 3.0e38f};
    for (Dt s : {Dt::F32, Dt::F16, Dt::BF16}) {
        for (Dt d : {Dt::F32, Dt::F16, Dt::BF16}) {
            if (s == d) continue;
            for (size_t n : SIZES) {
                for (size_t off : {0, 1}) {
                    Buf a(s, n, off), o(d, n, off);
                    a.fill_random(1000);
                    for (size_t i = 0; i < n && i < sizeof(specials) / 4; ++i) a.set(i, from_f32(s, specials[i]));
                    for (Cfg c : configs(n, 8)) {
                        with_dtype(s, [&](auto S) {
                            with_dtype(d, [&](auto D) {
                                using TS = typename decltype(S)::T;
                                using TD = typename decltype(D)::T;
                                emu_launch(c.grid, c.block, false, [&] {
                                    cast_impl<decltype(S), decltype(D)>((const TS*)a.ptr(), (TD*)o.ptr(), n);
                                });
                            });
                        });
                        std::string what = std::string("cast ") + dt_name(s) + "->" + dt_name(d) + " n=" + std::to_string(n);
                        o.check_guards(what.c_str());
                        for (size_t i = 0; i < n; ++i)
                            CHECK(o.get(i) == from_f32(d, to_f32(s, a.get(i))), "%s: element %zu", what.c_str(), i);
                    }
                }
            }
        }
    }
}

// Row statistics against a double-precision reference.
static void test_row_stats() {
    for (unsigned c : {1u, 2u, 31u, 32u, 33u, 100u, 1000u}) {
        for (unsigned n : {1u, 7u, 9u, 17u}) {
            for (float t : {0.9576f, 2.0f}) {
                std::vector<float> z(n * (size_t)c);
                for (auto& x : z) x = uniform(-6, 6);
                if (n > 3 && c > 2) {  // a tie for the max, an all-equal row, extreme logits
                    for (unsigned j = 0; j < c; ++j) z[(size_t)1 * c + j] = 0.5f;
                    z[(size_t)2 * c + 0] = 9.0f;
                    z[(size_t)2 * c + c - 1] = 9.0f;
                    for (unsigned j = 0; j < c; ++j) z[(size_t)3 * c + j] = (j % 2) ? -1e4f : 1e4f;
                }
                std::vector<long long> labels(n);
                for (auto& y : labels) y = (long long)(rng() % c);
                std::vector<RowStatsOut> out(n + 2);
                for (auto& o : out) std::memset(&o, 0xab, sizeof o);
                unsigned grid = (n + 7) / 8;
                emu_launch(grid, 256, true, [&] { row_stats_f32(z.data(), n, c, t, labels.data(), out.data()); });
                unsigned char guard[sizeof(RowStatsOut)];
                std::memset(guard, 0xab, sizeof guard);
                CHECK(std::memcmp(&out[n], guard, sizeof guard) == 0, "row_stats wrote past the last row");
                for (unsigned r = 0; r < n; ++r) {
                    const float* row = &z[(size_t)r * c];
                    unsigned am = 0;
                    for (unsigned j = 1; j < c; ++j) if (row[j] > row[am]) am = j;
                    double m = (double)row[am] / t, s = 0, q = 0;
                    for (unsigned j = 0; j < c; ++j) s += std::exp((double)row[j] / t - m);
                    double lse = m + std::log(s), ent = 0;
                    std::vector<double> p(c);
                    for (unsigned j = 0; j < c; ++j) {
                        p[j] = std::exp((double)row[j] / t - lse);
                        ent -= p[j] > 0 ? p[j] * std::log(p[j]) : 0;
                    }
                    double p1 = p[am], p2 = 0;
                    for (unsigned j = 0; j < c; ++j) if (j != am) p2 = std::max(p2, p[j]);
                    double ce = std::max(0.0, lse - (double)row[labels[r]] / t);
                    (void)q;
                    const RowStatsOut& o = out[r];
                    const double tol = 2e-5 * std::max(1.0, std::fabs(lse));
                    CHECK(o.bad_col == NO_BAD_COL, "row %u: bad_col %u", r, o.bad_col);
                    CHECK(o.argmax == am, "C=%u row %u: argmax %u want %u", c, r, o.argmax, am);
                    CHECK(o.max_logit == row[am], "row %u: max_logit", r);
                    CHECK(std::fabs(o.logsumexp - lse) <= tol, "C=%u row %u: lse %g want %g", c, r, o.logsumexp, lse);
                    CHECK(std::fabs(o.entropy - ent) <= 2e-5 * std::max(1.0, std::log((double)c)), "C=%u T=%g row %u: entropy %.9g want %.9g", c, t, r, o.entropy, ent);
                    CHECK(std::fabs(o.max_prob - p1) <= 2e-6, "row %u: max_prob %g want %g", r, o.max_prob, p1);
                    CHECK(std::fabs(o.top1_minus_top2 - (c == 1 ? 1.0 : p1 - p2)) <= 2e-6, "C=%u row %u: top1-top2 %g want %g", c, r, o.top1_minus_top2, p1 - p2);
                    CHECK(std::fabs(o.ce - ce) <= tol, "row %u: ce %g want %g", r, o.ce, ce);
                }
                // Without labels: no cross-entropy.
                emu_launch(grid, 256, true, [&] { row_stats_f32(z.data(), n, c, t, nullptr, out.data()); });
                for (unsigned r = 0; r < n; ++r) CHECK(std::isnan(out[r].ce), "ce without labels");
            }
        }
    }
    // Non-finite logits: bad_col is the first non-finite column of the row.
    for (float bad : {NAN, INFINITY, -INFINITY}) {
        unsigned n = 5, c = 70;
        std::vector<float> z(n * c, 0.25f);
        z[2 * c + 65] = bad;
        z[2 * c + 40] = bad;
        z[4 * c + 0] = bad;
        std::vector<RowStatsOut> out(n);
        emu_launch(1, 256, true, [&] { row_stats_f32(z.data(), n, c, 1.0f, nullptr, out.data()); });
        CHECK(out[0].bad_col == NO_BAD_COL && out[1].bad_col == NO_BAD_COL, "clean rows flagged");
        CHECK(out[2].bad_col == 40, "row 2: bad_col %u want 40", out[2].bad_col);
        CHECK(out[4].bad_col == 0, "row 4: bad_col %u want 0", out[4].bad_col);
        CHECK(std::isnan(out[2].entropy) && std::isnan(out[2].logsumexp), "bad row stats are NaN");
    }
}

int main() {
    test_lerp();
    test_multi_lerp();
    test_task_arith();
    test_cast();
    test_row_stats();
    std::printf("kernel emulation passed: %d checks (lerp, multi_lerp, task_arith, cast, row_stats)\n", g_checks);
    return 0;
}
