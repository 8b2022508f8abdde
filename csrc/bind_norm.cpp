// Bindings: batch normalization, layer normalization and dropout.
#include <cmath>

#include "bindings.h"
#include "dropout.h"
#include "norm.h"

namespace fastnn {
namespace bind {
namespace {

// An optional per-feature parameter (gamma or beta) of shape (C,), or nullptr for None.
template <typename T>
const T* optional_param(const py::object& p, const char* name, DT dt, idx C, py::array& keep) {
    if (p.is_none()) return nullptr;
    if (!py::isinstance<py::array>(p))
        throw py::type_error(std::string(name) + " must be a numpy.ndarray or None, got " +
                             py::str(py::type::of(p)).cast<std::string>());
    keep = py::reinterpret_borrow<py::array>(p);
    check(keep, name, dt, 1);
    check_shape(keep, name, {C});
    return cptr<T>(keep);
}

void check_vector(const py::array& a, const char* name, DT dt, idx C, bool output = false) {
    check(a, name, dt, 1, output);
    check_shape(a, name, {C});
}

void check_epsilon(double eps) {
    if (!(eps >= 0.0) || !std::isfinite(eps))
        throw py::value_error("epsilon must be a finite number >= 0, got " + std::to_string(eps));
}

// ---- Batch normalization ----------------------------------------------------------------------

py::tuple batchnorm_forward(py::array x, py::object gamma, py::object beta, py::array moving_mean,
                            py::array moving_variance, double momentum, double epsilon,
                            py::object out, py::object mean, py::object rstd) {
    const DT dt = float_dtype(x, "x");
    check(x, "x", dt, 2);
    const idx N = x.shape(0), C = x.shape(1);
    if (N < 1) throw py::value_error("batch normalization in training mode needs at least one row, got x of shape " + shape_of(x));
    check_vector(moving_mean, "moving_mean", dt, C, true);
    check_vector(moving_variance, "moving_variance", dt, C, true);
    if (!(momentum >= 0.0 && momentum <= 1.0))
        throw py::value_error("momentum must be in [0, 1], got " + std::to_string(momentum));
    check_epsilon(epsilon);
    py::array y = output(out, "out", dt, {N, C});
    py::array m = output(mean, "mean", dt, {C});
    py::array r = output(rstd, "rstd", dt, {C});
    py::array g, b;
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        const T* G = optional_param<T>(gamma, "gamma", dt, C, g);
        const T* B = optional_param<T>(beta, "beta", dt, C, b);
        T* Y = ptr<T>(y); T* M = ptr<T>(m); T* R = ptr<T>(r);
        T* MM = ptr<T>(moving_mean); T* MV = ptr<T>(moving_variance);
        const T* X = cptr<T>(x);
        release_gil nogil;
        fastnn::batchnorm_forward<T>(Y, M, R, MM, MV, X, G, B, N, C, momentum, epsilon);
    });
    return py::make_tuple(y, m, r);
}

py::array batchnorm_inference(py::array x, py::object gamma, py::object beta, py::array moving_mean,
                              py::array moving_variance, double epsilon, py::object out) {
    const DT dt = float_dtype(x, "x");
    check(x, "x", dt, 2);
    const idx N = x.shape(0), C = x.shape(1);
    check_vector(moving_mean, "moving_mean", dt, C);
    check_vector(moving_variance, "moving_variance", dt, C);
    check_epsilon(epsilon);
    py::array y = output(out, "out", dt, {N, C});
    py::array g, b;
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        const T* G = optional_param<T>(gamma, "gamma", dt, C, g);
        const T* B = optional_param<T>(beta, "beta", dt, C, b);
        T* Y = ptr<T>(y); const T* X = cptr<T>(x);
        const T* MM = cptr<T>(moving_mean); const T* MV = cptr<T>(moving_variance);
        release_gil nogil;
        fastnn::batchnorm_inference<T>(Y, X, G, B, MM, MV, N, C, epsilon);
    });
    return y;
}

// Shared by batch and layer norm backward: stats has length `stats_len` (C for batch norm, N for
// layer norm).
template <typename Kernel>
py::tuple norm_backward(py::array dy, py::array x, py::object gamma, py::array mean, py::array rstd,
                        py::object dx, py::object dgamma, py::object dbeta, bool need_dx,
                        bool need_dgamma, bool need_dbeta, bool per_row, Kernel kernel) {
    const DT dt = float_dtype(dy, "dy");
    check(dy, "dy", dt, 2);
    check(x, "x", dt, 2);
    check_shape(x, "x", shape_vec(dy));
    const idx N = x.shape(0), C = x.shape(1);
    check_vector(mean, "mean", dt, per_row ? N : C);
    check_vector(rstd, "rstd", dt, per_row ? N : C);
    py::object gx = py::none(), gg = py::none(), gb = py::none();
    py::array g;
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        const T* G = optional_param<T>(gamma, "gamma", dt, C, g);
        T* DX = optional_output<T>(need_dx, dx, "dx", dt, {N, C}, gx);
        T* DG = optional_output<T>(need_dgamma, dgamma, "dgamma", dt, {C}, gg);
        T* DB = optional_output<T>(need_dbeta, dbeta, "dbeta", dt, {C}, gb);
        const T* DY = cptr<T>(dy); const T* X = cptr<T>(x);
        const T* M = cptr<T>(mean); const T* R = cptr<T>(rstd);
        release_gil nogil;
        kernel(DX, DG, DB, DY, X, G, M, R, N, C);
    });
    return py::make_tuple(gx, gg, gb);
}

struct BatchNormBackward {
    template <typename T>
    void operator()(T* dx, T* dg, T* db, const T* dy, const T* x, const T* g, const T* m, const T* r,
                    idx N, idx C) const {
        fastnn::batchnorm_backward<T>(dx, dg, db, dy, x, g, m, r, N, C);
    }
};
struct LayerNormBackward {
    template <typename T>
    void operator()(T* dx, T* dg, T* db, const T* dy, const T* x, const T* g, const T* m, const T* r,
                    idx N, idx C) const {
        fastnn::layernorm_backward<T>(dx, dg, db, dy, x, g, m, r, N, C);
    }
};

// ---- Layer normalization ----------------------------------------------------------------------

py::tuple layernorm_forward(py::array x, py::object gamma, py::object beta, double epsilon,
                            py::object out, py::object mean, py::object rstd) {
    const DT dt = float_dtype(x, "x");
    check(x, "x", dt, 2);
    const idx N = x.shape(0), C = x.shape(1);
    if (C < 1) throw py::value_error("layer normalization needs at least one feature, got x of shape " + shape_of(x));
    check_epsilon(epsilon);
    py::array y = output(out, "out", dt, {N, C});
    py::array m = output(mean, "mean", dt, {N});
    py::array r = output(rstd, "rstd", dt, {N});
    py::array g, b;
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        const T* G = optional_param<T>(gamma, "gamma", dt, C, g);
        const T* B = optional_param<T>(beta, "beta", dt, C, b);
        T* Y = ptr<T>(y); T* M = ptr<T>(m); T* R = ptr<T>(r); const T* X = cptr<T>(x);
        release_gil nogil;
        fastnn::layernorm_forward<T>(Y, M, R, X, G, B, N, C, epsilon);
    });
    return py::make_tuple(y, m, r);
}

// ---- Dropout ----------------------------------------------------------------------------------

py::tuple dropout_forward(py::array x, double rate, std::uint64_t seed, std::uint64_t counter,
                          py::object out, py::object mask) {
    const DT dt = float_dtype(x, "x");
    check(x, "x", dt, -1);
    if (!(rate >= 0.0 && rate < 1.0))
        throw py::value_error("rate must be in [0, 1), got " + std::to_string(rate));
    const auto shape = shape_vec(x);
    py::array y = output(out, "out", dt, shape);
    py::array k = output(mask, "mask", dt, shape);
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* Y = ptr<T>(y); T* K = ptr<T>(k); const T* X = cptr<T>(x);
        const idx n = x.size();
        release_gil nogil;
        fastnn::dropout_forward<T>(Y, K, X, n, rate, seed, counter);
    });
    return py::make_tuple(y, k);
}

py::array dropout_backward(py::array dy, py::array mask, py::object out) {
    const DT dt = float_dtype(dy, "dy");
    check(dy, "dy", dt, -1);
    check(mask, "mask", dt, -1);
    const auto shape = shape_vec(dy);
    check_shape(mask, "mask", shape);
    py::array dx = output(out, "out", dt, shape);
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* DX = ptr<T>(dx); const T* DY = cptr<T>(dy); const T* K = cptr<T>(mask);
        const idx n = dy.size();
        release_gil nogil;
        fastnn::dropout_backward<T>(DX, DY, K, n);
    });
    return dx;
}

}  // namespace

void bind_norm(py::module_& m) {
    m.def("batchnorm_forward", &batchnorm_forward, "x"_a, "gamma"_a, "beta"_a, "moving_mean"_a,
          "moving_variance"_a, "momentum"_a, "epsilon"_a, "out"_a = py::none(), "mean"_a = py::none(),
          "rstd"_a = py::none(),
          "Training mode: (y, mean, rstd); updates moving_mean / moving_variance in place.");
    m.def("batchnorm_inference", &batchnorm_inference, "x"_a, "gamma"_a, "beta"_a, "moving_mean"_a,
          "moving_variance"_a, "epsilon"_a, "out"_a = py::none(),
          "y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta");
    m.def("batchnorm_backward",
          [](py::array dy, py::array x, py::object gamma, py::array mean, py::array rstd,
             py::object dx, py::object dgamma, py::object dbeta, bool need_dx, bool need_dgamma,
             bool need_dbeta) {
              return norm_backward(dy, x, gamma, mean, rstd, dx, dgamma, dbeta, need_dx, need_dgamma,
                                   need_dbeta, false, BatchNormBackward{});
          },
          "dy"_a, "x"_a, "gamma"_a, "mean"_a, "rstd"_a, "dx"_a = py::none(), "dgamma"_a = py::none(),
          "dbeta"_a = py::none(), "need_dx"_a = true, "need_dgamma"_a = true, "need_dbeta"_a = true,
          "(dx, dgamma, dbeta) of the training-mode batch normalization");
    m.def("layernorm_forward", &layernorm_forward, "x"_a, "gamma"_a, "beta"_a, "epsilon"_a,
          "out"_a = py::none(), "mean"_a = py::none(), "rstd"_a = py::none(),
          "(y, mean, rstd) with per-row statistics");
    m.def("layernorm_backward",
          [](py::array dy, py::array x, py::object gamma, py::array mean, py::array rstd,
             py::object dx, py::object dgamma, py::object dbeta, bool need_dx, bool need_dgamma,
             bool need_dbeta) {
              return norm_backward(dy, x, gamma, mean, rstd, dx, dgamma, dbeta, need_dx, need_dgamma,
                                   need_dbeta, true, LayerNormBackward{});
          },
          "dy"_a, "x"_a, "gamma"_a, "mean"_a, "rstd"_a, "dx"_a = py::none(), "dgamma"_a = py::none(),
          "dbeta"_a = py::none(), "need_dx"_a = true, "need_dgamma"_a = true, "need_dbeta"_a = true,
          "(dx, dgamma, dbeta) of layer normalization");
    m.def("dropout_forward", &dropout_forward, "x"_a, "rate"_a, "seed"_a, "counter"_a,
          "out"_a = py::none(), "mask"_a = py::none(),
          "Inverted dropout: (y, mask), y = x * mask, mask in {0, 1/(1-rate)} from (seed, counter, i)");
    m.def("dropout_backward", &dropout_backward, "dy"_a, "mask"_a, "out"_a = py::none(),
          "dx = dy * mask");
}

}  // namespace bind
}  // namespace fastnn
