// Bindings: optimizer updates.
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

}  // namespace

void bind_optim(py::module_& m) {
    m.def("sgd_update", &sgd_update, "param"_a, "grad"_a, "velocity"_a, "learning_rate"_a,
          "momentum"_a = 0.0, "nesterov"_a = false);
    m.def("adam_update", &adam_update, "param"_a, "grad"_a, "m"_a, "v"_a, "learning_rate"_a,
          "beta_1"_a, "beta_2"_a, "epsilon"_a, "step"_a);
}

}  // namespace bind
}  // namespace fastnn
