// AVX2+FMA float32 sigmoid variant, used with the AVX2 GEMM (see activations.cpp). Standard
// headers come before the target pragma, as in gemm_avx2.cpp.
#include <cstdint>
#include <cstring>

#include "common.h"

#if defined(FASTNN_HAVE_AVX2_VARIANT)
#if defined(__clang__)  // clang ignores GCC's target pragma: the same features as an attribute
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx2,fma")
#endif
#define FASTNN_SIGMOID_NS sigmoid_avx2
#define FASTNN_VEC_BYTES 32
#include "sigmoid_kernel.inc"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
