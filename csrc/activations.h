// Elementwise activations, forward and backward, over n contiguous values.
#pragma once

#include "common.h"

namespace fastnn {

enum class Act { linear, step, sigmoid, tanh, relu, leaky_relu, elu, selu, softplus };

// y[n] = f(x[n]); y may alias x. alpha: leaky_relu slope / elu scale, ignored otherwise.
template <typename T>
void act_forward(Act act, T* y, const T* x, idx n, T alpha);

// dx[n] = dy[n] * f'(x[n]), computed from x or from y = f(x), whichever is stable.
// Overwrites dx (may alias dy). `step` has no backward (its derivative is zero almost everywhere).
template <typename T>
void act_backward(Act act, T* dx, const T* dy, const T* x, const T* y, idx n, T alpha);

// PReLU (He et al. 2015, arXiv:1502.01852), a learned slope per feature:
// Y[N,C] = X > 0 ? X : alpha[C] * X
template <typename T>
void prelu_forward(T* Y, const T* X, const T* alpha, idx N, idx C);

// dX[N,C] = dY * (X > 0 ? 1 : alpha[C])   (skipped when dX is null)
// dalpha[C] = sum_n (X[n,c] > 0 ? 0 : dY[n,c] * X[n,c]), summed in double in row order.
// Overwrites dX and dalpha.
template <typename T>
void prelu_backward(T* dX, T* dalpha, const T* dY, const T* X, const T* alpha, idx N, idx C);

}  // namespace fastnn
