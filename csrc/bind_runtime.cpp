// Bindings: run-time settings -- OpenMP threads and the GEMM instruction-set variant.
#include "bindings.h"
#include "gemm.h"
#include "probe.h"
#include "threads.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

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
void after_fork_in_child() {
    forked_child() = true;
    request_threads(1);
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
}

// The team size before any setting: OMP_NUM_THREADS, else the cores' count.
int default_threads() {
#ifdef _OPENMP
    static const int n = omp_get_max_threads();
    return n;
#else
    return 1;
#endif
}

void register_fork_handler() {
#ifdef FASTNN_HAVE_ATFORK
    static const bool registered = pthread_atfork(nullptr, nullptr, after_fork_in_child) == 0;
    (void)registered;
#endif
}

// The largest thread count set_num_threads accepts: 4 threads per CPU (more only oversubscribes,
// and thousands make libgomp end the process when the OS refuses a thread).
int max_thread_setting() {
    const unsigned cpus = std::thread::hardware_concurrency();
    return 4 * int(cpus > 0 ? cpus : 1);
}

// libgomp ends the process when it cannot create a thread. Before asking it for n threads, create
// n - 1 threads that all live at once and see whether the OS allows them; a refusal becomes a
// RuntimeError here instead of an exit at the next kernel.
void check_threads_can_start(int n) {
    std::mutex mutex;
    std::condition_variable cv;
    bool release = false;
    std::vector<std::thread> threads;
    std::string failure;
    try {
        threads.reserve(size_t(n - 1));
        for (int i = 1; i < n; ++i)
            threads.emplace_back([&] {
                std::unique_lock<std::mutex> lock(mutex);
                cv.wait(lock, [&] { return release; });
            });
    } catch (const std::system_error& e) {
        failure = e.what();
    }
    {
        std::lock_guard<std::mutex> lock(mutex);
        release = true;
    }
    cv.notify_all();
    for (auto& t : threads) t.join();
    if (!failure.empty())
        throw std::runtime_error("set_num_threads(" + std::to_string(n) + "): the system refused to create " +
                                 std::to_string(n - 1) + " more threads (" + failure +
                                 "); the thread count is unchanged");
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

void release_gil::pause_forever() { std::this_thread::sleep_for(std::chrono::hours(24)); }

void bind_runtime(py::module_& m) {
    register_fork_handler();
    (void)default_threads();  // read before anything changes it
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
        release_gil nogil;
        return fastnn::measure_peak_gflops(variant, seconds);
    }, "seconds"_a = 0.2,
    "Measured float32 multiply-add peak (GFLOP/s) on all threads, for the GEMM variant in use.");
    m.def("measure_core_round_trip", [](double seconds) {
        if (!(seconds > 0)) throw py::value_error("seconds must be positive, got " + std::to_string(seconds));
        apply_thread_setting();
        release_gil nogil;
        return fastnn::measure_core_round_trip(seconds);
    }, "seconds"_a = 0.05,
    "Nanoseconds for a cache line's round trip between two threads of the team (0 with one thread).");
    m.def("set_num_threads", [](int n) {
        if (n < 1) throw py::value_error("num_threads must be >= 1, got " + std::to_string(n));
        if (n > max_thread_setting())
            throw py::value_error("num_threads must be at most " + std::to_string(max_thread_setting()) +
                                  " (4 per CPU), got " + std::to_string(n));
        if (n > 1 && forked_child())
            throw std::runtime_error("this process was forked after fastnn started: OpenMP threads cannot "
                                  "be used in it, so it runs single-threaded (got num_threads=" +
                                  std::to_string(n) + "); use the 'spawn' start method for parallel workers");
#ifdef _OPENMP
        {
            release_gil nogil;
            check_threads_can_start(n);
        }
        request_threads(n);  // every Python thread adopts it at its next kernel call
        apply_thread_setting();
#endif
        threads_pinned() = true;
    }, "n"_a, "Use exactly n threads from now on (no run-time choice; see set_adaptive_threads).");
    m.def("set_adaptive_threads", [] {
        if (!forked_child()) {
            request_threads(default_threads());
            apply_thread_setting();
        }
        threads_pinned() = false;
    }, "The default: a team of OMP_NUM_THREADS or the cores' count, and each recorded program "
       "picks the thread count of its runs from their measured times (threads.h).");
    m.def("adaptive_threads", [] { return !threads_pinned().load(); },
          "False after set_num_threads(n), True by default and after set_adaptive_threads().");
    m.def("max_num_threads", &max_thread_setting, "The largest thread count set_num_threads accepts.");
#ifdef _OPENMP
    m.attr("openmp") = true;
#else
    m.attr("openmp") = false;
#endif
    m.attr("build_info") = build_info();
}

}  // namespace bind
}  // namespace fastnn
