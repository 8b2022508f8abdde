// General matrix multiply for dense forward and backward, row-major:
//   C[M,N] = alpha * op(A) @ op(B) + beta * C
// op(A) is A[M,K] (lda >= K), or A^T with A stored [K,M] (lda >= M) when trans_a;
// op(B) is B[K,N] (ldb >= N), or B^T with B stored [N,K] (ldb >= K) when trans_b.
// When beta == 0, C is not read (as in BLAS). Each element of C is accumulated in a fixed order
// whatever the number of threads, so results do not depend on the thread count.
#pragma once

#include <string>
#include <vector>

#include "activations.h"
#include "common.h"

namespace fastnn {

// Instruction-set variants of the GEMM (and of the optimizer updates, optim.cpp); all compute the
// same sums, in the same order per element within a variant. The AVX2 and AVX-512 variants fuse
// multiply and add, so their last bits can differ from the generic one, and the register tiles
// differ between them. Each variant is deterministic on its own: same bits for any thread count.
enum class CpuCapability { generic, avx2, avx512 };
CpuCapability parse_capability(const std::string& name);  // throws std::invalid_argument
const char* capability_name(CpuCapability c);
CpuCapability cpu_capability();
void set_cpu_capability(CpuCapability c);
std::vector<std::string> available_capabilities();

// What the GEMM does to each finished block of C, by the thread that computed it and while the
// block is still in cache (a fused epilogue; dense_forward uses it for bias and activation):
//   C[i, j] += bias[j]                   when bias is set
//   out[i, j] = act(C[i, j])             when out is set (out may be C itself)
// Each element goes through the same operations as the separate passes would (the bias added to
// the finished sum, then the activation kernel on the result), so fusing never changes a bit.
// It can also return the column sums of op(B) (a bias gradient, db = sum_n dY[n, :], when B = dY
// in dW = X^T dY), summed over the depth in order: on the packed path while B is packed, so dY is
// read once; on the others in a separate pass. Either way the same additions in the same order.
template <typename T>
struct Epilogue {
    const T* bias = nullptr;  // [N]
    T* out = nullptr;         // [M, N] with leading dimension ldo
    idx ldo = 0;
    Act act = Act::linear;
    T act_alpha = T(0);
    T* b_col_sums = nullptr;  // [N]: sum_k op(B)[k, j], overwritten
    bool finishes_c() const { return bias || out; }
};

template <typename T>
void gemm(bool trans_a, bool trans_b, idx M, idx N, idx K, T alpha, const T* A, idx lda,
          const T* B, idx ldb, T beta, T* C, idx ldc, const Epilogue<T>* epilogue = nullptr);

}  // namespace fastnn
