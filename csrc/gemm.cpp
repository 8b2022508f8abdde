// Cache-blocked GEMM in the GotoBLAS layout, first version (portable C++; a later pass adds
// run-time-dispatched SIMD microkernels behind the same interface in gemm.h).
//
//   for each column chunk jc (NC wide) and depth block pc (KC deep):
//       pack op(B)[pc:pc+KC, jc:jc+NC] into NR-wide panels            (shared by all threads)
//       parallel over tiles (MC rows x NG columns of C):
//           pack op(A)[ic:ic+MC, pc:pc+KC] into MR-tall panels        (per thread)
//           MR x NR microkernel accumulates in registers, then C += alpha * acc
//
// Depth blocks are visited in order and every C tile belongs to exactly one task, so the sum
// behind each element of C has the same order for any thread count.
#include "gemm.h"

#include <algorithm>
#include <vector>

namespace fastnn {
namespace {

template <typename T> struct Tiling;
// Register budget (SSE2 baseline, 16 xmm): float 4x8 tile = 8 accumulators + 2 B + 1 A broadcast.
template <> struct Tiling<float>  { static constexpr int MR = 4, NR = 8; };
// double 4x4 tile = 8 accumulators of 2 lanes.
template <> struct Tiling<double> { static constexpr int MR = 4, NR = 4; };

constexpr idx KC = 256;   // depth of a packed block: an MR x KC panel of A stays in L1
constexpr idx MC = 96;    // rows of A packed per task: MC x KC stays in L2
constexpr idx NG = 256;   // columns of C per task
constexpr idx NC = 4096;  // columns of B packed at once
constexpr idx kParallelFlops = idx(1) << 17;  // M*N*K below which one thread is faster

// Ap[panel][p][r] = op(A)(i0 + panel*MR + r, p0 + p), zero-padded past the last row.
template <typename T>
void pack_a(bool trans_a, const T* A, idx lda, idx i0, idx mc, idx p0, idx kc, T* Ap) {
    constexpr int MR = Tiling<T>::MR;
    for (idx ip = 0; ip < mc; ip += MR) {
        const idx mr = std::min<idx>(MR, mc - ip);
        for (idx p = 0; p < kc; ++p) {
            for (idx r = 0; r < MR; ++r) {
                const idx i = i0 + ip + r, k = p0 + p;
                Ap[r] = r < mr ? (trans_a ? A[k * lda + i] : A[i * lda + k]) : T(0);
            }
            Ap += MR;
        }
    }
}

// Bp[panel][p][c] = op(B)(p0 + p, j0 + panel*NR + c), zero-padded past the last column.
template <typename T>
void pack_b_panel(bool trans_b, const T* B, idx ldb, idx p0, idx kc, idx j0, idx nr, T* Bp) {
    constexpr int NR = Tiling<T>::NR;
    for (idx p = 0; p < kc; ++p) {
        for (idx c = 0; c < NR; ++c) {
            const idx j = j0 + c, k = p0 + p;
            Bp[c] = c < nr ? (trans_b ? B[j * ldb + k] : B[k * ldb + j]) : T(0);
        }
        Bp += NR;
    }
}

// acc[MR][NR] = sum_p Ap[p][:] (outer) Bp[p][:]; then C[0:mr, 0:nr] += alpha * acc.
template <typename T>
inline void microkernel(idx kc, const T* __restrict Ap, const T* __restrict Bp, T alpha,
                        T* __restrict C, idx ldc, idx mr, idx nr) {
    constexpr int MR = Tiling<T>::MR, NR = Tiling<T>::NR;
    T acc[MR][NR] = {};
    for (idx p = 0; p < kc; ++p) {
        for (int r = 0; r < MR; ++r)
            for (int c = 0; c < NR; ++c) acc[r][c] += Ap[r] * Bp[c];
        Ap += MR;
        Bp += NR;
    }
    for (idx r = 0; r < mr; ++r)
        for (idx c = 0; c < nr; ++c) C[r * ldc + c] += alpha * acc[r][c];
}

template <typename T>
void scale_c(idx M, idx N, T beta, T* C, idx ldc, bool parallel) {
    if (beta == T(1)) return;
#pragma omp parallel for schedule(static) if (parallel)
    for (idx i = 0; i < M; ++i) {
        T* row = C + i * ldc;
        if (beta == T(0))
            std::fill(row, row + N, T(0));
        else
            for (idx j = 0; j < N; ++j) row[j] *= beta;
    }
}

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, idx M, idx N, idx K, T alpha, const T* A, idx lda,
          const T* B, idx ldb, T beta, T* C, idx ldc) {
    constexpr int MR = Tiling<T>::MR, NR = Tiling<T>::NR;
    if (M <= 0 || N <= 0) return;
    const bool parallel = M * N * K >= kParallelFlops && max_threads() > 1;
    scale_c(M, N, beta, C, ldc, parallel);
    if (K <= 0 || alpha == T(0)) return;

    // Reused across calls: no allocation once the largest shape has been seen.
    thread_local std::vector<T> b_pack;
    for (idx jc = 0; jc < N; jc += NC) {
        const idx nc = std::min(NC, N - jc);
        const idx n_panels = (nc + NR - 1) / NR;
        for (idx pc = 0; pc < K; pc += KC) {
            const idx kc = std::min(KC, K - pc);
            if (b_pack.size() < size_t(n_panels * NR * kc)) b_pack.resize(n_panels * NR * kc);
            T* Bp = b_pack.data();
#pragma omp parallel for schedule(static) if (parallel)
            for (idx jp = 0; jp < n_panels; ++jp)
                pack_b_panel(trans_b, B, ldb, pc, kc, jc + jp * NR,
                             std::min<idx>(NR, nc - jp * NR), Bp + jp * NR * kc);

            const idx m_tiles = (M + MC - 1) / MC, n_tiles = (nc + NG - 1) / NG;
#pragma omp parallel for schedule(static) if (parallel)
            for (idx t = 0; t < m_tiles * n_tiles; ++t) {
                thread_local std::vector<T> a_pack;
                const idx ic = (t / n_tiles) * MC, jg = (t % n_tiles) * NG;
                const idx mc = std::min(MC, M - ic), ng = std::min(NG, nc - jg);
                const idx a_size = ((mc + MR - 1) / MR) * MR * kc;
                if (a_pack.size() < size_t(a_size)) a_pack.resize(a_size);
                pack_a(trans_a, A, lda, ic, mc, pc, kc, a_pack.data());
                for (idx jr = 0; jr < ng; jr += NR) {
                    const T* bp = Bp + ((jg + jr) / NR) * NR * kc;
                    for (idx ir = 0; ir < mc; ir += MR)
                        microkernel(kc, a_pack.data() + ir * kc, bp, alpha,
                                    C + (ic + ir) * ldc + jc + jg + jr, ldc,
                                    std::min<idx>(MR, mc - ir), std::min<idx>(NR, ng - jr));
                }
            }
        }
    }
}

template void gemm<float>(bool, bool, idx, idx, idx, float, const float*, idx, const float*, idx,
                          float, float*, idx);
template void gemm<double>(bool, bool, idx, idx, idx, double, const double*, idx, const double*,
                           idx, double, double*, idx);

}  // namespace fastnn
