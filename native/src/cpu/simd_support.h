// Which instruction set the CPU kernels use. Kernels have two paths: a portable one written
// as plain fixed-width loops (auto-vectorised by the compiler for the build's baseline ISA),
// and an x86-64 one with AVX2 + FMA + F16C intrinsics, compiled through function target
// attributes so the library still runs on CPUs without them. The choice is made at run time.
// WebAssembly builds with SIMD128 (-msimd128) run the portable kernels as 128-bit vector loops
// with the same float operations in the same order; that choice is made at compile time.
#pragma once

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define TIDAL_X86_SIMD 1
#define TIDAL_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#else
#define TIDAL_X86_SIMD 0
#define TIDAL_TARGET_AVX2
#endif

#ifdef __wasm_simd128__
#define TIDAL_WASM_SIMD 1
#else
#define TIDAL_WASM_SIMD 0
#endif

namespace tidal::cpu {

// True when this build has the AVX2 kernels and the running CPU supports AVX2, FMA and F16C.
bool simd_available();

// Whether kernels take the AVX2 path now (initially simd_available()).
bool simd_enabled();

// Selects the path (ignored when unavailable); returns the previous setting. Meant for
// tests that check both paths; not to be called while kernels are running.
bool set_simd_enabled(bool enabled);

}  // namespace tidal::cpu
