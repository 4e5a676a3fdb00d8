// Host emulation of the few CUDA built-ins the dawin kernels use, so that kernels/*.cu can be
// compiled by a C++20 compiler and run on the CPU: every thread of a launch runs the kernel
// body, warps run as 32 OS threads so that __shfl_xor_sync exchanges values through a barrier.
//
// This checks the kernels' logic (indexing, grid-stride loops, vector paths and tails,
// alignment dispatch, warp reductions, parameter structs) without a GPU. It does not model the
// memory system, PTX or the hardware's conversions (f16 goes through _Float16, which rounds to
// nearest even like cvt.rn.f16.f32). Compile with -ffp-contract=off so that a*b+c is not fused,
// as on the GPU where the kernels use __fmul_rn/__fadd_rn.
#pragma once

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __grid_constant__

struct alignas(16) uint4 {  // aligned as on the GPU: -fsanitize=alignment flags misaligned vector accesses
    unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

struct EmuDim3 {
    unsigned x = 1, y = 1, z = 1;
};
inline thread_local EmuDim3 threadIdx, blockIdx;
inline EmuDim3 blockDim, gridDim;

inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, 4);
    return f;
}
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }

inline float dawin_emu_f16_to_f32(unsigned short h) {
    _Float16 x;
    std::memcpy(&x, &h, 2);
    return (float)x;
}
inline unsigned short dawin_emu_f32_to_f16(float f) {
    _Float16 x = (_Float16)f;
    unsigned short h;
    std::memcpy(&h, &x, 2);
    return h;
}

// The kernels' own element types and conversions (the two f16 conversions above replace their
// inline PTX under DAWIN_HOST_EMULATION).
#include "../kernels/half_types.cuh"

// Warp shuffles: the 32 lanes of a warp are 32 threads sharing a slot array and a barrier.
struct EmuWarp {
    std::barrier<> bar{32};
    unsigned slot[32];
};
inline thread_local EmuWarp* emu_warp = nullptr;

template <class T>
inline T __shfl_xor_sync(unsigned, T v, int lane_mask) {
    static_assert(sizeof(T) == 4, "4-byte shuffles only");
    const unsigned lane = threadIdx.x & 31u;
    unsigned bits;
    std::memcpy(&bits, &v, 4);
    emu_warp->slot[lane] = bits;
    emu_warp->bar.arrive_and_wait();
    bits = emu_warp->slot[lane ^ (unsigned)lane_mask];
    emu_warp->bar.arrive_and_wait();
    T r;
    std::memcpy(&r, &bits, 4);
    return r;
}

// Runs `kernel` for every thread of a 1-D grid. With `warps` false the threads run one after
// the other on this thread (kernels without shuffles); with `warps` true every warp runs as 32
// concurrent threads (blockDim.x must then be a multiple of 32).
inline void emu_launch(unsigned grid, unsigned block, bool warps, const std::function<void()>& kernel) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    for (unsigned b = 0; b < grid; ++b) {
        if (!warps) {
            for (unsigned t = 0; t < block; ++t) {
                blockIdx = {b, 1, 1};
                threadIdx = {t, 1, 1};
                kernel();
            }
            continue;
        }
        for (unsigned w = 0; w < block / 32; ++w) {
            auto warp = std::make_unique<EmuWarp>();
            std::vector<std::thread> lanes;
            for (unsigned l = 0; l < 32; ++l) {
                lanes.emplace_back([&, l] {
                    blockIdx = {b, 1, 1};
                    threadIdx = {w * 32 + l, 1, 1};
                    emu_warp = warp.get();
                    kernel();
                });
            }
            for (auto& t : lanes) t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Block-level built-ins for the forward's kernels (gemm.cu, attention.cu, norm.cu): shared memory,
// __syncthreads, __syncwarp, 3-D grids, and the tensor-core mma as a warp-collective C++ function.
//
// Blocks run one at a time and every thread of a block is an OS thread, so `__shared__` can be a
// function-local static (one object per kernel instantiation, reused by the next block, which
// is what shared memory is: uninitialised at block start) and __syncthreads a barrier of
// blockDim threads.
#define __shared__ static

struct EmuBlock {
    explicit EmuBlock(unsigned n) : bar(n) {}
    std::barrier<> bar;
};
inline thread_local EmuBlock* emu_block = nullptr;

inline void __syncthreads() { emu_block->bar.arrive_and_wait(); }
inline void __syncwarp() { emu_warp->bar.arrive_and_wait(); }

// Fragments of one mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16} per lane.
struct EmuMmaSlots {
    unsigned a[32][4], b[32][2];
    const void* row[32];
};
inline thread_local EmuMmaSlots* emu_mma = nullptr;

inline float dawin_emu_half_bits_to_f32(bool bf16, unsigned short h) {
    return bf16 ? bf16_to_f32(h) : f16_to_f32(h);
}

// D = A·B + C for the warp, with the fragment layout of the PTX ISA (groupID g = lane >> 2,
// tig = lane & 3): A regs {a0a1: (g, 2tig..), a2a3: (g+8, 2tig..), a4a5: (g, 2tig+8..),
// a6a7: (g+8, 2tig+8..)}, B regs {b0b1: (k=2tig.., n=g), b2b3: (k=2tig+8.., n=g)},
// C/D {c0c1: (g, 2tig..), c2c3: (g+8, 2tig..)}; the low half of a register is the first element.
// Products of two f16/bf16 values are exact in f32; the sum is taken in double and rounded once
// (the hardware's summation order and intermediate rounding are not specified; the checks
// allow for that).
inline void dawin_emu_mma_m16n8k16(bool bf16, const unsigned* a, const unsigned* b, float* d) {
    const unsigned lane = threadIdx.x & 31u;
    for (int i = 0; i < 4; ++i) emu_mma->a[lane][i] = a[i];
    for (int i = 0; i < 2; ++i) emu_mma->b[lane][i] = b[i];
    emu_warp->bar.arrive_and_wait();
    float A[16][16], B[16][8];
    for (unsigned l = 0; l < 32; ++l) {
        const unsigned g = l >> 2, t = l & 3u;
        for (int r = 0; r < 4; ++r) {
            const unsigned row = g + ((r & 1) ? 8u : 0u), col = 2u * t + ((r & 2) ? 8u : 0u);
            const unsigned w = emu_mma->a[l][r];
            A[row][col] = dawin_emu_half_bits_to_f32(bf16, (unsigned short)(w & 0xffffu));
            A[row][col + 1] = dawin_emu_half_bits_to_f32(bf16, (unsigned short)(w >> 16));
        }
        for (int r = 0; r < 2; ++r) {
            const unsigned k = 2u * t + (r ? 8u : 0u);
            const unsigned w = emu_mma->b[l][r];
            B[k][g] = dawin_emu_half_bits_to_f32(bf16, (unsigned short)(w & 0xffffu));
            B[k + 1][g] = dawin_emu_half_bits_to_f32(bf16, (unsigned short)(w >> 16));
        }
    }
    emu_warp->bar.arrive_and_wait();  // slots free for the next mma
    const unsigned g = lane >> 2, t = lane & 3u;
    for (int e = 0; e < 4; ++e) {
        const unsigned row = g + ((e & 2) ? 8u : 0u), col = 2u * t + (unsigned)(e & 1);
        double s = d[e];
        for (int k = 0; k < 16; ++k) s += (double)A[row][k] * (double)B[k][col];
        d[e] = (float)s;
    }
}

// ldmatrix.sync.aligned.m8n8.x4.shared.b16 per the PTX ISA: lanes 8j..8j+7 give the addresses
// of the 8 rows (8 b16 each) of matrix j; lane i receives in d[j] the 32-bit word at row i / 4,
// columns 2(i % 4) .. 2(i % 4) + 1 of matrix j. A row address that is not 16-byte aligned fails.
inline void dawin_emu_ldmatrix_x4(const void* p, unsigned* d) {
    const unsigned lane = threadIdx.x & 31u;
    if (((uintptr_t)p & 15u) != 0) {
        std::fprintf(stderr, "ldmatrix: row address %p is not 16-byte aligned\n", p);
        std::abort();
    }
    emu_mma->row[lane] = p;
    emu_warp->bar.arrive_and_wait();
    for (unsigned j = 0; j < 4; ++j) {
        const unsigned char* src = (const unsigned char*)emu_mma->row[j * 8 + lane / 4] + 4 * (lane % 4);
        std::memcpy(&d[j], src, 4);
    }
    emu_warp->bar.arrive_and_wait();
}

// Runs `kernel` on a 3-D grid of blocks of `block` threads (a multiple of 32): blocks one after
// the other, all threads of a block concurrently (__syncthreads, shuffles, __syncwarp, mma).
inline void emu_launch_blocks(EmuDim3 grid, unsigned block, const std::function<void()>& kernel) {
    gridDim = grid;
    blockDim = {block, 1, 1};
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x) {
                EmuBlock blk(block);
                std::vector<std::unique_ptr<EmuWarp>> warps;
                std::vector<std::unique_ptr<EmuMmaSlots>> slots;
                for (unsigned w = 0; w < block / 32; ++w) {
                    warps.push_back(std::make_unique<EmuWarp>());
                    slots.push_back(std::make_unique<EmuMmaSlots>());
                }
                std::vector<std::thread> threads;
                threads.reserve(block);
                for (unsigned t = 0; t < block; ++t) {
                    threads.emplace_back([&, t] {
                        blockIdx = {x, y, z};
                        threadIdx = {t, 0, 0};
                        emu_warp = warps[t / 32].get();
                        emu_mma = slots[t / 32].get();
                        emu_block = &blk;
                        kernel();
                    });
                }
                for (auto& th : threads) th.join();
            }
}
