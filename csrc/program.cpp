// The program executor (see program.h): replays recorded kernel calls over a batch of n rows.
#include "program.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "activations.h"
#include "dense.h"
#include "dropout.h"
#include "losses.h"
#include "merge.h"
#include "norm.h"
#include "optim.h"
#include "recurrent.h"
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

// The shape of a recurrent call from its buffers: x [N, T*F], kernel [F, k*U], recurrent kernel
// [U, k*U]; every other buffer checked to hold what the kernel writes or reads (a recorded layer
// always passes the right sizes; an eager call with a mistake gets an error, not a stray write).
struct RecurrentCheck {
    const char* kernel;
    void fail(const std::string& what) const {
        throw std::invalid_argument(std::string(kernel) + ": " + what);
    }
};

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
    try {
        real_storage_.resize(buffers.size());
        for (size_t i = 0; i < buffers.size(); ++i) {
            const Buffer& b = buffers[i];
            if (b.external || b.alias >= 0) continue;
            const idx size = b.rows.at(n) * b.cols;
            if (idx(real_storage_[i].size()) < size) real_storage_[i].resize(size);
        }
    } catch (...) {  // out of memory part way: keep none of the half-grown buffers
        release();
        throw;
    }
    capacity_ = n;
}

template <typename T>
void Program<T>::release() {
    std::vector<std::vector<T>>().swap(real_storage_);
    capacity_ = -1;
}

template <typename T>
std::size_t Program<T>::storage_bytes() const {
    std::size_t total = 0;
    for (const auto& s : real_storage_) total += s.capacity() * sizeof(T);
    return total;
}

template <typename T>
std::size_t Program<T>::bytes_for(idx n) const {
    std::size_t total = 0;
    for (const Buffer& b : buffers)
        if (!b.external && b.alias < 0) total += std::size_t(b.rows.at(n) * b.cols) * sizeof(T);
    return total;
}

namespace {
std::atomic<std::size_t> g_cache_limit{std::size_t(256) << 20};
}  // namespace

std::size_t program_cache_limit() { return g_cache_limit.load(); }
void set_program_cache_limit(std::size_t bytes) { g_cache_limit = bytes; }

namespace {
// Restores this thread's team size when a run ends, by return or by exception.
struct TeamSizeGuard {
    int team;
    ~TeamSizeGuard() { set_team_size(team); }
};
}  // namespace

// One run on the thread count the tuner picks for n rows (threads.h), unless set_num_threads
// pinned the count or there is one thread only. The run is timed as a whole: the one-call step
// of training, or the forward pass of predict.
template <typename T>
void Program<T>::run(idx n, std::vector<double>& regs) {
    reserve(n);
    const int team = max_threads();
    if (team <= 1 || threads_pinned().load(std::memory_order_relaxed)) {
        replay(n, regs);
        return;
    }
    const int threads = tuner_.begin(n, team);
    TeamSizeGuard guard{team};
    if (threads != team) set_team_size(threads);
    const auto start = std::chrono::steady_clock::now();
    replay(n, regs);
    tuner_.end(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

template <typename T>
void Program<T>::replay(idx n, std::vector<double>& regs) {
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
        case Kernel::simple_rnn_forward:
        case Kernel::simple_rnn_backward:
        case Kernel::lstm_forward:
        case Kernel::lstm_backward:
        case Kernel::gru_forward:
        case Kernel::gru_backward:
            exec_recurrent(in, n, regs);
            break;
        case Kernel::sequence_dropout_step: {
            // x [N, T*F], mask [N, F]: the mask drawn as dropout_step draws an [N, F] array (on
            // ones, into out's first N*F values), then applied at every step
            const idx N = rows(0), F = cols(4), TF = cols(0);
            if (F <= 0 || TF % F != 0 || rows(4) != N || size(3) < size(0))
                throw std::invalid_argument("sequence_dropout_step: out [N, T, F] and mask [N, F] "
                                            "must match x");
            T* out = p(3);
            T* mask = p(4);
            const T* x = p(0);
            auto* stream = static_cast<std::uint64_t*>(root_data(a[2].id));
            std::fill(out, out + N * F, T(1));
            dropout_forward<T>(out, mask, out, N * F, r(1), stream[0], stream[1]);
            stream[1] += 1;
            for (idx i = 0; i < N; ++i)
                for (idx j = 0; j < TF; ++j) out[i * TF + j] = x[i * TF + j] * mask[i * F + j % F];
            break;
        }
        case Kernel::sequence_dropout_backward: {
            const idx N = rows(0), F = cols(1), TF = cols(0);
            if (F <= 0 || TF % F != 0 || rows(1) != N || size(2) < size(0))
                throw std::invalid_argument("sequence_dropout_backward: shapes do not match");
            T* out = p(2);
            const T* dy = p(0);
            const T* mask = p(1);
            for (idx i = 0; i < N; ++i)
                for (idx j = 0; j < TF; ++j) out[i * TF + j] = dy[i * TF + j] * mask[i * F + j % F];
            break;
        }
        case Kernel::embedding_forward: {
            const idx M = size(0), V = rows(1), D = cols(1);
            const T* tokens = p(0);
            for (idx m = 0; m < M; ++m)
                if (!(tokens[m] >= 0 && tokens[m] < T(V)) || tokens[m] != std::floor(tokens[m]))
                    throw std::invalid_argument("embedding_forward: tokens must be whole numbers in [0, " +
                                                std::to_string(V) + ")");
            if (size(2) < M * D) throw std::invalid_argument("embedding_forward: out is too small");
            embedding_forward<T>(p(2), tokens, p(1), M, D);
            break;
        }
        case Kernel::embedding_backward: {
            const idx M = size(1), V = rows(2), D = cols(2);
            const T* tokens = p(1);
            for (idx m = 0; m < M; ++m)
                if (!(tokens[m] >= 0 && tokens[m] < T(V)))
                    throw std::invalid_argument("embedding_backward: tokens outside [0, " +
                                                std::to_string(V) + ")");
            if (size(0) < M * D) throw std::invalid_argument("embedding_backward: dy is too small");
            embedding_backward<T>(p(2), p(0), tokens, M, V, D);
            break;
        }
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
        case Kernel::cosine_similarity:
            result = cosine_similarity<T>(r(3) != 0 ? p(2) : nullptr, p(0), p(1), rows(0), cols(0), T(r(4)));
            break;
        case Kernel::categorical_hinge:
            result = categorical_hinge<T>(r(3) != 0 ? p(2) : nullptr, p(0), p(1), rows(0), cols(0));
            break;
        case Kernel::binary_focal_cross_entropy:
            result = binary_focal_cross_entropy<T>(r(3) != 0 ? p(2) : nullptr, p(0), p(1), rows(0),
                                                   cols(0), r(4) != 0, T(r(5)), T(r(6)), r(7) != 0,
                                                   T(r(8)), T(r(9)));
            break;
        case Kernel::categorical_focal_cross_entropy:
            result = categorical_focal_cross_entropy<T>(r(3) != 0 ? p(2) : nullptr, p(0), p(1), rows(0),
                                                        cols(0), r(4) != 0, T(r(5)), T(r(6)), T(r(7)),
                                                        T(r(8)));
            break;
        case Kernel::scale_by_rows:
            result = scale_by_rows<T>(r(0), p(2), rows(1), cols(1));
            break;
        case Kernel::sparse_softmax_cross_entropy_ignore:
            result = sparse_softmax_cross_entropy_ignore<T>(
                r(3) != 0 ? p(2) : nullptr, p(0), static_cast<const std::int64_t*>(root_data(a[1].id)),
                rows(0), cols(0), std::int64_t(r(4)), r(5) != 0);
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
        // Merge kernels of the functional API (csrc/merge.h): elementwise merges of two inputs
        // of one shape, the concatenation of two along the columns and its gradient's parts.
        case Kernel::merge_forward:
            if (size(1) != size(0) || size(4) != size(0))
                throw std::invalid_argument("merge_forward: a, b and out must have one shape");
            if (!(r(2) == 0 || r(2) == 1 || r(2) == 2 || r(2) == 3 || r(2) == 4))
                throw std::invalid_argument("merge_forward: op must be 0..4 (add, subtract, "
                                            "multiply, maximum, minimum)");
            merge_forward<T>(p(4), p(0), p(1), size(0), int(r(2)), T(r(3)));
            break;
        case Kernel::merge_backward:
            if (size(1) != size(0) || size(2) != size(0) || size(5) != size(0) || size(6) != size(0))
                throw std::invalid_argument("merge_backward: dy, a, b, da and db must have one shape");
            if (!(r(3) == 0 || r(3) == 1 || r(3) == 2 || r(3) == 3 || r(3) == 4))
                throw std::invalid_argument("merge_backward: op must be 0..4 (add, subtract, "
                                            "multiply, maximum, minimum)");
            merge_backward<T>(p(5), p(6), p(0), p(1), p(2), size(0), int(r(3)), T(r(4)));
            break;
        case Kernel::concat_forward:
            if (rows(1) != rows(0) || rows(2) != rows(0) || cols(2) != cols(0) + cols(1))
                throw std::invalid_argument("concat_forward: shapes do not match");
            concat_forward<T>(p(2), p(0), p(1), rows(0), cols(0), cols(1));
            break;
        case Kernel::take_columns:
            if (rows(2) != rows(0) || idx(r(1)) < 0 || idx(r(1)) + cols(2) > cols(0))
                throw std::invalid_argument("take_columns: shapes do not match");
            take_columns<T>(p(2), p(0), rows(0), cols(0), idx(r(1)), cols(2));
            break;
        case Kernel::scalar_mul: result = r(0) * r(1); break;  // a loss times its weight
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

template <typename T>
void Program<T>::exec_recurrent(const Instr& in, idx n, std::vector<double>& regs) {
    const std::vector<Arg>& a = in.args;
    const KernelSpec& spec = kernel_specs()[size_t(in.kernel)];
    RecurrentCheck check{spec.name};
    auto p = [&](int i) -> T* {
        return a[i].kind == Arg::buffer ? static_cast<T*>(root_data(a[i].id)) : nullptr;
    };
    auto r = [&](int i) -> double {
        return a[i].kind == Arg::literal ? a[i].value : a[i].kind == Arg::reg ? regs[a[i].id] : 0.0;
    };
    auto rows = [&](int i) { return buffers[a[i].id].rows.at(n); };
    auto cols = [&](int i) { return buffers[a[i].id].cols; };
    auto size = [&](int i) { return a[i].kind == Arg::buffer ? rows(i) * cols(i) : idx(0); };
    auto act = [&](int i) {
        const int code = int(r(i));
        if (code < 0 || code >= kRowwise) check.fail("recurrent cells take elementwise activations");
        return Act(code);
    };
    const bool backward = in.kernel == Kernel::simple_rnn_backward ||
                          in.kernel == Kernel::lstm_backward || in.kernel == Kernel::gru_backward;
    const int x = backward ? 1 : 0;  // x, kernel, recurrent kernel follow dy in a backward
    const idx k = (in.kernel == Kernel::lstm_forward || in.kernel == Kernel::lstm_backward) ? 4
                  : (in.kernel == Kernel::gru_forward || in.kernel == Kernel::gru_backward) ? 3 : 1;
    RnnShape sh;
    sh.N = rows(x);
    sh.F = rows(x + 1);
    sh.U = rows(x + 2);
    if (sh.F <= 0 || sh.U <= 0 || cols(x) % sh.F != 0) check.fail("x does not match the kernel");
    sh.T = cols(x) / sh.F;
    if (cols(x + 1) != k * sh.U || cols(x + 2) != k * sh.U)
        check.fail("kernel and recurrent kernel must have k*units columns");
    const idx seq = sh.N * sh.T * sh.U, gates = seq * k, state = sh.N * sh.U;
    auto need = [&](int i, idx count, const char* what) {
        if (a[i].kind == Arg::buffer && size(i) < count) check.fail(std::string(what) + " is too small");
    };
    auto need_present = [&](int i, idx count, const char* what) {
        if (a[i].kind != Arg::buffer) check.fail(std::string(what) + " is required");
        need(i, count, what);
    };
    // hlast[N, U] = the last processing step's state, hseq[:, T-1] (when hlast is given)
    auto copy_last = [&](int last, int hseq) {
        if (a[last].kind != Arg::buffer) return;
        need(last, state, "hlast");
        T* dst = p(last);
        const T* src = p(hseq);
        for (idx i = 0; i < sh.N; ++i)
            std::copy(src + (i * sh.T + sh.T - 1) * sh.U, src + (i * sh.T + sh.T) * sh.U, dst + i * sh.U);
    };
    CellActs<T> acts;
    // the recurrent dropout mask [N, k*U] and the per-gate input dropout mask [N, k*F], the last
    // two parameters of every recurrent kernel
    const int rmask = int(a.size()) - 2, xmask = int(a.size()) - 1;
    need(rmask, state * k, "rmask");
    need(xmask, sh.N * k * sh.F, "xmask");
    acts.rmask = p(rmask);
    acts.xmask = p(xmask);
    switch (in.kernel) {
        case Kernel::simple_rnn_forward:
            need(3, sh.U, "bias"); need(4, state, "h0");
            need_present(8, seq, "z"); need_present(9, seq, "hseq");
            acts.act = act(5); acts.alpha = T(r(6)); sh.reverse = r(7) != 0;
            simple_rnn_forward<T>(p(9), p(8), p(0), p(1), p(2), p(3), p(4), sh, acts);
            copy_last(10, 9);
            break;
        case Kernel::simple_rnn_backward: {
            const bool sequences = r(10) != 0, need_dx = r(16) != 0;
            need(0, sequences ? seq : state, "dy"); need(4, state, "h0");
            need_present(5, seq, "z"); need_present(6, seq, "hseq"); need(19, state, "dh_last");
            if (need_dx) need_present(11, sh.N * sh.T * sh.F, "dx");
            need_present(12, sh.F * sh.U, "dkernel"); need_present(13, sh.U * sh.U, "drecurrent");
            need(14, sh.U, "dbias"); need_present(15, state, "dh0");
            need_present(17, seq, "dz"); need_present(18, seq, "hprev");
            acts.act = act(7); acts.alpha = T(r(8)); sh.reverse = r(9) != 0;
            simple_rnn_backward<T>(need_dx ? p(11) : nullptr, p(12), p(13), p(14), p(15), p(17),
                                   p(18), p(0), p(1), p(2), p(3), p(4), p(5), p(6), sh, acts,
                                   sequences, p(19));
            break;
        }
        case Kernel::lstm_forward:
            need(3, 4 * sh.U, "bias"); need(4, state, "h0"); need(5, state, "c0");
            need_present(11, gates, "z"); need_present(12, gates, "gates");
            need_present(13, seq, "cseq"); need_present(14, seq, "tc"); need_present(15, seq, "hseq");
            acts.act = act(6); acts.alpha = T(r(7)); acts.ract = act(8); acts.ralpha = T(r(9));
            sh.reverse = r(10) != 0;
            lstm_forward<T>(p(15), p(11), p(12), p(13), p(14), p(0), p(1), p(2), p(3), p(4), p(5),
                            sh, acts);
            copy_last(16, 15);
            break;
        case Kernel::lstm_backward: {
            const bool sequences = r(16) != 0, need_dx = r(23) != 0;
            need(0, sequences ? seq : state, "dy"); need(4, state, "h0"); need(5, state, "c0");
            need(26, state, "dh_last"); need(27, state, "dc_last");
            need_present(6, gates, "z"); need_present(7, gates, "gates");
            need_present(8, seq, "cseq"); need_present(9, seq, "tc"); need_present(10, seq, "hseq");
            if (need_dx) need_present(17, sh.N * sh.T * sh.F, "dx");
            need_present(18, sh.F * 4 * sh.U, "dkernel");
            need_present(19, sh.U * 4 * sh.U, "drecurrent"); need(20, 4 * sh.U, "dbias");
            need_present(21, state, "dh0"); need_present(22, state, "dc0");
            need_present(24, gates, "dz"); need_present(25, seq, "hprev");
            acts.act = act(11); acts.alpha = T(r(12)); acts.ract = act(13); acts.ralpha = T(r(14));
            sh.reverse = r(15) != 0;
            lstm_backward<T>(need_dx ? p(17) : nullptr, p(18), p(19), p(20), p(21), p(22), p(24),
                             p(25), p(0), p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9),
                             p(10), sh, acts, sequences, p(26), p(27));
            break;
        }
        case Kernel::gru_forward: {
            const bool reset_after = r(9) != 0;
            need(3, (reset_after ? 6 : 3) * sh.U, "bias"); need(4, state, "h0");
            need_present(11, gates, "zx"); need_present(12, gates, "zr");
            need_present(13, gates, "gates"); need_present(14, seq, "hseq");
            acts.act = act(5); acts.alpha = T(r(6)); acts.ract = act(7); acts.ralpha = T(r(8));
            sh.reverse = r(10) != 0;
            gru_forward<T>(p(14), p(11), p(12), p(13), p(0), p(1), p(2), p(3), p(4), sh, acts,
                           reset_after);
            copy_last(15, 14);
            break;
        }
        case Kernel::gru_backward: {
            const bool reset_after = r(13) != 0, sequences = r(15) != 0, need_dx = r(21) != 0;
            need(0, sequences ? seq : state, "dy"); need(4, state, "h0");
            need(26, state, "dh_last"); need_present(5, gates, "zx"); need_present(6, gates, "zr");
            need_present(7, gates, "gates"); need_present(8, seq, "hseq");
            if (need_dx) need_present(16, sh.N * sh.T * sh.F, "dx");
            need_present(17, sh.F * 3 * sh.U, "dkernel");
            need_present(18, sh.U * 3 * sh.U, "drecurrent");
            need(19, (reset_after ? 6 : 3) * sh.U, "dbias"); need_present(20, state, "dh0");
            need_present(22, gates, "dax"); need_present(23, gates, "dar");
            need_present(24, seq, "hprev"); need_present(25, state, "work");
            acts.act = act(9); acts.alpha = T(r(10)); acts.ract = act(11); acts.ralpha = T(r(12));
            sh.reverse = r(14) != 0;
            gru_backward<T>(need_dx ? p(16) : nullptr, p(17), p(18), p(19), p(20), p(22), p(23),
                            p(24), p(25), p(0), p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), sh,
                            acts, reset_after, sequences, p(26));
            break;
        }
        default:
            check.fail("not a recurrent kernel");
    }
}

template class Program<float>;
template class Program<double>;

}  // namespace fastnn
