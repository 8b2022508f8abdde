// Measures the floating-point peak of this machine: FLOP/s of independent fused multiply-adds on
// all threads, for the GEMM variant in use. The GEMM benchmark reports its speed as a share of it.
#pragma once

namespace fastnn {

// Peak float32 GFLOP/s over `seconds` of work on every OpenMP thread (generic or AVX2+FMA code).
double measure_peak_gflops(bool avx2, double seconds);

}  // namespace fastnn
