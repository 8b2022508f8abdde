// Python bindings for fastnn's kernels (module fastnn._core). Thin by design: each function checks
// dtype, shape, contiguity and writability of its arguments, allocates outputs that were not given,
// releases the GIL and calls one kernel. Signatures match fastnn/reference/ name for name.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "activations.h"
#include "dense.h"
#include "gemm.h"
#include "losses.h"
#include "optim.h"
#include "softmax.h"

namespace py = pybind11;
using namespace py::literals;
using fastnn::idx;

namespace {

enum class DT { f32, f64 };

std::string shape_of(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        if (i) s += ", ";
        s += std::to_string(a.shape(i));
    }
    return s + (a.ndim() == 1 ? ",)" : ")");
}

std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// Dtypes are compared by kind, size and byte order, not by identity: an unpickled array or
// numpy.longlong has an equal but distinct dtype object.
bool native_order(const py::dtype& dt) {
    const char order = dt.byteorder();  // '=' native, '|' not applicable, '<' little, '>' big
    if (order == '=' || order == '|') return true;
    const std::uint16_t probe = 1;
    const bool little = *reinterpret_cast<const unsigned char*>(&probe) == 1;
    return order == (little ? '<' : '>');
}

bool has_dtype(const py::array& a, char kind, py::ssize_t size) {
    const py::dtype dt = a.dtype();
    return dt.kind() == kind && dt.itemsize() == size && native_order(dt);
}

DT float_dtype(const py::array& a, const char* name) {
    if (has_dtype(a, 'f', 4)) return DT::f32;
    if (has_dtype(a, 'f', 8)) return DT::f64;
    throw py::type_error(std::string(name) + " must be a float32 or float64 array in native byte "
                         "order, got dtype " + dtype_name(a));
}

// Checks dtype, number of dimensions (-1: any), C-contiguity and, for outputs, writability.
void check(const py::array& a, const char* name, DT dt, int ndim, bool output = false) {
    if (float_dtype(a, name) != dt)
        throw py::type_error(std::string(name) + " must have the same dtype as the other arrays (" +
                             (dt == DT::f32 ? "float32" : "float64") + "), got " + dtype_name(a));
    if (ndim >= 0 && a.ndim() != ndim)
        throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) +
                              "-D, got shape " + shape_of(a));
    if (!(a.flags() & py::array::c_style))
        throw py::value_error(std::string(name) + " must be C-contiguous, got a strided array of shape " +
                              shape_of(a) + " (use numpy.ascontiguousarray or fastnn.ops)");
    if (output && !a.writeable())
        throw py::value_error(std::string(name) + " must be writeable, got a read-only array");
}

void check_shape(const py::array& a, const char* name, const std::vector<py::ssize_t>& shape) {
    bool ok = a.ndim() == py::ssize_t(shape.size());
    for (size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
    if (!ok) {
        py::array expected(a.dtype(), shape);
        throw py::value_error(std::string(name) + " must have shape " + shape_of(expected) +
                              ", got " + shape_of(a));
    }
}

std::vector<py::ssize_t> shape_vec(const py::array& a) {
    return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

py::dtype dtype_for(DT dt) { return dt == DT::f32 ? py::dtype::of<float>() : py::dtype::of<double>(); }

// The given output array after checks, or a new one when `out` is None.
py::array output(py::object out, const char* name, DT dt, const std::vector<py::ssize_t>& shape) {
    if (out.is_none()) return py::array(dtype_for(dt), shape);
    if (!py::isinstance<py::array>(out))
        throw py::type_error(std::string(name) + " must be a numpy.ndarray or None, got " +
                             py::str(py::type::of(out)).cast<std::string>());
    py::array a = py::reinterpret_borrow<py::array>(out);
    check(a, name, dt, -1, true);
    check_shape(a, name, shape);
    return a;
}

template <typename T> T* ptr(py::array& a) { return static_cast<T*>(a.mutable_data()); }
template <typename T> const T* cptr(const py::array& a) { return static_cast<const T*>(a.data()); }

// An optional output: the checked (or new) array and its data pointer, or None and nullptr.
template <typename T>
T* optional_output(bool wanted, py::object given, const char* name, DT dt,
                   const std::vector<py::ssize_t>& shape, py::object& result) {
    if (!wanted) return nullptr;
    py::array a = output(given, name, dt, shape);
    result = a;
    return ptr<T>(a);
}

// Runs f(T{}) with T = float or double according to dt.
template <typename F> void with_type(DT dt, F&& f) {
    if (dt == DT::f32) f(float{}); else f(double{});
}

// A backward kernel's (dy, x, y): one float dtype, C-contiguous, all of dy's shape.
DT check_backward_args(const py::array& dy, const py::array& x, const py::array& y, int ndim) {
    const DT dt = float_dtype(dy, "dy");
    check(dy, "dy", dt, ndim);
    check(x, "x", dt, ndim);
    check(y, "y", dt, ndim);
    const auto shape = shape_vec(dy);
    check_shape(x, "x", shape);
    check_shape(y, "y", shape);
    return dt;
}

// ---- GEMM -------------------------------------------------------------------------------------

py::array gemm(py::array a, py::array b, py::array c, double alpha, double beta, bool trans_a,
               bool trans_b) {
    const DT dt = float_dtype(a, "a");
    check(a, "a", dt, 2);
    check(b, "b", dt, 2);
    check(c, "c", dt, 2, true);
    const idx M = trans_a ? a.shape(1) : a.shape(0), K = trans_a ? a.shape(0) : a.shape(1);
    const idx Kb = trans_b ? b.shape(1) : b.shape(0), N = trans_b ? b.shape(0) : b.shape(1);
    if (K != Kb)
        throw py::value_error("gemm: op(a) has shape (" + std::to_string(M) + ", " + std::to_string(K) +
                              ") but op(b) has shape (" + std::to_string(Kb) + ", " +
                              std::to_string(N) + "); inner dimensions must match");
    check_shape(c, "c", {M, N});
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        const T* A = cptr<T>(a); const T* B = cptr<T>(b); T* C = ptr<T>(c);
        py::gil_scoped_release nogil;
        fastnn::gemm<T>(trans_a, trans_b, M, N, K, T(alpha), A, a.shape(1), B, b.shape(1), T(beta),
                        C, N);
    });
    return c;
}

// ---- Dense ------------------------------------------------------------------------------------

py::array dense_forward(py::array x, py::array w, py::object b, py::object out) {
    const DT dt = float_dtype(x, "x");
    check(x, "x", dt, 2);
    check(w, "w", dt, 2);
    const idx N = x.shape(0), K = x.shape(1), M = w.shape(1);
    if (w.shape(0) != K)
        throw py::value_error("w must have shape (" + std::to_string(K) + ", units) to match x of shape " +
                              shape_of(x) + ", got " + shape_of(w));
    py::array bias;
    if (!b.is_none()) {
        bias = py::reinterpret_borrow<py::array>(py::array::ensure(b));
        if (!bias) throw py::type_error("b must be an array or None");
        check(bias, "b", dt, 1);
        check_shape(bias, "b", {M});
    }
    py::array y = output(out, "out", dt, {N, M});
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* Y = ptr<T>(y); const T* X = cptr<T>(x); const T* W = cptr<T>(w);
        const T* B = b.is_none() ? nullptr : cptr<T>(bias);
        py::gil_scoped_release nogil;
        fastnn::dense_forward<T>(Y, X, W, B, N, K, M);
    });
    return y;
}

py::tuple dense_backward(py::array dy, py::array x, py::array w, py::object dx, py::object dw,
                         py::object db, bool need_dx, bool need_db) {
    const DT dt = float_dtype(dy, "dy");
    check(dy, "dy", dt, 2);
    check(x, "x", dt, 2);
    check(w, "w", dt, 2);
    const idx N = x.shape(0), K = x.shape(1), M = w.shape(1);
    check_shape(w, "w", {K, M});
    check_shape(dy, "dy", {N, M});
    py::array gw = output(dw, "dw", dt, {K, M});
    py::object gx = py::none(), gb = py::none();
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* DX = optional_output<T>(need_dx, dx, "dx", dt, {N, K}, gx);
        T* DB = optional_output<T>(need_db, db, "db", dt, {M}, gb);
        T* DW = ptr<T>(gw);
        const T* DY = cptr<T>(dy); const T* X = cptr<T>(x); const T* W = cptr<T>(w);
        py::gil_scoped_release nogil;
        fastnn::dense_backward<T>(DX, DW, DB, DY, X, W, N, K, M);
    });
    return py::make_tuple(gx, gw, gb);
}

// ---- Activations ------------------------------------------------------------------------------

py::array act_forward(fastnn::Act act, py::array x, double alpha, py::object out) {
    const DT dt = float_dtype(x, "x");
    check(x, "x", dt, -1);
    py::array y = output(out, "out", dt, shape_vec(x));
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* Y = ptr<T>(y); const T* X = cptr<T>(x); const idx n = x.size();
        py::gil_scoped_release nogil;
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
        py::gil_scoped_release nogil;
        fastnn::act_backward<T>(act, DX, DY, X, Y, n, T(alpha));
    });
    return dx;
}

// ---- Softmax ----------------------------------------------------------------------------------

template <bool Log>
py::array softmax_fwd(py::array x, py::object out) {
    const DT dt = float_dtype(x, "x");
    check(x, "x", dt, 2);
    py::array y = output(out, "out", dt, shape_vec(x));
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* Y = ptr<T>(y); const T* X = cptr<T>(x); const idx N = x.shape(0), C = x.shape(1);
        py::gil_scoped_release nogil;
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
        py::gil_scoped_release nogil;
        if (Log) fastnn::log_softmax_backward<T>(DX, DY, Y, N, C);
        else fastnn::softmax_backward<T>(DX, DY, Y, N, C);
    });
    return dx;
}

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

// ---- Optimizers -------------------------------------------------------------------------------

void check_state(const py::array& a, const char* name, DT dt, const py::array& param) {
    check(a, name, dt, -1, true);
    check_shape(a, name, shape_vec(param));
}

void sgd_update(py::array param, py::array grad, py::object velocity, double lr, double momentum,
                bool nesterov) {
    const DT dt = float_dtype(param, "param");
    check_state(param, "param", dt, param);
    check(grad, "grad", dt, -1);
    check_shape(grad, "grad", shape_vec(param));
    py::array vel;
    if (momentum != 0.0) {
        if (velocity.is_none()) throw py::value_error("velocity is required when momentum != 0");
        if (!py::isinstance<py::array>(velocity))
            throw py::type_error("velocity must be a numpy.ndarray, got " +
                                 py::str(py::type::of(velocity)).cast<std::string>());
        vel = py::reinterpret_borrow<py::array>(velocity);
        check_state(vel, "velocity", dt, param);
    }
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* P = ptr<T>(param); const T* G = cptr<T>(grad);
        T* V = momentum != 0.0 ? ptr<T>(vel) : nullptr;
        const idx n = param.size();
        py::gil_scoped_release nogil;
        fastnn::sgd_update<T>(P, G, V, n, T(lr), T(momentum), nesterov);
    });
}

void adam_update(py::array param, py::array grad, py::array m, py::array v, double lr, double beta_1,
                 double beta_2, double epsilon, std::int64_t step) {
    const DT dt = float_dtype(param, "param");
    check_state(param, "param", dt, param);
    check(grad, "grad", dt, -1);
    check_shape(grad, "grad", shape_vec(param));
    check_state(m, "m", dt, param);
    check_state(v, "v", dt, param);
    if (step < 1) throw py::value_error("step must be >= 1 (the count including this update), got " +
                                        std::to_string(step));
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* P = ptr<T>(param); const T* G = cptr<T>(grad); T* Mm = ptr<T>(m); T* Vv = ptr<T>(v);
        const idx n = param.size();
        py::gil_scoped_release nogil;
        fastnn::adam_update<T>(P, G, Mm, Vv, n, lr, beta_1, beta_2, epsilon, step);
    });
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

PYBIND11_MODULE(_core, m) {
    m.doc() = "fastnn native kernels (C++17/OpenMP). Same names and signatures as fastnn.reference.";

    m.def("gemm", &gemm, "a"_a, "b"_a, "c"_a, "alpha"_a = 1.0, "beta"_a = 0.0, "trans_a"_a = false,
          "trans_b"_a = false, "c = alpha * op(a) @ op(b) + beta * c, in place; returns c.");
    m.def("dense_forward", &dense_forward, "x"_a, "w"_a, "b"_a = py::none(), "out"_a = py::none(),
          "y[N,M] = x[N,K] @ w[K,M] + b[M]");
    m.def("dense_backward", &dense_backward, "dy"_a, "x"_a, "w"_a, "dx"_a = py::none(),
          "dw"_a = py::none(), "db"_a = py::none(), "need_dx"_a = true, "need_db"_a = true,
          "(dx, dw, db) = (dy @ w.T, x.T @ dy, sum(dy, axis=0))");

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

    m.def("softmax_forward", &softmax_fwd<false>, "x"_a, "out"_a = py::none());
    m.def("softmax_backward", &softmax_bwd<false>, "dy"_a, "x"_a, "y"_a, "out"_a = py::none());
    m.def("log_softmax_forward", &softmax_fwd<true>, "x"_a, "out"_a = py::none());
    m.def("log_softmax_backward", &softmax_bwd<true>, "dy"_a, "x"_a, "y"_a, "out"_a = py::none());

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

    m.def("sgd_update", &sgd_update, "param"_a, "grad"_a, "velocity"_a, "learning_rate"_a,
          "momentum"_a = 0.0, "nesterov"_a = false);
    m.def("adam_update", &adam_update, "param"_a, "grad"_a, "m"_a, "v"_a, "learning_rate"_a,
          "beta_1"_a, "beta_2"_a, "epsilon"_a, "step"_a);

    m.def("cpu_capability", [] { return std::string(fastnn::capability_name(fastnn::cpu_capability())); },
          "The GEMM variant in use: 'generic' or 'avx2'.");
    m.def("available_cpu_capabilities", &fastnn::available_capabilities,
          "GEMM variants this CPU and build can run.");
    m.def("set_cpu_capability", [](const std::string& name) {
        try {
            fastnn::set_cpu_capability(fastnn::parse_capability(name));
        } catch (const std::invalid_argument& e) {
            throw py::value_error(e.what());
        }
    }, "name"_a, "Use the GEMM variant 'generic' or 'avx2' (ValueError if unavailable).");
    m.def("get_num_threads", &fastnn::max_threads, "Threads the kernels use (OpenMP max threads).");
    m.def("set_num_threads", [](int n) {
        if (n < 1) throw py::value_error("num_threads must be >= 1, got " + std::to_string(n));
#ifdef _OPENMP
        omp_set_num_threads(n);
#endif
    }, "n"_a);
#ifdef _OPENMP
    m.attr("openmp") = true;
#else
    m.attr("openmp") = false;
#endif
}
