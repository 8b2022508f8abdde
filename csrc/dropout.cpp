#include "dropout.h"

#include <cmath>

namespace fastnn {
namespace {

constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ull;  // 2^64 / golden ratio, splitmix64's step

// splitmix64's output function (Steele, Lea & Flood 2014): a bijection of 64-bit integers whose
// outputs for consecutive inputs pass BigCrush.
inline std::uint64_t mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

}  // namespace

template <typename T>
void dropout_forward(T* Y, T* mask, const T* X, idx n, double rate, std::uint64_t seed,
                     std::uint64_t counter) {
    const std::uint64_t key = mix(mix(seed) ^ counter);
    const std::uint64_t threshold = std::uint64_t(std::ceil(rate * 9007199254740992.0));  // 2^53
    const T scale = T(1.0 / (1.0 - rate));
    parallel_for(n, n >= kParallelElementwise, [=](idx i) {
        const std::uint64_t u = mix(key + std::uint64_t(i + 1) * kGolden);
        mask[i] = (u >> 11) >= threshold ? scale : T(0);
        Y[i] = X[i] * mask[i];
    });
}

template <typename T>
void dropout_backward(T* dX, const T* dY, const T* mask, idx n) {
    parallel_for(n, n >= kParallelElementwise, [=](idx i) { dX[i] = dY[i] * mask[i]; });
}

template <typename T>
void normal_noise(T* Y, const T* X, idx n, double stddev, std::uint64_t seed, std::uint64_t counter) {
    const std::uint64_t key = mix(mix(seed) ^ counter);
    const double inv53 = 1.0 / 9007199254740992.0;  // 2^-53
    const double two_pi = 6.283185307179586;
    parallel_for(n, n >= kParallelElementwise, [=](idx i) {
        const std::uint64_t k1 = mix(key + std::uint64_t(2 * i + 1) * kGolden) >> 11;
        const std::uint64_t k2 = mix(key + std::uint64_t(2 * i + 2) * kGolden) >> 11;
        const double u1 = double(k1 + 1) * inv53, u2 = double(k2) * inv53;
        const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(two_pi * u2);
        Y[i] = T(double(X[i]) + stddev * z);
    });
}

template <typename T>
void gaussian_dropout_forward(T* Y, T* mask, const T* X, idx n, double stddev, std::uint64_t seed,
                              std::uint64_t counter) {
    parallel_for(n, n >= kParallelElementwise, [=](idx i) { mask[i] = T(1); });
    normal_noise<T>(mask, mask, n, stddev, seed, counter);
    parallel_for(n, n >= kParallelElementwise, [=](idx i) { Y[i] = X[i] * mask[i]; });
}

template <typename T>
void alpha_dropout_forward(T* Y, T* mask, const T* X, idx n, double rate, std::uint64_t seed,
                           std::uint64_t counter) {
    const double alpha_p = -1.6732632423543772848170429916717 * 1.0507009873554804934193349852946;
    const double a = 1.0 / std::sqrt((1.0 - rate) * (1.0 + rate * alpha_p * alpha_p));
    const double b = -a * alpha_p * rate;
    const T ta = T(a), tb = T(b), dropped = T(a * alpha_p + b);
    dropout_forward<T>(Y, mask, X, n, rate, seed, counter);
    parallel_for(n, n >= kParallelElementwise, [=](idx i) {
        const bool keep = mask[i] != T(0);
        Y[i] = keep ? ta * X[i] + tb : dropped;
        mask[i] = keep ? ta : T(0);
    });
}

#define FASTNN_INSTANTIATE_NOISE(T)                                                                 \
    template void gaussian_dropout_forward<T>(T*, T*, const T*, idx, double, std::uint64_t,         \
                                              std::uint64_t);                                       \
    template void alpha_dropout_forward<T>(T*, T*, const T*, idx, double, std::uint64_t,            \
                                           std::uint64_t);
FASTNN_INSTANTIATE_NOISE(float)
FASTNN_INSTANTIATE_NOISE(double)
#undef FASTNN_INSTANTIATE_NOISE

template void normal_noise<float>(float*, const float*, idx, double, std::uint64_t, std::uint64_t);
template void normal_noise<double>(double*, const double*, idx, double, std::uint64_t, std::uint64_t);
template void dropout_forward<float>(float*, float*, const float*, idx, double, std::uint64_t,
                                     std::uint64_t);
template void dropout_forward<double>(double*, double*, const double*, idx, double, std::uint64_t,
                                      std::uint64_t);
template void dropout_backward<float>(float*, const float*, const float*, idx);
template void dropout_backward<double>(double*, const double*, const double*, idx);

}  // namespace fastnn
