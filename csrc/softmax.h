// Row-wise softmax and log-softmax over the last axis, forward and backward.
#pragma once

#include "common.h"

namespace fastnn {

// Y[N,C] = exp(X - max_c X) / sum_c exp(X - max_c X)       (Y may alias X)
template <typename T>
void softmax_forward(T* Y, const T* X, idx N, idx C);
// dX[N,C] = Y * (dY - sum_c(dY * Y))                         (overwrites dX)
template <typename T>
void softmax_backward(T* dX, const T* dY, const T* Y, idx N, idx C);

// Y[N,C] = (X - max_c X) - log(sum_c exp(X - max_c X))       (Y may alias X)
template <typename T>
void log_softmax_forward(T* Y, const T* X, idx N, idx C);
// dX[N,C] = dY - exp(Y) * sum_c dY                            (overwrites dX)
template <typename T>
void log_softmax_backward(T* dX, const T* dY, const T* Y, idx N, idx C);

// One row: writes the shifted logits x - max into y and returns log(sum(exp(x - max))).
template <typename T>
T log_softmax_row(T* y, const T* x, idx C);

}  // namespace fastnn
