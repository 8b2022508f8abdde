// The program executor (see program.h): replays recorded kernel calls over a batch of n rows.
#include "program.h"

#include <cmath>
#include <limits>

#include "activations.h"
#include "dense.h"
#include "dropout.h"
#include "losses.h"
#include "norm.h"
#include "optim.h"
#include "softmax.h"

namespace fastnn {

const std::vector<KernelSpec>& kernel_specs() {
    static const std::vector<KernelSpec> specs = {
#define FASTNN_KERNEL_SPEC(name, params, results) {#name, params, results},
        FASTNN_PROGRAM_KERNELS(FASTNN_KERNEL_SPEC)
#undef FASTNN_KERNEL_SPEC
    };
    return specs;
}

const std::vector<std::string>& activation_names() {
    // Act's order (activations.h), then the row-wise functions.
    static const std::vector<std::string> names = {"linear", "step", "sigmoid", "tanh",
                                                   "relu", "leaky_relu", "elu", "selu",
                                                   "softplus", "gelu", "gelu_tanh", "silu",
                                                   "mish", "relu6", "hard_sigmoid", "hard_silu",
                                                   "softsign", "exponential", "celu",
                                                   "softmax", "log_softmax"};
    return names;
}

namespace {
constexpr int kRowwise = kActCount;  // codes after the elementwise Act values: softmax, then log_softmax

// y[N, C] = f(x[N, C]) for activation `code`.
template <typename T>
void activation(int code, T* y, const T* x, idx N, idx C, T alpha) {
    if (code == kRowwise) softmax_forward<T>(y, x, N, C);
    else if (code == kRowwise + 1) log_softmax_forward<T>(y, x, N, C);
    else act_forward<T>(Act(code), y, x, N * C, alpha);
}

// dx[N, C] = dy * f'(x), from x and y = f(x).
template <typename T>
void activation_grad(int code, T* dx, const T* dy, const T* x, const T* y, idx N, idx C, T alpha) {
    if (code == kRowwise) softmax_backward<T>(dx, dy, y, N, C);
    else if (code == kRowwise + 1) log_softmax_backward<T>(dx, dy, y, N, C);
    else act_backward<T>(Act(code), dx, dy, x, y, N * C, alpha);
}

// Keras's clipnorm factor c / max(norm, c); NaN for a NaN norm (fastnn.reference.optim).
double clip_scale(double norm, double clip) {
    if (std::isnan(norm)) return std::numeric_limits<double>::quiet_NaN();
    return clip / std::max(norm, clip);
}
}  // namespace

template <typename T>
void* Program<T>::root_data(int id) {
    while (buffers[id].alias >= 0) id = buffers[id].alias;
    return buffers[id].external ? buffers[id].data : static_cast<void*>(real_storage_[id].data());
}

template <typename T>
void Program<T>::reserve(idx n) {
    if (n <= capacity_) return;
    real_storage_.resize(buffers.size());
    for (size_t i = 0; i < buffers.size(); ++i) {
        const Buffer& b = buffers[i];
        if (b.external || b.alias >= 0) continue;
        const idx size = b.rows.at(n) * b.cols;
        if (idx(real_storage_[i].size()) < size) real_storage_[i].resize(size);
    }
    capacity_ = n;
}

template <typename T>
void Program<T>::run(idx n, std::vector<double>& regs) {
    reserve(n);
    for (const Instr& in : code) {
        if (in.cond >= 0 && regs[in.cond] == 0) continue;
        exec(in, n, regs);
    }
}

template <typename T>
void Program<T>::exec(const Instr& in, idx n, std::vector<double>& regs) {
    const std::vector<Arg>& a = in.args;
    auto p = [&](int i) -> T* {
        return a[i].kind == Arg::buffer ? static_cast<T*>(root_data(a[i].id)) : nullptr;
    };
    auto r = [&](int i) -> double {
        return a[i].kind == Arg::literal ? a[i].value : a[i].kind == Arg::reg ? regs[a[i].id] : 0.0;
    };
    auto rows = [&](int i) { return buffers[a[i].id].rows.at(n); };
    auto cols = [&](int i) { return buffers[a[i].id].cols; };
    auto size = [&](int i) { return rows(i) * cols(i); };
    double result = 0;
    switch (in.kernel) {
        case Kernel::dense_forward:
            dense_forward<T>(p(3), p(0), p(1), p(2), rows(0), cols(0), cols(1));
            break;
        case Kernel::dense_act_forward: {
            const int code = int(r(3));
            const idx N = rows(0), M = cols(1);
            if (code < kRowwise) {  // the activation in the GEMM's epilogue
                dense_forward<T>(p(5), p(0), p(1), p(2), N, cols(0), M, p(6), Act(code), T(r(4)));
            } else {
                dense_forward<T>(p(5), p(0), p(1), p(2), N, cols(0), M);
                activation<T>(code, p(6), p(5), N, M, T(r(4)));
            }
            break;
        }
        case Kernel::dense_backward:
            dense_backward<T>(p(3), p(4), p(5), p(0), p(1), p(2), rows(1), cols(1), cols(2));
            break;
        case Kernel::act_forward:
            activation<T>(int(r(1)), p(3), p(0), rows(0), cols(0), T(r(2)));
            break;
        case Kernel::act_backward:
            activation_grad<T>(int(r(3)), p(5), p(0), p(1), p(2), rows(0), cols(0), T(r(4)));
            break;
        case Kernel::prelu_forward:
            prelu_forward<T>(p(2), p(0), p(1), size(0) / size(1), size(1));
            break;
        case Kernel::prelu_backward:
            prelu_backward<T>(p(3), p(4), p(0), p(1), p(2), size(1) / size(2), size(2));
            break;
        case Kernel::batchnorm_forward:
            batchnorm_forward<T>(p(7), p(8), p(9), p(3), p(4), p(0), p(1), p(2), rows(0), cols(0),
                                 r(5), r(6));
            break;
        case Kernel::batchnorm_inference:
            batchnorm_inference<T>(p(6), p(0), p(1), p(2), p(3), p(4), rows(0), cols(0), r(5));
            break;
        case Kernel::batchnorm_backward:
            batchnorm_backward<T>(p(5), p(6), p(7), p(0), p(1), p(2), p(3), p(4), rows(1), cols(1));
            break;
        case Kernel::batchnorm_frozen_backward:
            batchnorm_frozen_backward<T>(p(4), p(5), p(0), p(1), p(2), rows(0), cols(0), r(3));
            break;
        case Kernel::layernorm_forward:
            layernorm_forward<T>(p(4), p(5), p(6), p(0), p(1), p(2), rows(0), cols(0), r(3));
            break;
        case Kernel::layernorm_backward:
            layernorm_backward<T>(p(5), p(6), p(7), p(0), p(1), p(2), p(3), p(4), rows(1), cols(1));
            break;
        case Kernel::dropout_step: {
            auto* stream = static_cast<std::uint64_t*>(root_data(a[2].id));
            dropout_forward<T>(p(3), p(4), p(0), size(0), r(1), stream[0], stream[1]);
            stream[1] += 1;  // the next call draws a new mask
            break;
        }
        case Kernel::dropout_backward:
            dropout_backward<T>(p(2), p(0), p(1), size(0));
            break;
        case Kernel::normal_noise_step: {
            auto* stream = static_cast<std::uint64_t*>(root_data(a[2].id));
            normal_noise<T>(p(3), p(0), size(0), r(1), stream[0], stream[1]);
            stream[1] += 1;
            break;
        }
        case Kernel::sparse_softmax_cross_entropy:
            result = sparse_softmax_cross_entropy<T>(
                r(3) != 0 ? p(2) : nullptr, p(0),
                static_cast<const std::int64_t*>(root_data(a[1].id)), rows(0), cols(0));
            break;
        case Kernel::softmax_cross_entropy:
            result = softmax_cross_entropy<T>(r(3) != 0 ? p(2) : nullptr, p(0), p(1), rows(0),
                                              cols(0), T(r(4)));
            break;
        case Kernel::sigmoid_binary_cross_entropy:
            result = sigmoid_binary_cross_entropy<T>(r(3) != 0 ? p(2) : nullptr, p(0), p(1), rows(0),
                                                     cols(0), T(r(4)));
            break;
        case Kernel::hinge:
            result = hinge<T>(r(3) != 0 ? p(2) : nullptr, p(0), p(1), rows(0), cols(0));
            break;
        case Kernel::kl_divergence:
            result = kl_divergence<T>(r(3) != 0 ? p(2) : nullptr, p(0), p(1), rows(0), cols(0),
                                      T(r(4)));
            break;
        case Kernel::mean_squared_error:
            result = mean_squared_error<T>(r(3) != 0 ? p(2) : nullptr, p(0), p(1), rows(0), cols(0));
            break;
        case Kernel::mean_absolute_error:
            result = mean_absolute_error<T>(r(3) != 0 ? p(2) : nullptr, p(0), p(1), rows(0), cols(0));
            break;
        case Kernel::huber:
            result = huber<T>(r(3) != 0 ? p(2) : nullptr, p(0), p(1), rows(0), cols(0), T(r(4)));
            break;
        case Kernel::log_cosh:
            result = log_cosh<T>(r(3) != 0 ? p(2) : nullptr, p(0), p(1), rows(0), cols(0));
            break;
        case Kernel::probabilities_to_logits:
            probabilities_to_logits<T>(p(3), p(0), size(0), r(1), r(2) != 0);
            break;
        case Kernel::probabilities_grad:
            probabilities_grad<T>(p(4), p(0), p(1), size(0), r(2), r(3) != 0);
            break;
        case Kernel::l1_l2_penalty:
            result = l1_l2_penalty<T>(p(3), p(0), size(0), r(1), r(2));
            break;
        case Kernel::sum_squares:
            result = sum_squares<T>(p(0), size(0));
            break;
        case Kernel::clip_gradient:
            clip_gradient<T>(p(3), p(0), size(0), T(r(1)), T(r(2)));
            break;
        case Kernel::weight_decay_update:
            weight_decay_update<T>(p(0), size(0), T(r(1)), T(r(2)));
            break;
        case Kernel::sgd_update:
            sgd_update<T>(p(0), p(1), p(2), size(0), T(r(3)), T(r(4)), r(5) != 0);
            break;
        case Kernel::adagrad_update:
            adagrad_update<T>(p(0), p(1), p(2), size(0), T(r(3)), T(r(4)));
            break;
        case Kernel::rmsprop_update:
            rmsprop_update<T>(p(0), p(1), p(2), p(3), p(4), size(0), T(r(5)), r(6), T(r(7)), T(r(8)));
            break;
        case Kernel::adam_update:
            adam_update<T>(p(0), p(1), p(2), p(3), p(9), size(0), r(4), r(5), r(6), r(7),
                           std::int64_t(r(8)));
            break;
        case Kernel::relu_clip_forward:
            relu_clip_forward<T>(p(4), p(0), size(0), T(r(1)), T(r(2)), T(r(3)));
            break;
        case Kernel::relu_clip_backward:
            relu_clip_backward<T>(p(5), p(0), p(1), size(0), T(r(2)), T(r(3)), T(r(4)));
            break;
        case Kernel::affine_forward:
            affine_forward<T>(p(3), p(0), p(1), p(2), size(0) / size(1), size(1));
            break;
        case Kernel::affine_backward:
            affine_backward<T>(p(2), p(0), p(1), size(0) / size(1), size(1));
            break;
        case Kernel::normalize_forward:
            normalize_forward<T>(p(5), p(0), p(1), p(2), size(0) / size(2), size(2), T(r(3)),
                                 r(4) != 0);
            break;
        case Kernel::normalize_backward:
            normalize_backward<T>(p(4), p(0), p(1), size(0) / size(1), size(1), T(r(2)), r(3) != 0);
            break;
        case Kernel::gaussian_dropout_step: {
            auto* stream = static_cast<std::uint64_t*>(root_data(a[2].id));
            gaussian_dropout_forward<T>(p(3), p(4), p(0), size(0), r(1), stream[0], stream[1]);
            stream[1] += 1;
            break;
        }
        case Kernel::alpha_dropout_step: {
            auto* stream = static_cast<std::uint64_t*>(root_data(a[2].id));
            alpha_dropout_forward<T>(p(3), p(4), p(0), size(0), r(1), stream[0], stream[1]);
            stream[1] += 1;
            break;
        }
        case Kernel::mean_absolute_percentage_error:
            result = mean_absolute_percentage_error<T>(r(3) != 0 ? p(2) : nullptr, p(0), p(1), rows(0),
                                                       cols(0), T(r(4)));
            break;
        case Kernel::mean_squared_logarithmic_error:
            result = mean_squared_logarithmic_error<T>(r(3) != 0 ? p(2) : nullptr, p(0), p(1), rows(0),
                                                       cols(0), T(r(4)));
            break;
        case Kernel::poisson:
            result = poisson<T>(r(3) != 0 ? p(2) : nullptr, p(0), p(1), rows(0), cols(0), T(r(4)));
            break;
        case Kernel::squared_hinge:
            result = squared_hinge<T>(r(3) != 0 ? p(2) : nullptr, p(0), p(1), rows(0), cols(0));
            break;
        case Kernel::nadam_update:
            nadam_update<T>(p(0), p(1), p(2), p(3), p(4), size(0), r(5), r(6), r(7), r(8),
                            std::int64_t(r(9)));
            break;
        case Kernel::adamax_update:
            adamax_update<T>(p(0), p(1), p(2), p(3), size(0), r(4), r(5), r(6), r(7),
                             std::int64_t(r(8)));
            break;
        case Kernel::adadelta_update:
            adadelta_update<T>(p(0), p(1), p(2), p(3), size(0), r(4), r(5), r(6));
            break;
        case Kernel::lion_update:
            lion_update<T>(p(0), p(1), p(2), size(0), r(3), r(4), r(5));
            break;
        case Kernel::scalar_add: result = r(0) + r(1); break;
        case Kernel::scalar_sqrt: result = std::sqrt(r(0)); break;
        case Kernel::norm_scale: result = clip_scale(r(0), r(1)); break;
        case Kernel::global_norm_scale:
            // Keras: an infinite or NaN global norm makes every gradient NaN.
            result = std::isfinite(r(0)) ? clip_scale(r(0), r(1))
                                         : std::numeric_limits<double>::quiet_NaN();
            break;
    }
    if (in.result >= 0) regs[in.result] = result;
}

template class Program<float>;
template class Program<double>;

}  // namespace fastnn
