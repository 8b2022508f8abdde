// Elementwise activations, forward and backward, over n contiguous values.
#pragma once

#include "common.h"

namespace fastnn {

enum class Act {
    linear, step, sigmoid, tanh, relu, leaky_relu, elu, selu, softplus,
    // Keras 3's further activations (formulas in fastnn/reference/activations.py); celu takes alpha.
    gelu, gelu_tanh, silu, mish, relu6, hard_sigmoid, hard_silu, softsign, exponential, celu
};
// Number of elementwise activations: the row-wise codes (softmax, log_softmax) follow them.
constexpr int kActCount = int(Act::celu) + 1;

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

// Keras's relu with every option: y = (x > t ? clamp(x, 0, max_value) : 0) - slope * max(t - x, 0),
// t the threshold; max_value may be +inf. y may alias x.
template <typename T>
void relu_clip_forward(T* y, const T* x, idx n, T slope, T max_value, T threshold);

// dx = dy * ((x > t and 0 < x < max_value ? 1 : 0) + (x < t ? slope : 0)). dx may alias dy.
template <typename T>
void relu_clip_backward(T* dx, const T* dy, const T* x, idx n, T slope, T max_value, T threshold);

// Per-feature affine map over the last axis: Y[N, C] = X * scale[C] + offset[C] (Rescaling,
// Normalization). Y may alias X.
template <typename T>
void affine_forward(T* Y, const T* X, const T* scale, const T* offset, idx N, idx C);

// dX[N, C] = dY * scale[C]. dX may alias dY.
template <typename T>
void affine_backward(T* dX, const T* dY, const T* scale, idx N, idx C);

// Keras's Normalization over the last axis, s[C] = max(sqrt(variance), epsilon):
// Y = (X - mean) / s, or with invert Y = mean + X * s. Y may alias X.
template <typename T>
void normalize_forward(T* Y, const T* X, const T* mean, const T* variance, idx N, idx C, T epsilon,
                       bool invert);

// dX = dY / s, or with invert dY * s.
template <typename T>
void normalize_backward(T* dX, const T* dY, const T* variance, idx N, idx C, T epsilon, bool invert);

}  // namespace fastnn
