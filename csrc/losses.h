// Losses with their gradients in one pass. Each returns the mean loss over the batch and, when
// the gradient pointer is non-null, writes the gradient of that mean (overwriting it).
// Reduction follows Keras: the mean over the batch of per-sample losses, where a per-sample loss
// is the mean over its C outputs (MSE, MAE, Huber, log-cosh, hinge, binary cross-entropy) or the
// sum over its C classes (categorical cross-entropies, KL divergence).
// Per-row losses are summed in fixed blocks of rows, so the result does not depend on the thread count.
#pragma once

#include <cstdint>

#include "common.h"

namespace fastnn {

// ---- Classification: on logits, stable for any finite logit ----------------------------------

// loss = mean_n( logsumexp(Z[n,:]) - Z[n, labels[n]] )          Z[N,C], labels[N] in [0, C)
// dZ[N,C] = (softmax(Z) - onehot(labels)) / N
template <typename T>
double sparse_softmax_cross_entropy(T* dZ, const T* Z, const std::int64_t* labels, idx N, idx C);

// Q = P * (1 - s) + s / C  (label smoothing s in [0, 1], Keras)  Z[N,C], P[N,C] targets
// loss = mean_n( -sum_c Q[n,c] * log_softmax(Z)[n,c] )
// dZ[N,C] = (softmax(Z) * sum_c Q[n,c] - Q) / N
template <typename T>
double softmax_cross_entropy(T* dZ, const T* Z, const T* P, idx N, idx C, T label_smoothing = T(0));

// q = t * (1 - s) + s / 2  (label smoothing s in [0, 1], Keras)  Z[N,C], Tgt[N,C]
// loss = mean over N*C of max(z,0) - z*q + log1p(exp(-|z|))
// dZ[N,C] = (sigmoid(Z) - Q) / (N*C)
template <typename T>
double sigmoid_binary_cross_entropy(T* dZ, const T* Z, const T* Tgt, idx N, idx C,
                                    T label_smoothing = T(0));

// loss = mean over N*C of max(1 - Tgt*P, 0)                     P[N,C] scores, Tgt[N,C] in {-1, 1}
// dP[N,C] = -Tgt / (N*C) where Tgt*P < 1, else 0
template <typename T>
double hinge(T* dP, const T* P, const T* Tgt, idx N, idx C);

// q = clip(Tgt, eps, 1), p = clip(P, eps, 1)                     P[N,C], Tgt[N,C] distributions
// loss = mean_n( sum_c q * log(q / p) )
// dP[N,C] = -q / p / N where eps <= P <= 1, else 0 (clipped entries have no gradient)
template <typename T>
double kl_divergence(T* dP, const T* P, const T* Tgt, idx N, idx C, T epsilon);

// ---- Regression: d = P - Tgt elementwise, P[N,C], Tgt[N,C] ------------------------------------

// loss = mean over N*C of d^2;  dP = 2 d / (N*C)
template <typename T>
double mean_squared_error(T* dP, const T* P, const T* Tgt, idx N, idx C);

// loss = mean over N*C of |d|;  dP = sign(d) / (N*C)  (0 where d == 0)
template <typename T>
double mean_absolute_error(T* dP, const T* P, const T* Tgt, idx N, idx C);

// loss = mean over N*C of (|d| <= delta ? d^2 / 2 : delta * (|d| - delta / 2))
// dP = clip(d, -delta, delta) / (N*C)
template <typename T>
double huber(T* dP, const T* P, const T* Tgt, idx N, idx C, T delta);

// loss = mean over N*C of log(cosh(d)) = |d| + log1p(exp(-2|d|)) - log(2);  dP = tanh(d) / (N*C)
template <typename T>
double log_cosh(T* dP, const T* P, const T* Tgt, idx N, idx C);

// Cross-entropy on probabilities goes through the stable kernels on logits (fastnn.losses):
// Z[n] = log(p) (binary: log(p) - log(1 - p)) of p = clip(P, eps, 1 - eps).
template <typename T>
void probabilities_to_logits(T* Z, const T* P, idx n, double eps, bool binary);

// The chain rule back to P: dP = dZ / p (binary: dZ / (p (1 - p))), 0 where P was clipped.
template <typename T>
void probabilities_grad(T* dP, const T* dZ, const T* P, idx n, double eps, bool binary);

// ---- Keras's further pointwise losses: mean over N*C of l(P, Tgt); dP = dl/dP / (N*C) ----------

// l = 100 |Tgt - P| / max(|Tgt|, eps);  dl/dP = 100 sign(P - Tgt) / max(|Tgt|, eps)
template <typename T>
double mean_absolute_percentage_error(T* dP, const T* P, const T* Tgt, idx N, idx C, T epsilon);

// l = (log(max(P, eps) + 1) - log(max(Tgt, eps) + 1))^2;  dl/dP = 2 (that difference) / (P + 1)
// where P > eps, else 0
template <typename T>
double mean_squared_logarithmic_error(T* dP, const T* P, const T* Tgt, idx N, idx C, T epsilon);

// l = P - Tgt log(P + eps);  dl/dP = 1 - Tgt / (P + eps)
template <typename T>
double poisson(T* dP, const T* P, const T* Tgt, idx N, idx C, T epsilon);

// l = max(1 - Tgt P, 0)^2 for Tgt in {-1, 1};  dl/dP = -2 Tgt max(1 - Tgt P, 0)
template <typename T>
double squared_hinge(T* dP, const T* P, const T* Tgt, idx N, idx C);

// ---- Keras's further row losses: mean over N of l(P[n], Tgt[n]); dP = dl/dP / N ----------------

// pn = P / max(|P|, eps), tn = Tgt / max(|Tgt|, eps) per row (norms without overflow);
// l = -sum_c tn pn;  dl/dP = -(tn - l' pn) / |P| with l' = sum_c tn pn, or -tn / eps where |P| <= eps
template <typename T>
double cosine_similarity(T* dP, const T* P, const T* Tgt, idx N, idx C, T epsilon);

// l = max(max_c (1 - Tgt) P - sum_c Tgt P + 1, 0); the max's gradient is shared among ties
template <typename T>
double categorical_hinge(T* dP, const T* P, const T* Tgt, idx N, idx C);

// Keras's binary focal cross-entropy, mean over N*C: t = Tgt (1 - s) + s / 2, p = P (or
// sigmoid(P) from logits, then bce in its stable log1p form), f = 1 - (t p + (1 - t)(1 - p)),
// l = w f^gamma bce with w = t alpha + (1 - t)(1 - alpha) when balance, else 1.
template <typename T>
double binary_focal_cross_entropy(T* dP, const T* P, const T* Tgt, idx N, idx C, bool from_logits,
                                  T gamma, T alpha, bool balance, T label_smoothing, T epsilon);

// Keras's categorical focal cross-entropy: q = Tgt (1 - s) + s / C, o = P / sum(P) clipped to
// [eps, 1 - eps] (from logits: o = softmax(P) with log o the log-softmax, unclipped);
// l = sum_c alpha q (1 - o)^gamma (-log o)
template <typename T>
double categorical_focal_cross_entropy(T* dP, const T* P, const T* Tgt, idx N, idx C,
                                       bool from_logits, T gamma, T alpha, T label_smoothing,
                                       T epsilon);

// Keras's ignore_class: rows with labels[n] == ignore_class add neither loss nor gradient (their
// dZ rows are 0); the others as sparse_softmax_cross_entropy, divided by their count V instead of
// N (0 when V = 0), or not divided at all when total (reduction="sum"). A label outside [0, C)
// that is not ignore_class gives NaN.
template <typename T>
double sparse_softmax_cross_entropy_ignore(T* dZ, const T* Z, const std::int64_t* labels, idx N, idx C,
                                           std::int64_t ignore_class, bool total);

// reduction="sum": value * N and grad[N, C] *= N (a mean over N rows turned into their sum)
template <typename T>
double scale_by_rows(double value, T* grad, idx N, idx C);

}  // namespace fastnn
