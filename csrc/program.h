// A recorded program of kernel calls and the executor that replays it.
//
// fastnn's layers, losses and optimizers describe what they compute once, in Python, as calls of
// the kernel interface (fastnn.reference names and signatures). On the native backend those calls
// are recorded (fastnn/program.py) into a Program: a list of instructions, each one kernel of the
// table below with its buffers and scalar arguments. run() replays the list for a batch of n rows
// in one native call, with the GIL released. The executor dispatches on kernels only: it knows
// nothing of layers, losses or optimizers, so a new layer made of existing kernels needs no line
// here, and a new kernel needs one table entry and one case.
//
// Buffers have a 2-D shape (rows, cols) whose rows are a*n + b for the batch size n of the call
// (b alone for weights and other fixed-size arrays). External buffers are arrays of the Python
// objects (weights, gradients, optimizer state, moving statistics, random streams) or the call's
// inputs; internal ones are owned by the program, sized for the largest batch seen and never
// shrunk, so a step in steady state allocates nothing. Scalars live in double registers: kernel
// results (a loss, a sum of squares), their sums, and the call's inputs (learning rate, step).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common.h"
#include "threads.h"

namespace fastnn {

// Every kernel a program can call: X(name, parameters, results). The parameters are the NumPy
// twin's, in its order ("name:kind", kind one of in / out / io for float buffers, labels for
// int64, stream for a uint64 {key, step} pair, real for a scalar, act for an activation; out@p: an
// output shaped like parameter p, else like the first buffer; a trailing ? means None is allowed);
// results name what the twin returns, @ for a scalar.
#define FASTNN_PROGRAM_KERNELS(X)                                                                   \
    X(dense_forward, "x:in w:in b:in? out:out", "out")                                              \
    X(dense_act_forward, "x:in w:in b:in? activation:act alpha:real z:out out:out", "out")          \
    X(dense_backward,                                                                               \
      "dy:in x:in w:in dx:out? dw:out@w db:out? need_dx:real need_db:real", "dx dw db")               \
    X(act_forward, "x:in activation:act alpha:real out:out", "out")                                 \
    X(act_backward, "dy:in x:in y:in activation:act alpha:real out:out", "out")                     \
    X(prelu_forward, "x:in alpha:in out:out", "out")                                                \
    X(prelu_backward, "dy:in x:in alpha:in dx:out? dalpha:out@alpha need_dx:real", "dx dalpha")           \
    X(batchnorm_forward,                                                                            \
      "x:in gamma:in? beta:in? moving_mean:io moving_variance:io momentum:real epsilon:real "       \
      "out:out mean:out rstd:out", "out mean rstd")                                                 \
    X(batchnorm_inference,                                                                          \
      "x:in gamma:in? beta:in? moving_mean:in moving_variance:in epsilon:real out:out", "out")      \
    X(batchnorm_backward,                                                                           \
      "dy:in x:in gamma:in? mean:in rstd:in dx:out? dgamma:out? dbeta:out? need_dx:real "           \
      "need_dgamma:real need_dbeta:real", "dx dgamma dbeta")                                        \
    X(batchnorm_frozen_backward,                                                                    \
      "dy:in gamma:in? moving_variance:in epsilon:real out:out scale:out@moving_variance", "out")                   \
    X(layernorm_forward, "x:in gamma:in? beta:in? epsilon:real out:out mean:out rstd:out",          \
      "out mean rstd")                                                                              \
    X(layernorm_backward,                                                                           \
      "dy:in x:in gamma:in? mean:in rstd:in dx:out? dgamma:out? dbeta:out? need_dx:real "           \
      "need_dgamma:real need_dbeta:real", "dx dgamma dbeta")                                        \
    X(dropout_step, "x:in rate:real stream:stream out:out mask:out", "out mask")                    \
    X(dropout_backward, "dy:in mask:in out:out", "out")                                             \
    X(normal_noise_step, "x:in stddev:real stream:stream out:out", "out")                           \
    X(sparse_softmax_cross_entropy, "logits:in labels:labels dlogits:out? need_grad:real",          \
      "@ dlogits")                                                                                  \
    X(softmax_cross_entropy,                                                                        \
      "logits:in targets:in dlogits:out? need_grad:real label_smoothing:real", "@ dlogits")         \
    X(sigmoid_binary_cross_entropy,                                                                 \
      "logits:in targets:in dlogits:out? need_grad:real label_smoothing:real", "@ dlogits")         \
    X(hinge, "pred:in target:in dpred:out? need_grad:real", "@ dpred")                              \
    X(kl_divergence, "pred:in target:in dpred:out? need_grad:real epsilon:real", "@ dpred")         \
    X(mean_squared_error, "pred:in target:in dpred:out? need_grad:real", "@ dpred")                 \
    X(mean_absolute_error, "pred:in target:in dpred:out? need_grad:real", "@ dpred")                \
    X(huber, "pred:in target:in dpred:out? need_grad:real delta:real", "@ dpred")                   \
    X(log_cosh, "pred:in target:in dpred:out? need_grad:real", "@ dpred")                           \
    X(probabilities_to_logits, "pred:in epsilon:real binary:real out:out", "out")                   \
    X(probabilities_grad, "dlogits:in pred:in epsilon:real binary:real out:out", "out")             \
    X(l1_l2_penalty, "w:in l1:real l2:real grad:io?", "@")                                          \
    X(sum_squares, "x:in", "@")                                                                     \
    X(clip_gradient, "grad:in scale:real clipvalue:real out:out", "out")                            \
    X(weight_decay_update, "param:io learning_rate:real weight_decay:real", "")                     \
    X(sgd_update, "param:io grad:in velocity:io? learning_rate:real momentum:real nesterov:real",   \
      "")                                                                                           \
    X(adagrad_update, "param:io grad:in accumulator:io learning_rate:real epsilon:real", "")        \
    X(rmsprop_update,                                                                               \
      "param:io grad:in velocity:io average_grad:io? momentum_velocity:io? learning_rate:real "     \
      "rho:real momentum:real epsilon:real", "")                                                    \
    X(adam_update,                                                                                  \
      "param:io grad:in m:io v:io learning_rate:real beta_1:real beta_2:real epsilon:real "         \
      "step:real v_hat:io?", "")                                                                    \
    X(simple_rnn_forward,                                                                           \
      "x:in kernel:in recurrent_kernel:in bias:in? h0:in? activation:act alpha:real reverse:real "  \
      "z:out hseq:out hlast:out? rmask:in? xmask:in?", "hseq")                                                                     \
    X(simple_rnn_backward,                                                                          \
      "dy:in? x:in kernel:in recurrent_kernel:in h0:in? z:in hseq:in activation:act alpha:real "    \
      "reverse:real sequences:real dx:out? dkernel:out@kernel drecurrent:out@recurrent_kernel "     \
      "dbias:out? dh0:out need_dx:real dz:out hprev:out dh_last:in? rmask:in? xmask:in?",           \
      "dx dkernel drecurrent dbias dh0")                                                            \
    X(lstm_forward,                                                                                 \
      "x:in kernel:in recurrent_kernel:in bias:in? h0:in? c0:in? activation:act alpha:real "        \
      "recurrent_activation:act recurrent_alpha:real reverse:real z:out gates:out cseq:out "        \
      "tc:out hseq:out hlast:out? rmask:in? xmask:in?", "hseq")                                                                    \
    X(lstm_backward,                                                                                \
      "dy:in? x:in kernel:in recurrent_kernel:in h0:in? c0:in? z:in gates:in cseq:in tc:in "        \
      "hseq:in activation:act alpha:real recurrent_activation:act recurrent_alpha:real "            \
      "reverse:real sequences:real dx:out? dkernel:out@kernel drecurrent:out@recurrent_kernel "     \
      "dbias:out? dh0:out dc0:out need_dx:real dz:out hprev:out dh_last:in? dc_last:in? "           \
      "rmask:in? xmask:in?",                                                                        \
      "dx dkernel drecurrent dbias dh0 dc0")                                                        \
    X(gru_forward,                                                                                  \
      "x:in kernel:in recurrent_kernel:in bias:in? h0:in? activation:act alpha:real "               \
      "recurrent_activation:act recurrent_alpha:real reset_after:real reverse:real zx:out zr:out "  \
      "gates:out hseq:out hlast:out? rmask:in? xmask:in?", "hseq")                                                                 \
    X(gru_backward,                                                                                 \
      "dy:in? x:in kernel:in recurrent_kernel:in h0:in? zx:in zr:in gates:in hseq:in "              \
      "activation:act alpha:real recurrent_activation:act recurrent_alpha:real reset_after:real "   \
      "reverse:real sequences:real dx:out? dkernel:out@kernel drecurrent:out@recurrent_kernel "     \
      "dbias:out? dh0:out need_dx:real dax:out dar:out hprev:out work:out dh_last:in? "             \
      "rmask:in? xmask:in?",                                                                        \
      "dx dkernel drecurrent dbias dh0")                                                            \
    X(sequence_dropout_step, "x:in rate:real stream:stream out:out mask:out", "out mask")          \
    X(sequence_dropout_backward, "dy:in mask:in out:out", "out")                                   \
    X(embedding_forward, "tokens:in embeddings:in out:out", "out")                                 \
    X(embedding_backward, "dy:in tokens:in dembeddings:out", "dembeddings")                        \
    X(relu_clip_forward, "x:in negative_slope:real max_value:real threshold:real out:out", "out")  \
    X(relu_clip_backward,                                                                           \
      "dy:in x:in negative_slope:real max_value:real threshold:real out:out", "out")                \
    X(affine_forward, "x:in scale:in offset:in out:out", "out")                                     \
    X(affine_backward, "dy:in scale:in out:out", "out")                                             \
    X(normalize_forward, "x:in mean:in variance:in epsilon:real invert:real out:out", "out")        \
    X(normalize_backward, "dy:in variance:in epsilon:real invert:real out:out", "out")              \
    X(gaussian_dropout_step, "x:in stddev:real stream:stream out:out mask:out", "out mask")         \
    X(alpha_dropout_step, "x:in rate:real stream:stream out:out mask:out", "out mask")              \
    X(mean_absolute_percentage_error,                                                               \
      "pred:in target:in dpred:out? need_grad:real epsilon:real", "@ dpred")                        \
    X(mean_squared_logarithmic_error,                                                               \
      "pred:in target:in dpred:out? need_grad:real epsilon:real", "@ dpred")                        \
    X(poisson, "pred:in target:in dpred:out? need_grad:real epsilon:real", "@ dpred")               \
    X(squared_hinge, "pred:in target:in dpred:out? need_grad:real", "@ dpred")                      \
    X(cosine_similarity, "pred:in target:in dpred:out? need_grad:real epsilon:real", "@ dpred")     \
    X(categorical_hinge, "pred:in target:in dpred:out? need_grad:real", "@ dpred")                  \
    X(binary_focal_cross_entropy,                                                                   \
      "pred:in target:in dpred:out? need_grad:real from_logits:real gamma:real alpha:real "         \
      "apply_class_balancing:real label_smoothing:real epsilon:real", "@ dpred")                    \
    X(categorical_focal_cross_entropy,                                                              \
      "pred:in target:in dpred:out? need_grad:real from_logits:real gamma:real alpha:real "         \
      "label_smoothing:real epsilon:real", "@ dpred")                                               \
    X(scale_by_rows, "value:real rows_of:in grad:io?", "@")                                         \
    X(sparse_softmax_cross_entropy_ignore,                                                          \
      "logits:in labels:labels dlogits:out? need_grad:real ignore_class:real total:real",            \
      "@ dlogits")                                                                                  \
    X(nadam_update,                                                                                 \
      "param:io grad:in m:io v:io u_product:io learning_rate:real beta_1:real beta_2:real "         \
      "epsilon:real step:real", "")                                                                 \
    X(adamax_update,                                                                                \
      "param:io grad:in m:io u:io learning_rate:real beta_1:real beta_2:real epsilon:real "         \
      "step:real", "")                                                                              \
    X(adadelta_update,                                                                              \
      "param:io grad:in accumulated_grad:io accumulated_delta:io learning_rate:real rho:real "      \
      "epsilon:real", "")                                                                           \
    X(lion_update, "param:io grad:in m:io learning_rate:real beta_1:real beta_2:real", "")          \
    X(merge_forward, "a:in b:in op:real scale:real out:out", "out")                                 \
    X(merge_backward, "dy:in a:in b:in op:real scale:real da:out db:out", "da db")                  \
    X(concat_forward, "a:in b:in out:out", "out")                                                   \
    X(take_columns, "x:in offset:real out:out", "out")                                              \
    X(scalar_mul, "a:real b:real", "@")                                                             \
    X(scalar_add, "a:real b:real", "@")                                                             \
    X(scalar_sqrt, "x:real", "@")                                                                   \
    X(norm_scale, "norm:real clip:real", "@")                                                       \
    X(global_norm_scale, "norm:real clip:real", "@")

enum class Kernel {
#define FASTNN_KERNEL_ID(name, params, results) name,
    FASTNN_PROGRAM_KERNELS(FASTNN_KERNEL_ID)
#undef FASTNN_KERNEL_ID
};

struct KernelSpec {
    const char* name;
    const char* params;
    const char* results;
};
// The table above, in Kernel order.
const std::vector<KernelSpec>& kernel_specs();

// Activations by code: the elementwise ones in Act order, then the row-wise softmax and
// log_softmax. Python names them; act_forward/act_backward dispatch on the code.
const std::vector<std::string>& activation_names();

enum class BufType : std::uint8_t { real, labels, stream };

struct Dim {  // a * n + b, n the batch size of a call
    std::int64_t a = 0, b = 0;
    idx at(idx n) const { return idx(a * n + b); }
};

struct Buffer {
    BufType type = BufType::real;
    Dim rows;
    idx cols = 1;
    int alias = -1;        // a reshaped view of this buffer (same storage)
    bool external = false; // storage not owned: set once (arrays) or per call (inputs)
    void* data = nullptr;  // external storage
};

// One argument of an instruction: a buffer, a literal, a register, or None.
struct Arg {
    enum Kind : std::uint8_t { none, buffer, literal, reg } kind = none;
    int id = -1;       // buffer or register
    double value = 0;  // literal
};

struct Instr {
    Kernel kernel;
    std::vector<Arg> args;  // in the parameter order of the kernel's spec
    int result = -1;        // register receiving a scalar result
    int cond = -1;          // run only when this register is non-zero (-1: always)
};

// The bytes of internal buffers a program keeps between runs (default 256 MiB): a program
// whose buffers are larger frees them after a prediction, and before a run that needs less.
std::size_t program_cache_limit();
void set_program_cache_limit(std::size_t bytes);

template <typename T>
class Program {
public:
    std::vector<Buffer> buffers;
    std::vector<Instr> code;
    int registers = 0;

    // Replays the code for a batch of n rows. Registers 0.. hold the inputs on entry and every
    // result on return.
    void run(idx n, std::vector<double>& regs);
    // The storage of buffer `id` (after run, or after reserve(n) for internal ones).
    void* data(int id) { return root_data(id); }
    void reserve(idx n);
    idx capacity() const { return capacity_; }
    // Frees the internal buffers (the next run allocates again); their bytes now, and for n rows.
    void release();
    std::size_t storage_bytes() const;
    std::size_t bytes_for(idx n) const;
    // The thread count the runs of n rows use now (0 before the first run of n), threads.h.
    int chosen_threads(idx n) const { return tuner_.chosen(n); }

private:
    void* root_data(int id);
    void replay(idx n, std::vector<double>& regs);
    void exec(const Instr& in, idx n, std::vector<double>& regs);
    void exec_recurrent(const Instr& in, idx n, std::vector<double>& regs);  // the RNN cells
    std::vector<std::vector<T>> real_storage_;
    std::vector<std::vector<std::uint64_t>> other_storage_;
    idx capacity_ = -1;
    ThreadTuner tuner_;
};

}  // namespace fastnn
