// Shared helpers of the thin bindings (fastnn._core): dtype, shape and contiguity checks that
// raise clear Python errors, output allocation, and dispatch on float32/float64. Each bind_*.cpp
// file registers one concern's kernels; kernels themselves never include pybind11.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"

namespace fastnn {
namespace bind {

namespace py = pybind11;
using namespace py::literals;

enum class DT { f32, f64 };

inline std::string shape_of(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        if (i) s += ", ";
        s += std::to_string(a.shape(i));
    }
    return s + (a.ndim() == 1 ? ",)" : ")");
}

inline std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// Dtypes are compared by kind, size and byte order, not by identity: an unpickled array or
// numpy.longlong has an equal but distinct dtype object.
inline bool native_order(const py::dtype& dt) {
    const char order = dt.byteorder();  // '=' native, '|' not applicable, '<' little, '>' big
    if (order == '=' || order == '|') return true;
    const std::uint16_t probe = 1;
    const bool little = *reinterpret_cast<const unsigned char*>(&probe) == 1;
    return order == (little ? '<' : '>');
}

inline bool has_dtype(const py::array& a, char kind, py::ssize_t size) {
    const py::dtype dt = a.dtype();
    return dt.kind() == kind && dt.itemsize() == size && native_order(dt);
}

inline DT float_dtype(const py::array& a, const char* name) {
    if (has_dtype(a, 'f', 4)) return DT::f32;
    if (has_dtype(a, 'f', 8)) return DT::f64;
    throw py::type_error(std::string(name) + " must be a float32 or float64 array in native byte "
                         "order, got dtype " + dtype_name(a));
}

// Checks dtype, number of dimensions (-1: any), C-contiguity and, for outputs, writability.
inline void check(const py::array& a, const char* name, DT dt, int ndim, bool output = false) {
    if (float_dtype(a, name) != dt)
        throw py::type_error(std::string(name) + " must have the same dtype as the other arrays (" +
                             (dt == DT::f32 ? "float32" : "float64") + "), got " + dtype_name(a));
    if (ndim >= 0 && a.ndim() != ndim)
        throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) +
                              "-D, got shape " + shape_of(a));
    if (!(a.flags() & py::array::c_style))
        throw py::value_error(std::string(name) + " must be C-contiguous, got a strided array of shape " +
                              shape_of(a) + " (use numpy.ascontiguousarray or fastnn.ops)");
    if (!(a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))  // kernels load whole floats
        throw py::value_error(std::string(name) + " must be aligned to its element size, got a "
                              "misaligned view (use numpy.require(a, requirements='CA') or fastnn.ops)");
    if (output && !a.writeable())
        throw py::value_error(std::string(name) + " must be writeable, got a read-only array");
}

inline void check_shape(const py::array& a, const char* name, const std::vector<py::ssize_t>& shape) {
    bool ok = a.ndim() == py::ssize_t(shape.size());
    for (size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
    if (!ok) {
        py::array expected(a.dtype(), shape);
        throw py::value_error(std::string(name) + " must have shape " + shape_of(expected) +
                              ", got " + shape_of(a));
    }
}

inline std::vector<py::ssize_t> shape_vec(const py::array& a) {
    return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

inline py::dtype dtype_for(DT dt) { return dt == DT::f32 ? py::dtype::of<float>() : py::dtype::of<double>(); }

// The given output array after checks, or a new one when `out` is None.
inline py::array output(py::object out, const char* name, DT dt, const std::vector<py::ssize_t>& shape) {
    if (out.is_none()) return py::array(dtype_for(dt), shape);
    if (!py::isinstance<py::array>(out))
        throw py::type_error(std::string(name) + " must be a numpy.ndarray or None, got " +
                             py::str(py::type::of(out)).cast<std::string>());
    py::array a = py::reinterpret_borrow<py::array>(out);
    check(a, name, dt, -1, true);
    check_shape(a, name, shape);
    return a;
}

// True when two C-contiguous arrays share memory: an output that overlaps an input of a kernel
// that reads other elements than the one it writes (a GEMM) must be computed into a temporary.
inline bool overlaps(const py::array& a, const py::array& b) {
    if (a.nbytes() == 0 || b.nbytes() == 0) return false;
    const char* pa = static_cast<const char*>(a.data());
    const char* pb = static_cast<const char*>(b.data());
    return pa < pb + b.nbytes() && pb < pa + a.nbytes();
}

// A new C-contiguous array with a's dtype, shape and values.
inline py::array copy_of(const py::array& a) {
    py::array c(a.dtype(), shape_vec(a));
    if (a.nbytes()) std::memcpy(c.mutable_data(), a.data(), size_t(a.nbytes()));
    return c;
}

// Copies src's bytes into dst (same dtype and shape, both C-contiguous).
inline void copy_into(py::array& dst, const py::array& src) {
    if (src.nbytes()) std::memcpy(dst.mutable_data(), src.data(), size_t(src.nbytes()));
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

// The thread count asked for with set_num_threads, for every Python thread. OpenMP keeps the
// setting per calling thread, so each binding call first adopts the latest request -- once per
// request (a generation count), so that a later per-thread change such as a threadpoolctl limit
// still holds until set_num_threads is called again.
struct ThreadRequest {
    std::atomic<int> threads{0};
    std::atomic<long> generation{0};
};

inline ThreadRequest& thread_request() {
    static ThreadRequest request;
    return request;
}

inline void request_threads(int n) {
    thread_request().threads.store(n, std::memory_order_relaxed);
    thread_request().generation.fetch_add(1, std::memory_order_release);
}

// Set in a child process created by fork() (bind_runtime.cpp registers the handler). libgomp's
// thread pool does not survive fork(), so such a child runs every kernel on its own thread,
// whatever set the OpenMP thread count since (set_num_threads, threadpoolctl, omp_set_num_threads).
inline std::atomic<bool>& forked_child() {
    static std::atomic<bool> flag{false};
    return flag;
}

inline void apply_thread_setting() {
#ifdef _OPENMP
    if (forked_child().load(std::memory_order_relaxed)) {
        if (omp_get_max_threads() != 1) omp_set_num_threads(1);
        return;
    }
    thread_local long seen = 0;
    const long generation = thread_request().generation.load(std::memory_order_acquire);
    if (generation != seen) {
        seen = generation;
        const int n = thread_request().threads.load(std::memory_order_relaxed);
        if (n > 0) omp_set_num_threads(n);
    }
#endif
}

// Releases the GIL for a kernel and takes it back, like py::gil_scoped_release, except when the
// interpreter is finalizing: a daemon thread that returns from a kernel then is ended by
// PyEval_RestoreThread with pthread_exit, whose forced unwinding would reach this noexcept
// destructor and call std::terminate (the process would abort instead of exiting). The thread
// parks instead and the exit goes on, as it does for a daemon thread inside NumPy.
class release_gil {
public:
    release_gil() : state_(PyEval_SaveThread()) {}
    release_gil(const release_gil&) = delete;
    release_gil& operator=(const release_gil&) = delete;
    ~release_gil() {
        try {
            PyEval_RestoreThread(state_);
        } catch (...) {  // abi::__forced_unwind from pthread_exit: never return into Python
            for (;;) pause_forever();
        }
    }

private:
    static void pause_forever();
    PyThreadState* state_;
};

// Runs f(T{}) with T = float or double according to dt, with the requested thread count.
template <typename F> void with_type(DT dt, F&& f) {
    apply_thread_setting();
    if (dt == DT::f32) f(float{}); else f(double{});
}

// A backward kernel's (dy, x, y): one float dtype, C-contiguous, all of dy's shape.
inline DT check_backward_args(const py::array& dy, const py::array& x, const py::array& y, int ndim) {
    const DT dt = float_dtype(dy, "dy");
    check(dy, "dy", dt, ndim);
    check(x, "x", dt, ndim);
    check(y, "y", dt, ndim);
    const auto shape = shape_vec(dy);
    check_shape(x, "x", shape);
    check_shape(y, "y", shape);
    return dt;
}

// One registration function per concern, called from bindings.cpp.
void bind_dense(py::module_& m);        // bind_dense.cpp: gemm, dense
void bind_activations(py::module_& m);  // bind_activations.cpp: activations, softmax
void bind_losses(py::module_& m);       // bind_losses.cpp
void bind_optim(py::module_& m);        // bind_optim.cpp
void bind_norm(py::module_& m);         // bind_norm.cpp: batch/layer normalization, dropout
void bind_runtime(py::module_& m);      // bind_runtime.cpp: threads, GEMM variant
void bind_program(py::module_& m);      // bind_program.cpp: recorded programs of kernel calls

}  // namespace bind
}  // namespace fastnn
