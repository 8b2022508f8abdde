// Losses with their gradients in one pass. Each returns the mean loss over the batch and, when
// the gradient pointer is non-null, writes the gradient of that mean (overwriting it).
// Per-row losses are summed in fixed blocks of rows, so the result does not depend on the thread count.
#pragma once

#include <cstdint>

#include "common.h"

namespace fastnn {

// loss = mean_n( logsumexp(Z[n,:]) - Z[n, labels[n]] )          Z[N,C], labels[N] in [0, C)
// dZ[N,C] = (softmax(Z) - onehot(labels)) / N
template <typename T>
double sparse_softmax_cross_entropy(T* dZ, const T* Z, const std::int64_t* labels, idx N, idx C);

// loss = mean_n( -sum_c P[n,c] * log_softmax(Z)[n,c] )           Z[N,C], P[N,C] targets
// dZ[N,C] = (softmax(Z) * sum_c P[n,c] - P) / N
template <typename T>
double softmax_cross_entropy(T* dZ, const T* Z, const T* P, idx N, idx C);

// loss = mean over N*C of max(z,0) - z*t + log1p(exp(-|z|))      Z[N,C], Tgt[N,C]
// dZ[N,C] = (sigmoid(Z) - Tgt) / (N*C)
template <typename T>
double sigmoid_binary_cross_entropy(T* dZ, const T* Z, const T* Tgt, idx N, idx C);

// loss = mean over N*C of (P - Tgt)^2                            P[N,C], Tgt[N,C]
// dP[N,C] = 2 * (P - Tgt) / (N*C)
template <typename T>
double mean_squared_error(T* dP, const T* P, const T* Tgt, idx N, idx C);

}  // namespace fastnn
