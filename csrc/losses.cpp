#include "losses.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "softmax.h"

namespace fastnn {
namespace {

constexpr idx kRowBlock = 64;  // rows per partial sum; fixed, so sums are thread-count independent

// Sums row_loss(n) over n in [0, N): blocks of rows in parallel, then the block sums in order.
// row_loss may also write that row's gradient.
template <typename F>
double sum_rows(idx N, F row_loss) {
    const idx blocks = (N + kRowBlock - 1) / kRowBlock;
    thread_local std::vector<double> partial;  // grows once, then reused
    if (partial.size() < size_t(blocks)) partial.resize(blocks);
    double* part = partial.data();
#pragma omp parallel for schedule(static) if (N >= kParallelRows)
    for (idx b = 0; b < blocks; ++b) {
        double s = 0;
        for (idx n = b * kRowBlock, end = std::min(N, n + kRowBlock); n < end; ++n) s += row_loss(n);
        part[b] = s;
    }
    double total = 0;
    for (idx b = 0; b < blocks; ++b) total += part[b];
    return total;
}

template <typename T>
inline T sigmoid(T x) {
    const T e = std::exp(-std::fabs(x));
    return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

}  // namespace

template <typename T>
double sparse_softmax_cross_entropy(T* dZ, const T* Z, const std::int64_t* labels, idx N, idx C) {
    const T invN = T(1) / T(N);
    return sum_rows(N, [=](idx n) {
        const T* z = Z + n * C;
        const idx label = idx(labels[n]);
        const T mx = *std::max_element(z, z + C);
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
double softmax_cross_entropy(T* dZ, const T* Z, const T* P, idx N, idx C) {
    const T invN = T(1) / T(N);
    return sum_rows(N, [=](idx n) {
        const T* z = Z + n * C;
        const T* p = P + n * C;
        const T mx = *std::max_element(z, z + C);
        T sum = 0, psum = 0;
        for (idx c = 0; c < C; ++c) {
            sum += std::exp(z[c] - mx);
            psum += p[c];
        }
        const T lse = std::log(sum);
        double loss = 0;
        for (idx c = 0; c < C; ++c) loss -= double(p[c]) * double(z[c] - mx - lse);
        if (dZ) {
            T* dz = dZ + n * C;
            for (idx c = 0; c < C; ++c) dz[c] = (std::exp(z[c] - mx - lse) * psum - p[c]) * invN;
        }
        return loss;
    }) / double(N);
}

template <typename T>
double sigmoid_binary_cross_entropy(T* dZ, const T* Z, const T* Tgt, idx N, idx C) {
    const T inv = T(1) / T(N * C);
    return sum_rows(N, [=](idx n) {
        double loss = 0;
        for (idx c = n * C; c < (n + 1) * C; ++c) {
            const T z = Z[c], t = Tgt[c];
            // log(1 + e^z) - z*t written so that neither exp nor log can overflow.
            loss += double((z > T(0) ? z : T(0)) - z * t + std::log1p(std::exp(-std::fabs(z))));
            if (dZ) dZ[c] = (sigmoid(z) - t) * inv;
        }
        return loss;
    }) / double(N * C);
}

template <typename T>
double mean_squared_error(T* dP, const T* P, const T* Tgt, idx N, idx C) {
    const T scale = T(2) / T(N * C);
    return sum_rows(N, [=](idx n) {
        double loss = 0;
        for (idx c = n * C; c < (n + 1) * C; ++c) {
            const T d = P[c] - Tgt[c];
            loss += double(d) * double(d);
            if (dP) dP[c] = scale * d;
        }
        return loss;
    }) / double(N * C);
}

#define FASTNN_INSTANTIATE(T)                                                                    \
    template double sparse_softmax_cross_entropy<T>(T*, const T*, const std::int64_t*, idx, idx); \
    template double softmax_cross_entropy<T>(T*, const T*, const T*, idx, idx);                  \
    template double sigmoid_binary_cross_entropy<T>(T*, const T*, const T*, idx, idx);           \
    template double mean_squared_error<T>(T*, const T*, const T*, idx, idx);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn
