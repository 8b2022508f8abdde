// Bindings: elementwise activations and row-wise softmax / log-softmax.
#include "bindings.h"
#include "activations.h"
#include "softmax.h"

namespace fastnn {
namespace bind {
namespace {

// ---- Activations ------------------------------------------------------------------------------

py::array act_forward(fastnn::Act act, py::array x, double alpha, py::object out) {
    const DT dt = float_dtype(x, "x");
    check(x, "x", dt, -1);
    py::array y = output(out, "out", dt, shape_vec(x));
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* Y = ptr<T>(y); const T* X = cptr<T>(x); const idx n = x.size();
        release_gil nogil;
        fastnn::act_forward<T>(act, Y, X, n, T(alpha));
    });
    return y;
}

py::array act_backward(fastnn::Act act, py::array dy, py::array x, py::array y, double alpha,
                       py::object out) {
    const DT dt = check_backward_args(dy, x, y, -1);
    py::array dx = output(out, "out", dt, shape_vec(dy));
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* DX = ptr<T>(dx); const T* DY = cptr<T>(dy); const T* X = cptr<T>(x); const T* Y = cptr<T>(y);
        const idx n = dy.size();
        release_gil nogil;
        fastnn::act_backward<T>(act, DX, DY, X, Y, n, T(alpha));
    });
    return dx;
}

// ---- Softmax ----------------------------------------------------------------------------------

template <bool Log>
py::array softmax_fwd(py::array x, py::object out) {
    const DT dt = float_dtype(x, "x");
    check(x, "x", dt, 2);
    if (x.shape(1) == 0)  // a row without classes has no maximum and no distribution
        throw py::value_error(std::string(Log ? "log_softmax" : "softmax") +
                              " needs at least one class per row, got x of shape " + shape_of(x));
    py::array y = output(out, "out", dt, shape_vec(x));
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* Y = ptr<T>(y); const T* X = cptr<T>(x); const idx N = x.shape(0), C = x.shape(1);
        release_gil nogil;
        if (Log) fastnn::log_softmax_forward<T>(Y, X, N, C); else fastnn::softmax_forward<T>(Y, X, N, C);
    });
    return y;
}

template <bool Log>
py::array softmax_bwd(py::array dy, py::array x, py::array y, py::object out) {
    const DT dt = check_backward_args(dy, x, y, 2);
    py::array dx = output(out, "out", dt, shape_vec(dy));
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* DX = ptr<T>(dx); const T* DY = cptr<T>(dy); const T* Y = cptr<T>(y);
        const idx N = dy.shape(0), C = dy.shape(1);
        release_gil nogil;
        if (Log) fastnn::log_softmax_backward<T>(DX, DY, Y, N, C);
        else fastnn::softmax_backward<T>(DX, DY, Y, N, C);
    });
    return dx;
}

void def_activation(py::module_& m, const char* name, fastnn::Act act, bool has_alpha, double alpha,
                    bool has_backward) {
    const std::string fwd = std::string(name) + "_forward", bwd = std::string(name) + "_backward";
    if (has_alpha) {
        m.def(fwd.c_str(), [act](py::array x, double a, py::object out) { return act_forward(act, x, a, out); },
              "x"_a, "alpha"_a = alpha, "out"_a = py::none());
        m.def(bwd.c_str(), [act](py::array dy, py::array x, py::array y, double a, py::object out) {
                  return act_backward(act, dy, x, y, a, out);
              }, "dy"_a, "x"_a, "y"_a, "alpha"_a = alpha, "out"_a = py::none());
        return;
    }
    m.def(fwd.c_str(), [act](py::array x, py::object out) { return act_forward(act, x, 0.0, out); },
          "x"_a, "out"_a = py::none());
    if (has_backward)
        m.def(bwd.c_str(), [act](py::array dy, py::array x, py::array y, py::object out) {
                  return act_backward(act, dy, x, y, 0.0, out);
              }, "dy"_a, "x"_a, "y"_a, "out"_a = py::none());
}

}  // namespace

void bind_activations(py::module_& m) {
    using fastnn::Act;
    def_activation(m, "linear", Act::linear, false, 0.0, true);
    def_activation(m, "step", Act::step, false, 0.0, false);
    def_activation(m, "sigmoid", Act::sigmoid, false, 0.0, true);
    def_activation(m, "tanh", Act::tanh, false, 0.0, true);
    def_activation(m, "relu", Act::relu, false, 0.0, true);
    def_activation(m, "leaky_relu", Act::leaky_relu, true, 0.3, true);  // Keras LeakyReLU default
    def_activation(m, "elu", Act::elu, true, 1.0, true);                 // Keras ELU default
    def_activation(m, "selu", Act::selu, false, 0.0, true);
    def_activation(m, "softplus", Act::softplus, false, 0.0, true);
    def_activation(m, "gelu", Act::gelu, false, 0.0, true);
    def_activation(m, "gelu_tanh", Act::gelu_tanh, false, 0.0, true);
    def_activation(m, "silu", Act::silu, false, 0.0, true);
    def_activation(m, "mish", Act::mish, false, 0.0, true);
    def_activation(m, "relu6", Act::relu6, false, 0.0, true);
    def_activation(m, "hard_sigmoid", Act::hard_sigmoid, false, 0.0, true);
    def_activation(m, "hard_silu", Act::hard_silu, false, 0.0, true);
    def_activation(m, "softsign", Act::softsign, false, 0.0, true);
    def_activation(m, "exponential", Act::exponential, false, 0.0, true);
    def_activation(m, "celu", Act::celu, true, 1.0, true);               // Keras celu default

    m.def("softmax_forward", &softmax_fwd<false>, "x"_a, "out"_a = py::none());
    m.def("softmax_backward", &softmax_bwd<false>, "dy"_a, "x"_a, "y"_a, "out"_a = py::none());
    m.def("log_softmax_forward", &softmax_fwd<true>, "x"_a, "out"_a = py::none());
    m.def("log_softmax_backward", &softmax_bwd<true>, "dy"_a, "x"_a, "y"_a, "out"_a = py::none());
}

}  // namespace bind
}  // namespace fastnn
