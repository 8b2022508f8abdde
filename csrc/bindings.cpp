// Python module fastnn._core: the kernels, registered one concern per bind_*.cpp file, plus the
// run-time settings (threads, GEMM variant) and recorded programs of kernel calls (the one-call training step). Same names and signatures as fastnn.reference.
#include "bindings.h"

using namespace fastnn::bind;

PYBIND11_MODULE(_core, m) {
    m.doc() = "fastnn native kernels (C++17/OpenMP). Same names and signatures as fastnn.reference.";
    bind_dense(m);
    bind_activations(m);
    bind_losses(m);
    bind_optim(m);
    bind_norm(m);
    bind_runtime(m);
    bind_program(m);
}
