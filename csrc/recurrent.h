// Recurrent cells over whole sequences (SimpleRNN, LSTM, GRU) and the embedding lookup, forward
// and backpropagation through time. The NumPy twins and the equations are in
// fastnn/reference/recurrent.py; the names and layouts below are the same.
//
// Sequences are row-major [N, T, .]: sample, then time. Weights in Keras's layout: kernel W
// [F, k*U], recurrent kernel R [U, k*U], bias [k*U] (GRU with reset_after: [2, 3U], input row then
// recurrent row); gates side by side in Keras's order (LSTM i f c o, GRU z r h).
// Caches (Z, gates, C, TC, ZX, ZR) are indexed by input time; Hseq holds the states in processing
// order (reverse = Keras's go_backwards). H0/C0 may be null (zeros).
//
// Each forward computes the input projection of all N*T rows as one GEMM, then per step the
// recurrent product h_{t-1} @ R (one GEMM into the step's rows) and the cell arithmetic, fused
// row by row. Each backward walks the steps in reverse, one GEMM per step for the gradient
// flowing to h_{t-1}, and takes the weight gradients at the end as products over all N*T rows:
// their summation order is fixed, so results do not depend on the thread count.
#pragma once

#include "activations.h"
#include "common.h"

namespace fastnn {

struct RnnShape {
    idx N, T, F, U;
    bool reverse;
    idx time(idx s) const { return reverse ? T - 1 - s : s; }  // input time of processing step s
};

// The cell's settings: its two activations, `act` for candidate values and outputs (tanh),
// `ract` for gates (sigmoid), alpha as in act_forward; and the recurrent dropout mask `rmask`
// [N, k*U] (null: none), Keras's: each gate's recurrent product reads h_{t-1} * rmask[:, gate]
// (the same mask at every step; the GRU's mix z * h_{t-1} reads the unmasked state). With
// `xmask` [N, k*F] (null: none) each gate's input projection reads its own masked input,
// (x_t * xmask[:, gate]) @ W[:, gate] (Keras 3's input dropout when recurrent dropout is on too);
// the backward's dX is then the gradient of the unmasked x.
template <typename T>
struct CellActs {
    Act act = Act::tanh;
    T alpha = T(0);
    Act ract = Act::sigmoid;
    T ralpha = T(0);
    const T* rmask = nullptr;
    const T* xmask = nullptr;
};

// Z[N,T,U] = pre-activations, Hseq[N,T,U] = states.
template <typename T>
void simple_rnn_forward(T* Hseq, T* Z, const T* X, const T* W, const T* R, const T* b,
                        const T* H0, const RnnShape& s, const CellActs<T>& a);

// dY is [N,T,U] when `sequences`, else [N,U]; null when no gradient reaches the outputs. dH0[N,U]
// receives dL/dh0 (and is the running gradient of the state during the walk); Hprev[N,T,U] and
// dZ[N,T,U] are scratch. dX, db may be null. Overwrites every output. dH_last[N,U] (null: none)
// is the gradient reaching the final state h_T from outside the layer (return_state): the walk
// starts from it instead of zeros, so it adds to dY's last step; the LSTM's dC_last[N,U] is the
// same for the final cell state c_T.
template <typename T>
void simple_rnn_backward(T* dX, T* dW, T* dR, T* db, T* dH0, T* dZ, T* Hprev, const T* dY,
                         const T* X, const T* W, const T* R, const T* H0, const T* Z,
                         const T* Hseq, const RnnShape& s, const CellActs<T>& a, bool sequences,
                         const T* dH_last);

// Z, G [N,T,4U]; C, TC [N,T,U] (cell states and act(c)); Hseq [N,T,U].
template <typename T>
void lstm_forward(T* Hseq, T* Z, T* G, T* C, T* TC, const T* X, const T* W, const T* R,
                  const T* b, const T* H0, const T* C0, const RnnShape& s, const CellActs<T>& a);

template <typename T>
void lstm_backward(T* dX, T* dW, T* dR, T* db, T* dH0, T* dC0, T* dZ, T* Hprev, const T* dY,
                   const T* X, const T* W, const T* R, const T* H0, const T* C0, const T* Z,
                   const T* G, const T* C, const T* TC, const T* Hseq, const RnnShape& s,
                   const CellActs<T>& a, bool sequences, const T* dH_last, const T* dC_last);

// ZX, ZR, G [N,T,3U]; Hseq [N,T,U].
template <typename T>
void gru_forward(T* Hseq, T* ZX, T* ZR, T* G, const T* X, const T* W, const T* R, const T* b,
                 const T* H0, const RnnShape& s, const CellActs<T>& a, bool reset_after);

// dAX, dAR [N,T,3U], Hprev [N,T,U] and Work [N,U] are scratch.
template <typename T>
void gru_backward(T* dX, T* dW, T* dR, T* db, T* dH0, T* dAX, T* dAR, T* Hprev, T* Work,
                  const T* dY, const T* X, const T* W, const T* R, const T* H0, const T* ZX,
                  const T* ZR, const T* G, const T* Hseq, const RnnShape& s, const CellActs<T>& a,
                  bool reset_after, bool sequences, const T* dH_last);

// Out[M, D] = E[tokens[m], :] for M = N*T tokens (whole numbers in [0, V), checked by the caller).
template <typename T>
void embedding_forward(T* Out, const T* tokens, const T* E, idx M, idx D);

// dE[V, D] = sum over m with tokens[m] == v of dY[m, :], added in m order (overwrites dE).
template <typename T>
void embedding_backward(T* dE, const T* dY, const T* tokens, idx M, idx V, idx D);

}  // namespace fastnn
