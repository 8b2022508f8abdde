// Bindings: the compiled training plan (plan.h). fastnn/plan.py describes a model as plain dicts
// holding its layers' own arrays; this file turns them into a Plan<T> once. The plan keeps
// references to every array it points into, so they outlive it.
#include "bindings.h"
#include "plan.h"

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <type_traits>

namespace fastnn {
namespace bind {
namespace {

template <typename E>
E lookup(const std::map<std::string, E>& table, const std::string& name, const char* what) {
    auto it = table.find(name);
    if (it == table.end()) throw py::value_error(std::string("unknown ") + what + " '" + name + "'");
    return it->second;
}

struct Reader {
    py::dict d;
    DT dt;
    std::vector<py::object>* keep;

    bool has(const char* key) const { return d.contains(key) && !d[key].is_none(); }
    template <typename V> V get(const char* key, V fallback) const {
        return has(key) ? d[key].cast<V>() : fallback;
    }
    // A float array of the plan's dtype, C-contiguous and writable, or nullptr when absent.
    template <typename T> T* array(const char* key, idx size = -1) const {
        if (!has(key)) return nullptr;
        py::array a = py::reinterpret_borrow<py::array>(py::array::ensure(d[key]));
        if (!a) throw py::type_error(std::string("plan entry '") + key + "' must be an array");
        check(a, key, dt, -1, true);
        if (size >= 0 && idx(a.size()) != size)
            throw py::value_error(std::string("plan entry '") + key + "' has " +
                                  std::to_string(a.size()) + " values, expected " + std::to_string(size));
        keep->push_back(a);
        return static_cast<T*>(a.mutable_data());
    }
};

template <typename T>
ActSpec<T> read_act(const Reader& r) {
    static const std::map<std::string, Act> elementwise = {
        {"linear", Act::linear}, {"step", Act::step}, {"sigmoid", Act::sigmoid}, {"tanh", Act::tanh},
        {"relu", Act::relu}, {"leaky_relu", Act::leaky_relu}, {"elu", Act::elu}, {"selu", Act::selu},
        {"softplus", Act::softplus}};
    ActSpec<T> a;
    const std::string name = r.get<std::string>("activation", "linear");
    if (name == "softmax") a.kind = ActKind::softmax;
    else if (name == "log_softmax") a.kind = ActKind::log_softmax;
    else a.act = lookup(elementwise, name, "activation");
    a.alpha = T(r.get<double>("alpha", 0.0));
    return a;
}

template <typename T>
std::unique_ptr<Plan<T>> build(DT dt, py::list layers, py::dict loss, py::dict optimizer,
                               py::list penalties, int first_backward, std::vector<py::object>& keep) {
    static const std::map<std::string, LayerKind> layer_kinds = {
        {"dense", LayerKind::dense}, {"activation", LayerKind::activation},
        {"batchnorm", LayerKind::batchnorm}, {"layernorm", LayerKind::layernorm},
        {"dropout", LayerKind::dropout}, {"identity", LayerKind::identity}};
    static const std::map<std::string, LossKind> loss_kinds = {
        {"sparse_softmax_cross_entropy", LossKind::sparse_ce}, {"softmax_cross_entropy", LossKind::ce},
        {"sigmoid_binary_cross_entropy", LossKind::bce}, {"hinge", LossKind::hinge},
        {"kl_divergence", LossKind::kld}, {"mean_squared_error", LossKind::mse},
        {"mean_absolute_error", LossKind::mae}, {"huber", LossKind::huber}, {"log_cosh", LossKind::log_cosh}};
    static const std::map<std::string, LossInput> loss_inputs = {
        {"logits", LossInput::logits}, {"probabilities", LossInput::probabilities},
        {"direct", LossInput::direct}};
    static const std::map<std::string, OptKind> opt_kinds = {
        {"sgd", OptKind::sgd}, {"adagrad", OptKind::adagrad}, {"rmsprop", OptKind::rmsprop},
        {"adam", OptKind::adam}};
    static const std::map<std::string, ClipKind> clip_kinds = {
        {"none", ClipKind::none}, {"value", ClipKind::value}, {"norm", ClipKind::norm},
        {"global_norm", ClipKind::global_norm}};

    auto plan = std::make_unique<Plan<T>>();
    if (layers.size() == 0) throw py::value_error("a training plan needs at least one layer");
    for (auto item : layers) {
        Reader r{item.cast<py::dict>(), dt, &keep};
        PlanLayer<T> L;
        L.kind = lookup(layer_kinds, r.get<std::string>("kind", ""), "layer kind");
        L.in_size = r.get<idx>("in_size", 0);
        L.out_size = r.get<idx>("out_size", 0);
        L.channels = r.get<idx>("channels", 1);
        if (L.in_size <= 0 || L.out_size <= 0 || L.channels <= 0 || L.out_size % L.channels)
            throw py::value_error("plan layer sizes must be positive (and out_size a multiple of channels)");
        L.trainable = r.get<bool>("trainable", true);
        L.act = read_act<T>(r);
        L.momentum = r.get<double>("momentum", 0.0);
        L.epsilon = r.get<double>("epsilon", 0.0);
        L.rate = r.get<double>("rate", 0.0);
        const idx weights = L.in_size * L.out_size, C = L.channels;
        if (L.kind == LayerKind::dense) {
            L.W = r.array<T>("W", weights);
            L.dW = r.array<T>("dW", weights);
            L.b = r.array<T>("b", L.out_size);
            L.db = r.array<T>("db", L.out_size);
            if (!L.W || !L.dW || (L.b && !L.db)) throw py::value_error("dense plan layer needs W, dW (and db with b)");
        }
        if (L.kind == LayerKind::batchnorm || L.kind == LayerKind::layernorm) {
            L.gamma = r.array<T>("gamma", C); L.dgamma = r.array<T>("dgamma", C);
            L.beta = r.array<T>("beta", C); L.dbeta = r.array<T>("dbeta", C);
            if ((L.gamma && !L.dgamma) || (L.beta && !L.dbeta))
                throw py::value_error("normalization plan layer needs dgamma/dbeta with gamma/beta");
        }
        if (L.kind == LayerKind::batchnorm) {
            L.moving_mean = r.array<T>("moving_mean", C);
            L.moving_var = r.array<T>("moving_variance", C);
            if (!L.moving_mean || !L.moving_var) throw py::value_error("batchnorm plan layer needs moving statistics");
        }
        if (L.kind == LayerKind::dropout) {
            py::array s = py::reinterpret_borrow<py::array>(py::array::ensure(r.d["stream"]));
            if (!s || !has_dtype(s, 'u', 8) || s.size() != 2 || !(s.flags() & py::array::c_style) || !s.writeable())
                throw py::value_error("dropout plan layer needs 'stream', a writable uint64 array {key, step}");
            keep.push_back(s);
            L.stream = static_cast<std::uint64_t*>(s.mutable_data());
        }
        plan->layers.push_back(std::move(L));
    }
    for (size_t i = 1; i < plan->layers.size(); ++i)
        if (plan->layers[i].in_size != plan->layers[i - 1].out_size)
            throw py::value_error("plan layer " + std::to_string(i) + " takes " +
                                  std::to_string(plan->layers[i].in_size) + " values per sample, the one "
                                  "before gives " + std::to_string(plan->layers[i - 1].out_size));

    Reader lr{loss, dt, &keep};
    plan->loss.kind = lookup(loss_kinds, lr.get<std::string>("kernel", ""), "loss kernel");
    plan->loss.input = lookup(loss_inputs, lr.get<std::string>("input", "direct"), "loss input");
    plan->loss.fused = lr.get<bool>("fused", false);
    plan->loss.param = T(lr.get<double>("param", 0.0));
    plan->loss.clip_eps = lr.get<double>("clip_eps", 1e-7);

    Reader orr{optimizer, dt, &keep};
    auto& o = plan->optimizer;
    o.kind = lookup(opt_kinds, orr.get<std::string>("kind", ""), "optimizer");
    o.momentum = orr.get<double>("momentum", 0.0);
    o.nesterov = orr.get<bool>("nesterov", false);
    o.beta_1 = orr.get<double>("beta_1", 0.0);
    o.beta_2 = orr.get<double>("beta_2", 0.0);
    o.rho = orr.get<double>("rho", 0.0);
    o.epsilon = orr.get<double>("epsilon", 0.0);
    o.weight_decay = orr.get<double>("weight_decay", 0.0);
    o.clip = lookup(clip_kinds, orr.get<std::string>("clip", "none"), "clipping");
    o.clip_value = orr.get<double>("clip_value", 0.0);
    for (auto item : optimizer["params"].cast<py::list>()) {
        Reader pr{item.cast<py::dict>(), dt, &keep};
        PlanParam<T> q;
        q.p = pr.array<T>("p");
        if (!q.p) throw py::value_error("optimizer plan entry needs 'p'");
        q.n = idx(keep.back().cast<py::array>().size());
        q.g = pr.array<T>("g", q.n);
        q.s0 = pr.array<T>("s0", q.n); q.s1 = pr.array<T>("s1", q.n); q.s2 = pr.array<T>("s2", q.n);
        const bool needs_state = o.kind == OptKind::adagrad || o.kind == OptKind::rmsprop ||
                                 o.kind == OptKind::adam || o.momentum != 0;
        if (!q.p || !q.g || (needs_state && !q.s0) || (o.kind == OptKind::adam && !q.s1))
            throw py::value_error("optimizer plan entry needs p, g and the optimizer's state arrays");
        if (o.clip != ClipKind::none) q.clipped.resize(q.n);
        o.params.push_back(std::move(q));
    }
    for (auto item : penalties) {
        Reader pr{item.cast<py::dict>(), dt, &keep};
        PlanPenalty<T> pen;
        pen.w = pr.array<T>("w");
        if (!pen.w) throw py::value_error("penalty plan entry needs 'w'");
        pen.n = idx(keep.back().cast<py::array>().size());
        pen.g = pr.array<T>("g", pen.n);
        pen.l1 = pr.get<double>("l1", 0.0);
        pen.l2 = pr.get<double>("l2", 0.0);
        pen.layer = pr.get<int>("layer", 0);
        plan->penalties.push_back(pen);
    }
    if (first_backward < 0) throw py::value_error("first_backward must be >= 0");
    plan->first_backward = first_backward;
    return plan;
}

// The bound object: a Plan<float> or a Plan<double>, plus references to the arrays it uses.
class TrainingPlan {
public:
    TrainingPlan(const std::string& dtype, py::list layers, py::dict loss, py::dict optimizer,
                 py::list penalties, int first_backward) {
        if (dtype == "float32") dt_ = DT::f32;
        else if (dtype == "float64") dt_ = DT::f64;
        else throw py::type_error("a training plan's dtype must be 'float32' or 'float64', got '" + dtype + "'");
        if (dt_ == DT::f32) f32_ = build<float>(dt_, layers, loss, optimizer, penalties, first_backward, keep_);
        else f64_ = build<double>(dt_, layers, loss, optimizer, penalties, first_backward, keep_);
        in_size_ = dt_ == DT::f32 ? f32_->layers.front().in_size : f64_->layers.front().in_size;
        out_size_ = dt_ == DT::f32 ? f32_->layers.back().out_size : f64_->layers.back().out_size;
        sparse_ = (dt_ == DT::f32 ? f32_->loss.kind : f64_->loss.kind) == LossKind::sparse_ce;
    }

    double train_step(py::array x, py::array y, double lr, std::int64_t step, bool want_outputs) {
        const idx n = check_x(x);
        if (sparse_) {
            if (!has_dtype(y, 'i', 8) || !(y.flags() & py::array::c_style) ||
                !(y.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) || idx(y.size()) != n)
                throw py::type_error("labels must be a C-contiguous, aligned int64 array of " + std::to_string(n) +
                                     " values, got dtype " + dtype_name(y) + " and shape " + shape_of(y));
        } else {
            check(y, "y", dt_, -1);
            if (idx(y.size()) != n * out_size_)
                throw py::value_error("targets must hold " + std::to_string(n * out_size_) + " values, got " +
                                      "shape " + shape_of(y));
        }
        if (step < 1) throw py::value_error("step must be >= 1, got " + std::to_string(step));
        double loss = 0;
        with_type(dt_, [&](auto tag) {
            using T = decltype(tag);
            auto& plan = get<T>();
            const T* X = cptr<T>(x);
            const void* Y = y.data();
            py::gil_scoped_release nogil;
            loss = plan.train_step(X, Y, n, lr, step, want_outputs);
        });
        return loss;
    }

    void predict(py::array x, py::array out) {
        const idx n = check_x(x);
        check(out, "out", dt_, -1, true);
        if (idx(out.size()) != n * out_size_)
            throw py::value_error("out must hold " + std::to_string(n * out_size_) + " values, got shape " +
                                  shape_of(out));
        if (n == 0) return;
        with_type(dt_, [&](auto tag) {
            using T = decltype(tag);
            auto& plan = get<T>();
            const T* X = cptr<T>(x);
            T* O = ptr<T>(out);
            py::gil_scoped_release nogil;
            plan.predict(X, O, n);
        });
    }

    // The model outputs of the last training step, rows [0, n), as a read-only view (valid until
    // the next call).
    static py::array outputs(py::object self, idx n) {
        auto& p = self.cast<TrainingPlan&>();
        const void* data = p.dt_ == DT::f32 ? static_cast<const void*>(p.f32_->outputs())
                                            : static_cast<const void*>(p.f64_->outputs());
        const idx cap = p.dt_ == DT::f32 ? p.f32_->capacity() : p.f64_->capacity();
        if (!data || n < 0 || n > cap) throw py::value_error("no outputs for " + std::to_string(n) + " rows");
        py::array view(dtype_for(p.dt_), std::vector<py::ssize_t>{n, p.out_size_}, data, self);
        py::detail::array_proxy(view.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
        return view;
    }

    idx capacity() const { return dt_ == DT::f32 ? f32_->capacity() : f64_->capacity(); }

private:
    template <typename T> Plan<T>& get() {
        if constexpr (std::is_same_v<T, float>) return *f32_; else return *f64_;
    }
    idx check_x(const py::array& x) const {
        check(x, "x", dt_, -1);
        if (x.ndim() < 1) throw py::value_error("x must have a batch axis, got a 0-d array");
        const idx n = x.shape(0);
        if (idx(x.size()) != n * in_size_)
            throw py::value_error("x must have " + std::to_string(in_size_) + " values per sample, got shape " +
                                  shape_of(x));
        return n;
    }
    DT dt_ = DT::f32;
    std::unique_ptr<Plan<float>> f32_;
    std::unique_ptr<Plan<double>> f64_;
    std::vector<py::object> keep_;
    idx in_size_ = 0, out_size_ = 0;
    bool sparse_ = false;
};

}  // namespace

void bind_plan(py::module_& m) {
    py::class_<TrainingPlan>(m, "TrainingPlan",
                             "A whole model compiled for one-call training steps (built by fastnn.plan).")
        .def(py::init<const std::string&, py::list, py::dict, py::dict, py::list, int>(), "dtype"_a,
             "layers"_a, "loss"_a, "optimizer"_a, "penalties"_a, "first_backward"_a)
        .def("train_step", &TrainingPlan::train_step, "x"_a, "y"_a, "learning_rate"_a, "step"_a,
             "want_outputs"_a = false,
             "One step: forward, loss, backward, penalties, optimizer update. Returns the loss.")
        .def("predict", &TrainingPlan::predict, "x"_a, "out"_a, "Inference pass of x into out.")
        .def("outputs", &TrainingPlan::outputs, "n"_a, "The last training step's model outputs.")
        .def_property_readonly("capacity", &TrainingPlan::capacity, "Rows the buffers hold now.");
}

}  // namespace bind
}  // namespace fastnn
