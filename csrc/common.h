// Shared helpers for fastnn's C++ kernels: index type, OpenMP guards, work thresholds.
// Kernels never include pybind11; they take raw pointers and sizes and assume valid inputs
// (validation happens once, at the Python boundary and in the thin bindings).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

// The AVX2 and AVX-512 variants (GEMM, optimizer updates) need GCC/clang target pragmas and
// __builtin_cpu_supports on x86.
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define FASTNN_HAVE_AVX2_VARIANT 1
#endif

namespace fastnn {

using idx = std::ptrdiff_t;

// Below these sizes a parallel region costs more than it saves (fork/join is a few microseconds
// on the 2-core development machine); measured with bench/, revisit when kernels change.
constexpr idx kParallelElementwise = idx(1) << 15;  // elements for elementwise kernels
constexpr idx kParallelRows = 256;                  // rows for row-wise kernels (softmax, losses)

// Threads a kernel may use: 1 inside a parallel region (a kernel called by a kernel that already
// shares out the work, as the recurrent cells do with blocks of samples), else the team size.
inline int max_threads() {
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

// Sets the team size of this thread's next parallel regions (a program's run picks it per step,
// threads.h); without OpenMP there is no team.
inline void set_team_size(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

inline int thread_id() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

inline int num_threads_in_team() {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

// body(i) for i in [0, n): on the OpenMP team when `parallel`, else as a plain loop. A
// `#pragma omp parallel for if (false)` still calls into the OpenMP runtime (0.3 us a call,
// measured on the development machine), which a small-batch training step would pay dozens of
// times, and so would a team of one (a program's run on one thread, threads.h): neither enters it.
// `_dynamic` hands out one index at a time (tiles of uneven cost, or a busy machine).
// A macro so that the instruction-set variants (gemm_*.cpp, optim_*.cpp) can define their own
// copy after their target pragma: a helper compiled for the baseline could not inline their code.
#if defined(_OPENMP) && defined(_MSC_VER) && !defined(__clang__)
// MSVC spells the pragma operator __pragma and takes no string; its OpenMP 2.0 gets the static
// schedule for both forms (results do not depend on the schedule, only the balance does).
#define FASTNN_OMP_FOR(schedule_clause)                                                      \
    __pragma(omp parallel for) for (idx i = 0; i < n; ++i) body(i);
#elif defined(_OPENMP)
#define FASTNN_OMP_FOR(schedule_clause)                                                      \
    _Pragma(schedule_clause) for (idx i = 0; i < n; ++i) body(i);
#else
#define FASTNN_OMP_FOR(schedule_clause) for (idx i = 0; i < n; ++i) body(i);
#endif
// The serial loop runs a local copy of `body`: the caller's closure has its address taken (the
// parallel branch shares it with the team), so a store through a T* might, for all the compiler
// knows, change a captured T constant, and the loop would reload every capture at every element
// and not vectorise. The copy's address never escapes: its captures live in registers.
#define FASTNN_DEFINE_PARALLEL_FOR_AS(name, schedule_clause)                                  \
    template <typename F>                                                                     \
    inline void name(idx n, bool parallel, F&& body) {                                        \
        if (parallel && n > 1 && max_threads() > 1) {                                         \
            FASTNN_OMP_FOR(schedule_clause)                                                   \
        } else {                                                                              \
            std::decay_t<F> local(body);                                                      \
            for (idx i = 0; i < n; ++i) local(i);                                             \
        }                                                                                     \
    }
#define FASTNN_DEFINE_PARALLEL_FOR                                                            \
    FASTNN_DEFINE_PARALLEL_FOR_AS(parallel_for, "omp parallel for schedule(static)")          \
    FASTNN_DEFINE_PARALLEL_FOR_AS(parallel_for_dynamic, "omp parallel for schedule(dynamic, 1)")

FASTNN_DEFINE_PARALLEL_FOR

// Sums block_sum(b) over b in [0, blocks): the blocks in parallel (when `parallel`), then their
// sums in order. Block boundaries are fixed by the caller, never by the thread count, so the total
// is the same on any number of threads. The partial sums live in a per-thread buffer that grows
// once and is reused (no allocation per call in steady state).
template <typename F>
double ordered_block_sum(idx blocks, bool parallel, F block_sum) {
    thread_local std::vector<double> partial;
    if (partial.size() < size_t(blocks)) partial.resize(blocks);
    double* part = partial.data();
    parallel_for(blocks, parallel, [&](idx b) { part[b] = block_sum(b); });
    double total = 0;
    for (idx b = 0; b < blocks; ++b) total += part[b];
    return total;
}

}  // namespace fastnn
