// Measures the floating-point peak of this machine: FLOP/s of independent fused multiply-adds on
// all threads, for the GEMM variant in use. The GEMM benchmark reports its speed as a share of it.
#pragma once

#include "gemm.h"

namespace fastnn {

// Peak float32 GFLOP/s over `seconds` of work on every OpenMP thread (generic, AVX2+FMA or AVX-512 code).
double measure_peak_gflops(CpuCapability variant, double seconds);

}  // namespace fastnn
