// AVX-512 GEMM variant, used only when the CPU (and the operating system) supports AVX-512F along
// with AVX2 and FMA (see gemm.cpp). Same structure as gemm_avx2.cpp: standard headers first, then
// the target pragma, and the functions in their own namespace.
#include <algorithm>
#include <string>
#include <vector>

#include "common.h"
#include "gemm.h"

#if defined(FASTNN_HAVE_AVX2_VARIANT)
#if defined(__clang__)  // clang ignores GCC's target pragma: the same features as an attribute
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx2,fma")
#endif
// Register tile: float 6x32 = 12 zmm accumulators + 2 for B + 1 broadcast of A (of 32 registers);
// double 6x16 likewise with 8 lanes. Measured on a Zen 5 core (bench/, tile sweep 6/8/12/14 x 32
// and 6 x 64): 6x32 is within a few percent of the best tile at every size and wastes the least on
// narrow outputs (10 classes).
#define FASTNN_GEMM_NS gemm_avx512
#define FASTNN_MR_FLOAT 6
#define FASTNN_NR_FLOAT 32
#define FASTNN_MR_DOUBLE 6
#define FASTNN_VEC_BYTES 64
#define FASTNN_VEC_REGS 32
#define FASTNN_NR_DOUBLE 16
#include "gemm_kernel.inc"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
