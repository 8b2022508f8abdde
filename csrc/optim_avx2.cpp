// AVX2 optimizer-update variant, used only on AVX2+FMA CPUs (see optim.cpp). FMA is deliberately
// not enabled here: without it the compiler cannot fuse multiply-adds, so every update rounds
// exactly as the generic variant and the NumPy reference do -- the same bits on every CPU -- and
// the wider vectors still halve the cost of the square roots and divisions. As in gemm_avx2.cpp,
// standard headers come before the target pragma and the functions live in their own namespace.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common.h"
#include "optim.h"

#if defined(FASTNN_HAVE_AVX2_VARIANT)
#if defined(__clang__)  // clang ignores GCC's target pragma: the same features as an attribute
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC target("avx2")
#endif
#define FASTNN_OPTIM_NS optim_avx2
#include "optim_kernel.inc"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
