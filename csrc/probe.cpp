#include "probe.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "common.h"

namespace fastnn {
namespace {

// Ten independent accumulators hide the multiply-add latency (4 cycles; 2 issued per cycle needs
// at least 8 in flight). Returns the FLOP count performed.
#define FASTNN_FMA_LOOP(BYTES)                                                   \
    typedef float V __attribute__((vector_size(BYTES)));                         \
    constexpr int W = BYTES / sizeof(float), A = 10;                             \
    V acc[A];                                                                    \
    for (int i = 0; i < A; ++i) acc[i] = V{} + float(i) * 1e-3f;                 \
    const V a = V{} + 0.999999f, b = V{} + 1e-7f;                                \
    for (long it = 0; it < iterations; ++it)                                     \
        for (int i = 0; i < A; ++i) acc[i] = acc[i] * a + b;                     \
    V sum = V{};                                                                 \
    for (int i = 0; i < A; ++i) sum += acc[i];                                   \
    volatile float sink = sum[0]; /* keeps the loop from being optimised away */ \
    (void)sink;                                                                  \
    return 2.0 * W * A * double(iterations);

#if defined(__GNUC__) || defined(__clang__)
double generic_loop(long iterations) { FASTNN_FMA_LOOP(16) }
#else
// Compilers without vector extensions (MSVC): the same 4-lane loop written out element by element.
double generic_loop(long iterations) {
    constexpr int W = 4, A = 10;
    float acc[A][W];
    for (int i = 0; i < A; ++i)
        for (int l = 0; l < W; ++l) acc[i][l] = float(i) * 1e-3f;
    for (long it = 0; it < iterations; ++it)
        for (int i = 0; i < A; ++i)
            for (int l = 0; l < W; ++l) acc[i][l] = acc[i][l] * 0.999999f + 1e-7f;
    float sum = 0;
    for (int i = 0; i < A; ++i) sum += acc[i][0];
    volatile float sink = sum;
    (void)sink;
    return 2.0 * W * A * double(iterations);
}
#endif

#if defined(FASTNN_HAVE_AVX2_VARIANT)
__attribute__((target("avx2,fma"))) double avx2_loop(long iterations) { FASTNN_FMA_LOOP(32) }
__attribute__((target("avx512f,avx2,fma"))) double avx512_loop(long iterations) { FASTNN_FMA_LOOP(64) }
#endif
#undef FASTNN_FMA_LOOP

}  // namespace

double measure_peak_gflops(CpuCapability variant, double seconds) {
    using clock = std::chrono::steady_clock;
    auto run = [variant](long n) {
#if defined(FASTNN_HAVE_AVX2_VARIANT)
        if (variant == CpuCapability::avx512) return avx512_loop(n);
        if (variant == CpuCapability::avx2) return avx2_loop(n);
#endif
        (void)variant;
        return generic_loop(n);
    };
    // Calibrate on one thread, then run that many iterations on every thread at once.
    long n = 1 << 16;
    for (;;) {
        const auto t0 = clock::now();
        run(n);
        const double dt = std::chrono::duration<double>(clock::now() - t0).count();
        if (dt > seconds / 4 || n > (1L << 40)) {
            n = long(n * (seconds / dt));
            break;
        }
        n *= 4;
    }
    double flops = 0;
    const auto t0 = clock::now();
#pragma omp parallel reduction(+ : flops)
    flops += run(n);
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    return flops / dt / 1e9;
}

double measure_core_round_trip(double seconds) {
    using clock = std::chrono::steady_clock;
    constexpr long kChunk = 2000;           // round trips per timed chunk
    alignas(64) std::atomic<long> ball{0};  // odd: the caller's serve; even: the return
    std::atomic<bool> stop{false};
    if (max_threads() < 2) return 0.0;  // one thread set (or a forked child, which has no pool)
    std::vector<double> chunks;
    chunks.reserve(4096);
    int team = 1;
#pragma omp parallel num_threads(2)
    {
        if (thread_id() == 0) {
            team = num_threads_in_team();
            if (team > 1) {
                const auto start = clock::now();
                long v = 0;
                do {
                    const auto t0 = clock::now();
                    for (long i = 0; i < kChunk; ++i) {
                        ball.store(v + 1, std::memory_order_release);
                        v += 2;
                        while (ball.load(std::memory_order_acquire) != v) {
                        }
                    }
                    chunks.push_back(std::chrono::duration<double>(clock::now() - t0).count() / kChunk);
                } while (std::chrono::duration<double>(clock::now() - start).count() < seconds &&
                         chunks.size() < chunks.capacity());
            }
            stop.store(true, std::memory_order_release);
        } else if (thread_id() == 1) {
            for (long seen = 0; !stop.load(std::memory_order_acquire);) {
                const long v = ball.load(std::memory_order_acquire);
                if (v != seen && v % 2 == 1) {
                    ball.store(v + 1, std::memory_order_release);
                    seen = v + 1;
                }
            }
        }
    }
    if (team < 2 || chunks.empty()) return 0.0;
    std::nth_element(chunks.begin(), chunks.begin() + chunks.size() / 2, chunks.end());
    return 1e9 * chunks[chunks.size() / 2];
}

}  // namespace fastnn
