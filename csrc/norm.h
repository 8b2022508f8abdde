// Batch and layer normalization, forward and backward, over row-major X[N,C].
//
// Statistics are accumulated in double in two passes (the mean first, then the squared deviations
// from it; never E[x^2] - E[x]^2, which cancels catastrophically when |mean| >> std) and stored
// as T. Batch norm reduces over rows: columns are split between threads and each column sums its
// rows in order, so every result is the same for any thread count. Layer norm reduces each row
// alone. gamma / beta may be null: scale=False (gamma = 1) / center=False (beta = 0).
#pragma once

#include "common.h"

namespace fastnn {

// ---- Batch normalization (Ioffe & Szegedy 2015, arXiv:1502.03167), statistics per column ------

// Training mode. mean[C] = sum_n X[n,c] / N;  var[C] = sum_n (X[n,c] - mean[c])^2 / N (biased);
// rstd[C] = 1 / sqrt(var + eps);  Y[N,C] = gamma[C] * (X - mean) * rstd + beta[C];
// moving_mean[C] = momentum * moving_mean + (1 - momentum) * mean, moving_var[C] likewise with var.
// Saves mean and rstd for backward; updates moving_mean and moving_var in place.
template <typename T>
void batchnorm_forward(T* Y, T* mean, T* rstd, T* moving_mean, T* moving_var, const T* X,
                       const T* gamma, const T* beta, idx N, idx C, double momentum, double eps);

// Inference mode. Y[N,C] = gamma[C] * (X - moving_mean[C]) / sqrt(moving_var[C] + eps) + beta[C]
template <typename T>
void batchnorm_inference(T* Y, const T* X, const T* gamma, const T* beta, const T* moving_mean,
                         const T* moving_var, idx N, idx C, double eps);

// Backward of the training mode, xhat = (X - mean) * rstd:
// dbeta[C] = sum_n dY;  dgamma[C] = sum_n dY * xhat;
// dX[N,C] = gamma * rstd * (dY - dbeta / N - xhat * dgamma / N)
// Overwrites dX, dgamma, dbeta; each may be null (not wanted).
template <typename T>
void batchnorm_backward(T* dX, T* dgamma, T* dbeta, const T* dY, const T* X, const T* gamma,
                        const T* mean, const T* rstd, idx N, idx C);

// Backward of the inference-mode transform (a frozen layer in training), a fixed affine map:
// scale[C] = gamma * rstd with rstd = 1 / sqrt(moving_var + eps) in double, rounded to T;
// dX[N,C] = dY * scale. Overwrites dX and scale.
template <typename T>
void batchnorm_frozen_backward(T* dX, T* scale, const T* dY, const T* gamma, const T* moving_var,
                               idx N, idx C, double eps);

// ---- Layer normalization (Ba, Kiros & Hinton 2016, arXiv:1607.06450), statistics per row ------

// mean[N] = sum_c X[n,c] / C;  var[N] = sum_c (X[n,c] - mean[n])^2 / C;  rstd[N] = 1/sqrt(var + eps);
// Y[N,C] = gamma[C] * (X - mean) * rstd + beta[C]. Saves mean and rstd for backward.
template <typename T>
void layernorm_forward(T* Y, T* mean, T* rstd, const T* X, const T* gamma, const T* beta, idx N,
                       idx C, double eps);

// xhat = (X - mean) * rstd, g = dY * gamma:
// dX[N,C] = rstd * (g - sum_c g / C - xhat * sum_c (g * xhat) / C);
// dgamma[C] = sum_n dY * xhat;  dbeta[C] = sum_n dY.
// Overwrites dX, dgamma, dbeta; each may be null (not wanted).
template <typename T>
void layernorm_backward(T* dX, T* dgamma, T* dbeta, const T* dY, const T* X, const T* gamma,
                        const T* mean, const T* rstd, idx N, idx C);

}  // namespace fastnn
