#include "softmax.h"

#include <algorithm>
#include <cmath>

namespace fastnn {

template <typename T>
T log_softmax_row(T* y, const T* x, idx C) {
    // Subtracting the row max makes every exponent <= 0, so exp never overflows and the
    // largest term is exactly 1, so the sum never underflows to 0.
    const T mx = *std::max_element(x, x + C);
    T sum = 0;
    for (idx c = 0; c < C; ++c) {
        y[c] = x[c] - mx;
        sum += std::exp(y[c]);
    }
    return std::log(sum);
}

template <typename T>
void softmax_forward(T* Y, const T* X, idx N, idx C) {
#pragma omp parallel for schedule(static) if (N >= kParallelRows)
    for (idx n = 0; n < N; ++n) {
        T* y = Y + n * C;
        const T* x = X + n * C;
        const T mx = *std::max_element(x, x + C);
        T sum = 0;
        for (idx c = 0; c < C; ++c) {
            y[c] = std::exp(x[c] - mx);
            sum += y[c];
        }
        const T inv = T(1) / sum;
        for (idx c = 0; c < C; ++c) y[c] *= inv;
    }
}

template <typename T>
void softmax_backward(T* dX, const T* dY, const T* Y, idx N, idx C) {
#pragma omp parallel for schedule(static) if (N >= kParallelRows)
    for (idx n = 0; n < N; ++n) {
        const T* dy = dY + n * C;
        const T* y = Y + n * C;
        T dot = 0;
        for (idx c = 0; c < C; ++c) dot += dy[c] * y[c];
        T* dx = dX + n * C;
        for (idx c = 0; c < C; ++c) dx[c] = y[c] * (dy[c] - dot);
    }
}

template <typename T>
void log_softmax_forward(T* Y, const T* X, idx N, idx C) {
#pragma omp parallel for schedule(static) if (N >= kParallelRows)
    for (idx n = 0; n < N; ++n) {
        T* y = Y + n * C;
        const T lse = log_softmax_row(y, X + n * C, C);
        for (idx c = 0; c < C; ++c) y[c] -= lse;
    }
}

template <typename T>
void log_softmax_backward(T* dX, const T* dY, const T* Y, idx N, idx C) {
#pragma omp parallel for schedule(static) if (N >= kParallelRows)
    for (idx n = 0; n < N; ++n) {
        const T* dy = dY + n * C;
        const T* y = Y + n * C;
        T sum = 0;
        for (idx c = 0; c < C; ++c) sum += dy[c];
        T* dx = dX + n * C;
        for (idx c = 0; c < C; ++c) dx[c] = dy[c] - std::exp(y[c]) * sum;
    }
}

#define FASTNN_INSTANTIATE(T)                                            \
    template T log_softmax_row<T>(T*, const T*, idx);                    \
    template void softmax_forward<T>(T*, const T*, idx, idx);            \
    template void softmax_backward<T>(T*, const T*, const T*, idx, idx); \
    template void log_softmax_forward<T>(T*, const T*, idx, idx);        \
    template void log_softmax_backward<T>(T*, const T*, const T*, idx, idx);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn
