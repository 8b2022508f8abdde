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
    gemm<T>(true, false, K, M, N, T(1), X, K, dY, M, T(0), dW, M);
    if (db) {
        // Columns are split between threads; each column is summed over n in order, so the
        // result does not depend on the thread count.
        constexpr idx kCols = 64;
        const idx chunks = (M + kCols - 1) / kCols;
        parallel_for(chunks, N * M >= kParallelElementwise, [=](idx c) {
            const idx j0 = c * kCols, j1 = std::min(M, j0 + kCols);
            std::fill(db + j0, db + j1, T(0));
            for (idx n = 0; n < N; ++n) {
                const T* row = dY + n * M;
                for (idx j = j0; j < j1; ++j) db[j] += row[j];
            }
        });
    }
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
