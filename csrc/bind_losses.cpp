// Bindings: losses with their gradients.
#include "bindings.h"
#include "losses.h"

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
    if (!(labels.flags() & py::array::c_style))
        throw py::value_error("labels must be C-contiguous");
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
        py::gil_scoped_release nogil;
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
        py::gil_scoped_release nogil;
        loss = kernel(G, P, Y, N, C);
    });
    return py::make_tuple(loss, grad);
}

struct SoftmaxCE {
    template <typename T> double operator()(T* g, const T* p, const T* y, idx N, idx C) const {
        return fastnn::softmax_cross_entropy<T>(g, p, y, N, C);
    }
};
struct SigmoidBCE {
    template <typename T> double operator()(T* g, const T* p, const T* y, idx N, idx C) const {
        return fastnn::sigmoid_binary_cross_entropy<T>(g, p, y, N, C);
    }
};
struct MSE {
    template <typename T> double operator()(T* g, const T* p, const T* y, idx N, idx C) const {
        return fastnn::mean_squared_error<T>(g, p, y, N, C);
    }
};

}  // namespace

void bind_losses(py::module_& m) {
    m.def("sparse_softmax_cross_entropy", &sparse_softmax_cross_entropy, "logits"_a, "labels"_a,
          "dlogits"_a = py::none(), "need_grad"_a = true);
    m.def("softmax_cross_entropy",
          [](py::array z, py::array t, py::object g, bool need) {
              return dense_target_loss("logits", "dlogits", z, t, g, need, SoftmaxCE{});
          }, "logits"_a, "targets"_a, "dlogits"_a = py::none(), "need_grad"_a = true);
    m.def("sigmoid_binary_cross_entropy",
          [](py::array z, py::array t, py::object g, bool need) {
              return dense_target_loss("logits", "dlogits", z, t, g, need, SigmoidBCE{});
          }, "logits"_a, "targets"_a, "dlogits"_a = py::none(), "need_grad"_a = true);
    m.def("mean_squared_error",
          [](py::array p, py::array t, py::object g, bool need) {
              return dense_target_loss("pred", "dpred", p, t, g, need, MSE{});
          }, "pred"_a, "target"_a, "dpred"_a = py::none(), "need_grad"_a = true);
}

}  // namespace bind
}  // namespace fastnn
