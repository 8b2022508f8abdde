#include "activations.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "gemm.h"

namespace fastnn {

// float32 sigmoid on whole vectors, one variant per instruction set (sigmoid_kernel.inc), chosen
// with the GEMM's (gemm.h: cpu_capability).
namespace sigmoid_generic {
void sigmoid_f32(float* y, const float* x, idx n);
void tanh_f32(float* y, const float* x, idx n);
}
#if defined(FASTNN_HAVE_AVX2_VARIANT)
namespace sigmoid_avx2 {
void sigmoid_f32(float* y, const float* x, idx n);
void tanh_f32(float* y, const float* x, idx n);
}
namespace sigmoid_avx512 {
void sigmoid_f32(float* y, const float* x, idx n);
void tanh_f32(float* y, const float* x, idx n);
}
#endif

namespace {

// SELU constants (Klambauer et al. 2017, "Self-Normalizing Neural Networks", eq. 14).
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kInvSqrt2 = 0.70710678118654752440084436210485;
constexpr double kInvSqrt2Pi = 0.39894228040143267793994605993438;
constexpr double kSqrt2OverPi = 0.79788456080286535587989211986876;
constexpr double kGeluCubic = 0.044715;

// log(1 + e^x) without overflow.
template <typename T>
inline T softplus(T x) {
    return (x > T(0) ? x : T(0)) + std::log1p(std::exp(-std::fabs(x)));
}

// relu6(x + 3) / 6, Keras 3's hard_sigmoid.
template <typename T>
inline T hard_sigmoid(T x) {
    const T u = x / T(6) + T(0.5);
    return u < T(0) ? T(0) : u > T(1) ? T(1) : u;
}

// 1/(1+e^-x) without overflow: e^-|x| is at most 1.
template <typename T>
inline T sigmoid(T x) {
    const T e = std::exp(-std::fabs(x));
    return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

// The float32 vector kernels, one entry per instruction-set variant of sigmoid_kernel.inc.
using VectorFn = void (*)(float*, const float*, idx);
struct VectorKernel {
    VectorFn generic, avx2, avx512;
};
#if defined(FASTNN_HAVE_AVX2_VARIANT)
constexpr VectorKernel kSigmoidKernel{sigmoid_generic::sigmoid_f32, sigmoid_avx2::sigmoid_f32,
                                      sigmoid_avx512::sigmoid_f32};
constexpr VectorKernel kTanhKernel{sigmoid_generic::tanh_f32, sigmoid_avx2::tanh_f32,
                                   sigmoid_avx512::tanh_f32};
#else
constexpr VectorKernel kSigmoidKernel{sigmoid_generic::sigmoid_f32, nullptr, nullptr};
constexpr VectorKernel kTanhKernel{sigmoid_generic::tanh_f32, nullptr, nullptr};
#endif

// The variant of `k` for the GEMM's instruction set (gemm.h: cpu_capability).
inline VectorFn variant(const VectorKernel& k) {
    switch (cpu_capability()) {
        case CpuCapability::avx512: if (k.avx512) return k.avx512; break;
        case CpuCapability::avx2: if (k.avx2) return k.avx2; break;
        case CpuCapability::generic: break;
    }
    return k.generic;
}

// y = f(x): float32 through the vector kernel `k` in blocks (in parallel for large arrays),
// float64 element by element with `scalar` (the C library's functions).
template <typename T, typename Scalar>
void vector_forward(const VectorKernel& k, Scalar scalar, T* y, const T* x, idx n) {
    if constexpr (std::is_same_v<T, float>) {
        constexpr idx kBlock = 4096;
        const VectorFn block = variant(k);
        parallel_for((n + kBlock - 1) / kBlock, n >= kParallelElementwise, [=](idx b) {
            const idx i0 = b * kBlock;
            block(y + i0, x + i0, std::min(kBlock, n - i0));
        });
    } else {
        parallel_for(n, n >= kParallelElementwise, [=](idx i) { y[i] = scalar(x[i]); });
    }
}

template <typename T>
void sigmoid_forward(T* y, const T* x, idx n) {
    vector_forward(kSigmoidKernel, [](T v) { return sigmoid(v); }, y, x, n);
}

template <typename T>
void tanh_forward(T* y, const T* x, idx n) {
    vector_forward(kTanhKernel, [](T v) { return std::tanh(v); }, y, x, n);
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
        case Act::tanh: tanh_forward(y, x, n); break;
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
        case Act::gelu:
            // Phi(x) = erfc(-x / sqrt 2) / 2: no cancellation in the far negative tail
            for_each(n, [=](idx i) { y[i] = T(0.5) * x[i] * std::erfc(-x[i] * T(kInvSqrt2)); });
            break;
        case Act::gelu_tanh:
            for_each(n, [=](idx i) {
                // (1 + tanh(u)) / 2 = sigmoid(2u): no cancellation for large negative u
                const T u = T(kSqrt2OverPi) * (x[i] + T(kGeluCubic) * x[i] * x[i] * x[i]);
                y[i] = x[i] * sigmoid(T(2) * u);
            });
            break;
        case Act::silu: for_each(n, [=](idx i) { y[i] = x[i] * sigmoid(x[i]); }); break;
        case Act::mish: for_each(n, [=](idx i) { y[i] = x[i] * std::tanh(softplus(x[i])); }); break;
        case Act::relu6:  // NaN passes through
            for_each(n, [=](idx i) { y[i] = x[i] < T(0) ? T(0) : x[i] > T(6) ? T(6) : x[i]; });
            break;
        case Act::hard_sigmoid: for_each(n, [=](idx i) { y[i] = hard_sigmoid(x[i]); }); break;
        case Act::hard_silu: for_each(n, [=](idx i) { y[i] = x[i] * hard_sigmoid(x[i]); }); break;
        case Act::softsign: for_each(n, [=](idx i) { y[i] = x[i] / (T(1) + std::fabs(x[i])); }); break;
        case Act::exponential: for_each(n, [=](idx i) { y[i] = std::exp(x[i]); }); break;
        case Act::celu:
            for_each(n, [=](idx i) { y[i] = x[i] > T(0) ? x[i] : alpha * std::expm1(x[i] / alpha); });
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
        // dy[i] is read before the choice: a load on one branch only would keep the loop scalar
        case Act::relu:
            for_each(n, [=](idx i) { const T d = dy[i]; dx[i] = x[i] > T(0) ? d : T(0); });
            break;
        case Act::leaky_relu:
            for_each(n, [=](idx i) { const T d = dy[i]; dx[i] = x[i] > T(0) ? d : alpha * d; });
            break;
        case Act::elu:  // for x <= 0: d/dx alpha*(e^x - 1) = alpha*e^x = y + alpha
            for_each(n, [=](idx i) {
                const T d = dy[i], e = d * (y[i] + alpha);
                dx[i] = x[i] > T(0) ? d : e;
            });
            break;
        case Act::selu:
            for_each(n, [=](idx i) {
                dx[i] = dy[i] * ss * (x[i] > T(0) ? T(1) : sa * std::exp(x[i]));
            });
            break;
        case Act::softplus: for_each(n, [=](idx i) { dx[i] = dy[i] * sigmoid(x[i]); }); break;
        case Act::gelu:  // Phi(x) + x * phi(x)
            for_each(n, [=](idx i) {
                const T cdf = T(0.5) * std::erfc(-x[i] * T(kInvSqrt2));
                const T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * x[i] * x[i]);
                dx[i] = dy[i] * (cdf + x[i] * pdf);
            });
            break;
        case Act::gelu_tanh:
            for_each(n, [=](idx i) {
                // s = sigmoid(2u): d/dx [x s] = s + 2 x s (1 - s) u'
                const T x2 = x[i] * x[i];
                const T s = sigmoid(T(2) * T(kSqrt2OverPi) * (x[i] + T(kGeluCubic) * x2 * x[i]));
                const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kGeluCubic) * x2);
                dx[i] = dy[i] * (s + T(2) * x[i] * s * (T(1) - s) * du);
            });
            break;
        case Act::silu:  // s * (1 + x * (1 - s))
            for_each(n, [=](idx i) {
                const T s = sigmoid(x[i]);
                dx[i] = dy[i] * (s * (T(1) + x[i] * (T(1) - s)));
            });
            break;
        case Act::mish:  // tanh(sp) + x * (1 - tanh(sp)^2) * sigmoid(x)
            for_each(n, [=](idx i) {
                const T t = std::tanh(softplus(x[i]));
                dx[i] = dy[i] * (t + x[i] * (T(1) - t * t) * sigmoid(x[i]));
            });
            break;
        case Act::relu6:
            for_each(n, [=](idx i) {
                const T d = dy[i];
                dx[i] = x[i] > T(0) && x[i] < T(6) ? d : T(0);
            });
            break;
        case Act::hard_sigmoid:
            for_each(n, [=](idx i) { dx[i] = x[i] > T(-3) && x[i] < T(3) ? dy[i] / T(6) : T(0); });
            break;
        case Act::hard_silu:  // h(x) + x h'(x): 0 below -3, x/3 + 1/2 in between, 1 above 3
            for_each(n, [=](idx i) {
                dx[i] = x[i] <= T(-3) ? T(0) : x[i] >= T(3) ? dy[i] : dy[i] * (x[i] / T(3) + T(0.5));
            });
            break;
        case Act::softsign:
            for_each(n, [=](idx i) {
                const T d = T(1) + std::fabs(x[i]);
                dx[i] = dy[i] / (d * d);
            });
            break;
        case Act::exponential: for_each(n, [=](idx i) { dx[i] = dy[i] * y[i]; }); break;
        case Act::celu:  // for x <= 0: exp(x / alpha) = y / alpha + 1
            for_each(n, [=](idx i) { dx[i] = x[i] > T(0) ? dy[i] : dy[i] * std::exp(x[i] / alpha); });
            break;
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

template <typename T>
void relu_clip_forward(T* y, const T* x, idx n, T slope, T max_value, T threshold) {
    for_each(n, [=](idx i) {
        const T v = x[i];
        const T pos = v > threshold ? (v < T(0) ? T(0) : v > max_value ? max_value : v) : T(0);
        const T neg = threshold - v > T(0) ? threshold - v : T(0);
        y[i] = v != v ? v : slope != T(0) ? pos - slope * neg : pos;  // NaN passes through
    });
}

template <typename T>
void relu_clip_backward(T* dx, const T* dy, const T* x, idx n, T slope, T max_value, T threshold) {
    for_each(n, [=](idx i) {
        const T v = x[i];
        const T d = (v > threshold && v > T(0) && v < max_value ? T(1) : T(0)) +
                    (v < threshold ? slope : T(0));
        dx[i] = dy[i] * d;
    });
}

template <typename T>
void affine_forward(T* Y, const T* X, const T* scale, const T* offset, idx N, idx C) {
    for_each(N * C, [=](idx i) { Y[i] = X[i] * scale[i % C] + offset[i % C]; });
}

template <typename T>
void affine_backward(T* dX, const T* dY, const T* scale, idx N, idx C) {
    for_each(N * C, [=](idx i) { dX[i] = dY[i] * scale[i % C]; });
}

template void affine_forward<float>(float*, const float*, const float*, const float*, idx, idx);
template void affine_forward<double>(double*, const double*, const double*, const double*, idx, idx);
template void affine_backward<float>(float*, const float*, const float*, idx, idx);
template void affine_backward<double>(double*, const double*, const double*, idx, idx);
template <typename T>
inline T normalize_scale(T variance, T epsilon) {
    const T s = std::sqrt(variance);
    return s > epsilon ? s : epsilon;
}

template <typename T>
void normalize_forward(T* Y, const T* X, const T* mean, const T* variance, idx N, idx C, T epsilon,
                       bool invert) {
    for_each(N * C, [=](idx i) {
        const T s = normalize_scale(variance[i % C], epsilon);
        Y[i] = invert ? mean[i % C] + X[i] * s : (X[i] - mean[i % C]) / s;
    });
}

template <typename T>
void normalize_backward(T* dX, const T* dY, const T* variance, idx N, idx C, T epsilon, bool invert) {
    for_each(N * C, [=](idx i) {
        const T s = normalize_scale(variance[i % C], epsilon);
        dX[i] = invert ? dY[i] * s : dY[i] / s;
    });
}

template void normalize_forward<float>(float*, const float*, const float*, const float*, idx, idx,
                                       float, bool);
template void normalize_forward<double>(double*, const double*, const double*, const double*, idx,
                                        idx, double, bool);
template void normalize_backward<float>(float*, const float*, const float*, idx, idx, float, bool);
template void normalize_backward<double>(double*, const double*, const double*, idx, idx, double,
                                         bool);
template void relu_clip_forward<float>(float*, const float*, idx, float, float, float);
template void relu_clip_forward<double>(double*, const double*, idx, double, double, double);
template void relu_clip_backward<float>(float*, const float*, const float*, idx, float, float, float);
template void relu_clip_backward<double>(double*, const double*, const double*, idx, double, double,
                                         double);
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
