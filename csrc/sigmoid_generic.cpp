// Baseline float32 sigmoid variant (SSE2 on x86-64): see sigmoid_kernel.inc.
#define FASTNN_SIGMOID_NS sigmoid_generic
#define FASTNN_VEC_BYTES 16
#include "sigmoid_kernel.inc"
