// Merge kernels of the functional API: elementwise binary operations and concatenation along
// the last axis (Keras's Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate), and
// the sum of gradients where one output feeds several layers.
#pragma once

#include "common.h"

namespace fastnn {

// Operation codes of merge_forward / merge_backward (fastnn.reference.merge.MERGE_OPS).
enum class MergeOp : int { add = 0, subtract = 1, multiply = 2, maximum = 3, minimum = 4 };

// Y[i] = scale * (A[i] op B[i]) for i < n. Y may alias A or B.
template <typename T>
void merge_forward(T* Y, const T* A, const T* B, idx n, int op, T scale);

// dA[i] = scale * dY[i] * dY/dA, dB[i] likewise (maximum: the gradient goes to A where A >= B,
// minimum: where A <= B, so a tie goes to the first input). dA / dB may alias dY but not each other.
template <typename T>
void merge_backward(T* dA, T* dB, const T* dY, const T* A, const T* B, idx n, int op, T scale);

// Y[N, Ca + Cb] = [A[N, Ca], B[N, Cb]] (rows side by side).
template <typename T>
void concat_forward(T* Y, const T* A, const T* B, idx N, idx Ca, idx Cb);

// Y[N, Cy] = X[N, Cx][:, offset : offset + Cy] (the gradient of one input of a concatenation).
template <typename T>
void take_columns(T* Y, const T* X, idx N, idx Cx, idx offset, idx Cy);

}  // namespace fastnn
