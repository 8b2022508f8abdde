// Baseline optimizer-update variant (SSE2 on x86-64, whatever the target's baseline elsewhere).
#define FASTNN_OPTIM_NS optim_generic
#include "optim_kernel.inc"
