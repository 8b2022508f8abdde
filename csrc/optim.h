// Optimizer updates, in place on the parameter and its state, over n contiguous values, and the
// gradient transforms that run before them: norms and clipping (Keras clipnorm / clipvalue /
// global_clipnorm) and the L1/L2 weight penalty. Sums are taken in double over fixed blocks
// (kSumBlock values each), then the block sums in order: the same for any thread count.
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
// AMSGrad (Reddi et al. 2018) when vhat is not null: vhat = max(vhat, v), used in place of v.
template <typename T>
void adam_update(T* p, const T* g, T* m, T* v, T* vhat, idx n, double lr, double b1, double b2,
                 double eps, std::int64_t step);

// Keras Adagrad (Duchi et al. 2011): acc += g^2; p -= lr * g / sqrt(acc + eps).   p, g, acc: [n]
template <typename T>
void adagrad_update(T* p, const T* g, T* acc, idx n, T lr, T eps);

// Keras RMSprop (Hinton, lecture 6e):  p, g, vel, avg, mom: [n]
// vel = rho*vel + (1-rho)*g^2; den = vel + eps, or centered (avg not null):
// avg = rho*avg + (1-rho)*g; den = vel - avg^2 + eps.  inc = lr * g / sqrt(den);
// p -= inc, or with momentum (mom not null): mom = momentum*mom + inc; p -= mom.
template <typename T>
void rmsprop_update(T* p, const T* g, T* vel, T* avg, T* mom, idx n, T lr, double rho, T momentum, T eps);

// Keras 3 Nadam (Dozat 2016): u_t = b1 (1 - 0.5 * 0.96^step), u_t1 likewise at step + 1;
// u_product[0] *= u_t (one value per weight, 1 at first); m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2);
// p -= lr * (u_t1 m / (1 - u_product u_t1) + (1 - u_t) g / (1 - u_product)) / (sqrt(v / (1 - b2^step)) + eps).
template <typename T>
void nadam_update(T* p, const T* g, T* m, T* v, T* u_product, idx n, double lr, double b1, double b2,
                  double eps, std::int64_t step);

// Keras 3 Adamax (Kingma & Ba 2014, section 7.1): m += (g - m)(1 - b1); u = max(b2 u, |g|);
// p -= lr * m / ((1 - b1^step) (u + eps)).
template <typename T>
void adamax_update(T* p, const T* g, T* m, T* u, idx n, double lr, double b1, double b2, double eps,
                   std::int64_t step);

// Keras 3 Adadelta (Zeiler 2012, arXiv:1212.5701): ag = rho ag + (1 - rho) g^2;
// d = -sqrt(ad + eps) g / sqrt(ag + eps); ad = rho ad + (1 - rho) d^2; p += lr d.
template <typename T>
void adadelta_update(T* p, const T* g, T* ag, T* ad, idx n, double lr, double rho, double eps);

// Keras 3 Lion (Chen et al. 2023, arXiv:2302.06675): p -= lr sign(b1 m + (1 - b1) g);
// m = b2 m + (1 - b2) g.
template <typename T>
void lion_update(T* p, const T* g, T* m, idx n, double lr, double b1, double b2);

// Keras 3 weight decay, applied before every optimizer's update: p -= p * wd * lr.   p: [n]
template <typename T>
void weight_decay_update(T* p, idx n, T lr, T wd);

// Returns sum_i x[i]^2 over x[n], accumulated in double.
template <typename T>
double sum_squares(const T* x, idx n);

// out[n] = min(max(scale * g[n], -clipvalue), clipvalue); clipvalue may be +inf. out may alias g.
template <typename T>
void clip_gradient(T* out, const T* g, idx n, T scale, T clipvalue);

// Returns l1 * sum_i |w[i]| + l2 * sum_i w[i]^2 (accumulated in double) and, when grad is not null,
// ACCUMULATES its gradient: grad[n] += l1 * sign(w[n]) + 2 * l2 * w[n]   (sign(0) = 0).
template <typename T>
double l1_l2_penalty(T* grad, const T* w, idx n, double l1, double l2);

}  // namespace fastnn
