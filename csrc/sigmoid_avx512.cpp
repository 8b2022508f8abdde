// AVX-512 float32 sigmoid variant, used with the AVX-512 GEMM (see activations.cpp). Standard
// headers come before the target pragma, as in gemm_avx512.cpp.
#include <cstdint>
#include <cstring>

#include "common.h"

#if defined(FASTNN_HAVE_AVX2_VARIANT)
#if defined(__clang__)  // clang ignores GCC's target pragma: the same features as an attribute
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx2,fma")
#endif
#define FASTNN_SIGMOID_NS sigmoid_avx512
#define FASTNN_VEC_BYTES 64
#include "sigmoid_kernel.inc"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
