// Fully connected layer, forward and backward.
#pragma once

#include "common.h"

namespace fastnn {

// Y[N,M] = X[N,K] @ W[K,M] + b[M]      (b may be null: no bias)
template <typename T>
void dense_forward(T* Y, const T* X, const T* W, const T* b, idx N, idx K, idx M);

// dX[N,K] = dY[N,M] @ W[K,M]^T         (skipped when dX is null)
// dW[K,M] = X[N,K]^T @ dY[N,M]
// db[M]   = sum_n dY[n,:]              (skipped when db is null)
// Overwrites dX, dW and db; never accumulates into them.
template <typename T>
void dense_backward(T* dX, T* dW, T* db, const T* dY, const T* X, const T* W, idx N, idx K, idx M);

}  // namespace fastnn
