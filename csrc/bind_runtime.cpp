// Bindings: run-time settings -- OpenMP threads and the GEMM instruction-set variant.
#include "bindings.h"
#include "gemm.h"
#include "probe.h"

#include <atomic>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define FASTNN_HAVE_ATFORK 1
#endif

namespace fastnn {
namespace bind {
namespace {

// libgomp's thread pool does not survive fork(): a child that enters a parallel region after the
// parent ran one waits forever for threads that were not copied. The child therefore runs every
// kernel on its own thread (one team member needs no pool), and refuses to start more.
std::atomic<bool> g_forked_child{false};

void after_fork_in_child() {
    g_forked_child = true;
    request_threads(1);
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
}

void register_fork_handler() {
#ifdef FASTNN_HAVE_ATFORK
    static const bool registered = pthread_atfork(nullptr, nullptr, after_fork_in_child) == 0;
    (void)registered;
#endif
}

// How this extension was compiled, for `python -m fastnn info`: the compiler, the OpenMP
// specification date it implements (0 without OpenMP), and the flags that change numerics.
py::dict build_info() {
    py::dict d;
#if defined(__clang__)
    d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    d["compiler"] = std::string("gcc ") + __VERSION__;
#elif defined(_MSC_VER)
    d["compiler"] = "msvc " + std::to_string(_MSC_FULL_VER);
#else
    d["compiler"] = "unknown";
#endif
#ifdef _OPENMP
    d["openmp_version"] = int(_OPENMP);
#else
    d["openmp_version"] = 0;
#endif
    d["cplusplus"] = long(__cplusplus);
#if defined(__OPTIMIZE__) || (defined(_MSC_VER) && !defined(_DEBUG))
    d["optimized"] = true;
#else
    d["optimized"] = false;
#endif
#ifdef __FAST_MATH__
    d["fast_math"] = true;
#else
    d["fast_math"] = false;
#endif
#if defined(__SANITIZE_ADDRESS__)
    d["sanitizers"] = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    d["sanitizers"] = true;
#else
    d["sanitizers"] = false;
#endif
#else
    d["sanitizers"] = false;
#endif
#if defined(FASTNN_HAVE_AVX2_VARIANT)
    d["simd_variants_compiled"] = py::make_tuple("generic", "avx2", "avx512");
#else
    d["simd_variants_compiled"] = py::make_tuple("generic");
#endif
    return d;
}

}  // namespace

void bind_runtime(py::module_& m) {
    register_fork_handler();
    m.def("cpu_capability", [] { return std::string(fastnn::capability_name(fastnn::cpu_capability())); },
          "The GEMM variant in use: 'generic', 'avx2' or 'avx512'.");
    m.def("available_cpu_capabilities", &fastnn::available_capabilities,
          "GEMM variants this CPU and build can run.");
    m.def("set_cpu_capability", [](const std::string& name) {
        try {
            fastnn::set_cpu_capability(fastnn::parse_capability(name));
        } catch (const std::invalid_argument& e) {
            throw py::value_error(e.what());
        }
    }, "name"_a, "Use the GEMM variant 'generic', 'avx2' or 'avx512' (ValueError if unavailable).");
    m.def("get_num_threads", [] {
        apply_thread_setting();
        return fastnn::max_threads();
    }, "Threads the kernels use: the last set_num_threads, else OMP_NUM_THREADS, else the cores.");
    m.def("measure_peak_gflops", [](double seconds) {
        if (!(seconds > 0)) throw py::value_error("seconds must be positive, got " + std::to_string(seconds));
        const fastnn::CpuCapability variant = fastnn::cpu_capability();
        apply_thread_setting();
        py::gil_scoped_release nogil;
        return fastnn::measure_peak_gflops(variant, seconds);
    }, "seconds"_a = 0.2,
    "Measured float32 multiply-add peak (GFLOP/s) on all threads, for the GEMM variant in use.");
    m.def("set_num_threads", [](int n) {
        if (n < 1) throw py::value_error("num_threads must be >= 1, got " + std::to_string(n));
        if (n > 1 && g_forked_child)
            throw std::runtime_error("this process was forked after fastnn started: OpenMP threads cannot "
                                  "be used in it, so it runs single-threaded (got num_threads=" +
                                  std::to_string(n) + "); use the 'spawn' start method for parallel workers");
#ifdef _OPENMP
        request_threads(n);  // every Python thread adopts it at its next kernel call
        apply_thread_setting();
#endif
    }, "n"_a);
#ifdef _OPENMP
    m.attr("openmp") = true;
#else
    m.attr("openmp") = false;
#endif
    m.attr("build_info") = build_info();
}

}  // namespace bind
}  // namespace fastnn
