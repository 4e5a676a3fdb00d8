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
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
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
