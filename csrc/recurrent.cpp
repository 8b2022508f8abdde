// Recurrent cells and embeddings; see recurrent.h and fastnn/reference/recurrent.py.
#include "recurrent.h"

#include <algorithm>
#include <vector>

#include "dense.h"
#include "gemm.h"

namespace fastnn {

namespace {

// Rows of a step: in parallel when the step has enough elements to pay for a parallel region.
template <typename F>
void for_rows(idx N, idx per_row, F&& body) {
    parallel_for(N, N * per_row >= kParallelElementwise, body);
}

// The state before processing step s, row i: Hseq[i, s-1], or H0[i] (zeros when null) at s = 0.
template <typename T>
const T* previous_state(const T* Hseq, const T* H0, const RnnShape& s, idx step, idx i) {
    if (step > 0) return Hseq + (i * s.T + step - 1) * s.U;
    return H0 ? H0 + i * s.U : nullptr;
}

// Hprev[i, t] = the state before processing input time t (zeros for the first step without H0).
template <typename T>
void previous_states(T* Hprev, const T* Hseq, const T* H0, const RnnShape& s) {
    for_rows(s.N, s.T * s.U, [&](idx i) {
        for (idx step = 0; step < s.T; ++step) {
            const T* h = previous_state(Hseq, H0, s, step, i);
            T* dst = Hprev + (i * s.T + s.time(step)) * s.U;
            if (h) std::copy(h, h + s.U, dst);
            else std::fill(dst, dst + s.U, T(0));
        }
    });
}

// Acc[i, t, :] (+)= h_{t-1} @ R[:, :M] for rows i in [lo, hi) of processing step `step`; the
// rows of Acc are ld_acc wide, those of R ldr. A zero state (no H0 at the first step) adds nothing.
template <typename T>
void recurrent_product(T* Acc, idx ld_acc, const T* R, idx ldr, idx M, const T* Hseq,
                       const T* H0, const RnnShape& s, idx step, T beta, idx lo, idx hi) {
    const idx t = s.time(step), rows = hi - lo;
    T* C = Acc + lo * s.T * ld_acc + t * ld_acc;
    const idx ldc = s.T * ld_acc;
    if (step > 0) {
        gemm<T>(false, false, rows, M, s.U, T(1), Hseq + lo * s.T * s.U + (step - 1) * s.U,
                s.T * s.U, R, ldr, beta, C, ldc);
    } else if (H0) {
        gemm<T>(false, false, rows, M, s.U, T(1), H0 + lo * s.U, s.U, R, ldr, beta, C, ldc);
    } else if (beta == T(0)) {
        for (idx i = 0; i < rows; ++i) std::fill(C + i * ldc, C + i * ldc + M, T(0));
    }
}

// A scratch array of the calling thread (one per Slot), grown and never shrunk: called before any
// parallel region, so a failed allocation throws on the calling thread and nothing is allocated
// once the largest layer has been seen.
template <typename T, int Slot>
T* scratch(idx count) {
    thread_local std::vector<T> buffer;
    if (buffer.size() < size_t(count)) buffer.resize(size_t(count));
    return buffer.data();
}

// recurrent_product with recurrent dropout: gate g's block of Acc (+)= (h_{t-1} * mask_g) @ R_g
// for the M / U gate blocks from column 0, the masked state built in Tmp [N, U] (rows lo..hi);
// mask rows are ldr wide (k*U, as R's).
template <typename T>
void masked_recurrent_product(T* Acc, idx ld_acc, const T* R, idx ldr, idx M, const T* mask,
                              T* Tmp, const T* Hseq, const T* H0, const RnnShape& s, idx step,
                              T beta, idx lo, idx hi) {
    const idx t = s.time(step), rows = hi - lo, U = s.U, ldc = s.T * ld_acc;
    const bool zero_state = step == 0 && !H0;
    for (idx g = 0; g < M / U; ++g) {
        T* C = Acc + lo * s.T * ld_acc + t * ld_acc + g * U;
        if (zero_state) {
            if (beta == T(0))
                for (idx i = 0; i < rows; ++i) std::fill(C + i * ldc, C + i * ldc + U, T(0));
            continue;
        }
        for (idx i = lo; i < hi; ++i) {
            const T* h = previous_state(Hseq, H0, s, step, i);
            const T* m = mask + i * ldr + g * U;
            for (idx j = 0; j < U; ++j) Tmp[i * U + j] = h[j] * m[j];
        }
        gemm<T>(false, false, rows, U, U, T(1), Tmp + lo * U, U, R + g * U, ldr, beta, C, ldc);
    }
}

// The step's recurrent product, with the cell's recurrent dropout mask when it has one.
template <typename T>
void cell_product(const CellActs<T>& a, T* Tmp, T* Acc, idx ld_acc, const T* R, idx ldr, idx M,
                  const T* Hseq, const T* H0, const RnnShape& s, idx step, T beta, idx lo,
                  idx hi) {
    if (a.rmask)
        masked_recurrent_product<T>(Acc, ld_acc, R, ldr, M, a.rmask, Tmp, Hseq, H0, s, step, beta,
                                    lo, hi);
    else
        recurrent_product<T>(Acc, ld_acc, R, ldr, M, Hseq, H0, s, step, beta, lo, hi);
}

// R^T [K, U] of the recurrent kernel R [U, K], for the products of the backward walk: with it
// they are plain NN products (dA_t @ R^T as dA_t @ RT), which the GEMM runs without packing
// anything at every step (the NT form repacked R^T 28 times per call), and whose paths all give
// an element the same sum, whatever the block of rows. The buffer is the calling thread's,
// reused: no allocation once the largest layer has been seen.
template <typename T>
const T* transposed_recurrent(const T* R, idx U, idx K) {
    thread_local std::vector<T> buffer;
    if (buffer.size() < size_t(U * K)) buffer.resize(size_t(U * K));
    T* RT = buffer.data();
    for (idx u = 0; u < U; ++u)
        for (idx k = 0; k < K; ++k) RT[k * U + u] = R[u * K + k];
    return RT;
}

// dH[lo:hi] (+)= dA_t[lo:hi, :M] @ R[:, c:c+M]^T, dA_t the rows of input time t (ld_a wide), with
// RT = R^T from transposed_recurrent offset to its row c (RT + c * U).
template <typename T>
void state_gradient(T* dH, const T* dA, idx ld_a, const T* RT, idx M, const RnnShape& s, idx t,
                    T beta, idx lo, idx hi) {
    gemm<T>(false, false, hi - lo, s.U, M, T(1), dA + lo * s.T * ld_a + t * ld_a, s.T * ld_a, RT,
            s.U, beta, dH + lo * s.U, s.U);
}

// The state gradient through masked products: dH[lo:hi] (+)= sum over the `gates` blocks g of
// (dA_t[:, g] @ R_g^T) * mask_g (mask rows ld_m wide), each product through Tmp [N, U]; the
// gates are added in order, so the sums do not depend on the block.
template <typename T>
void masked_state_gradient(T* dH, const T* dA, idx ld_a, const T* RT, idx gates, const T* mask,
                           idx ld_m, T* Tmp, const RnnShape& s, idx t, T beta, idx lo, idx hi) {
    const idx U = s.U;
    for (idx g = 0; g < gates; ++g) {
        gemm<T>(false, false, hi - lo, U, U, T(1), dA + lo * s.T * ld_a + t * ld_a + g * U,
                s.T * ld_a, RT + g * U * U, U, T(0), Tmp + lo * U, U);
        const bool overwrite = g == 0 && beta == T(0);
        for (idx i = lo; i < hi; ++i) {
            const T* m = mask + i * ld_m + g * U;
            T* d = dH + i * U;
            const T* v = Tmp + i * U;
            for (idx j = 0; j < U; ++j) d[j] = overwrite ? v[j] * m[j] : d[j] + v[j] * m[j];
        }
    }
}

// The step's state gradient through the recurrent products of the first `gates` blocks.
template <typename T>
void cell_state_gradient(const CellActs<T>& a, T* Tmp, idx k, T* dH, const T* dA, idx ld_a,
                         const T* RT, idx gates, const RnnShape& s, idx t, T beta, idx lo,
                         idx hi) {
    if (a.rmask)
        masked_state_gradient<T>(dH, dA, ld_a, RT, gates, a.rmask, k * s.U, Tmp, s, t, beta, lo, hi);
    else
        state_gradient<T>(dH, dA, ld_a, RT, gates * s.U, s, t, beta, lo, hi);
}

// The recurrent kernel's gradient for gate blocks [g0, g1): dR[:, g] = sum over the N*T rows of
// (Hprev * mask_g)^T dA[:, g] (mask of the row's sample; Hprev [N*T, U]; dA and dR k*U wide), or
// Hprev^T dA without a mask. With `scale` [N*T, ld_scale] (the GRU's reset gate) the rows are
// scale * (Hprev * mask_g).
template <typename T>
void recurrent_kernel_grad(T* dR, idx k, const T* Hprev, const T* dA, const T* mask, idx g0,
                           idx g1, const RnnShape& s, const T* scale = nullptr,
                           idx ld_scale = 0) {
    const idx U = s.U, K = k * U, M = s.N * s.T;
    if (!mask) {
        gemm<T>(true, false, U, (g1 - g0) * U, M, T(1), Hprev, U, dA + g0 * U, K, T(0),
                dR + g0 * U, K);
        return;
    }
    T* HM = scratch<T, 1>(M * U);
    for (idx g = g0; g < g1; ++g) {
        parallel_for(M, M * U >= kParallelElementwise, [&](idx m) {
            const T* mk = mask + (m / s.T) * K + g * U;
            const T* h = Hprev + m * U;
            T* dst = HM + m * U;
            if (scale)
                for (idx j = 0; j < U; ++j) dst[j] = scale[m * ld_scale + j] * (h[j] * mk[j]);
            else
                for (idx j = 0; j < U; ++j) dst[j] = h[j] * mk[j];
        });
        gemm<T>(true, false, U, U, M, T(1), HM, U, dA + g * U, K, T(0), dR + g * U, K);
    }
}

// body(i) for the rows of a block, on the thread that owns the block.
template <typename F>
void for_block_rows(idx lo, idx hi, F&& body) {
    for (idx i = lo; i < hi; ++i) body(i);
}

// The walk over the steps runs on blocks of samples, each block on one thread from its first
// step to its last: samples never interact in a recurrence, so the team meets once per call
// instead of at every step (a busy core then delays one join, not 28 of them). Each element is
// computed by the same sums whatever the block (every GEMM path gives an element the same sum).
template <typename F>
void for_sample_blocks(idx N, idx work_per_sample, F&& body) {
    const int threads = (N * work_per_sample >= kParallelElementwise) ? max_threads() : 1;
    const idx blocks = std::max<idx>(1, std::min<idx>(N, threads));
    const idx per = (N + blocks - 1) / blocks;
    parallel_for(blocks, blocks > 1, [&](idx b) {
        const idx lo = b * per, hi = std::min(N, lo + per);
        if (lo < hi) body(lo, hi);
    });
}

// dH[i] += dY for processing step `step` (every step with sequences, else only the last); a null
// dY (no gradient reaches the outputs, only the final state) adds nothing.
template <typename T>
void add_output_grad(T* dH_row, const T* dY, const RnnShape& s, idx step, idx i, bool sequences) {
    const T* g = nullptr;
    if (!dY) return;
    if (sequences) g = dY + (i * s.T + step) * s.U;
    else if (step == s.T - 1) g = dY + i * s.U;
    if (g)
        for (idx j = 0; j < s.U; ++j) dH_row[j] += g[j];
}

// The running state gradient before the walk: the seed dL/d(final state) when given, else zeros
// (a copy, not an addition: without a seed the bits are those of a walk from zero).
template <typename T>
void seed_state(T* d, const T* seed, idx count) {
    if (seed) std::copy(seed, seed + count, d);
    else std::fill(d, d + count, T(0));
}

// Column sums of A[M, K] in row order into out[K] (a bias gradient), columns in parallel.
template <typename T>
void column_sums(T* out, const T* A, idx M, idx K) {
    parallel_for(K, M * K >= kParallelElementwise, [&](idx k) {
        T sum = T(0);
        for (idx m = 0; m < M; ++m) sum += A[m * K + k];
        out[k] = sum;
    });
}

// XM[N*T, F] = X times gate g's block of the per-gate input mask (k*F wide, one row a sample).
template <typename T>
void masked_input(T* XM, const T* X, const T* mask, idx k, idx g, const RnnShape& s) {
    const idx M = s.N * s.T, F = s.F;
    parallel_for(M, M * F >= kParallelElementwise, [&](idx m) {
        const T* mk = mask + (m / s.T) * k * F + g * F;
        const T* x = X + m * F;
        T* dst = XM + m * F;
        for (idx j = 0; j < F; ++j) dst[j] = x[j] * mk[j];
    });
}

// Z[N*T, k*U] = X @ W + b, all steps at once; with per-gate input masks gate g's columns are
// (X * xmask_g) @ W_g + b_g, one product per gate (the masked input built in a scratch array).
template <typename T>
void input_projection(T* Z, const T* X, const T* W, const T* b, const RnnShape& s, idx k,
                      const T* xmask) {
    const idx M = s.N * s.T, U = s.U, K = k * U;
    if (!xmask) {
        dense_forward<T>(Z, X, W, b, M, s.F, K);
        return;
    }
    T* XM = scratch<T, 2>(M * s.F);
    for (idx g = 0; g < k; ++g) {
        masked_input<T>(XM, X, xmask, k, g, s);
        gemm<T>(false, false, M, U, s.F, T(1), XM, s.F, W + g * U, K, T(0), Z + g * U, K);
    }
    if (b)
        for_rows(M, K, [&](idx m) {
            for (idx j = 0; j < K; ++j) Z[m * K + j] += b[j];
        });
}

// The input side's gradients from dA [N*T, k*U]: dW, db (column sums; null: skipped) and dX
// (null: skipped). With per-gate input masks dW_g = (X * xmask_g)^T dA_g and
// dX = sum over g, in order, of (dA_g @ W_g^T) * xmask_g.
template <typename T>
void input_gradients(T* dX, T* dW, T* db, const T* dA, const T* X, const T* W, const RnnShape& s,
                     idx k, const T* xmask) {
    const idx M = s.N * s.T, U = s.U, K = k * U, F = s.F;
    if (!xmask) {
        dense_backward<T>(dX, dW, db, dA, X, W, M, F, K);
        return;
    }
    T* XM = scratch<T, 2>(M * F);
    for (idx g = 0; g < k; ++g) {
        masked_input<T>(XM, X, xmask, k, g, s);
        gemm<T>(true, false, F, U, M, T(1), XM, F, dA + g * U, K, T(0), dW + g * U, K);
    }
    if (db) column_sums<T>(db, dA, M, K);
    if (!dX) return;
    T* P = scratch<T, 3>(M * F);
    for (idx g = 0; g < k; ++g) {
        gemm<T>(false, true, M, F, U, T(1), dA + g * U, K, W + g * U, K, T(0), P, F);
        parallel_for(M, M * F >= kParallelElementwise, [&](idx m) {
            const T* mk = xmask + (m / s.T) * k * F + g * F;
            const T* v = P + m * F;
            T* d = dX + m * F;
            for (idx j = 0; j < F; ++j) d[j] = g == 0 ? v[j] * mk[j] : d[j] + v[j] * mk[j];
        });
    }
}

}  // namespace

// -- SimpleRNN ------------------------------------------------------------------------------------
template <typename T>
void simple_rnn_forward(T* Hseq, T* Z, const T* X, const T* W, const T* R, const T* b,
                        const T* H0, const RnnShape& s, const CellActs<T>& a) {
    const idx U = s.U;
    input_projection<T>(Z, X, W, b, s, 1, a.xmask);  // x @ W + b for every step at once
    T* tmp = a.rmask ? scratch<T, 0>(s.N * U) : nullptr;
    for_sample_blocks(s.N, s.T * s.U * s.U * 4, [&](idx lo, idx hi) {
        for (idx step = 0; step < s.T; ++step) {
            const idx t = s.time(step);
            cell_product<T>(a, tmp, Z, U, R, U, U, Hseq, H0, s, step, T(1), lo, hi);
            for_block_rows(lo, hi, [&](idx i) {
                act_forward<T>(a.act, Hseq + (i * s.T + step) * U, Z + (i * s.T + t) * U, U, a.alpha);
            });
        }
    });
}

template <typename T>
void simple_rnn_backward(T* dX, T* dW, T* dR, T* db, T* dH0, T* dZ, T* Hprev, const T* dY,
                         const T* X, const T* W, const T* R, const T* H0, const T* Z,
                         const T* Hseq, const RnnShape& s, const CellActs<T>& a, bool sequences,
                         const T* dH_last) {
    const idx U = s.U;
    seed_state(dH0, dH_last, s.N * U);  // the running dL/dh of the state
    const T* RT = transposed_recurrent(R, U, U);
    T* tmp = a.rmask ? scratch<T, 0>(s.N * U) : nullptr;
    for_sample_blocks(s.N, s.T * s.U * s.U * 4, [&](idx lo, idx hi) {
        for (idx step = s.T - 1; step >= 0; --step) {
            const idx t = s.time(step);
            for_block_rows(lo, hi, [&](idx i) {
                T* dh = dH0 + i * U;
                add_output_grad(dh, dY, s, step, i, sequences);
                act_backward<T>(a.act, dZ + (i * s.T + t) * U, dh, Z + (i * s.T + t) * U,
                                Hseq + (i * s.T + step) * U, U, a.alpha);
            });
            cell_state_gradient<T>(a, tmp, 1, dH0, dZ, U, RT, 1, s, t, T(0), lo, hi);
        }
    });
    previous_states<T>(Hprev, Hseq, H0, s);
    input_gradients<T>(dX, dW, db, dZ, X, W, s, 1, a.xmask);
    recurrent_kernel_grad<T>(dR, 1, Hprev, dZ, a.rmask, 0, 1, s);
}

// -- LSTM -----------------------------------------------------------------------------------------
template <typename T>
void lstm_forward(T* Hseq, T* Z, T* G, T* C, T* TC, const T* X, const T* W, const T* R,
                  const T* b, const T* H0, const T* C0, const RnnShape& s, const CellActs<T>& a) {
    const idx U = s.U, K = 4 * U;
    input_projection<T>(Z, X, W, b, s, 4, a.xmask);
    T* tmp = a.rmask ? scratch<T, 0>(s.N * U) : nullptr;
    for_sample_blocks(s.N, s.T * s.U * s.U * 4, [&](idx lo, idx hi) {
        for (idx step = 0; step < s.T; ++step) {
            const idx t = s.time(step);
            cell_product<T>(a, tmp, Z, K, R, K, K, Hseq, H0, s, step, T(1), lo, hi);
            for_block_rows(lo, hi, [&](idx i) {
                const T* z = Z + (i * s.T + t) * K;
                T* g = G + (i * s.T + t) * K;
                T* c = C + (i * s.T + t) * U;
                T* tc = TC + (i * s.T + t) * U;
                T* h = Hseq + (i * s.T + step) * U;
                const T* c_prev = step > 0 ? C + (i * s.T + s.time(step - 1)) * U
                                           : (C0 ? C0 + i * U : nullptr);
                act_forward<T>(a.ract, g, z, 2 * U, a.ralpha);                // i, f
                act_forward<T>(a.act, g + 2 * U, z + 2 * U, U, a.alpha);      // g
                act_forward<T>(a.ract, g + 3 * U, z + 3 * U, U, a.ralpha);    // o
                for (idx j = 0; j < U; ++j)
                    c[j] = (c_prev ? g[U + j] * c_prev[j] : T(0)) + g[j] * g[2 * U + j];
                act_forward<T>(a.act, tc, c, U, a.alpha);
                for (idx j = 0; j < U; ++j) h[j] = g[3 * U + j] * tc[j];
            });
        }
    });
}

template <typename T>
void lstm_backward(T* dX, T* dW, T* dR, T* db, T* dH0, T* dC0, T* dZ, T* Hprev, const T* dY,
                   const T* X, const T* W, const T* R, const T* H0, const T* C0, const T* Z,
                   const T* G, const T* C, const T* TC, const T* Hseq, const RnnShape& s,
                   const CellActs<T>& a, bool sequences, const T* dH_last, const T* dC_last) {
    const idx U = s.U, K = 4 * U;
    seed_state(dH0, dH_last, s.N * U);
    seed_state(dC0, dC_last, s.N * U);  // the running dL/dc of the cell state
    const T* RT = transposed_recurrent(R, U, K);
    // Keras's activations (tanh, sigmoid): the gate arithmetic of a row in one fused pass
    const bool fused = a.act == Act::tanh && a.ract == Act::sigmoid;
    T* tmp = a.rmask ? scratch<T, 0>(s.N * U) : nullptr;
    for_sample_blocks(s.N, s.T * s.U * s.U * 4, [&](idx lo, idx hi) {
        for (idx step = s.T - 1; step >= 0; --step) {
            const idx t = s.time(step);
            for_block_rows(lo, hi, [&](idx i) {
                T* dh = dH0 + i * U;
                T* dc = dC0 + i * U;
                T* da = dZ + (i * s.T + t) * K;
                const T* z = Z + (i * s.T + t) * K;
                const T* g = G + (i * s.T + t) * K;
                const T* c = C + (i * s.T + t) * U;
                const T* tc = TC + (i * s.T + t) * U;
                const T* c_prev = step > 0 ? C + (i * s.T + s.time(step - 1)) * U
                                           : (C0 ? C0 + i * U : nullptr);
                add_output_grad(dh, dY, s, step, i, sequences);
                if (fused) {  // the same arithmetic as below in one pass (bit for bit)
                    const T* ig = g;
                    const T* fg = g + U;
                    const T* gg = g + 2 * U;
                    const T* og = g + 3 * U;
                    for (idx j = 0; j < U; ++j) {
                        const T dcj = dc[j] + (dh[j] * og[j]) * (T(1) - tc[j] * tc[j]);
                        const T di = dcj * gg[j], dg = dcj * ig[j], d_o = dh[j] * tc[j];
                        const T df = c_prev ? dcj * c_prev[j] : T(0);
                        da[j] = di * ig[j] * (T(1) - ig[j]);
                        da[U + j] = df * fg[j] * (T(1) - fg[j]);
                        da[2 * U + j] = dg * (T(1) - gg[j] * gg[j]);
                        da[3 * U + j] = d_o * og[j] * (T(1) - og[j]);
                        dc[j] = dcj * fg[j];
                    }
                    return;
                }
                for (idx j = 0; j < U; ++j) da[j] = dh[j] * g[3 * U + j];  // dL/d act(c), scratch
                act_backward<T>(a.act, da, da, c, tc, U, a.alpha);
                for (idx j = 0; j < U; ++j) {
                    dc[j] += da[j];
                    da[3 * U + j] = dh[j] * tc[j];                        // do
                    da[j] = dc[j] * g[2 * U + j];                         // di
                    da[U + j] = c_prev ? dc[j] * c_prev[j] : T(0);        // df
                    da[2 * U + j] = dc[j] * g[j];                         // dg
                    dc[j] *= g[U + j];                                    // to c_{t-1}
                }
                act_backward<T>(a.ract, da, da, z, g, 2 * U, a.ralpha);
                act_backward<T>(a.act, da + 2 * U, da + 2 * U, z + 2 * U, g + 2 * U, U, a.alpha);
                act_backward<T>(a.ract, da + 3 * U, da + 3 * U, z + 3 * U, g + 3 * U, U, a.ralpha);
            });
            cell_state_gradient<T>(a, tmp, 4, dH0, dZ, K, RT, 4, s, t, T(0), lo, hi);
        }
    });
    previous_states<T>(Hprev, Hseq, H0, s);
    input_gradients<T>(dX, dW, db, dZ, X, W, s, 4, a.xmask);
    recurrent_kernel_grad<T>(dR, 4, Hprev, dZ, a.rmask, 0, 4, s);
}

// -- GRU ------------------------------------------------------------------------------------------
template <typename T>
void gru_forward(T* Hseq, T* ZX, T* ZR, T* G, const T* X, const T* W, const T* R, const T* b,
                 const T* H0, const RnnShape& s, const CellActs<T>& a, bool reset_after) {
    const idx U = s.U, K = 3 * U;
    const T* b_rec = (b && reset_after) ? b + K : nullptr;
    input_projection<T>(ZX, X, W, b, s, 3, a.xmask);  // b: the input row (or the only bias)
    T* tmp = a.rmask ? scratch<T, 0>(s.N * U) : nullptr;
    for_sample_blocks(s.N, s.T * s.U * s.U * 4, [&](idx lo, idx hi) {
        for (idx step = 0; step < s.T; ++step) {
            const idx t = s.time(step);
            // reset_after: all three blocks of h_{t-1} @ R; otherwise the z and r blocks only
            cell_product<T>(a, tmp, ZR, K, R, K, reset_after ? K : 2 * U, Hseq, H0, s, step, T(0),
                            lo, hi);
            for_block_rows(lo, hi, [&](idx i) {
                const T* zx = ZX + (i * s.T + t) * K;
                T* zr = ZR + (i * s.T + t) * K;
                T* g = G + (i * s.T + t) * K;
                const T* hp = previous_state(Hseq, H0, s, step, i);
                if (b_rec)
                    for (idx j = 0; j < K; ++j) zr[j] += b_rec[j];
                for (idx j = 0; j < 2 * U; ++j) g[j] = zx[j] + zr[j];
                act_forward<T>(a.ract, g, g, 2 * U, a.ralpha);  // z, r
                if (reset_after) {
                    for (idx j = 0; j < U; ++j) g[2 * U + j] = zx[2 * U + j] + g[U + j] * zr[2 * U + j];
                    act_forward<T>(a.act, g + 2 * U, g + 2 * U, U, a.alpha);
                } else {  // r * h_{t-1}, parked in this step's state slot until the product is done
                    T* rh = Hseq + (i * s.T + step) * U;
                    const T* m = a.rmask ? a.rmask + i * K + 2 * U : nullptr;  // the h block's mask
                    for (idx j = 0; j < U; ++j)
                        rh[j] = !hp ? T(0) : m ? g[U + j] * (hp[j] * m[j]) : g[U + j] * hp[j];
                }
            });
            if (!reset_after) {
                gemm<T>(false, false, hi - lo, U, U, T(1), Hseq + (lo * s.T + step) * U, s.T * U,
                        R + 2 * U, K, T(0), ZR + (lo * s.T + t) * K + 2 * U, s.T * K);
                for_block_rows(lo, hi, [&](idx i) {
                    const T* zx = ZX + (i * s.T + t) * K;
                    const T* zr = ZR + (i * s.T + t) * K;
                    T* g = G + (i * s.T + t) * K;
                    for (idx j = 0; j < U; ++j) g[2 * U + j] = zx[2 * U + j] + zr[2 * U + j];
                    act_forward<T>(a.act, g + 2 * U, g + 2 * U, U, a.alpha);
                });
            }
            for_block_rows(lo, hi, [&](idx i) {
                const T* g = G + (i * s.T + t) * K;
                const T* hp = previous_state(Hseq, H0, s, step, i);
                T* h = Hseq + (i * s.T + step) * U;
                for (idx j = 0; j < U; ++j)
                    h[j] = (hp ? g[j] * hp[j] : T(0)) + (T(1) - g[j]) * g[2 * U + j];
            });
        }
    });
}

template <typename T>
void gru_backward(T* dX, T* dW, T* dR, T* db, T* dH0, T* dAX, T* dAR, T* Hprev, T* Work,
                  const T* dY, const T* X, const T* W, const T* R, const T* H0, const T* ZX,
                  const T* ZR, const T* G, const T* Hseq, const RnnShape& s, const CellActs<T>& a,
                  bool reset_after, bool sequences, const T* dH_last) {
    const idx U = s.U, K = 3 * U;
    previous_states<T>(Hprev, Hseq, H0, s);
    seed_state(dH0, dH_last, s.N * U);
    const T* RT = transposed_recurrent(R, U, K);
    T* tmp = a.rmask ? scratch<T, 0>(s.N * U) : nullptr;
    for_sample_blocks(s.N, s.T * s.U * s.U * 4, [&](idx lo, idx hi) {
        for (idx step = s.T - 1; step >= 0; --step) {
            const idx t = s.time(step);
            // 1. dL/d(pre-activation of hh), with the pre-activation parked in dAR's h block
            for_block_rows(lo, hi, [&](idx i) {
                T* dh = dH0 + i * U;
                T* dax = dAX + (i * s.T + t) * K;
                T* dar = dAR + (i * s.T + t) * K;
                const T* zx = ZX + (i * s.T + t) * K;
                const T* zr = ZR + (i * s.T + t) * K;
                const T* g = G + (i * s.T + t) * K;
                add_output_grad(dh, dY, s, step, i, sequences);
                for (idx j = 0; j < U; ++j) {
                    dax[2 * U + j] = dh[j] * (T(1) - g[j]);
                    dar[2 * U + j] = zx[2 * U + j] + (reset_after ? g[U + j] * zr[2 * U + j]
                                                                  : zr[2 * U + j]);
                }
                act_backward<T>(a.act, dax + 2 * U, dax + 2 * U, dar + 2 * U, g + 2 * U, U, a.alpha);
            });
            // 2. without reset_after: d(r * h_{t-1}) = da_h @ R_h^T
            if (!reset_after)
                state_gradient<T>(Work, dAX + 2 * U, K, RT + 2 * U * U, U, s, t, T(0), lo, hi);
            // 3. the gates z and r; the recurrent side's gradient; the direct path dh * z
            for_block_rows(lo, hi, [&](idx i) {
                T* dh = dH0 + i * U;
                T* dax = dAX + (i * s.T + t) * K;
                T* dar = dAR + (i * s.T + t) * K;
                const T* zx = ZX + (i * s.T + t) * K;
                const T* zr = ZR + (i * s.T + t) * K;
                const T* g = G + (i * s.T + t) * K;
                const T* hp = Hprev + (i * s.T + t) * U;
                const T* drh = Work + i * U;
                // without reset_after, the h block's product reads r * (h_{t-1} * mask_h)
                const T* mh = (a.rmask && !reset_after) ? a.rmask + i * K + 2 * U : nullptr;
                for (idx j = 0; j < U; ++j) {
                    dax[j] = dh[j] * (hp[j] - g[2 * U + j]);                                // dz
                    dax[U + j] = reset_after ? dax[2 * U + j] * zr[2 * U + j]
                                 : mh ? drh[j] * (hp[j] * mh[j]) : drh[j] * hp[j];          // dr
                    dar[j] = zx[j] + zr[j];          // pre-activations of z and r, parked
                    dar[U + j] = zx[U + j] + zr[U + j];
                }
                act_backward<T>(a.ract, dax, dax, dar, g, 2 * U, a.ralpha);
                for (idx j = 0; j < 2 * U; ++j) dar[j] = dax[j];
                for (idx j = 0; j < U; ++j) {
                    dar[2 * U + j] = reset_after ? dax[2 * U + j] * g[U + j] : dax[2 * U + j];
                    dh[j] = dh[j] * g[j] + (reset_after ? T(0)
                                            : mh ? drh[j] * g[U + j] * mh[j] : drh[j] * g[U + j]);
                }
            });
            // 4. the rest of dL/dh_{t-1}: through the recurrent products
            cell_state_gradient<T>(a, tmp, 3, dH0, dAR, K, RT, reset_after ? 3 : 2, s, t, T(1), lo,
                                   hi);
        }
    });
    const idx M = s.N * s.T;
    input_gradients<T>(dX, dW, db, dAX, X, W, s, 3, a.xmask);
    if (reset_after) {
        recurrent_kernel_grad<T>(dR, 3, Hprev, dAR, a.rmask, 0, 3, s);
        if (db) column_sums<T>(db + K, dAR, M, K);
    } else {
        recurrent_kernel_grad<T>(dR, 3, Hprev, dAR, a.rmask, 0, 2, s);
        if (a.rmask)  // the h block multiplies r * (h_{t-1} * mask_h)
            recurrent_kernel_grad<T>(dR, 3, Hprev, dAR, a.rmask, 2, 3, s, G + U, K);
        // the h block multiplies r * h_{t-1}: Hprev becomes that, in place
        for_rows(M, U, [&](idx m) {
            for (idx j = 0; j < U; ++j) Hprev[m * U + j] *= G[m * K + U + j];
        });
        if (!a.rmask)
            gemm<T>(true, false, U, U, M, T(1), Hprev, U, dAR + 2 * U, K, T(0), dR + 2 * U, K);
    }
}

// -- Embedding ------------------------------------------------------------------------------------
template <typename T>
void embedding_forward(T* Out, const T* tokens, const T* E, idx M, idx D) {
    for_rows(M, D, [&](idx m) {
        const T* row = E + idx(tokens[m]) * D;
        std::copy(row, row + D, Out + m * D);
    });
}

template <typename T>
void embedding_backward(T* dE, const T* dY, const T* tokens, idx M, idx V, idx D) {
    std::fill(dE, dE + V * D, T(0));
    // Columns in parallel, tokens in order within each: the same sums on any thread count.
    parallel_for(D, M * D >= kParallelElementwise, [&](idx d) {
        for (idx m = 0; m < M; ++m) dE[idx(tokens[m]) * D + d] += dY[m * D + d];
    });
}

#define FASTNN_INSTANTIATE(T)                                                                      \
    template void simple_rnn_forward<T>(T*, T*, const T*, const T*, const T*, const T*, const T*,   \
                                        const RnnShape&, const CellActs<T>&);                       \
    template void simple_rnn_backward<T>(T*, T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,  \
                                         const T*, const T*, const T*, const T*, const RnnShape&,   \
                                         const CellActs<T>&, bool, const T*);                       \
    template void lstm_forward<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*, const T*,       \
                                  const T*, const T*, const RnnShape&, const CellActs<T>&);         \
    template void lstm_backward<T>(T*, T*, T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,    \
                                   const T*, const T*, const T*, const T*, const T*, const T*,      \
                                   const T*, const T*, const RnnShape&, const CellActs<T>&, bool,   \
                                   const T*, const T*);                                             \
    template void gru_forward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, const T*,  \
                                 const RnnShape&, const CellActs<T>&, bool);                        \
    template void gru_backward<T>(T*, T*, T*, T*, T*, T*, T*, T*, T*, const T*, const T*, const T*, \
                                  const T*, const T*, const T*, const T*, const T*, const T*,       \
                                  const RnnShape&, const CellActs<T>&, bool, bool, const T*);       \
    template void embedding_forward<T>(T*, const T*, const T*, idx, idx);                           \
    template void embedding_backward<T>(T*, const T*, const T*, idx, idx, idx);
FASTNN_INSTANTIATE(float)
FASTNN_INSTANTIATE(double)
#undef FASTNN_INSTANTIATE

}  // namespace fastnn
