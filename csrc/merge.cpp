#include "merge.h"

#include <algorithm>
#include <cstring>

namespace fastnn {

namespace {

template <typename F>
inline void each(idx n, F f) {
    parallel_for(n, n >= kParallelElementwise, f);
}

}  // namespace

template <typename T>
void merge_forward(T* Y, const T* A, const T* B, idx n, int op, T scale) {
    switch (MergeOp(op)) {
        case MergeOp::add: each(n, [=](idx i) { Y[i] = scale * (A[i] + B[i]); }); break;
        case MergeOp::subtract: each(n, [=](idx i) { Y[i] = scale * (A[i] - B[i]); }); break;
        case MergeOp::multiply: each(n, [=](idx i) { Y[i] = scale * (A[i] * B[i]); }); break;
        case MergeOp::maximum:
            each(n, [=](idx i) { Y[i] = scale * (A[i] >= B[i] ? A[i] : B[i]); });
            break;
        case MergeOp::minimum:
            each(n, [=](idx i) { Y[i] = scale * (A[i] <= B[i] ? A[i] : B[i]); });
            break;
    }
}

template <typename T>
void merge_backward(T* dA, T* dB, const T* dY, const T* A, const T* B, idx n, int op, T scale) {
    switch (MergeOp(op)) {
        case MergeOp::add:
            each(n, [=](idx i) { const T g = scale * dY[i]; dA[i] = g; dB[i] = g; });
            break;
        case MergeOp::subtract:
            each(n, [=](idx i) { const T g = scale * dY[i]; dA[i] = g; dB[i] = -g; });
            break;
        case MergeOp::multiply:
            each(n, [=](idx i) {
                const T g = scale * dY[i], a = A[i], b = B[i];
                dA[i] = g * b;
                dB[i] = g * a;
            });
            break;
        case MergeOp::maximum:
            each(n, [=](idx i) {
                const T g = scale * dY[i];
                const bool first = A[i] >= B[i];
                dA[i] = first ? g : T(0);
                dB[i] = first ? T(0) : g;
            });
            break;
        case MergeOp::minimum:
            each(n, [=](idx i) {
                const T g = scale * dY[i];
                const bool first = A[i] <= B[i];
                dA[i] = first ? g : T(0);
                dB[i] = first ? T(0) : g;
            });
            break;
    }
}

template <typename T>
void concat_forward(T* Y, const T* A, const T* B, idx N, idx Ca, idx Cb) {
    const idx C = Ca + Cb;
    parallel_for(N, N * C >= kParallelElementwise, [=](idx r) {
        std::copy(A + r * Ca, A + (r + 1) * Ca, Y + r * C);
        std::copy(B + r * Cb, B + (r + 1) * Cb, Y + r * C + Ca);
    });
}

template <typename T>
void take_columns(T* Y, const T* X, idx N, idx Cx, idx offset, idx Cy) {
    parallel_for(N, N * Cy >= kParallelElementwise, [=](idx r) {
        std::copy(X + r * Cx + offset, X + r * Cx + offset + Cy, Y + r * Cy);
    });
}

#define FASTNN_INSTANTIATE(T)                                                                \
    template void merge_forward<T>(T*, const T*, const T*, idx, int, T);                     \
    template void merge_backward<T>(T*, T*, const T*, const T*, const T*, idx, int, T);      \
    template void concat_forward<T>(T*, const T*, const T*, idx, idx, idx);                  \
    template void take_columns<T>(T*, const T*, idx, idx, idx, idx);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn
