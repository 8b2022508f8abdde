#include "losses.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "softmax.h"

namespace fastnn {
namespace {

constexpr idx kRowBlock = 64;  // rows per partial sum; fixed, so sums are thread-count independent

// Sums row_loss(n) over n in [0, N): blocks of rows in parallel, then the block sums in order.
// row_loss may also write that row's gradient.
template <typename F>
double sum_rows(idx N, F row_loss) {
    return ordered_block_sum((N + kRowBlock - 1) / kRowBlock, N >= kParallelRows, [=](idx b) {
        double s = 0;
        for (idx n = b * kRowBlock, end = std::min(N, n + kRowBlock); n < end; ++n) s += row_loss(n);
        return s;
    });
}

template <typename T>
inline T sigmoid(T x) {
    const T e = std::exp(-std::fabs(x));
    return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

// Mean over N*C of f(d) for the residuals d = P - Tgt; dP = f'(d) / (N*C) when dP is non-null.
// f(d, g) returns the loss of one residual and stores its derivative in g.
template <typename T, typename F>
double residual_mean(T* dP, const T* P, const T* Tgt, idx N, idx C, F f) {
    const T inv = T(1) / T(N * C);
    return sum_rows(N, [=](idx n) {
        double loss = 0;
        for (idx i = n * C; i < (n + 1) * C; ++i) {
            T g;
            loss += f(P[i] - Tgt[i], g);
            if (dP) dP[i] = g * inv;
        }
        return loss;
    }) / double(N * C);
}

template <typename T>
constexpr T kInf = std::numeric_limits<T>::infinity();

// A row whose largest logit is +inf: its softmax is the limit as the k logits at +inf grow
// together, 1/k on each of them and 0 elsewhere. count_pos_inf returns k, or -1 when the row also
// holds a NaN; pos_inf_share is that softmax entry for logit z (NaN when k < 0).
template <typename T>
idx count_pos_inf(const T* z, idx C) {
    idx k = 0;
    for (idx c = 0; c < C; ++c) {
        if (std::isnan(z[c])) return -1;
        k += z[c] == kInf<T>;
    }
    return k;
}

template <typename T>
T pos_inf_share(T z, idx k) {
    if (k < 0) return std::numeric_limits<T>::quiet_NaN();
    return z == kInf<T> ? T(1) / T(k) : T(0);
}

}  // namespace

template <typename T>
double sparse_softmax_cross_entropy(T* dZ, const T* Z, const std::int64_t* labels, idx N, idx C) {
    const T invN = T(1) / T(N);
    return sum_rows(N, [=](idx n) {
        const T* z = Z + n * C;
        const idx label = idx(labels[n]);
        const T mx = *std::max_element(z, z + C);
        if (mx == kInf<T>) {  // softmax is 1/k on the k entries at +inf (see softmax.cpp)
            const idx k = count_pos_inf(z, C);
            if (dZ) {
                T* dz = dZ + n * C;
                for (idx c = 0; c < C; ++c) dz[c] = pos_inf_share(z[c], k) * invN;
                dz[label] -= invN;
            }
            return k < 0 ? double(NAN) : z[label] == kInf<T> ? std::log(double(k)) : double(INFINITY);
        }
        T sum = 0;
        for (idx c = 0; c < C; ++c) sum += std::exp(z[c] - mx);
        const T lse = std::log(sum);
        if (dZ) {
            T* dz = dZ + n * C;
            for (idx c = 0; c < C; ++c) dz[c] = std::exp(z[c] - mx - lse) * invN;
            dz[label] -= invN;
        }
        return double(lse - (z[label] - mx));
    }) / double(N);
}

template <typename T>
double sparse_softmax_cross_entropy_ignore(T* dZ, const T* Z, const std::int64_t* labels, idx N, idx C,
                                           std::int64_t ignore_class, bool total) {
    idx valid = 0;
    for (idx n = 0; n < N; ++n) valid += labels[n] != ignore_class;
    const double divisor = total ? 1.0 : double(valid);
    const T scale = valid == 0 ? T(0) : T(1) / T(divisor);
    const double sum = sum_rows(N, [=](idx n) {
        const T* z = Z + n * C;
        const std::int64_t raw = labels[n];
        if (raw == ignore_class) {
            if (dZ) std::fill(dZ + n * C, dZ + (n + 1) * C, T(0));
            return 0.0;
        }
        if (raw < 0 || raw >= C) {
            if (dZ) std::fill(dZ + n * C, dZ + (n + 1) * C, std::numeric_limits<T>::quiet_NaN());
            return double(NAN);
        }
        const idx label = idx(raw);
        const T mx = *std::max_element(z, z + C);
        if (mx == kInf<T>) {  // softmax is 1/k on the k entries at +inf (see softmax.cpp)
            const idx k = count_pos_inf(z, C);
            if (dZ) {
                T* dz = dZ + n * C;
                for (idx c = 0; c < C; ++c) dz[c] = pos_inf_share(z[c], k) * scale;
                dz[label] -= scale;
            }
            return k < 0 ? double(NAN) : z[label] == kInf<T> ? std::log(double(k)) : double(INFINITY);
        }
        T s = 0;
        for (idx c = 0; c < C; ++c) s += std::exp(z[c] - mx);
        const T lse = std::log(s);
        if (dZ) {
            T* dz = dZ + n * C;
            for (idx c = 0; c < C; ++c) dz[c] = std::exp(z[c] - mx - lse) * scale;
            dz[label] -= scale;
        }
        return double(lse - (z[label] - mx));
    });
    return valid == 0 ? 0.0 : sum / divisor;
}

template <typename T>
double softmax_cross_entropy(T* dZ, const T* Z, const T* P, idx N, idx C, T label_smoothing) {
    const T invN = T(1) / T(N);
    const T keep = T(1) - label_smoothing, add = label_smoothing / T(C);  // Q = P * keep + add
    return sum_rows(N, [=](idx n) {
        const T* z = Z + n * C;
        const T* p = P + n * C;
        const T mx = *std::max_element(z, z + C);
        T sum = 0, qsum = 0;
        for (idx c = 0; c < C; ++c) {
            sum += std::exp(z[c] - mx);
            qsum += p[c] * keep + add;
        }
        if (mx == kInf<T>) {  // softmax is 1/k on the k entries at +inf (see softmax.cpp)
            const idx k = count_pos_inf(z, C);
            double loss = k < 0 ? double(NAN) : 0.0;
            for (idx c = 0; c < C && k >= 0; ++c) {
                const T q = p[c] * keep + add;
                if (z[c] == kInf<T>) loss += double(q) * std::log(double(k));  // -q * log(1/k)
                else if (q != T(0)) loss = double(INFINITY);  // probability 0 for a target class
            }
            if (dZ) {
                T* dz = dZ + n * C;
                for (idx c = 0; c < C; ++c) dz[c] = (pos_inf_share(z[c], k) * qsum - (p[c] * keep + add)) * invN;
            }
            return loss;
        }
        const T lse = std::log(sum);
        double loss = 0;
        for (idx c = 0; c < C; ++c) {
            const T q = p[c] * keep + add, logp = z[c] - mx - lse;
            if (q == T(0) && logp == -kInf<T>) continue;  // 0 * log(0) = 0: a -inf logit off target
            loss -= double(q) * double(logp);
        }
        if (dZ) {
            T* dz = dZ + n * C;
            for (idx c = 0; c < C; ++c)
                dz[c] = (std::exp(z[c] - mx - lse) * qsum - (p[c] * keep + add)) * invN;
        }
        return loss;
    }) / double(N);
}

template <typename T>
double sigmoid_binary_cross_entropy(T* dZ, const T* Z, const T* Tgt, idx N, idx C, T label_smoothing) {
    const T inv = T(1) / T(N * C);
    const T keep = T(1) - label_smoothing, add = label_smoothing / T(2);  // q = t * keep + add
    return sum_rows(N, [=](idx n) {
        double loss = 0;
        for (idx c = n * C; c < (n + 1) * C; ++c) {
            const T z = Z[c], q = Tgt[c] * keep + add;
            // log(1 + e^z) - z*q written so that neither exp nor log can overflow. At z = +-inf
            // the limit: 0 when the target agrees exactly (q = 1 at +inf, q = 0 at -inf), else inf.
            if (std::isinf(z))
                loss += (z > T(0) ? q == T(1) : q == T(0)) ? 0.0 : double(INFINITY);
            else
                loss += double((z > T(0) ? z : T(0)) - z * q + std::log1p(std::exp(-std::fabs(z))));
            if (dZ) dZ[c] = (sigmoid(z) - q) * inv;
        }
        return loss;
    }) / double(N * C);
}

template <typename T>
double hinge(T* dP, const T* P, const T* Tgt, idx N, idx C) {
    const T inv = T(1) / T(N * C);
    return sum_rows(N, [=](idx n) {
        double loss = 0;
        for (idx c = n * C; c < (n + 1) * C; ++c) {
            const T margin = T(1) - Tgt[c] * P[c];
            const bool active = margin > T(0);
            if (active) loss += double(margin);
            if (dP) dP[c] = active ? -Tgt[c] * inv : T(0);
        }
        return loss;
    }) / double(N * C);
}

template <typename T>
double kl_divergence(T* dP, const T* P, const T* Tgt, idx N, idx C, T epsilon) {
    const T invN = T(1) / T(N);
    return sum_rows(N, [=](idx n) {
        double loss = 0;
        for (idx c = n * C; c < (n + 1) * C; ++c) {
            const T q = std::min(std::max(Tgt[c], epsilon), T(1));
            const T p = std::min(std::max(P[c], epsilon), T(1));
            loss += double(q * std::log(q / p));
            // like Keras's clip, the clipped (out-of-range) predictions get no gradient
            if (dP) dP[c] = (P[c] >= epsilon && P[c] <= T(1)) ? -q / p * invN : T(0);
        }
        return loss;
    }) / double(N);
}

template <typename T>
double mean_squared_error(T* dP, const T* P, const T* Tgt, idx N, idx C) {
    return residual_mean(dP, P, Tgt, N, C, [](T d, T& g) {
        g = T(2) * d;
        return double(d) * double(d);
    });
}

template <typename T>
double mean_absolute_error(T* dP, const T* P, const T* Tgt, idx N, idx C) {
    return residual_mean(dP, P, Tgt, N, C, [](T d, T& g) {
        g = T(d > T(0)) - T(d < T(0));
        return double(std::fabs(d));
    });
}

template <typename T>
double huber(T* dP, const T* P, const T* Tgt, idx N, idx C, T delta) {
    return residual_mean(dP, P, Tgt, N, C, [delta](T d, T& g) {
        const T a = std::fabs(d);
        if (a <= delta) {
            g = d;
            return 0.5 * double(d) * double(d);
        }
        g = d > T(0) ? delta : -delta;
        return double(delta) * (double(a) - 0.5 * double(delta));
    });
}

template <typename T>
double log_cosh(T* dP, const T* P, const T* Tgt, idx N, idx C) {
    const T log2 = std::log(T(2));
    return residual_mean(dP, P, Tgt, N, C, [log2](T d, T& g) {
        const T a = std::fabs(d);
        g = std::tanh(d);
        // log(cosh d) = |d| + log(1 + e^(-2|d|)) - log 2: no overflow for any finite d
        return double(a + std::log1p(std::exp(T(-2) * a)) - log2);
    });
}

template <typename T>
void probabilities_to_logits(T* Z, const T* P, idx n, double eps, bool binary) {
    const T lo = T(eps), hi = T(1.0 - eps);
    for (idx i = 0; i < n; ++i) {
        const T p = std::min(std::max(P[i], lo), hi);
        Z[i] = binary ? T(std::log(p) - std::log1p(-p)) : T(std::log(p));
    }
}

template <typename T>
void probabilities_grad(T* dP, const T* dZ, const T* P, idx n, double eps, bool binary) {
    const T lo = T(eps), hi = T(1.0 - eps);
    for (idx i = 0; i < n; ++i) {
        const T p = std::min(std::max(P[i], lo), hi);
        const T g = binary ? dZ[i] / (p * (T(1) - p)) : dZ[i] / p;
        dP[i] = g * T(P[i] > lo && P[i] < hi);
    }
}

// Mean over N*C of f(p, t); dP = f'(p, t) / (N*C) when dP is non-null (f stores it in g).
template <typename T, typename F>
double pointwise_mean(T* dP, const T* P, const T* Tgt, idx N, idx C, F f) {
    const T inv = T(1) / T(N * C);
    return sum_rows(N, [=](idx n) {
        double loss = 0;
        for (idx i = n * C; i < (n + 1) * C; ++i) {
            T g;
            loss += f(P[i], Tgt[i], g);
            if (dP) dP[i] = g * inv;
        }
        return loss;
    }) / double(N * C);
}

template <typename T>
double mean_absolute_percentage_error(T* dP, const T* P, const T* Tgt, idx N, idx C, T epsilon) {
    return pointwise_mean(dP, P, Tgt, N, C, [=](T p, T t, T& g) {
        const T scale = T(100) / std::max(std::fabs(t), epsilon);
        const T d = p - t;
        g = d > T(0) ? scale : d < T(0) ? -scale : T(0);
        return double(std::fabs(d) * scale);
    });
}

template <typename T>
double mean_squared_logarithmic_error(T* dP, const T* P, const T* Tgt, idx N, idx C, T epsilon) {
    return pointwise_mean(dP, P, Tgt, N, C, [=](T p, T t, T& g) {
        const T pc = std::max(p, epsilon);
        const T d = std::log1p(pc) - std::log1p(std::max(t, epsilon));
        g = p > epsilon ? T(2) * d / (pc + T(1)) : T(0);
        return double(d) * double(d);
    });
}

template <typename T>
double poisson(T* dP, const T* P, const T* Tgt, idx N, idx C, T epsilon) {
    return pointwise_mean(dP, P, Tgt, N, C, [=](T p, T t, T& g) {
        g = T(1) - t / (p + epsilon);
        return double(p - t * std::log(p + epsilon));
    });
}

template <typename T>
double squared_hinge(T* dP, const T* P, const T* Tgt, idx N, idx C) {
    return pointwise_mean(dP, P, Tgt, N, C, [=](T p, T t, T& g) {
        const T margin = std::max(T(1) - t * p, T(0));
        g = T(-2) * t * margin;
        return double(margin) * double(margin);
    });
}

// Row r's L2 norm without overflow or underflow: the largest magnitude m times the norm of r / m.
template <typename T>
double stable_norm(const T* r, idx C) {
    double m = 0;
    for (idx c = 0; c < C; ++c) m = std::max(m, std::fabs(double(r[c])));
    if (m == 0 || !std::isfinite(m)) return m;
    double s = 0;
    for (idx c = 0; c < C; ++c) {
        const double v = double(r[c]) / m;
        s += v * v;
    }
    return m * std::sqrt(s);
}

template <typename T>
double cosine_similarity(T* dP, const T* P, const T* Tgt, idx N, idx C, T epsilon) {
    const double eps = double(epsilon), inv_n = 1.0 / double(N);
    return sum_rows(N, [=](idx n) {
        const T* p = P + n * C;
        const T* t = Tgt + n * C;
        const double rp = 1.0 / std::max(stable_norm(p, C), eps);
        const double rt = 1.0 / std::max(stable_norm(t, C), eps);
        double s = 0;
        for (idx c = 0; c < C; ++c) s += (double(t[c]) * rt) * (double(p[c]) * rp);
        if (dP) {
            // |p| > eps: d(-tn . p / |p|)/dp = -(tn - s pn) / |p|; else the norm is the constant eps.
            const bool scaled = rp < 1.0 / eps;
            for (idx c = 0; c < C; ++c) {
                const double tn = double(t[c]) * rt, pn = double(p[c]) * rp;
                dP[n * C + c] = T(-rp * (scaled ? tn - s * pn : tn) * inv_n);
            }
        }
        return -s;
    }) / double(N);
}

template <typename T>
double categorical_hinge(T* dP, const T* P, const T* Tgt, idx N, idx C) {
    const T inv_n = T(1) / T(N);
    return sum_rows(N, [=](idx n) {
        const T* p = P + n * C;
        const T* t = Tgt + n * C;
        T pos = 0, neg = -std::numeric_limits<T>::infinity();
        for (idx c = 0; c < C; ++c) {
            pos += t[c] * p[c];
            neg = std::max(neg, (T(1) - t[c]) * p[c]);
        }
        const T margin = neg - pos + T(1);
        if (dP) {
            idx ties = 0;
            for (idx c = 0; c < C; ++c) ties += (T(1) - t[c]) * p[c] == neg;
            for (idx c = 0; c < C; ++c) {
                T g = 0;
                if (margin > T(0)) {
                    g = -t[c];
                    if ((T(1) - t[c]) * p[c] == neg) g += (T(1) - t[c]) / T(ties);
                }
                dP[n * C + c] = g * inv_n;
            }
        }
        return margin > T(0) ? double(margin) : 0.0;
    }) / double(N);
}

// gamma * f^(gamma-1), the focal factor's derivative without 0 * inf where f = 0 (limit 0).
inline double focal_slope(double f, double gamma) {
    return gamma != 0 && f != 0 ? gamma * std::pow(f, gamma - 1) : 0.0;
}

template <typename T>
double binary_focal_cross_entropy(T* dP, const T* P, const T* Tgt, idx N, idx C, bool from_logits,
                                  T gamma, T alpha, bool balance, T label_smoothing, T epsilon) {
    const double g = double(gamma), a = double(alpha), ls = double(label_smoothing),
                 eps = double(epsilon), inv = 1.0 / double(N * C);
    return sum_rows(N, [=](idx n) {
        double loss = 0;
        for (idx i = n * C; i < (n + 1) * C; ++i) {
            const double t = double(Tgt[i]) * (1 - ls) + 0.5 * ls, x = double(P[i]);
            double bce, f, dbce, df;
            if (from_logits) {  // p = sigmoid(x), 1 - p = sigmoid(-x), never rounded to 0 or 1 first
                const double sp = sigmoid(x), sn = sigmoid(-x);
                bce = std::max(x, 0.0) - x * t + std::log1p(std::exp(-std::fabs(x)));
                f = t * sn + (1 - t) * sp;
                dbce = sp - t;
                df = (1 - 2 * t) * sp * sn;
            } else {  // Keras: probabilities clipped to [eps, 1 - eps] inside the cross-entropy
                const double pc = std::min(std::max(x, eps), 1 - eps);
                bce = -(t * std::log(pc) + (1 - t) * std::log(1 - pc));
                f = 1 - (t * x + (1 - t) * (1 - x));
                dbce = x > eps && x < 1 - eps ? -t / pc + (1 - t) / (1 - pc) : 0.0;
                df = 1 - 2 * t;
            }
            const double w = balance ? t * a + (1 - t) * (1 - a) : 1.0;
            const double fg = g == 0 ? 1.0 : std::pow(f, g);
            loss += w * fg * bce;
            if (dP) dP[i] = T(w * (focal_slope(f, g) * df * bce + fg * dbce) * inv);
        }
        return loss;
    }) * inv;
}

template <typename T>
double categorical_focal_cross_entropy(T* dP, const T* P, const T* Tgt, idx N, idx C,
                                       bool from_logits, T gamma, T alpha, T label_smoothing,
                                       T epsilon) {
    const double g = double(gamma), a = double(alpha), ls = double(label_smoothing),
                 eps = double(epsilon), inv_n = 1.0 / double(N);
    return sum_rows(N, [=](idx n) {
        const T* x = P + n * C;
        const T* y = Tgt + n * C;
        double loss = 0;
        if (from_logits) {  // log p from the log-softmax, 1 - p = -expm1(log p): no rounding to 0 or 1
            double zmax = -std::numeric_limits<double>::infinity(), se = 0;
            for (idx c = 0; c < C; ++c) zmax = std::max(zmax, double(x[c]));
            for (idx c = 0; c < C; ++c) se += std::exp(double(x[c]) - zmax);
            const double lse = zmax + std::log(se);
            double wsum = 0;
            for (idx c = 0; c < C; ++c) {
                const double q = double(y[c]) * (1 - ls) + ls / double(C);
                const double lp = double(x[c]) - lse, p = std::exp(lp), om = -std::expm1(lp);
                const double fg = g == 0 ? 1.0 : std::pow(om, g);
                double w = 0;
                if (q != 0) {
                    loss += a * q * fg * -lp;
                    w = a * q * ((p != 0 ? focal_slope(om, g) * p * lp : 0.0) - fg);
                }
                wsum += w;
                if (dP) dP[n * C + c] = T(w);  // finished below, once the sum of w is known
            }
            if (dP)
                for (idx c = 0; c < C; ++c)
                    dP[n * C + c] = T((double(dP[n * C + c]) - std::exp(double(x[c]) - lse) * wsum) * inv_n);
        } else {  // Keras: o = p / sum(p), clipped to [eps, 1 - eps]
            double s = 0;
            for (idx c = 0; c < C; ++c) s += double(x[c]);
            double go = 0;
            for (idx c = 0; c < C; ++c) {
                const double q = double(y[c]) * (1 - ls) + ls / double(C);
                const double o = double(x[c]) / s, oc = std::min(std::max(o, eps), 1 - eps);
                const double fg = g == 0 ? 1.0 : std::pow(1 - oc, g);
                loss += a * q * fg * -std::log(oc);
                const double gc = o > eps && o < 1 - eps
                                      ? a * q * (focal_slope(1 - oc, g) * std::log(oc) - fg / oc) : 0.0;
                go += gc * o;
                if (dP) dP[n * C + c] = T(gc);
            }
            if (dP)
                for (idx c = 0; c < C; ++c)
                    dP[n * C + c] = T((double(dP[n * C + c]) - go) / s * inv_n);
        }
        return loss;
    }) * inv_n;
}

template <typename T>
double scale_by_rows(double value, T* grad, idx N, idx C) {
    if (grad)
        for (idx i = 0; i < N * C; ++i) grad[i] *= T(N);
    return value * double(N);
}

#define FASTNN_INSTANTIATE_MORE(T)                                                                 \
    template double mean_absolute_percentage_error<T>(T*, const T*, const T*, idx, idx, T);        \
    template double mean_squared_logarithmic_error<T>(T*, const T*, const T*, idx, idx, T);        \
    template double poisson<T>(T*, const T*, const T*, idx, idx, T);                               \
    template double squared_hinge<T>(T*, const T*, const T*, idx, idx);                            \
    template double cosine_similarity<T>(T*, const T*, const T*, idx, idx, T);                     \
    template double categorical_hinge<T>(T*, const T*, const T*, idx, idx);                        \
    template double binary_focal_cross_entropy<T>(T*, const T*, const T*, idx, idx, bool, T, T,    \
                                                  bool, T, T);                                     \
    template double categorical_focal_cross_entropy<T>(T*, const T*, const T*, idx, idx, bool, T,  \
                                                       T, T, T);                                   \
    template double scale_by_rows<T>(double, T*, idx, idx);                                     \
    template double sparse_softmax_cross_entropy_ignore<T>(T*, const T*, const std::int64_t*, idx,  \
                                                           idx, std::int64_t, bool);
FASTNN_INSTANTIATE_MORE(float)
FASTNN_INSTANTIATE_MORE(double)
#undef FASTNN_INSTANTIATE_MORE

#define FASTNN_INSTANTIATE(T)                                                                    \
    template void probabilities_to_logits<T>(T*, const T*, idx, double, bool);                   \
    template void probabilities_grad<T>(T*, const T*, const T*, idx, double, bool);              \
    template double sparse_softmax_cross_entropy<T>(T*, const T*, const std::int64_t*, idx, idx); \
    template double softmax_cross_entropy<T>(T*, const T*, const T*, idx, idx, T);               \
    template double sigmoid_binary_cross_entropy<T>(T*, const T*, const T*, idx, idx, T);        \
    template double hinge<T>(T*, const T*, const T*, idx, idx);                                  \
    template double kl_divergence<T>(T*, const T*, const T*, idx, idx, T);                       \
    template double mean_squared_error<T>(T*, const T*, const T*, idx, idx);                     \
    template double mean_absolute_error<T>(T*, const T*, const T*, idx, idx);                    \
    template double huber<T>(T*, const T*, const T*, idx, idx, T);                               \
    template double log_cosh<T>(T*, const T*, const T*, idx, idx);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn
