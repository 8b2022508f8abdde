#include "optim.h"
#include "gemm.h"

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

// The updates run in the instruction-set variant the GEMM uses (gemm.h: cpu_capability).
#define FASTNN_DECLARE_VARIANT(NS)                                                                \
    namespace NS {                                                                                \
    template <typename T> void sgd_update(T*, const T*, T*, idx, T, T, bool);                    \
    template <typename T>                                                                         \
    void adam_update(T*, const T*, T*, T*, T*, idx, double, double, double, double, std::int64_t); \
    template <typename T> void adagrad_update(T*, const T*, T*, idx, T, T);                       \
    template <typename T> void rmsprop_update(T*, const T*, T*, T*, T*, idx, T, double, T, T);    \
    template <typename T> double l1_l2_penalty(T*, const T*, idx, double, double);                \
    }
FASTNN_DECLARE_VARIANT(optim_generic)
#if defined(FASTNN_HAVE_AVX2_VARIANT)
FASTNN_DECLARE_VARIANT(optim_avx2)
FASTNN_DECLARE_VARIANT(optim_avx512)
#define FASTNN_VARIANT_CALL(fn, ...)                                                               \
    (cpu_capability() == CpuCapability::avx512 ? optim_avx512::fn<T>(__VA_ARGS__)                 \
     : cpu_capability() == CpuCapability::avx2 ? optim_avx2::fn<T>(__VA_ARGS__)                   \
                                               : optim_generic::fn<T>(__VA_ARGS__))
#else
#define FASTNN_VARIANT_CALL(fn, ...) optim_generic::fn<T>(__VA_ARGS__)
#endif

template <typename T>
void sgd_update(T* p, const T* g, T* vel, idx n, T lr, T momentum, bool nesterov) {
    FASTNN_VARIANT_CALL(sgd_update, p, g, vel, n, lr, momentum, nesterov);
}

template <typename T>
void adam_update(T* p, const T* g, T* m, T* v, T* vhat, idx n, double lr, double b1, double b2,
                 double eps, std::int64_t step) {
    FASTNN_VARIANT_CALL(adam_update, p, g, m, v, vhat, n, lr, b1, b2, eps, step);
}

template <typename T>
void adagrad_update(T* p, const T* g, T* acc, idx n, T lr, T eps) {
    FASTNN_VARIANT_CALL(adagrad_update, p, g, acc, n, lr, eps);
}

template <typename T>
void rmsprop_update(T* p, const T* g, T* vel, T* avg, T* mom, idx n, T lr, double rho, T momentum,
                    T eps) {
    FASTNN_VARIANT_CALL(rmsprop_update, p, g, vel, avg, mom, n, lr, rho, momentum, eps);
}

template <typename T>
void weight_decay_update(T* p, idx n, T lr, T wd) {
    parallel_for(n, n >= kParallelElementwise, [=](idx i) { p[i] -= p[i] * wd * lr; });
}

template <typename T>
double sum_squares(const T* x, idx n) {
    return block_sum(n, [=](idx i) { const double v = double(x[i]); return v * v; });
}

template <typename T>
void clip_gradient(T* out, const T* g, idx n, T scale, T clipvalue) {
    parallel_for(n, n >= kParallelElementwise, [=](idx i) { out[i] = std::min(std::max(scale * g[i], -clipvalue), clipvalue); });
}

template <typename T>
double l1_l2_penalty(T* grad, const T* w, idx n, double l1, double l2) {
    return FASTNN_VARIANT_CALL(l1_l2_penalty, grad, w, n, l1, l2);
}

template <typename T>
void nadam_update(T* p, const T* g, T* m, T* v, T* u_product, idx n, double lr, double b1, double b2,
                  double eps, std::int64_t step) {
    const double u_t = b1 * (1.0 - 0.5 * std::pow(0.96, double(step)));
    const double u_t1 = b1 * (1.0 - 0.5 * std::pow(0.96, double(step + 1)));
    const double prod = double(u_product[0]) * u_t;
    u_product[0] = T(prod);
    const double prod_t = double(T(prod));  // the stored value, as Keras reads its variable back
    const T c_m = T(u_t1 / (1.0 - prod_t * u_t1)), c_g = T((1.0 - u_t) / (1.0 - prod_t));
    const T c_v = T(1.0 / (1.0 - std::pow(b2, double(step))));
    const T tb1 = T(1.0 - b1), tb2 = T(1.0 - b2), tlr = T(lr), teps = T(eps);
    parallel_for(n, n >= kParallelElementwise, [=](idx i) {
        const T gi = g[i];
        const T mi = m[i] + (gi - m[i]) * tb1;
        const T vi = v[i] + (gi * gi - v[i]) * tb2;
        m[i] = mi;
        v[i] = vi;
        const T m_hat = c_m * mi + c_g * gi;
        p[i] -= tlr * m_hat / (std::sqrt(vi * c_v) + teps);
    });
}

template <typename T>
void adamax_update(T* p, const T* g, T* m, T* u, idx n, double lr, double b1, double b2, double eps,
                   std::int64_t step) {
    const T c = T(lr / (1.0 - std::pow(b1, double(step))));
    const T tb1 = T(1.0 - b1), tb2 = T(b2), teps = T(eps);
    parallel_for(n, n >= kParallelElementwise, [=](idx i) {
        const T gi = g[i];
        const T mi = m[i] + (gi - m[i]) * tb1;
        const T decayed = tb2 * u[i], ag = std::fabs(gi);
        // max(decayed, |g|), NaN if either is (numpy.maximum)
        const T ui = decayed != decayed ? decayed : (ag != ag || decayed < ag) ? ag : decayed;
        m[i] = mi;
        u[i] = ui;
        p[i] -= c * mi / (ui + teps);
    });
}

template <typename T>
void adadelta_update(T* p, const T* g, T* ag, T* ad, idx n, double lr, double rho, double eps) {
    const T trho = T(rho), t1rho = T(1.0 - rho), tlr = T(lr), teps = T(eps);
    parallel_for(n, n >= kParallelElementwise, [=](idx i) {
        const T gi = g[i];
        const T agi = trho * ag[i] + t1rho * gi * gi;
        const T d = -(std::sqrt(ad[i] + teps) * gi) / std::sqrt(agi + teps);
        ag[i] = agi;
        ad[i] = trho * ad[i] + t1rho * d * d;
        p[i] += tlr * d;
    });
}

template <typename T>
void lion_update(T* p, const T* g, T* m, idx n, double lr, double b1, double b2) {
    const T tb1 = T(b1), t1b1 = T(1.0 - b1), tb2 = T(b2), t1b2 = T(1.0 - b2), tlr = T(lr);
    parallel_for(n, n >= kParallelElementwise, [=](idx i) {
        const T c = tb1 * m[i] + t1b1 * g[i];
        const T sign = c != c ? c : T(c > T(0)) - T(c < T(0));
        p[i] -= tlr * sign;
        m[i] = tb2 * m[i] + t1b2 * g[i];
    });
}

#define FASTNN_INSTANTIATE_EXTRA(T)                                                                 \
    template void nadam_update<T>(T*, const T*, T*, T*, T*, idx, double, double, double, double,     \
                                  std::int64_t);                                                    \
    template void adamax_update<T>(T*, const T*, T*, T*, idx, double, double, double, double,        \
                                   std::int64_t);                                                   \
    template void adadelta_update<T>(T*, const T*, T*, T*, idx, double, double, double);            \
    template void lion_update<T>(T*, const T*, T*, idx, double, double, double);
FASTNN_INSTANTIATE_EXTRA(float)
FASTNN_INSTANTIATE_EXTRA(double)
#undef FASTNN_INSTANTIATE_EXTRA

template void sgd_update<float>(float*, const float*, float*, idx, float, float, bool);
template void sgd_update<double>(double*, const double*, double*, idx, double, double, bool);
template void adam_update<float>(float*, const float*, float*, float*, float*, idx, double, double,
                                 double, double, std::int64_t);
template void adam_update<double>(double*, const double*, double*, double*, double*, idx, double,
                                  double, double, double, std::int64_t);
template void adagrad_update<float>(float*, const float*, float*, idx, float, float);
template void adagrad_update<double>(double*, const double*, double*, idx, double, double);
template void rmsprop_update<float>(float*, const float*, float*, float*, float*, idx, float, double,
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
