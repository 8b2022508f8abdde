"""Reference kernels: the ground truth and the textbook of fastnn.

Every kernel that fastnn runs in C++ (``fastnn._core``) has a twin here,
written in plain NumPy with the same name, signature, defaults and
semantics.  These twins serve two purposes:

* Ground truth.  The tests compare every native kernel against its twin
  here, and the twins themselves are checked against finite differences,
  so a correct reference pins down a correct native build.
* Textbook.  Each function states its formula, its shapes, where its
  defaults come from and the paper that defines it, and is short enough
  to read in one sitting.  Clarity wins over speed in this package.

One file per concern:

* ``gemm.py``        - the BLAS-style matrix product
* ``dense.py``       - fully connected layer, forward and backward
* ``activations.py`` - activation functions and their derivatives
* ``losses.py``      - losses fused with their gradients
* ``norm.py``        - batch and layer normalization, forward and backward
* ``dropout.py``     - inverted dropout with a counter-based random mask
* ``recurrent.py``   - SimpleRNN, LSTM and GRU cells over whole sequences,
  forward and backpropagation through time; the embedding lookup
* ``optim.py``       - in-place SGD, AdaGrad, RMSprop and Adam/AMSGrad
  updates, decoupled weight decay; gradient norms, clipping and L1/L2
  weight penalties

This package depends only on NumPy and the standard library; it imports
nothing from the rest of fastnn, so it can be read and tested on its own.
"""

from .activations import (
    act_backward,
    act_forward,
    prelu_backward,
    prelu_forward,
    SELU_ALPHA,
    SELU_SCALE,
    elu_backward,
    elu_forward,
    leaky_relu_backward,
    leaky_relu_forward,
    linear_backward,
    linear_forward,
    log_softmax_backward,
    log_softmax_forward,
    relu_backward,
    relu_forward,
    selu_backward,
    selu_forward,
    sigmoid_backward,
    sigmoid_forward,
    softmax_backward,
    softmax_forward,
    softplus_backward,
    softplus_forward,
    step_forward,
    tanh_backward,
    tanh_forward,
)
from .dense import dense_act_forward, dense_backward, dense_forward
from .gemm import gemm
from .losses import (
    hinge,
    huber,
    kl_divergence,
    log_cosh,
    mean_absolute_error,
    mean_squared_error,
    probabilities_grad,
    probabilities_to_logits,
    sigmoid_binary_cross_entropy,
    softmax_cross_entropy,
    sparse_softmax_cross_entropy,
)
from .recurrent import (
    embedding_backward,
    embedding_forward,
    gru_backward,
    gru_forward,
    lstm_backward,
    lstm_forward,
    sequence_dropout_backward,
    sequence_dropout_step,
    simple_rnn_backward,
    simple_rnn_forward,
)
from .dropout import dropout_backward, dropout_forward, dropout_step, normal_noise_step
from .norm import (
    batchnorm_backward,
    batchnorm_forward,
    batchnorm_inference,
    batchnorm_frozen_backward,
    layernorm_backward,
    layernorm_forward,
)
from .optim import (
    adagrad_update,
    adam_update,
    clip_gradient,
    global_norm_scale,
    l1_l2_penalty,
    norm_scale,
    rmsprop_update,
    scalar_add,
    scalar_sqrt,
    sgd_update,
    sum_squares,
    weight_decay_update,
)

__all__ = [
    "act_backward",
    "act_forward",
    "prelu_backward",
    "prelu_forward",
    "dense_act_forward",
    "dropout_step",
    "normal_noise_step",
    "batchnorm_frozen_backward",
    "probabilities_grad",
    "probabilities_to_logits",
    "global_norm_scale",
    "norm_scale",
    "scalar_add",
    "scalar_sqrt",
    "mean_absolute_error",
    "log_cosh",
    "kl_divergence",
    "huber",
    "hinge",
    "SELU_ALPHA",
    "SELU_SCALE",
    "adagrad_update",
    "adam_update",
    "batchnorm_backward",
    "batchnorm_forward",
    "batchnorm_inference",
    "clip_gradient",
    "dense_backward",
    "dense_forward",
    "dropout_backward",
    "dropout_forward",
    "elu_backward",
    "elu_forward",
    "gemm",
    "l1_l2_penalty",
    "layernorm_backward",
    "layernorm_forward",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "linear_backward",
    "linear_forward",
    "log_softmax_backward",
    "log_softmax_forward",
    "mean_squared_error",
    "relu_backward",
    "rmsprop_update",
    "relu_forward",
    "selu_backward",
    "selu_forward",
    "sgd_update",
    "sigmoid_backward",
    "sigmoid_binary_cross_entropy",
    "sigmoid_forward",
    "softmax_backward",
    "softmax_cross_entropy",
    "softmax_forward",
    "softplus_backward",
    "softplus_forward",
    "sparse_softmax_cross_entropy",
    "step_forward",
    "sum_squares",
    "tanh_backward",
    "tanh_forward",
    "weight_decay_update",
    "simple_rnn_forward",
    "simple_rnn_backward",
    "lstm_forward",
    "lstm_backward",
    "gru_forward",
    "gru_backward",
    "embedding_forward",
    "embedding_backward",
    "sequence_dropout_step",
    "sequence_dropout_backward",
]
