// Inverted dropout (Srivastava et al. 2014, JMLR 15:1929), forward and backward, over n values.
//
// The keep decision of element i is a pure function of (seed, counter, i): a counter-based
// generator (splitmix64's output function applied to a per-call key plus i), so a mask is the same
// for any thread count and fastnn.reference.dropout_forward computes it bit for bit in NumPy.
#pragma once

#include <cstdint>

#include "common.h"

namespace fastnn {

// key = mix(mix(seed) ^ counter);  u[i] = mix(key + (i + 1) * 0x9E3779B97F4A7C15)   (mod 2^64)
// keep[i] = (u[i] >> 11) >= ceil(rate * 2^53)          (P(keep) = 1 - rate to within 2^-53)
// mask[n] = keep ? 1 / (1 - rate) : 0;  Y[n] = X[n] * mask[n].   Saves mask for backward.
template <typename T>
void dropout_forward(T* Y, T* mask, const T* X, idx n, double rate, std::uint64_t seed,
                     std::uint64_t counter);

// dX[n] = dY[n] * mask[n]. Overwrites dX (may alias dY).
template <typename T>
void dropout_backward(T* dX, const T* dY, const T* mask, idx n);

// Additive Gaussian noise from the same counter-based generator: with key as above,
// u1, u2 = the top 53 bits of mix(key + (2i + 1) * golden) and mix(key + (2i + 2) * golden),
// as (k + 1) / 2^53 and k / 2^53; z = sqrt(-2 log u1) cos(2 pi u2) (Box-Muller);
// Y[n] = X[n] + stddev * z[n]. Y may alias X.
template <typename T>
void normal_noise(T* Y, const T* X, idx n, double stddev, std::uint64_t seed, std::uint64_t counter);

// Gaussian dropout (Srivastava et al. 2014, section 10): mask[n] = 1 + stddev * z[n], z drawn as
// by normal_noise; Y[n] = X[n] * mask[n]. Backward is dropout_backward with this mask.
template <typename T>
void gaussian_dropout_forward(T* Y, T* mask, const T* X, idx n, double stddev, std::uint64_t seed,
                              std::uint64_t counter);

// Alpha dropout (Klambauer et al. 2017), Keras's form: keep as dropout_forward decides, dropped
// values set to alpha' = -SELU_ALPHA * SELU_SCALE, then the affine map a * v + b with
// a = ((1 - rate)(1 + rate alpha'^2))^-1/2, b = -a alpha' rate. mask[n] = keep ? a : 0 (the
// derivative; backward is dropout_backward).
template <typename T>
void alpha_dropout_forward(T* Y, T* mask, const T* X, idx n, double rate, std::uint64_t seed,
                           std::uint64_t counter);

}  // namespace fastnn
