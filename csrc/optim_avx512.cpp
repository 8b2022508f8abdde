// AVX-512 optimizer-update variant, used with the AVX-512 GEMM (see optim.cpp). AVX-512F includes
// fused multiply-add instructions, so contraction is switched off explicitly: every update rounds
// exactly as the generic and AVX2 variants and the NumPy reference do, the same bits on every CPU.
// As in optim_avx2.cpp, standard headers come before the pragmas and the functions live in their
// own namespace.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common.h"
#include "optim.h"

#if defined(FASTNN_HAVE_AVX2_VARIANT)
#if defined(__clang__)  // clang ignores GCC's target pragma: the same features as an attribute
#pragma clang attribute push(__attribute__((target("avx512f,avx2"))), apply_to = function)
#else
#pragma GCC target("avx512f,avx2")
#endif
#if defined(__clang__)
#pragma clang fp contract(off)
#else
#pragma GCC optimize("fp-contract=off")
#endif
#define FASTNN_OPTIM_NS optim_avx512
#include "optim_kernel.inc"
#if defined(__clang__)
#pragma clang attribute pop
#endif
#endif
