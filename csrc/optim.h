// Optimizer updates, in place on the parameter and its state, over n contiguous values.
#pragma once

#include "common.h"

namespace fastnn {

// Keras SGD. momentum == 0: p -= lr*g (vel unused, may be null).
// Otherwise vel = momentum*vel - lr*g; p += vel, or with Nesterov p += momentum*vel - lr*g.
template <typename T>
void sgd_update(T* p, const T* g, T* vel, idx n, T lr, T momentum, bool nesterov);

// Keras Adam (Kingma & Ba 2014, arXiv:1412.6980, with the paper's "epsilon hat"):
// m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; p -= lr_t * m / (sqrt(v) + eps),
// lr_t = lr * sqrt(1 - b2^step) / (1 - b1^step), step counting this update (1 on the first).
template <typename T>
void adam_update(T* p, const T* g, T* m, T* v, idx n, double lr, double b1, double b2, double eps,
                 std::int64_t step);

}  // namespace fastnn
