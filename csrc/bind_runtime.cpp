// Bindings: run-time settings -- OpenMP threads and the GEMM instruction-set variant.
#include "bindings.h"
#include "gemm.h"

namespace fastnn {
namespace bind {

void bind_runtime(py::module_& m) {
    m.def("cpu_capability", [] { return std::string(fastnn::capability_name(fastnn::cpu_capability())); },
          "The GEMM variant in use: 'generic' or 'avx2'.");
    m.def("available_cpu_capabilities", &fastnn::available_capabilities,
          "GEMM variants this CPU and build can run.");
    m.def("set_cpu_capability", [](const std::string& name) {
        try {
            fastnn::set_cpu_capability(fastnn::parse_capability(name));
        } catch (const std::invalid_argument& e) {
            throw py::value_error(e.what());
        }
    }, "name"_a, "Use the GEMM variant 'generic' or 'avx2' (ValueError if unavailable).");
    m.def("get_num_threads", &fastnn::max_threads, "Threads the kernels use (OpenMP max threads).");
    m.def("set_num_threads", [](int n) {
        if (n < 1) throw py::value_error("num_threads must be >= 1, got " + std::to_string(n));
#ifdef _OPENMP
        omp_set_num_threads(n);
#endif
    }, "n"_a);
#ifdef _OPENMP
    m.attr("openmp") = true;
#else
    m.attr("openmp") = false;
#endif
}

}  // namespace bind
}  // namespace fastnn
