// dawin-kernels: the element types every kernel file shares (merge.cu, the forward's kernels):
// integer typedefs, IEEE half and bfloat16 conversions to and from f32, and the element structs
// the templates are instantiated with.
//
//   f16_to_f32 / bf16_to_f32   exact widening
//   f32_to_f16 / f32_to_bf16   round to nearest even; NaN stays NaN (bf16: quiet bit set, as the
//                              `half` crate's bf16::from_f32)
//   F32, F16, BF16             T (storage type: float or raw u16 bits), to_f32, from_f32;
//                              BF (F16, BF16): 1 when the 16-bit type is bfloat16 (an enum
//                              constant, so that no storage is emitted)
//
// No CUDA header is included (NVRTC ships none): the f16 conversions are inline PTX, the bf16 ones
// bit operations. NVRTC receives this file by name (HEADERS in crates/dawin-kernels/src/source.rs);
// the host emulation (crates/dawin-kernels/emulation/emu.h) includes it too, with
// DAWIN_HOST_EMULATION (never set by NVRTC) swapping the two inline-PTX conversions for host code.
#ifndef DAWIN_HALF_TYPES_CUH
#define DAWIN_HALF_TYPES_CUH

typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

__device__ __forceinline__ float f16_to_f32(u16 h) {
#ifdef DAWIN_HOST_EMULATION
    return dawin_emu_f16_to_f32(h);
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#endif
}

__device__ __forceinline__ u16 f32_to_f16(float f) {
#ifdef DAWIN_HOST_EMULATION
    return dawin_emu_f32_to_f16(f);
#else
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#endif
}

__device__ __forceinline__ float bf16_to_f32(u16 h) { return __uint_as_float(((u32)h) << 16); }

// Round to nearest even; NaN stays NaN (quiet bit set), like half::bf16::from_f32.
__device__ __forceinline__ u16 f32_to_bf16(float f) {
    u32 x = __float_as_uint(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (u16)((x >> 16) | 0x0040u);
    }
    x += 0x7fffu + ((x >> 16) & 1u);
    return (u16)(x >> 16);
}

struct F32 {
    typedef float T;
    static __device__ __forceinline__ float to_f32(float x) { return x; }
    static __device__ __forceinline__ float from_f32(float x) { return x; }
};

struct F16 {
    typedef u16 T;
    enum { BF = 0 };
    static __device__ __forceinline__ float to_f32(u16 x) { return f16_to_f32(x); }
    static __device__ __forceinline__ u16 from_f32(float x) { return f32_to_f16(x); }
};

struct BF16 {
    typedef u16 T;
    enum { BF = 1 };
    static __device__ __forceinline__ float to_f32(u16 x) { return bf16_to_f32(x); }
    static __device__ __forceinline__ u16 from_f32(float x) { return f32_to_bf16(x); }
};

#endif  // DAWIN_HALF_TYPES_CUH
