// Fully connected layer, forward and backward.
#pragma once

#include "activations.h"
#include "common.h"

namespace fastnn {

// Y[N,M] = X[N,K] @ W[K,M] + b[M]      (b may be null: no bias)
// A[N,M] = act(Y)                      (when A is set; A may be Y)
// The bias and the activation are the GEMM's epilogue: applied to each block of Y as it is
// finished, while it is in cache, with the same bits as separate passes.
template <typename T>
void dense_forward(T* Y, const T* X, const T* W, const T* b, idx N, idx K, idx M, T* A = nullptr,
                   Act act = Act::linear, T act_alpha = T(0));

// dX[N,K] = dY[N,M] @ W[K,M]^T         (skipped when dX is null)
// dW[K,M] = X[N,K]^T @ dY[N,M]
// db[M]   = sum_n dY[n,:]              (skipped when db is null)
// Overwrites dX, dW and db; never accumulates into them.
template <typename T>
void dense_backward(T* dX, T* dW, T* db, const T* dY, const T* X, const T* W, idx N, idx K, idx M);

}  // namespace fastnn
