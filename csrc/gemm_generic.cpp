// Portable GEMM variant: compiled for the baseline instruction set (SSE2 on x86-64).
// Register tile: float 4x8 = 8 xmm accumulators + 2 for B + 1 broadcast of A (of 16);
// double 4x4 = 8 accumulators of 2 lanes.
#define FASTNN_GEMM_NS gemm_generic
#define FASTNN_MR_FLOAT 4
#define FASTNN_NR_FLOAT 8
#define FASTNN_MR_DOUBLE 4
#define FASTNN_VEC_BYTES 16
#define FASTNN_VEC_REGS 16
#define FASTNN_NR_DOUBLE 4
#include "gemm_kernel.inc"
