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

}  // namespace fastnn
