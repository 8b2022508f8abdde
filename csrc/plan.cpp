// The compiled training plan (see plan.h): forward, loss, backward, penalties and the optimizer
// update of a whole model in one native call, over the plan's own buffers.
#include "plan.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "dense.h"
#include "dropout.h"
#include "losses.h"
#include "norm.h"
#include "optim.h"
#include "softmax.h"

namespace fastnn {
namespace {

template <typename T>
void grow(std::vector<T>& buffer, idx size) {
    if (idx(buffer.size()) < size) buffer.resize(size);
}

// y[n, F] = f(x[n, F])
template <typename T>
void act_apply(const ActSpec<T>& a, T* y, const T* x, idx n, idx F) {
    switch (a.kind) {
        case ActKind::elementwise: act_forward<T>(a.act, y, x, n * F, a.alpha); break;
        case ActKind::softmax: softmax_forward<T>(y, x, n, F); break;
        case ActKind::log_softmax: log_softmax_forward<T>(y, x, n, F); break;
    }
}

// dx[n, F] = dy * f'(x), from x[n, F] and y = f(x)
template <typename T>
void act_grad(const ActSpec<T>& a, T* dx, const T* dy, const T* x, const T* y, idx n, idx F) {
    switch (a.kind) {
        case ActKind::elementwise: act_backward<T>(a.act, dx, dy, x, y, n * F, a.alpha); break;
        case ActKind::softmax: softmax_backward<T>(dx, dy, y, n, F); break;
        case ActKind::log_softmax: log_softmax_backward<T>(dx, dy, y, n, F); break;
    }
}

// One layer's forward pass over x[n, in_size]; returns its output [n, out_size] (a plan buffer, or
// x itself for layers that pass it through). `logits`: stop before the layer's activation.
template <typename T>
const T* layer_forward(PlanLayer<T>& L, const T* x, idx n, bool training, bool logits) {
    L.x = x;
    L.logits = logits;
    switch (L.kind) {
        case LayerKind::dense: {
            T* z = L.z.data();
            if (logits || L.act.identity()) {
                dense_forward<T>(z, x, L.W, L.b, n, L.in_size, L.out_size);
                return L.out = z;
            }
            if (L.act.kind == ActKind::elementwise) {  // fused into the GEMM's epilogue
                dense_forward<T>(z, x, L.W, L.b, n, L.in_size, L.out_size, L.y.data(), L.act.act,
                                 L.act.alpha);
                return L.out = L.y.data();
            }
            dense_forward<T>(z, x, L.W, L.b, n, L.in_size, L.out_size);
            act_apply(L.act, L.y.data(), z, n, L.out_size);
            return L.out = L.y.data();
        }
        case LayerKind::activation:
            if (logits || L.act.identity()) return L.out = x;
            act_apply(L.act, L.y.data(), x, n, L.out_size);
            return L.out = L.y.data();
        case LayerKind::batchnorm: {
            L.rows = n * (L.out_size / L.channels);
            L.batch_stats = training && L.trainable;
            if (L.batch_stats)
                batchnorm_forward<T>(L.y.data(), L.stat_a.data(), L.stat_b.data(), L.moving_mean,
                                     L.moving_var, x, L.gamma, L.beta, L.rows, L.channels, L.momentum,
                                     L.epsilon);
            else
                batchnorm_inference<T>(L.y.data(), x, L.gamma, L.beta, L.moving_mean, L.moving_var,
                                       L.rows, L.channels, L.epsilon);
            return L.out = L.y.data();
        }
        case LayerKind::layernorm:
            L.rows = n * (L.out_size / L.channels);
            layernorm_forward<T>(L.y.data(), L.stat_a.data(), L.stat_b.data(), x, L.gamma, L.beta,
                                 L.rows, L.channels, L.epsilon);
            return L.out = L.y.data();
        case LayerKind::dropout:
            L.dropped = training && L.rate > 0;
            if (!L.dropped) return L.out = x;
            dropout_forward<T>(L.y.data(), L.mask.data(), x, n * L.out_size, L.rate, L.stream[0],
                               L.stream[1]);
            L.stream[1] += 1;  // the layer's step counter: a new mask next time
            return L.out = L.y.data();
        case LayerKind::identity:
            return L.out = x;
    }
    return x;
}

// Backward of the last forward call: writes the weight gradients, returns dL/dx (a plan buffer or
// dy itself), or nullptr when !need_dx.
template <typename T>
const T* layer_backward(PlanLayer<T>& L, const T* dy, idx n, bool need_dx) {
    T* dx = need_dx ? L.dx.data() : nullptr;
    switch (L.kind) {
        case LayerKind::dense: {
            const T* dz = dy;
            if (!(L.logits || L.act.identity())) {
                act_grad(L.act, L.d.data(), dy, L.z.data(), L.out, n, L.out_size);
                dz = L.d.data();
            }
            dense_backward<T>(dx, L.dW, L.b ? L.db : nullptr, dz, L.x, L.W, n, L.in_size, L.out_size);
            return dx;
        }
        case LayerKind::activation:
            if (!need_dx) return nullptr;
            if (L.logits || L.act.identity()) return dy;
            act_grad(L.act, dx, dy, L.x, L.out, n, L.out_size);
            return dx;
        case LayerKind::batchnorm:
            if (L.batch_stats) {
                batchnorm_backward<T>(dx, L.gamma ? L.dgamma : nullptr, L.beta ? L.dbeta : nullptr, dy,
                                      L.x, L.gamma, L.stat_a.data(), L.stat_b.data(), L.rows,
                                      L.channels);
                return dx;
            }
            // A frozen layer in training: the fixed affine map of inference mode, as
            // BatchNormalization._inference_backward computes it (rstd from the moving variance
            // in double, then gamma * rstd in T).
            // The per-feature scale goes to stat_b, which inference mode leaves unused.
            if (!need_dx) return nullptr;
            for (idx c = 0; c < L.channels; ++c) {
                T s = T(1.0 / std::sqrt(double(L.moving_var[c]) + L.epsilon));
                L.stat_b[c] = L.gamma ? L.gamma[c] * s : s;
            }
            for (idx r = 0; r < L.rows; ++r)
                for (idx c = 0; c < L.channels; ++c) dx[r * L.channels + c] = dy[r * L.channels + c] * L.stat_b[c];
            return dx;
        case LayerKind::layernorm:
            layernorm_backward<T>(dx, L.gamma ? L.dgamma : nullptr, L.beta ? L.dbeta : nullptr, dy, L.x,
                                  L.gamma, L.stat_a.data(), L.stat_b.data(), L.rows, L.channels);
            return dx;
        case LayerKind::dropout:
            if (!need_dx) return nullptr;
            if (!L.dropped) return dy;
            dropout_backward<T>(dx, dy, L.mask.data(), n * L.out_size);
            return dx;
        case LayerKind::identity:
            return need_dx ? dy : nullptr;
    }
    return nullptr;
}

// The loss kernel `kind` on P[N, C] (logits or predictions) and its targets; dP may be null.
template <typename T>
double loss_kernel(LossKind kind, T* dP, const T* P, const void* targets, idx N, idx C, T param) {
    const T* Y = static_cast<const T*>(targets);
    switch (kind) {
        case LossKind::sparse_ce:
            return sparse_softmax_cross_entropy<T>(dP, P, static_cast<const std::int64_t*>(targets), N, C);
        case LossKind::ce: return softmax_cross_entropy<T>(dP, P, Y, N, C, param);
        case LossKind::bce: return sigmoid_binary_cross_entropy<T>(dP, P, Y, N, C, param);
        case LossKind::hinge: return hinge<T>(dP, P, Y, N, C);
        case LossKind::kld: return kl_divergence<T>(dP, P, Y, N, C, param);
        case LossKind::mse: return mean_squared_error<T>(dP, P, Y, N, C);
        case LossKind::mae: return mean_absolute_error<T>(dP, P, Y, N, C);
        case LossKind::huber: return huber<T>(dP, P, Y, N, C, param);
        case LossKind::log_cosh: return log_cosh<T>(dP, P, Y, N, C);
    }
    return 0;
}

// Keras's clipnorm factor c / max(norm, c); NaN for a NaN norm (see fastnn.optimizers).
inline double norm_scale(double norm, double clip) {
    if (std::isnan(norm)) return std::numeric_limits<double>::quiet_NaN();
    return clip / std::max(norm, clip);
}

}  // namespace

template <typename T>
void Plan<T>::reserve(idx n) {
    if (n <= capacity_) return;
    for (int i = 0; i < int(layers.size()); ++i) {
        auto& L = layers[i];
        const idx in = n * L.in_size, out = n * L.out_size;
        // Backward buffers only where backward runs: none before first_backward (nor in a plan
        // that only predicts), and no input gradient for the first layer that runs it.
        const idx dx = i > first_backward ? in : 0, d = i >= first_backward ? out : 0;
        switch (L.kind) {
            case LayerKind::dense:
                grow(L.z, out);
                if (!L.act.identity()) { grow(L.y, out); grow(L.d, d); }
                grow(L.dx, dx);
                break;
            case LayerKind::activation: grow(L.y, out); grow(L.dx, dx); break;
            case LayerKind::batchnorm:
                grow(L.y, out); grow(L.dx, dx); grow(L.stat_a, L.channels); grow(L.stat_b, L.channels);
                break;
            case LayerKind::layernorm: {
                const idx rows = n * (L.out_size / L.channels);
                grow(L.y, out); grow(L.dx, dx); grow(L.stat_a, rows); grow(L.stat_b, rows);
                break;
            }
            case LayerKind::dropout: grow(L.y, out); grow(L.mask, out); grow(L.dx, dx); break;
            case LayerKind::identity: break;
        }
    }
    const idx out = n * (layers.empty() ? 0 : layers.back().out_size);
    grow(loss.grad, out);
    if (loss.input == LossInput::probabilities) { grow(loss.logits, out); grow(loss.dlogits, out); }
    if (loss.fused) grow(loss.outputs, out);
    capacity_ = n;
}

template <typename T>
const T* Plan<T>::forward(const T* x, idx n, bool training, bool logits_last) {
    const idx last = idx(layers.size()) - 1;
    for (idx i = 0; i <= last; ++i) x = layer_forward(layers[i], x, n, training, logits_last && i == last);
    return x;
}

template <typename T>
void Plan<T>::predict(const T* x, T* out, idx n) {
    reserve(n);
    const T* h = forward(x, n, false, false);
    std::memcpy(out, h, sizeof(T) * n * layers.back().out_size);
}

template <typename T>
double Plan<T>::loss_and_grad(const T* h, const void* targets, idx n) {
    const idx C = layers.back().out_size;
    T* G = loss.grad.data();
    if (loss.input != LossInput::probabilities) return loss_kernel(loss.kind, G, h, targets, n, C, loss.param);
    // Cross-entropy on probabilities, as fastnn.losses computes it: logits = log(p) (binary:
    // log(p) - log(1 - p)) of p clipped to [eps, 1 - eps], the stable kernel on those, then the
    // chain rule back to p; clipped entries get no gradient.
    const T lo = T(loss.clip_eps), hi = T(1.0 - loss.clip_eps);
    const bool binary = loss.kind == LossKind::bce;
    T* Z = loss.logits.data();
    T* dZ = loss.dlogits.data();
    for (idx i = 0; i < n * C; ++i) {
        const T p = std::min(std::max(h[i], lo), hi);
        Z[i] = binary ? T(std::log(p) - std::log1p(-p)) : T(std::log(p));
    }
    const double value = loss_kernel(loss.kind, dZ, Z, targets, n, C, loss.param);
    for (idx i = 0; i < n * C; ++i) {
        const T p = std::min(std::max(h[i], lo), hi);
        const T g = binary ? dZ[i] / (p * (T(1) - p)) : dZ[i] / p;
        G[i] = g * T(h[i] > lo && h[i] < hi);
    }
    return value;
}

template <typename T>
void Plan<T>::backward(const T* grad) {
    const int last = int(layers.size()) - 1;
    for (int i = last; i >= first_backward; --i) {
        grad = layer_backward(layers[i], grad, batch_, i > first_backward);
    }
}

template <typename T>
void Plan<T>::update(double lr, std::int64_t step) {
    auto& o = optimizer;
    // Gradient clipping (Keras): the clipped copies go to the plan's buffers.
    std::vector<const T*>& grads = grads_;
    grads.resize(o.params.size());
    for (size_t i = 0; i < o.params.size(); ++i) grads[i] = o.params[i].g;
    const double inf = std::numeric_limits<double>::infinity();
    if (o.clip == ClipKind::value) {
        for (size_t i = 0; i < o.params.size(); ++i) {
            auto& q = o.params[i];
            clip_gradient<T>(q.clipped.data(), q.g, q.n, T(1.0), T(o.clip_value));
            grads[i] = q.clipped.data();
        }
    } else if (o.clip == ClipKind::norm) {
        for (size_t i = 0; i < o.params.size(); ++i) {
            auto& q = o.params[i];
            const double scale = norm_scale(std::sqrt(sum_squares<T>(q.g, q.n)), o.clip_value);
            clip_gradient<T>(q.clipped.data(), q.g, q.n, T(scale), T(inf));
            grads[i] = q.clipped.data();
        }
    } else if (o.clip == ClipKind::global_norm) {
        double total = 0;  // in weight order, as fastnn.optimizers sums them
        for (auto& q : o.params) total += sum_squares<T>(q.g, q.n);
        total = std::sqrt(total);
        const double scale = std::isfinite(total) ? norm_scale(total, o.clip_value)
                                                  : std::numeric_limits<double>::quiet_NaN();
        for (size_t i = 0; i < o.params.size(); ++i) {
            auto& q = o.params[i];
            clip_gradient<T>(q.clipped.data(), q.g, q.n, T(scale), T(inf));
            grads[i] = q.clipped.data();
        }
    }
    if (o.weight_decay != 0)
        for (auto& q : o.params) weight_decay_update<T>(q.p, q.n, T(lr), T(o.weight_decay));
    for (size_t i = 0; i < o.params.size(); ++i) {
        auto& q = o.params[i];
        const T* g = grads[i];
        switch (o.kind) {
            case OptKind::sgd: sgd_update<T>(q.p, g, q.s0, q.n, T(lr), T(o.momentum), o.nesterov); break;
            case OptKind::adagrad: adagrad_update<T>(q.p, g, q.s0, q.n, T(lr), T(o.epsilon)); break;
            case OptKind::rmsprop:
                rmsprop_update<T>(q.p, g, q.s0, q.s1, q.s2, q.n, T(lr), o.rho, T(o.momentum),
                                  T(o.epsilon));
                break;
            case OptKind::adam:
                adam_update<T>(q.p, g, q.s0, q.s1, q.s2, q.n, lr, o.beta_1, o.beta_2, o.epsilon, step);
                break;
        }
    }
}

template <typename T>
double Plan<T>::train_step(const T* x, const void* targets, idx n, double lr, std::int64_t step,
                           bool want_outputs) {
    reserve(n);
    batch_ = n;
    const T* h = forward(x, n, true, loss.fused);
    double value = loss_and_grad(h, targets, n);
    outputs_ = h;
    if (loss.fused && want_outputs) {
        act_apply(layers.back().act, loss.outputs.data(), h, n, layers.back().out_size);
        outputs_ = loss.outputs.data();
    }
    backward(loss.grad.data());
    // Weight penalties after backward (their gradients add to the weights'), summed per layer
    // and then over layers, as Sequential._regularization_loss does.
    double penalty = 0, layer_penalty = 0;
    int layer = penalties.empty() ? 0 : penalties.front().layer;
    for (auto& r : penalties) {
        if (r.layer != layer) { penalty += layer_penalty; layer_penalty = 0; layer = r.layer; }
        layer_penalty += l1_l2_penalty<T>(r.g, r.w, r.n, r.l1, r.l2);
    }
    penalty += layer_penalty;
    value += penalty;
    update(lr, step);
    return value;
}

template class Plan<float>;
template class Plan<double>;

}  // namespace fastnn
