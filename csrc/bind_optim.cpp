// Bindings: optimizer updates, gradient norms and clipping, L1/L2 penalties.
#include <cmath>
#include <limits>

#include "bindings.h"
#include "optim.h"

namespace fastnn {
namespace bind {
namespace {

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

// ---- Gradient transforms -------------------------------------------------------------------

double sum_squares(py::array x) {
    const DT dt = float_dtype(x, "x");
    check(x, "x", dt, -1);
    double total = 0;
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        const T* X = cptr<T>(x);
        const idx n = x.size();
        py::gil_scoped_release nogil;
        total = fastnn::sum_squares<T>(X, n);
    });
    return total;
}

py::array clip_gradient(py::array grad, double scale, double clipvalue, py::object out) {
    const DT dt = float_dtype(grad, "grad");
    check(grad, "grad", dt, -1);
    if (!(clipvalue >= 0.0))
        throw py::value_error("clipvalue must be >= 0 (inf: no clipping), got " + std::to_string(clipvalue));
    py::array o = output(out, "out", dt, shape_vec(grad));
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* O = ptr<T>(o); const T* G = cptr<T>(grad);
        const idx n = grad.size();
        py::gil_scoped_release nogil;
        fastnn::clip_gradient<T>(O, G, n, T(scale), T(clipvalue));
    });
    return o;
}

double l1_l2_penalty(py::array w, double l1, double l2, py::object grad) {
    const DT dt = float_dtype(w, "w");
    check(w, "w", dt, -1);
    if (!(l1 >= 0.0) || !(l2 >= 0.0))
        throw py::value_error("l1 and l2 must be >= 0, got l1=" + std::to_string(l1) +
                              ", l2=" + std::to_string(l2));
    py::array g;
    if (!grad.is_none()) {
        if (!py::isinstance<py::array>(grad))
            throw py::type_error("grad must be a numpy.ndarray or None, got " +
                                 py::str(py::type::of(grad)).cast<std::string>());
        g = py::reinterpret_borrow<py::array>(grad);
        check_state(g, "grad", dt, w);
    }
    double penalty = 0;
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* G = grad.is_none() ? nullptr : ptr<T>(g);
        const T* W = cptr<T>(w);
        const idx n = w.size();
        py::gil_scoped_release nogil;
        penalty = fastnn::l1_l2_penalty<T>(G, W, n, l1, l2);
    });
    return penalty;
}

}  // namespace

void bind_optim(py::module_& m) {
    m.def("sgd_update", &sgd_update, "param"_a, "grad"_a, "velocity"_a, "learning_rate"_a,
          "momentum"_a = 0.0, "nesterov"_a = false);
    m.def("adam_update", &adam_update, "param"_a, "grad"_a, "m"_a, "v"_a, "learning_rate"_a,
          "beta_1"_a, "beta_2"_a, "epsilon"_a, "step"_a);
    m.def("sum_squares", &sum_squares, "x"_a, "sum(x**2), accumulated in double in a fixed order");
    m.def("clip_gradient", &clip_gradient, "grad"_a, "scale"_a = 1.0,
          "clipvalue"_a = std::numeric_limits<double>::infinity(), "out"_a = py::none(),
          "out = clip(scale * grad, -clipvalue, clipvalue)");
    m.def("l1_l2_penalty", &l1_l2_penalty, "w"_a, "l1"_a, "l2"_a, "grad"_a = py::none(),
          "l1*sum|w| + l2*sum(w**2); adds its gradient into grad when given");
}

}  // namespace bind
}  // namespace fastnn
