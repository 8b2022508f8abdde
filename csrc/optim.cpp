#include "optim.h"

#include <cmath>
#include <cstdint>

namespace fastnn {

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
void adam_update(T* p, const T* g, T* m, T* v, idx n, double lr, double b1, double b2, double eps,
                 std::int64_t step) {
    const double s = double(step);
    const T lr_t = T(lr * std::sqrt(1.0 - std::pow(b2, s)) / (1.0 - std::pow(b1, s)));
    const T tb1 = T(b1), tb2 = T(b2), te = T(eps);
    const T c1 = T(1.0 - b1), c2 = T(1.0 - b2);  // rounded once, as NumPy does with a Python float
#pragma omp parallel for schedule(static) if (n >= kParallelElementwise)
    for (idx i = 0; i < n; ++i) {
        m[i] = tb1 * m[i] + c1 * g[i];
        v[i] = tb2 * v[i] + c2 * (g[i] * g[i]);
        p[i] -= lr_t * m[i] / (std::sqrt(v[i]) + te);
    }
}

template void sgd_update<float>(float*, const float*, float*, idx, float, float, bool);
template void sgd_update<double>(double*, const double*, double*, idx, double, double, bool);
template void adam_update<float>(float*, const float*, float*, float*, idx, double, double, double,
                                 double, std::int64_t);
template void adam_update<double>(double*, const double*, double*, double*, idx, double, double,
                                  double, double, std::int64_t);

}  // namespace fastnn
