#include "softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace fastnn {
namespace {

// Rows with a +inf logit. Their softmax is the limit as those logits grow together: each of the
// k entries at +inf gets 1/k, every other entry 0. Returns k, or -1 when the row also holds a NaN
// (then the whole row is NaN, as for any NaN logit). A row of only -inf has max -inf and never
// gets here: x - max is NaN there, so its softmax is NaN (no distribution exists).
template <typename T>
idx count_pos_inf(const T* x, idx C) {
    idx k = 0;
    for (idx c = 0; c < C; ++c) {
        if (std::isnan(x[c])) return -1;
        k += x[c] == std::numeric_limits<T>::infinity();
    }
    return k;
}

}  // namespace

template <typename T>
T log_softmax_row(T* y, const T* x, idx C) {
    // Subtracting the row max makes every exponent <= 0, so exp never overflows and the
    // largest term is exactly 1, so the sum never underflows to 0.
    const T mx = *std::max_element(x, x + C);
    if (mx == std::numeric_limits<T>::infinity()) {
        // The limit of x - max: 0 at the +inf entries, -inf elsewhere; the sum of exp is k.
        const idx k = count_pos_inf(x, C);
        const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
        for (idx c = 0; c < C; ++c) y[c] = k < 0 ? nan : (x[c] == inf ? T(0) : -inf);
        return k < 0 ? nan : std::log(T(k));
    }
    T sum = 0;
    for (idx c = 0; c < C; ++c) {
        y[c] = x[c] - mx;
        sum += std::exp(y[c]);
    }
    return std::log(sum);
}

template <typename T>
void softmax_forward(T* Y, const T* X, idx N, idx C) {
    parallel_for(N, N >= kParallelRows, [=](idx n) {
        T* y = Y + n * C;
        const T* x = X + n * C;
        const T mx = *std::max_element(x, x + C);
        if (mx == std::numeric_limits<T>::infinity()) {
            const idx k = count_pos_inf(x, C);
            const T share = k < 0 ? std::numeric_limits<T>::quiet_NaN() : T(1) / T(k);
            for (idx c = 0; c < C; ++c)
                y[c] = k < 0 ? share : (x[c] == std::numeric_limits<T>::infinity() ? share : T(0));
            return;
        }
        T sum = 0;
        for (idx c = 0; c < C; ++c) {
            y[c] = std::exp(x[c] - mx);
            sum += y[c];
        }
        const T inv = T(1) / sum;
        for (idx c = 0; c < C; ++c) y[c] *= inv;
    });
}

template <typename T>
void softmax_backward(T* dX, const T* dY, const T* Y, idx N, idx C) {
    parallel_for(N, N >= kParallelRows, [=](idx n) {
        const T* dy = dY + n * C;
        const T* y = Y + n * C;
        T dot = 0;
        for (idx c = 0; c < C; ++c) dot += dy[c] * y[c];
        T* dx = dX + n * C;
        for (idx c = 0; c < C; ++c) dx[c] = y[c] * (dy[c] - dot);
    });
}

template <typename T>
void log_softmax_forward(T* Y, const T* X, idx N, idx C) {
    parallel_for(N, N >= kParallelRows, [=](idx n) {
        T* y = Y + n * C;
        const T lse = log_softmax_row(y, X + n * C, C);
        for (idx c = 0; c < C; ++c) y[c] -= lse;
    });
}

template <typename T>
void log_softmax_backward(T* dX, const T* dY, const T* Y, idx N, idx C) {
    parallel_for(N, N >= kParallelRows, [=](idx n) {
        const T* dy = dY + n * C;
        const T* y = Y + n * C;
        T sum = 0;
        for (idx c = 0; c < C; ++c) sum += dy[c];
        T* dx = dX + n * C;
        for (idx c = 0; c < C; ++c) dx[c] = dy[c] - std::exp(y[c]) * sum;
    });
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
