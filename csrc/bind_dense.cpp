// Bindings: GEMM and the dense layer.
#include "bindings.h"
#include "dense.h"
#include "gemm.h"

namespace fastnn {
namespace bind {
namespace {

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
    // c = a @ b with c sharing a's or b's memory: compute into a copy of c, as NumPy does.
    const bool shared = overlaps(c, a) || overlaps(c, b);
    py::array target = shared ? copy_of(c) : c;
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        const T* A = cptr<T>(a); const T* B = cptr<T>(b); T* C = ptr<T>(target);
        release_gil nogil;
        fastnn::gemm<T>(trans_a, trans_b, M, N, K, T(alpha), A, a.shape(1), B, b.shape(1), T(beta),
                        C, N);
    });
    if (shared) copy_into(c, target);
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
    const bool shared = overlaps(y, x) || overlaps(y, w) || (!b.is_none() && overlaps(y, bias));
    py::array target = shared ? py::array(y.dtype(), shape_vec(y)) : y;
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* Y = ptr<T>(target); const T* X = cptr<T>(x); const T* W = cptr<T>(w);
        const T* B = b.is_none() ? nullptr : cptr<T>(bias);
        release_gil nogil;
        fastnn::dense_forward<T>(Y, X, W, B, N, K, M);
    });
    if (shared) copy_into(y, target);
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
    // Outputs that share memory with an input or with each other are computed into temporaries.
    std::vector<std::pair<py::array, py::array>> copies;  // (caller's output, temporary)
    auto separate = [&](py::array a, const std::vector<py::array>& others) {
        for (const auto& o : others)
            if (overlaps(a, o)) {
                py::array tmp(a.dtype(), shape_vec(a));
                copies.emplace_back(a, tmp);
                return tmp;
            }
        return a;
    };
    with_type(dt, [&](auto tag) {
        using T = decltype(tag);
        T* DX = optional_output<T>(need_dx, dx, "dx", dt, {N, K}, gx);
        T* DB = optional_output<T>(need_db, db, "db", dt, {M}, gb);
        std::vector<py::array> inputs{dy, x, w};
        py::array gw_t = separate(gw, inputs);
        inputs.push_back(gw);
        T* DW = ptr<T>(gw_t);
        if (DX) {
            py::array a = py::reinterpret_borrow<py::array>(gx), t = separate(a, inputs);
            inputs.push_back(a);
            DX = ptr<T>(t);
        }
        if (DB) {
            py::array a = py::reinterpret_borrow<py::array>(gb), t = separate(a, inputs);
            DB = ptr<T>(t);
        }
        const T* DY = cptr<T>(dy); const T* X = cptr<T>(x); const T* W = cptr<T>(w);
        release_gil nogil;
        fastnn::dense_backward<T>(DX, DW, DB, DY, X, W, N, K, M);
    });
    for (auto& c : copies) copy_into(c.first, c.second);
    return py::make_tuple(gx, gw, gb);
}

}  // namespace

void bind_dense(py::module_& m) {
    m.def("gemm", &gemm, "a"_a, "b"_a, "c"_a, "alpha"_a = 1.0, "beta"_a = 0.0, "trans_a"_a = false,
          "trans_b"_a = false, "c = alpha * op(a) @ op(b) + beta * c, in place; returns c.");
    m.def("dense_forward", &dense_forward, "x"_a, "w"_a, "b"_a = py::none(), "out"_a = py::none(),
          "y[N,M] = x[N,K] @ w[K,M] + b[M]");
    m.def("dense_backward", &dense_backward, "dy"_a, "x"_a, "w"_a, "dx"_a = py::none(),
          "dw"_a = py::none(), "db"_a = py::none(), "need_dx"_a = true, "need_db"_a = true,
          "(dx, dw, db) = (dy @ w.T, x.T @ dy, sum(dy, axis=0))");
}

}  // namespace bind
}  // namespace fastnn
