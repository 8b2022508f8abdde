#include "optim.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace fastnn {
namespace {

constexpr idx kSumBlock = 4096;  // values per partial sum; fixed, so sums do not depend on threads
constexpr int kLanes = 8;        // interleaved accumulators per block (independent add chains)

// Returns sum_i term(i) over [0, n) in double: blocks of kSumBlock, each summed in kLanes
// interleaved lanes combined in order, then the block sums in order (ordered_block_sum).
template <typename F>
double block_sum(idx n, F term) {
    return ordered_block_sum((n + kSumBlock - 1) / kSumBlock, n >= kParallelElementwise, [=](idx b) {
        const idx i0 = b * kSumBlock, i1 = std::min(n, i0 + kSumBlock);
        double lane[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
        idx i = i0;
        for (; i + kLanes <= i1; i += kLanes)
            for (int l = 0; l < kLanes; ++l) lane[l] += term(i + l);
        for (; i < i1; ++i) lane[0] += term(i);
        double s = 0;
        for (int l = 0; l < kLanes; ++l) s += lane[l];
        return s;
    });
}

}  // namespace

template <typename T>
void sgd_update(T* p, const T* g, T* vel, idx n, T lr, T momentum, bool nesterov) {
    const bool par = n >= kParallelElementwise;
    if (momentum == T(0)) {
#pragma omp parallel for schedule(static) if (par)
        for (idx i = 0; i < n; ++i) p[i] -= lr * g[i];
    } else if (nesterov) {
#pragma omp parallel for schedule(static) if (par)
        for (idx i = 0; i < n; ++i) {
            vel[i] = momentum * vel[i] - lr * g[i];
            p[i] += momentum * vel[i] - lr * g[i];
        }
    } else {
#pragma omp parallel for schedule(static) if (par)
        for (idx i = 0; i < n; ++i) {
            vel[i] = momentum * vel[i] - lr * g[i];
            p[i] += vel[i];
        }
    }
}

template <typename T>
void adam_update(T* p, const T* g, T* m, T* v, T* vhat, idx n, double lr, double b1, double b2,
                 double eps, std::int64_t step) {
    const double s = double(step);
    const T lr_t = T(lr * std::sqrt(1.0 - std::pow(b2, s)) / (1.0 - std::pow(b1, s)));
    const T tb1 = T(b1), tb2 = T(b2), te = T(eps);
    const T c1 = T(1.0 - b1), c2 = T(1.0 - b2);  // rounded once, as NumPy does with a Python float
    if (vhat) {
#pragma omp parallel for schedule(static) if (n >= kParallelElementwise)
        for (idx i = 0; i < n; ++i) {
            m[i] = tb1 * m[i] + c1 * g[i];
            v[i] = tb2 * v[i] + c2 * (g[i] * g[i]);
            vhat[i] = std::max(vhat[i], v[i]);
            p[i] -= lr_t * m[i] / (std::sqrt(vhat[i]) + te);
        }
        return;
    }
#pragma omp parallel for schedule(static) if (n >= kParallelElementwise)
    for (idx i = 0; i < n; ++i) {
        m[i] = tb1 * m[i] + c1 * g[i];
        v[i] = tb2 * v[i] + c2 * (g[i] * g[i]);
        p[i] -= lr_t * m[i] / (std::sqrt(v[i]) + te);
    }
}

template <typename T>
void adagrad_update(T* p, const T* g, T* acc, idx n, T lr, T eps) {
#pragma omp parallel for schedule(static) if (n >= kParallelElementwise)
    for (idx i = 0; i < n; ++i) {
        acc[i] += g[i] * g[i];
        p[i] -= lr * g[i] / std::sqrt(acc[i] + eps);
    }
}

template <typename T>
void rmsprop_update(T* p, const T* g, T* vel, T* avg, T* mom, idx n, T lr, T rho, T momentum, T eps) {
    const T c = T(1) - rho;
#pragma omp parallel for schedule(static) if (n >= kParallelElementwise)
    for (idx i = 0; i < n; ++i) {
        vel[i] = rho * vel[i] + c * (g[i] * g[i]);
        T den = vel[i];
        if (avg) {
            avg[i] = rho * avg[i] + c * g[i];
            den = vel[i] - avg[i] * avg[i];
        }
        const T inc = lr * g[i] / std::sqrt(den + eps);
        if (mom) {
            mom[i] = momentum * mom[i] + inc;
            p[i] -= mom[i];
        } else {
            p[i] -= inc;
        }
    }
}

template <typename T>
void weight_decay_update(T* p, idx n, T lr, T wd) {
#pragma omp parallel for schedule(static) if (n >= kParallelElementwise)
    for (idx i = 0; i < n; ++i) p[i] -= p[i] * wd * lr;
}

template <typename T>
double sum_squares(const T* x, idx n) {
    return block_sum(n, [=](idx i) { const double v = double(x[i]); return v * v; });
}

template <typename T>
void clip_gradient(T* out, const T* g, idx n, T scale, T clipvalue) {
#pragma omp parallel for schedule(static) if (n >= kParallelElementwise)
    for (idx i = 0; i < n; ++i) out[i] = std::min(std::max(scale * g[i], -clipvalue), clipvalue);
}

template <typename T>
double l1_l2_penalty(T* grad, const T* w, idx n, double l1, double l2) {
    if (grad) {
        const T tl1 = T(l1), tl2 = T(2.0 * l2);
#pragma omp parallel for schedule(static) if (n >= kParallelElementwise)
        for (idx i = 0; i < n; ++i) {
            const T sign = T(w[i] > T(0)) - T(w[i] < T(0));
            grad[i] += tl1 * sign + tl2 * w[i];
        }
    }
    return block_sum(n, [=](idx i) {
        const double v = double(w[i]);
        return l1 * std::fabs(v) + l2 * v * v;
    });
}

template void sgd_update<float>(float*, const float*, float*, idx, float, float, bool);
template void sgd_update<double>(double*, const double*, double*, idx, double, double, bool);
template void adam_update<float>(float*, const float*, float*, float*, float*, idx, double, double,
                                 double, double, std::int64_t);
template void adam_update<double>(double*, const double*, double*, double*, double*, idx, double,
                                  double, double, double, std::int64_t);
template void adagrad_update<float>(float*, const float*, float*, idx, float, float);
template void adagrad_update<double>(double*, const double*, double*, idx, double, double);
template void rmsprop_update<float>(float*, const float*, float*, float*, float*, idx, float, float,
                                    float, float);
template void rmsprop_update<double>(double*, const double*, double*, double*, double*, idx, double,
                                     double, double, double);
template void weight_decay_update<float>(float*, idx, float, float);
template void weight_decay_update<double>(double*, idx, double, double);
template double sum_squares<float>(const float*, idx);
template double sum_squares<double>(const double*, idx);
template void clip_gradient<float>(float*, const float*, idx, float, float);
template void clip_gradient<double>(double*, const double*, idx, double, double);
template double l1_l2_penalty<float>(float*, const float*, idx, double, double);
template double l1_l2_penalty<double>(double*, const double*, idx, double, double);

}  // namespace fastnn
