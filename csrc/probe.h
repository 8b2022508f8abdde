// Measures the floating-point peak of this machine: FLOP/s of independent fused multiply-adds on
// all threads, for the GEMM variant in use. The GEMM benchmark reports its speed as a share of it.
#pragma once

#include "gemm.h"

namespace fastnn {

// Peak float32 GFLOP/s over `seconds` of work on every OpenMP thread (generic, AVX2+FMA or AVX-512 code).
double measure_peak_gflops(CpuCapability variant, double seconds);

// Nanoseconds for one round trip of a cache line between the calling thread and another thread
// of the OpenMP team (each waits for the other's write, then writes): the floor under every
// parallel region's fork and join. The median over chunks of about `seconds`; 0 when the team
// has one thread. On this project's 2-vCPU virtual machine it is about 85 ns, and for seconds or
// minutes at a time about 440 ns (the hypervisor keeps the two vCPUs apart): then a batch-32 step
// of the BN model runs slower on two threads than on one, with no other process running.
double measure_core_round_trip(double seconds);

}  // namespace fastnn
