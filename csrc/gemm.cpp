// Run-time choice of the GEMM variant: the best one the CPU supports, unless the environment
// variable FASTNN_CPU_CAPABILITY (generic | avx2 | avx512) asks for another. Wheels are built for
// the baseline instruction set (nothing tuned to the build machine); the AVX2 code path is only
// ever entered on AVX2+FMA CPUs, the AVX-512 one only where AVX-512F is usable as well.
#include "gemm.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace fastnn {

namespace gemm_generic {
template <typename T>
void gemm(bool, bool, idx, idx, idx, T, const T*, idx, const T*, idx, T, T*, idx, const Epilogue<T>*);
}
#if defined(FASTNN_HAVE_AVX2_VARIANT)
namespace gemm_avx2 {
template <typename T>
void gemm(bool, bool, idx, idx, idx, T, const T*, idx, const T*, idx, T, T*, idx, const Epilogue<T>*);
}
namespace gemm_avx512 {
template <typename T>
void gemm(bool, bool, idx, idx, idx, T, const T*, idx, const T*, idx, T, T*, idx, const Epilogue<T>*);
}
#endif

namespace {

bool cpu_has_avx2() {
#if defined(FASTNN_HAVE_AVX2_VARIANT)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

// __builtin_cpu_supports also checks that the operating system saves the zmm registers.
bool cpu_has_avx512() {
#if defined(FASTNN_HAVE_AVX2_VARIANT)
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

CpuCapability best_capability() {
    return cpu_has_avx512() ? CpuCapability::avx512
           : cpu_has_avx2() ? CpuCapability::avx2
                            : CpuCapability::generic;
}

CpuCapability initial_capability() {
    const char* env = std::getenv("FASTNN_CPU_CAPABILITY");
    if (env && *env) {
        try {
            return parse_capability(env);
        } catch (const std::exception&) {
            // An unusable request at import time falls back to the best variant rather than
            // failing the import; set_cpu_capability reports the same request as an error.
        }
    }
    return best_capability();
}

std::atomic<CpuCapability> g_capability{initial_capability()};

}  // namespace

CpuCapability parse_capability(const std::string& name) {
    if (name == "generic") return CpuCapability::generic;
    if (name == "avx2") {
        if (!cpu_has_avx2())
            throw std::invalid_argument("this CPU (or build) has no AVX2+FMA GEMM variant");
        return CpuCapability::avx2;
    }
    if (name == "avx512") {
        if (!cpu_has_avx512())
            throw std::invalid_argument("this CPU (or build) has no AVX-512 GEMM variant");
        return CpuCapability::avx512;
    }
    throw std::invalid_argument("cpu capability must be 'generic', 'avx2' or 'avx512', got '" + name + "'");
}

const char* capability_name(CpuCapability c) {
    return c == CpuCapability::avx512 ? "avx512" : c == CpuCapability::avx2 ? "avx2" : "generic";
}
CpuCapability cpu_capability() { return g_capability.load(); }
void set_cpu_capability(CpuCapability c) { g_capability = c; }
std::vector<std::string> available_capabilities() {
    std::vector<std::string> names{"generic"};
    if (cpu_has_avx2()) names.push_back("avx2");
    if (cpu_has_avx512()) names.push_back("avx512");
    return names;
}

template <typename T>
void gemm(bool trans_a, bool trans_b, idx M, idx N, idx K, T alpha, const T* A, idx lda,
          const T* B, idx ldb, T beta, T* C, idx ldc, const Epilogue<T>* ep) {
#if defined(FASTNN_HAVE_AVX2_VARIANT)
    switch (g_capability.load(std::memory_order_relaxed)) {
        case CpuCapability::avx512:
            return gemm_avx512::gemm<T>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C,
                                        ldc, ep);
        case CpuCapability::avx2:
            return gemm_avx2::gemm<T>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                                      ep);
        case CpuCapability::generic:
            break;
    }
#endif
    gemm_generic::gemm<T>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep);
}

template void gemm<float>(bool, bool, idx, idx, idx, float, const float*, idx, const float*, idx,
                          float, float*, idx, const Epilogue<float>*);
template void gemm<double>(bool, bool, idx, idx, idx, double, const double*, idx, const double*,
                           idx, double, double*, idx, const Epilogue<double>*);

}  // namespace fastnn
