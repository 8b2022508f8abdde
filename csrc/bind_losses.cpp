// Bindings: losses with their gradients.
#include "bindings.h"
#include "losses.h"

#include <cmath>
#include <string>
#include <type_traits>

namespace fastnn {
namespace bind {
namespace {

// ---- Losses -----------------------------------------------------------------------------------

py::tuple sparse_softmax_cross_entropy(py::array logits, py::array labels, py::object dlogits,
                                       bool need_grad) {
    const DT dt = float_dtype(logits, "logits");
    check(logits, "logits", dt, 2);
    const idx N = logits.shape(0), C = logits.shape(1);
    if (!has_dtype(labels, 'i', 8))
        throw py::type_error("labels must be an int64 array in native byte order, got dtype " +
                             dtype_name(labels));
    if (!(labels.flags() & py::array::c_style) || !(labels.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
        throw py::value_error("labels must be C-contiguous and aligned, got a strided or misaligned view");
    check_shape(labels, "labels", {N});
    if (N == 0 || C == 0) throw py::value_error("logits must be non-empty, got shape " + shape_of(logits));
    const std::int64_t* L = cptr<std::int64_t>(labels);
    for (idx n = 0; n < N; ++n)  // an out-of-range label would index out of bounds in the kernel
        if (L[n] < 0 || L[n] >= C)
            throw py::value_error("labels must be in [0, " + std::to_string(C) + "), got " +
                                  std::to_string(L[n]) + " at index " + std::to_string(n));
    py::object grad = py::none();
    double loss = 0;
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* G = optional_output<T>(need_grad, dlogits, "dlogits", dt, {N, C}, grad);
        const T* Z = cptr<T>(logits);
        release_gil nogil;
        loss = fastnn::sparse_softmax_cross_entropy<T>(G, Z, L, N, C);
    });
    return py::make_tuple(loss, grad);
}

// Losses whose target has the prediction's shape [N, C].
template <typename Kernel>
py::tuple dense_target_loss(const char* pred_name, const char* grad_name, py::array pred,
                            py::array target, py::object grad_out, bool need_grad, Kernel kernel) {
    const DT dt = float_dtype(pred, pred_name);
    check(pred, pred_name, dt, 2);
    check(target, "targets", dt, 2);
    check_shape(target, "targets", shape_vec(pred));
    const idx N = pred.shape(0), C = pred.shape(1);
    if (N == 0 || C == 0)
        throw py::value_error(std::string(pred_name) + " must be non-empty, got shape " + shape_of(pred));
    py::object grad = py::none();
    double loss = 0;
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* G = optional_output<T>(need_grad, grad_out, grad_name, dt, {N, C}, grad);
        const T* P = cptr<T>(pred); const T* Y = cptr<T>(target);
        release_gil nogil;
        loss = kernel(G, P, Y, N, C);
    });
    return py::make_tuple(loss, grad);
}

// Checks a loss hyperparameter: in [lo, hi], or in (0, inf) when positive is set.
double checked(double value, const char* name, bool positive, double lo = 0.0, double hi = 1.0) {
    const bool ok = positive ? (value > 0.0 && value < INFINITY) : (value >= lo && value <= hi);
    if (!ok)
        throw py::value_error(std::string(name) + (positive ? " must be a positive finite number"
                                                            : " must be in [0, 1]") +
                              ", got " + std::to_string(value));
    return value;
}

// Kernel(grad, pred, target, N, C, param) with the parameter converted to the arrays' type.
#define FASTNN_WITH_PARAM(kernel, param)                                         \
    [param](auto* G, auto* P, auto* Y, idx N, idx C) {                         \
        using T = std::remove_pointer_t<decltype(G)>;                          \
        return fastnn::kernel<T>(G, P, Y, N, C, T(param));                     \
    }
#define FASTNN_NO_PARAM(kernel) \
    [](auto* G, auto* P, auto* Y, idx N, idx C) { return fastnn::kernel(G, P, Y, N, C); }

}  // namespace

void bind_losses(py::module_& m) {
    m.def("sparse_softmax_cross_entropy", &sparse_softmax_cross_entropy, "logits"_a, "labels"_a,
          "dlogits"_a = py::none(), "need_grad"_a = true);

    // On logits, with Keras's label smoothing.
    m.def("softmax_cross_entropy",
          [](py::array z, py::array t, py::object g, bool need, double label_smoothing) {
              const double s = checked(label_smoothing, "label_smoothing", false);
              return dense_target_loss("logits", "dlogits", z, t, g, need,
                                       FASTNN_WITH_PARAM(softmax_cross_entropy, s));
          }, "logits"_a, "targets"_a, "dlogits"_a = py::none(), "need_grad"_a = true,
          "label_smoothing"_a = 0.0);
    m.def("sigmoid_binary_cross_entropy",
          [](py::array z, py::array t, py::object g, bool need, double label_smoothing) {
              const double s = checked(label_smoothing, "label_smoothing", false);
              return dense_target_loss("logits", "dlogits", z, t, g, need,
                                       FASTNN_WITH_PARAM(sigmoid_binary_cross_entropy, s));
          }, "logits"_a, "targets"_a, "dlogits"_a = py::none(), "need_grad"_a = true,
          "label_smoothing"_a = 0.0);

    // On predictions: name(pred, target, dpred=None, need_grad=True[, parameter]).
    m.def("hinge",
          [](py::array p, py::array t, py::object g, bool need) {
              return dense_target_loss("pred", "dpred", p, t, g, need, FASTNN_NO_PARAM(hinge));
          }, "pred"_a, "target"_a, "dpred"_a = py::none(), "need_grad"_a = true);
    m.def("kl_divergence",
          [](py::array p, py::array t, py::object g, bool need, double epsilon) {
              const double eps = checked(epsilon, "epsilon", true);
              return dense_target_loss("pred", "dpred", p, t, g, need,
                                       FASTNN_WITH_PARAM(kl_divergence, eps));
          }, "pred"_a, "target"_a, "dpred"_a = py::none(), "need_grad"_a = true,
          "epsilon"_a = 1e-7);
    m.def("mean_squared_error",
          [](py::array p, py::array t, py::object g, bool need) {
              return dense_target_loss("pred", "dpred", p, t, g, need,
                                       FASTNN_NO_PARAM(mean_squared_error));
          }, "pred"_a, "target"_a, "dpred"_a = py::none(), "need_grad"_a = true);
    m.def("mean_absolute_error",
          [](py::array p, py::array t, py::object g, bool need) {
              return dense_target_loss("pred", "dpred", p, t, g, need,
                                       FASTNN_NO_PARAM(mean_absolute_error));
          }, "pred"_a, "target"_a, "dpred"_a = py::none(), "need_grad"_a = true);
    m.def("huber",
          [](py::array p, py::array t, py::object g, bool need, double delta) {
              const double d = checked(delta, "delta", true);
              return dense_target_loss("pred", "dpred", p, t, g, need, FASTNN_WITH_PARAM(huber, d));
          }, "pred"_a, "target"_a, "dpred"_a = py::none(), "need_grad"_a = true, "delta"_a = 1.0);
    m.def("log_cosh",
          [](py::array p, py::array t, py::object g, bool need) {
              return dense_target_loss("pred", "dpred", p, t, g, need, FASTNN_NO_PARAM(log_cosh));
          }, "pred"_a, "target"_a, "dpred"_a = py::none(), "need_grad"_a = true);
}

#undef FASTNN_WITH_PARAM
#undef FASTNN_NO_PARAM

}  // namespace bind
}  // namespace fastnn
