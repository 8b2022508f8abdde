// The compiled training plan: a whole Sequential model -- layers, loss, optimizer -- handed to C++
// once, so that a training step (forward, loss, backward, weight penalties, clipping, update) or an
// inference pass is one native call over buffers the plan owns.
//
// The plan calls the same kernels in the same order as the Python layers do on the native backend
// (fastnn/layers.py, Sequential._train_step, Optimizer.apply), so both paths give bitwise-identical
// results; the Python layers stay the readable description and the NumPy backend the reference.
// Weights, gradients, optimizer state, batch-norm moving statistics and each dropout stream are
// the Python objects' own arrays (the plan holds pointers into them), so get_weights, saving and
// callbacks see the plan's updates directly.
//
// Buffers hold `capacity` rows and grow only when a larger batch arrives; in steady state a step
// allocates nothing. Inputs are assumed valid (checked once, at the Python boundary).
#pragma once

#include <cstdint>
#include <vector>

#include "activations.h"
#include "common.h"

namespace fastnn {

// An activation as a layer applies it: elementwise (Act), or row-wise softmax / log-softmax.
enum class ActKind { elementwise, softmax, log_softmax };

template <typename T>
struct ActSpec {
    ActKind kind = ActKind::elementwise;
    Act act = Act::linear;
    T alpha = T(0);
    bool identity() const { return kind == ActKind::elementwise && act == Act::linear; }
};

enum class LayerKind { dense, activation, batchnorm, layernorm, dropout, identity };

template <typename T>
struct PlanLayer {
    LayerKind kind = LayerKind::identity;
    idx in_size = 0, out_size = 0;  // values per sample, in and out
    idx channels = 0;               // norms: the feature axis C (rows per sample = out_size / C)
    bool trainable = true;
    ActSpec<T> act;                 // dense: its activation; activation: the function
    // Weights and their gradients (the Python layer's arrays); null when absent.
    T* W = nullptr; T* b = nullptr; T* dW = nullptr; T* db = nullptr;            // dense
    T* gamma = nullptr; T* beta = nullptr; T* dgamma = nullptr; T* dbeta = nullptr;
    T* moving_mean = nullptr; T* moving_var = nullptr;                          // batch norm
    double momentum = 0, epsilon = 0;
    double rate = 0;                        // dropout
    std::uint64_t* stream = nullptr;        // dropout: {key, step}, the layer's own array
    // Buffers owned by the plan, `capacity` rows each.
    std::vector<T> z, y, d, dx, stat_a, stat_b, mask;
    // Saved by forward for backward.
    const T* x = nullptr; const T* out = nullptr; idx rows = 0;
    bool logits = false, batch_stats = false, dropped = false;
};

enum class LossKind { sparse_ce, ce, bce, hinge, kld, mse, mae, huber, log_cosh };
// How the loss reads the model: on logits (fused with the last activation, or from_logits), on
// probabilities (cross-entropies through log(clip(p)), as fastnn.losses does), or directly.
enum class LossInput { logits, probabilities, direct };

template <typename T>
struct PlanLoss {
    LossKind kind = LossKind::mse;
    LossInput input = LossInput::direct;
    bool fused = false;      // the last layer's activation is skipped in training and applied
                             // to the logits only when outputs are requested
    T param = T(0);          // label smoothing, Huber delta or KL epsilon
    double clip_eps = 1e-7;  // probabilities are clipped to [eps, 1 - eps]
    std::vector<T> grad, logits, dlogits, outputs;
};

enum class OptKind { sgd, adagrad, rmsprop, adam };
enum class ClipKind { none, value, norm, global_norm };

template <typename T>
struct PlanParam {
    T* p = nullptr; T* g = nullptr;
    T* s0 = nullptr; T* s1 = nullptr; T* s2 = nullptr;  // optimizer slots, as fastnn.optimizers
    idx n = 0;
    std::vector<T> clipped;
};

template <typename T>
struct PlanPenalty {  // an L1/L2 regularized weight
    const T* w = nullptr; T* g = nullptr; idx n = 0;
    double l1 = 0, l2 = 0;
    int layer = 0;
};

template <typename T>
struct PlanOptimizer {
    OptKind kind = OptKind::sgd;
    double momentum = 0, beta_1 = 0, beta_2 = 0, rho = 0, epsilon = 0;
    bool nesterov = false;
    double weight_decay = 0;  // 0: none
    ClipKind clip = ClipKind::none;
    double clip_value = 0;
    std::vector<PlanParam<T>> params;
};

template <typename T>
class Plan {
public:
    std::vector<PlanLayer<T>> layers;
    PlanLoss<T> loss;
    PlanOptimizer<T> optimizer;
    std::vector<PlanPenalty<T>> penalties;
    int first_backward = 0;  // layers before it need no gradient (no trainable weights)

    // Grows the buffers to hold batches of n rows (never shrinks).
    void reserve(idx n);
    // Inference pass of x[n, in] into out[n, out].
    void predict(const T* x, T* out, idx n);
    // One training step on x[n, in] with targets (T[n, out], or int64 labels[n] for sparse
    // cross-entropy). `step` is the optimizer's update count including this one. Returns the
    // mean loss plus the weight penalties; the model outputs are then available from outputs().
    double train_step(const T* x, const void* targets, idx n, double lr, std::int64_t step,
                      bool want_outputs);
    const T* outputs() const { return outputs_; }
    idx capacity() const { return capacity_; }

private:
    const T* forward(const T* x, idx n, bool training, bool logits_last);
    double loss_and_grad(const T* h, const void* targets, idx n);
    void backward(const T* grad);
    void update(double lr, std::int64_t step);
    idx capacity_ = 0;
    idx batch_ = 0;                 // rows of the current training step
    const T* outputs_ = nullptr;
    std::vector<const T*> grads_;   // the gradients the update uses (clipped copies or the grads)
};

}  // namespace fastnn
