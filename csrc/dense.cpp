#include "dense.h"

#include <algorithm>

#include "gemm.h"

namespace fastnn {

template <typename T>
void dense_forward(T* Y, const T* X, const T* W, const T* b, idx N, idx K, idx M, T* A, Act act,
                   T act_alpha) {
    Epilogue<T> ep;
    ep.bias = b;
    ep.out = A;
    ep.ldo = M;
    ep.act = act;
    ep.act_alpha = act_alpha;
    gemm<T>(false, false, N, M, K, T(1), X, K, W, M, T(0), Y, M, (b || A) ? &ep : nullptr);
}

template <typename T>
void dense_backward(T* dX, T* dW, T* db, const T* dY, const T* X, const T* W, idx N, idx K, idx M) {
    if (dX) gemm<T>(false, true, N, K, M, T(1), dY, M, W, M, T(0), dX, K);
    // db = column sums of dY, which is the GEMM's B: summed over n in order while it is packed
    // (or in a separate pass on the unpacked paths), so the result does not depend on the path
    // or the thread count.
    Epilogue<T> ep;
    ep.b_col_sums = db;
    gemm<T>(true, false, K, M, N, T(1), X, K, dY, M, T(0), dW, M, db ? &ep : nullptr);
}

template void dense_forward<float>(float*, const float*, const float*, const float*, idx, idx, idx,
                                   float*, Act, float);
template void dense_forward<double>(double*, const double*, const double*, const double*, idx, idx,
                                    idx, double*, Act, double);
template void dense_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                    idx, idx, idx);
template void dense_backward<double>(double*, double*, double*, const double*, const double*,
                                     const double*, idx, idx, idx);

}  // namespace fastnn
