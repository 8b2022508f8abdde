#include "activations.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "gemm.h"

namespace fastnn {

// float32 sigmoid on whole vectors, one variant per instruction set (sigmoid_kernel.inc), chosen
// with the GEMM's (gemm.h: cpu_capability).
namespace sigmoid_generic { void sigmoid_f32(float* y, const float* x, idx n); }
#if defined(FASTNN_HAVE_AVX2_VARIANT)
namespace sigmoid_avx2 { void sigmoid_f32(float* y, const float* x, idx n); }
namespace sigmoid_avx512 { void sigmoid_f32(float* y, const float* x, idx n); }
#endif

namespace {

// SELU constants (Klambauer et al. 2017, "Self-Normalizing Neural Networks", eq. 14).
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;

// 1/(1+e^-x) without overflow: e^-|x| is at most 1.
template <typename T>
inline T sigmoid(T x) {
    const T e = std::exp(-std::fabs(x));
    return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

void sigmoid_block(float* y, const float* x, idx n) {
#if defined(FASTNN_HAVE_AVX2_VARIANT)
    switch (cpu_capability()) {
        case CpuCapability::avx512: return sigmoid_avx512::sigmoid_f32(y, x, n);
        case CpuCapability::avx2: return sigmoid_avx2::sigmoid_f32(y, x, n);
        case CpuCapability::generic: break;
    }
#endif
    sigmoid_generic::sigmoid_f32(y, x, n);
}

// y = sigmoid(x): float32 through the vector kernel in blocks (in parallel for large arrays),
// float64 element by element with the C library's exp.
template <typename T>
void sigmoid_forward(T* y, const T* x, idx n) {
    if constexpr (std::is_same_v<T, float>) {
        constexpr idx kBlock = 4096;
        parallel_for((n + kBlock - 1) / kBlock, n >= kParallelElementwise, [=](idx b) {
            const idx i0 = b * kBlock;
            sigmoid_block(y + i0, x + i0, std::min(kBlock, n - i0));
        });
    } else {
        parallel_for(n, n >= kParallelElementwise, [=](idx i) { y[i] = sigmoid(x[i]); });
    }
}

// Applies `f(i)` for i in [0, n), in parallel when n is large enough to pay for it.
template <typename F>
inline void for_each(idx n, F f) {
    parallel_for(n, n >= kParallelElementwise, f);
}

}  // namespace

template <typename T>
void act_forward(Act act, T* y, const T* x, idx n, T alpha) {
    const T sa = T(kSeluAlpha), ss = T(kSeluScale);
    switch (act) {
        case Act::linear: for_each(n, [=](idx i) { y[i] = x[i]; }); break;
        case Act::step: for_each(n, [=](idx i) { y[i] = x[i] > T(0) ? T(1) : T(0); }); break;
        case Act::sigmoid: sigmoid_forward(y, x, n); break;
        case Act::tanh: for_each(n, [=](idx i) { y[i] = std::tanh(x[i]); }); break;
        case Act::relu:  // written so that NaN passes through, as numpy.maximum does
            for_each(n, [=](idx i) { y[i] = x[i] < T(0) ? T(0) : x[i]; });
            break;
        case Act::leaky_relu:
            for_each(n, [=](idx i) { y[i] = x[i] > T(0) ? x[i] : alpha * x[i]; });
            break;
        case Act::elu:
            for_each(n, [=](idx i) { y[i] = x[i] > T(0) ? x[i] : alpha * std::expm1(x[i]); });
            break;
        case Act::selu:
            for_each(n, [=](idx i) { y[i] = ss * (x[i] > T(0) ? x[i] : sa * std::expm1(x[i])); });
            break;
        case Act::softplus:
            // log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large x.
            for_each(n, [=](idx i) {
                y[i] = (x[i] > T(0) ? x[i] : T(0)) + std::log1p(std::exp(-std::fabs(x[i])));
            });
            break;
    }
}

template <typename T>
void act_backward(Act act, T* dx, const T* dy, const T* x, const T* y, idx n, T alpha) {
    const T sa = T(kSeluAlpha), ss = T(kSeluScale);
    switch (act) {
        case Act::linear: for_each(n, [=](idx i) { dx[i] = dy[i]; }); break;
        case Act::step: break;  // rejected by the binding; no gradient to propagate
        case Act::sigmoid: for_each(n, [=](idx i) { dx[i] = dy[i] * y[i] * (T(1) - y[i]); }); break;
        case Act::tanh: for_each(n, [=](idx i) { dx[i] = dy[i] * (T(1) - y[i] * y[i]); }); break;
        case Act::relu: for_each(n, [=](idx i) { dx[i] = x[i] > T(0) ? dy[i] : T(0); }); break;
        case Act::leaky_relu:
            for_each(n, [=](idx i) { dx[i] = x[i] > T(0) ? dy[i] : alpha * dy[i]; });
            break;
        case Act::elu:  // for x <= 0: d/dx alpha*(e^x - 1) = alpha*e^x = y + alpha
            for_each(n, [=](idx i) { dx[i] = x[i] > T(0) ? dy[i] : dy[i] * (y[i] + alpha); });
            break;
        case Act::selu:
            for_each(n, [=](idx i) {
                dx[i] = dy[i] * ss * (x[i] > T(0) ? T(1) : sa * std::exp(x[i]));
            });
            break;
        case Act::softplus: for_each(n, [=](idx i) { dx[i] = dy[i] * sigmoid(x[i]); }); break;
    }
}

template <typename T>
void prelu_forward(T* Y, const T* X, const T* alpha, idx N, idx C) {
    for_each(N * C, [=](idx i) { Y[i] = X[i] > T(0) ? X[i] : alpha[i % C] * X[i]; });
}

template <typename T>
void prelu_backward(T* dX, T* dalpha, const T* dY, const T* X, const T* alpha, idx N, idx C) {
    if (dX) for_each(N * C, [=](idx i) { dX[i] = X[i] > T(0) ? dY[i] : alpha[i % C] * dY[i]; });
    // One feature per task, rows in order: the sum does not depend on the thread count.
    parallel_for(C, N * C >= kParallelElementwise, [=](idx c) {
        double s = 0;
        for (idx n = 0; n < N; ++n) {
            const T x = X[n * C + c];
            if (!(x > T(0))) s += double(dY[n * C + c]) * double(x);
        }
        dalpha[c] = T(s);
    });
}

template void prelu_forward<float>(float*, const float*, const float*, idx, idx);
template void prelu_forward<double>(double*, const double*, const double*, idx, idx);
template void prelu_backward<float>(float*, float*, const float*, const float*, const float*, idx, idx);
template void prelu_backward<double>(double*, double*, const double*, const double*, const double*,
                                     idx, idx);
template void act_forward<float>(Act, float*, const float*, idx, float);
template void act_forward<double>(Act, double*, const double*, idx, double);
template void act_backward<float>(Act, float*, const float*, const float*, const float*, idx, float);
template void act_backward<double>(Act, double*, const double*, const double*, const double*, idx,
                                   double);

}  // namespace fastnn
