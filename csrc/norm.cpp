#include "norm.h"

#include <algorithm>
#include <cmath>

namespace fastnn {
namespace {

// Columns per task of a column reduction: the task's per-column sums live on its stack, so a
// call allocates nothing. Each column's arithmetic is independent of the others, so the task
// width (chosen from the thread count) never changes a result.
constexpr idx kMaxCols = 64;
constexpr idx kMinCols = 16;

// Runs f(j0, j1) over column ranges [j0, j1) that cover [0, C), in parallel for large arrays.
template <typename F>
void for_column_blocks(idx N, idx C, F f) {
    const idx width = std::min(kMaxCols, std::max(kMinCols, (C + max_threads() - 1) / max_threads()));
    const idx blocks = (C + width - 1) / width;
    parallel_for(blocks, N * C >= kParallelElementwise && blocks > 1, [=](idx b) { f(b * width, std::min(C, (b + 1) * width)); });
}

// Y[:, j0:j0+w] = gamma * (X - m) * rs + beta for the columns of one block (m, rs: [w];
// gamma, beta: [C] or null). Shared by the training and inference forms of batch norm.
template <typename T>
inline void normalize_columns(T* Y, const T* X, const T* m, const T* rs, const T* gamma,
                              const T* beta, idx N, idx C, idx j0, idx w) {
    for (idx n = 0; n < N; ++n) {
        const T* x = X + n * C + j0;
        T* y = Y + n * C + j0;
        for (idx j = 0; j < w; ++j) {
            T v = (x[j] - m[j]) * rs[j];
            if (gamma) v = gamma[j0 + j] * v;
            if (beta) v = v + beta[j0 + j];
            y[j] = v;
        }
    }
}

}  // namespace

template <typename T>
void batchnorm_forward(T* Y, T* mean, T* rstd, T* moving_mean, T* moving_var, const T* X,
                       const T* gamma, const T* beta, idx N, idx C, double momentum, double eps) {
    const T keep = T(momentum), take = T(1.0 - momentum);  // rounded once, as NumPy does
    for_column_blocks(N, C, [=](idx j0, idx j1) {
        const idx w = j1 - j0;
        double sum[kMaxCols], sq[kMaxCols];
        std::fill(sum, sum + w, 0.0);
        std::fill(sq, sq + w, 0.0);
        for (idx n = 0; n < N; ++n) {
            const T* x = X + n * C + j0;
            for (idx j = 0; j < w; ++j) sum[j] += double(x[j]);
        }
        for (idx j = 0; j < w; ++j) sum[j] /= double(N);  // now the mean
        for (idx n = 0; n < N; ++n) {
            const T* x = X + n * C + j0;
            for (idx j = 0; j < w; ++j) {
                const double d = double(x[j]) - sum[j];
                sq[j] += d * d;
            }
        }
        for (idx j = 0; j < w; ++j) {
            const double var = sq[j] / double(N);
            mean[j0 + j] = T(sum[j]);
            rstd[j0 + j] = T(1.0 / std::sqrt(var + eps));
            moving_mean[j0 + j] = keep * moving_mean[j0 + j] + take * mean[j0 + j];
            moving_var[j0 + j] = keep * moving_var[j0 + j] + take * T(var);
        }
        const T* m = mean + j0;
        const T* rs = rstd + j0;
        normalize_columns(Y, X, m, rs, gamma, beta, N, C, j0, w);
    });
}

template <typename T>
void batchnorm_inference(T* Y, const T* X, const T* gamma, const T* beta, const T* moving_mean,
                         const T* moving_var, idx N, idx C, double eps) {
    for_column_blocks(N, C, [=](idx j0, idx j1) {
        const idx w = j1 - j0;
        T rs[kMaxCols];
        for (idx j = 0; j < w; ++j) rs[j] = T(1.0 / std::sqrt(double(moving_var[j0 + j]) + eps));
        const T* m = moving_mean + j0;
        normalize_columns(Y, X, m, rs, gamma, beta, N, C, j0, w);
    });
}

template <typename T>
void batchnorm_backward(T* dX, T* dgamma, T* dbeta, const T* dY, const T* X, const T* gamma,
                        const T* mean, const T* rstd, idx N, idx C) {
    for_column_blocks(N, C, [=](idx j0, idx j1) {
        const idx w = j1 - j0;
        const T* m = mean + j0;
        const T* rs = rstd + j0;
        double sdy[kMaxCols], sdyx[kMaxCols];
        std::fill(sdy, sdy + w, 0.0);
        std::fill(sdyx, sdyx + w, 0.0);
        for (idx n = 0; n < N; ++n) {
            const T* x = X + n * C + j0;
            const T* dy = dY + n * C + j0;
            for (idx j = 0; j < w; ++j) {
                const T xhat = (x[j] - m[j]) * rs[j];
                sdy[j] += double(dy[j]);
                sdyx[j] += double(dy[j]) * double(xhat);
            }
        }
        if (dbeta) for (idx j = 0; j < w; ++j) dbeta[j0 + j] = T(sdy[j]);
        if (dgamma) for (idx j = 0; j < w; ++j) dgamma[j0 + j] = T(sdyx[j]);
        if (!dX) return;
        T k[kMaxCols], a[kMaxCols], b[kMaxCols];
        for (idx j = 0; j < w; ++j) {
            k[j] = gamma ? gamma[j0 + j] * rs[j] : rs[j];
            a[j] = T(sdy[j] / double(N));
            b[j] = T(sdyx[j] / double(N));
        }
        for (idx n = 0; n < N; ++n) {
            const T* x = X + n * C + j0;
            const T* dy = dY + n * C + j0;
            T* dx = dX + n * C + j0;
            for (idx j = 0; j < w; ++j) {
                const T xhat = (x[j] - m[j]) * rs[j];
                dx[j] = k[j] * ((dy[j] - a[j]) - xhat * b[j]);
            }
        }
    });
}

template <typename T>
void layernorm_forward(T* Y, T* mean, T* rstd, const T* X, const T* gamma, const T* beta, idx N,
                       idx C, double eps) {
    parallel_for(N, N * C >= kParallelElementwise, [=](idx n) {
        const T* x = X + n * C;
        T* y = Y + n * C;
        double sum = 0, sq = 0;
        for (idx c = 0; c < C; ++c) sum += double(x[c]);
        const double mu = sum / double(C);
        for (idx c = 0; c < C; ++c) {
            const double d = double(x[c]) - mu;
            sq += d * d;
        }
        const T m = T(mu), rs = T(1.0 / std::sqrt(sq / double(C) + eps));
        mean[n] = m;
        rstd[n] = rs;
        for (idx c = 0; c < C; ++c) {
            T v = (x[c] - m) * rs;
            if (gamma) v = gamma[c] * v;
            if (beta) v = v + beta[c];
            y[c] = v;
        }
    });
}

template <typename T>
void layernorm_backward(T* dX, T* dgamma, T* dbeta, const T* dY, const T* X, const T* gamma,
                        const T* mean, const T* rstd, idx N, idx C) {
    if (dX) {
        parallel_for(N, N * C >= kParallelElementwise, [=](idx n) {
            const T* x = X + n * C;
            const T* dy = dY + n * C;
            T* dx = dX + n * C;
            const T m = mean[n], rs = rstd[n];
            double sg = 0, sgx = 0;
            for (idx c = 0; c < C; ++c) {
                const T g = gamma ? dy[c] * gamma[c] : dy[c];
                const T xhat = (x[c] - m) * rs;
                sg += double(g);
                sgx += double(g) * double(xhat);
            }
            const T a = T(sg / double(C)), b = T(sgx / double(C));
            for (idx c = 0; c < C; ++c) {
                const T g = gamma ? dy[c] * gamma[c] : dy[c];
                const T xhat = (x[c] - m) * rs;
                dx[c] = rs * ((g - a) - xhat * b);
            }
        });
    }
    if (!dgamma && !dbeta) return;
    for_column_blocks(N, C, [=](idx j0, idx j1) {
        const idx w = j1 - j0;
        double sdy[kMaxCols], sdyx[kMaxCols];
        std::fill(sdy, sdy + w, 0.0);
        std::fill(sdyx, sdyx + w, 0.0);
        for (idx n = 0; n < N; ++n) {
            const T* x = X + n * C + j0;
            const T* dy = dY + n * C + j0;
            const T m = mean[n], rs = rstd[n];
            for (idx j = 0; j < w; ++j) {
                const T xhat = (x[j] - m) * rs;
                sdy[j] += double(dy[j]);
                sdyx[j] += double(dy[j]) * double(xhat);
            }
        }
        if (dbeta) for (idx j = 0; j < w; ++j) dbeta[j0 + j] = T(sdy[j]);
        if (dgamma) for (idx j = 0; j < w; ++j) dgamma[j0 + j] = T(sdyx[j]);
    });
}

template <typename T>
void batchnorm_frozen_backward(T* dX, T* scale, const T* dY, const T* gamma, const T* moving_var,
                               idx N, idx C, double eps) {
    for (idx c = 0; c < C; ++c) {
        const T s = T(1.0 / std::sqrt(double(moving_var[c]) + eps));
        scale[c] = gamma ? gamma[c] * s : s;
    }
    for (idx r = 0; r < N; ++r)
        for (idx c = 0; c < C; ++c) dX[r * C + c] = dY[r * C + c] * scale[c];
}

#define FASTNN_INSTANTIATE(T)                                                                     \
    template void batchnorm_forward<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*, idx, idx, \
                                       double, double);                                           \
    template void batchnorm_inference<T>(T*, const T*, const T*, const T*, const T*, const T*, idx, \
                                         idx, double);                                            \
    template void batchnorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,        \
                                        const T*, idx, idx);                                      \
    template void batchnorm_frozen_backward<T>(T*, T*, const T*, const T*, const T*, idx, idx,    \
                                               double);                                          \
    template void layernorm_forward<T>(T*, T*, T*, const T*, const T*, const T*, idx, idx, double); \
    template void layernorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,        \
                                        const T*, idx, idx);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn
