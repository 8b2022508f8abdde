// AVX2+FMA GEMM variant, used only when the CPU reports both (see gemm.cpp). The standard headers
// are included before the target pragma so that only this file's own functions get AVX2 code, and
// those live in their own namespace: no AVX2 symbol can be picked by the linker for generic code.
#include <algorithm>
#include <string>
#include <vector>

#include "common.h"
#include "gemm.h"

#if defined(FASTNN_HAVE_AVX2_VARIANT)
#if defined(__clang__)  // clang ignores GCC's target pragma: the same features as an attribute
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx2,fma")
#endif
// Register tile: float 6x16 = 12 ymm accumulators + 2 for B + 1 broadcast of A (of 16);
// double 6x8 likewise with 4 lanes.
#define FASTNN_GEMM_NS gemm_avx2
#define FASTNN_MR_FLOAT 6
#define FASTNN_NR_FLOAT 16
#define FASTNN_MR_DOUBLE 6
#define FASTNN_VEC_BYTES 32
#define FASTNN_VEC_REGS 16
#define FASTNN_NR_DOUBLE 8
#include "gemm_kernel.inc"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
