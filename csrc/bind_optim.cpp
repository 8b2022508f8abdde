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
        release_gil nogil;
        fastnn::sgd_update<T>(P, G, V, n, T(lr), T(momentum), nesterov);
    });
}

// An optional state array (None: not used): checked like param, or an empty array when None.
py::array optional_state(const py::object& a, const char* name, DT dt, const py::array& param) {
    if (a.is_none()) return py::array();
    if (!py::isinstance<py::array>(a))
        throw py::type_error(std::string(name) + " must be a numpy.ndarray or None, got " +
                             py::str(py::type::of(a)).cast<std::string>());
    py::array arr = py::reinterpret_borrow<py::array>(a);
    check_state(arr, name, dt, param);
    return arr;
}

void check_param_grad(const py::array& param, const py::array& grad, DT dt) {
    check_state(param, "param", dt, param);
    check(grad, "grad", dt, -1);
    check_shape(grad, "grad", shape_vec(param));
}

void adam_update(py::array param, py::array grad, py::array m, py::array v, double lr, double beta_1,
                 double beta_2, double epsilon, std::int64_t step, py::object v_hat) {
    const DT dt = float_dtype(param, "param");
    check_param_grad(param, grad, dt);
    check_state(m, "m", dt, param);
    check_state(v, "v", dt, param);
    py::array vh = optional_state(v_hat, "v_hat", dt, param);
    if (step < 1) throw py::value_error("step must be >= 1 (the count including this update), got " +
                                        std::to_string(step));
    const bool amsgrad = !v_hat.is_none();
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* P = ptr<T>(param); const T* G = cptr<T>(grad); T* Mm = ptr<T>(m); T* Vv = ptr<T>(v);
        T* Vh = amsgrad ? ptr<T>(vh) : nullptr;
        const idx n = param.size();
        release_gil nogil;
        fastnn::adam_update<T>(P, G, Mm, Vv, Vh, n, lr, beta_1, beta_2, epsilon, step);
    });
}

void adagrad_update(py::array param, py::array grad, py::array accumulator, double lr, double epsilon) {
    const DT dt = float_dtype(param, "param");
    check_param_grad(param, grad, dt);
    check_state(accumulator, "accumulator", dt, param);
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* P = ptr<T>(param); const T* G = cptr<T>(grad); T* A = ptr<T>(accumulator);
        const idx n = param.size();
        release_gil nogil;
        fastnn::adagrad_update<T>(P, G, A, n, T(lr), T(epsilon));
    });
}

void rmsprop_update(py::array param, py::array grad, py::array velocity, py::object average_grad,
                    py::object momentum_velocity, double lr, double rho, double momentum,
                    double epsilon) {
    const DT dt = float_dtype(param, "param");
    check_param_grad(param, grad, dt);
    check_state(velocity, "velocity", dt, param);
    py::array avg = optional_state(average_grad, "average_grad", dt, param);
    py::array mom = optional_state(momentum_velocity, "momentum_velocity", dt, param);
    if (momentum != 0.0 && momentum_velocity.is_none())
        throw py::value_error("momentum_velocity is required when momentum != 0");
    const bool centered = !average_grad.is_none(), with_momentum = !momentum_velocity.is_none();
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* P = ptr<T>(param); const T* G = cptr<T>(grad); T* V = ptr<T>(velocity);
        T* A = centered ? ptr<T>(avg) : nullptr;
        T* M = with_momentum ? ptr<T>(mom) : nullptr;
        const idx n = param.size();
        release_gil nogil;
        fastnn::rmsprop_update<T>(P, G, V, A, M, n, T(lr), rho, T(momentum), T(epsilon));
    });
}

void weight_decay_update(py::array param, double lr, double weight_decay) {
    const DT dt = float_dtype(param, "param");
    check_state(param, "param", dt, param);
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* P = ptr<T>(param);
        const idx n = param.size();
        release_gil nogil;
        fastnn::weight_decay_update<T>(P, n, T(lr), T(weight_decay));
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
        release_gil nogil;
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
        release_gil nogil;
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
        release_gil nogil;
        penalty = fastnn::l1_l2_penalty<T>(G, W, n, l1, l2);
    });
    return penalty;
}

}  // namespace

void bind_optim(py::module_& m) {
    m.def("sgd_update", &sgd_update, "param"_a, "grad"_a, "velocity"_a, "learning_rate"_a,
          "momentum"_a = 0.0, "nesterov"_a = false);
    m.def("adam_update", &adam_update, "param"_a, "grad"_a, "m"_a, "v"_a, "learning_rate"_a,
          "beta_1"_a, "beta_2"_a, "epsilon"_a, "step"_a, "v_hat"_a = py::none());
    m.def("adagrad_update", &adagrad_update, "param"_a, "grad"_a, "accumulator"_a,
          "learning_rate"_a, "epsilon"_a);
    m.def("rmsprop_update", &rmsprop_update, "param"_a, "grad"_a, "velocity"_a, "average_grad"_a,
          "momentum_velocity"_a, "learning_rate"_a, "rho"_a, "momentum"_a, "epsilon"_a);
    m.def("weight_decay_update", &weight_decay_update, "param"_a, "learning_rate"_a,
          "weight_decay"_a, "param -= param * weight_decay * learning_rate (Keras 3)");
    m.def("sum_squares", &sum_squares, "x"_a, "sum(x**2), accumulated in double in a fixed order");
    m.def("clip_gradient", &clip_gradient, "grad"_a, "scale"_a = 1.0,
          "clipvalue"_a = std::numeric_limits<double>::infinity(), "out"_a = py::none(),
          "out = clip(scale * grad, -clipvalue, clipvalue)");
    m.def("l1_l2_penalty", &l1_l2_penalty, "w"_a, "l1"_a, "l2"_a, "grad"_a = py::none(),
          "l1*sum|w| + l2*sum(w**2); adds its gradient into grad when given");
}

}  // namespace bind
}  // namespace fastnn
