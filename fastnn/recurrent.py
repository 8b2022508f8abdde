"""Recurrent layers -- SimpleRNN, LSTM, GRU -- and Embedding, with Keras's arguments, defaults and
weight layout.

A recurrent layer takes sequences ``(batch, timesteps, features)`` and returns the last state
``(batch, units)``, or every state ``(batch, timesteps, units)`` with ``return_sequences=True``
(to stack another recurrent layer, or to predict at every step). Each layer is one forward and
one backward kernel over the whole sequence (``fastnn.reference.recurrent`` gives the equations);
on the native backend they run inside the one-call training step like every other layer.

Weights are Keras's, in Keras's order and shapes, so ``layer.set_weights(keras_layer.get_weights())``
gives Keras's outputs: kernel ``(features, k*units)``, recurrent_kernel ``(units, k*units)``,
bias ``(k*units,)`` (GRU with ``reset_after=True``: ``(2, 3*units)``), the gates side by side as
Keras orders them (LSTM: i, f, c, o; GRU: z, r, h).
"""
import numpy as np

from . import activations as activations_module
from . import backend, initializers, regularizers, utils
from .layers import Layer, RandomLayer, register


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _cell_activation(value, what):
    act = activations_module.get(value)
    if act.rowwise:
        raise ValueError(f"{what} must be an elementwise activation (tanh, sigmoid, relu...), got "
                         f"{act.name!r}")
    return act


class _Recurrent(RandomLayer):
    """What the three recurrent layers share: arguments, validation, weights, the public call
    with ``initial_state``, input dropout, and the configuration. Subclasses set ``_gates`` (k)
    and the kernel calls.

    ``dropout`` drops input features in training with one mask per sequence (the same features of
    a sample at every step, as Keras does), drawn from the layer's random stream like Dropout's
    (``seed=``; see :class:`fastnn.layers.RandomLayer`). ``recurrent_dropout`` drops units of
    h_{t-1} where it enters the recurrent product, in training only, with one mask per sequence
    and gate (Keras 3: each gate's product gets its own mask, fixed over the steps; the GRU's mix
    ``z * h_{t-1}`` reads the unmasked state), drawn from the same stream after the input mask.
    With both, the LSTM and GRU give each gate its own input mask too, ``(x_t * mask_g) @ W_g``,
    as Keras 3 does then (its ``implementation=1``); with ``dropout`` alone the gates share one."""
    _gates = 1
    _activation_is_output = False  # the cell's activation makes the state, not logits
    _RUNTIME = Layer._RUNTIME | {"_initial", "_cache", "_hseq", "_in_mask", "_in_dropped",
                                 "_rmask", "_xmask", "_seeds", "_dstates", "_last_out"}

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, dropout=0.0, recurrent_dropout=0.0, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False,
                 input_shape=None, name=None, trainable=True, seed=None):
        super().__init__(seed=seed, name=name, input_shape=input_shape, trainable=trainable)
        self.units = _positive_int(units, f"{type(self).__name__} units")
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        for what, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
                    or not 0 <= rate < 1:
                raise ValueError(f"{type(self).__name__} {what} must be in [0, 1), got {rate!r}")
        self.dropout, self.recurrent_dropout = float(dropout), float(recurrent_dropout)
        if stateful:
            raise NotImplementedError(f"{type(self).__name__}(stateful=True) is not supported: "
                                      "pass the state explicitly with initial_state=")
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.unroll = bool(unroll)  # accepted as in Keras; the native kernel never unrolls
        self._initial = None
        self._rmask = self._xmask = None
        self._seeds = self._dstates = None

    @property
    def activation(self):
        return self._activation

    @activation.setter
    def activation(self, value):
        self._activation = _cell_activation(value, f"{type(self).__name__} activation")

    @property
    def recurrent_activation(self):
        return self._recurrent_activation

    @recurrent_activation.setter
    def recurrent_activation(self, value):
        self._recurrent_activation = _cell_activation(
            value, f"{type(self).__name__} recurrent_activation")

    # -- shapes and weights -----------------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(
                f"{self.name} ({type(self).__name__}) expects sequences of shape (batch, timesteps, "
                f"features), got input shape (None, {', '.join(map(str, input_shape))})"
                + ("; add a time axis, e.g. x[:, :, None] for one feature per step"
                   if len(input_shape) == 1 else ""))
        return (input_shape[0], self.units) if self.return_sequences else (self.units,)

    def _bias_shape(self):
        return (self._gates * self.units,)

    def _bias_initializer(self):
        return self.bias_initializer

    def build(self, input_shape):
        super().build(input_shape)
        k, u = self._gates, self.units
        self.kernel = self.add_weight("kernel", (input_shape[-1], k * u), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (u, k * u),
                                                self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer)
        self.bias = self.add_weight("bias", self._bias_shape(), self._bias_initializer(),
                                    regularizer=self.bias_regularizer) if self.use_bias else None

    def _state_names(self):
        return ["h"]

    # -- the public call --------------------------------------------------------------------------
    def __call__(self, x, training=False, initial_state=None):
        """The layer on a batch of sequences (NumPy in, NumPy out). ``initial_state``: a list of
        arrays ``(batch, units)`` (LSTM: [h, c]); zeros when None. With ``return_state`` the result
        is ``[output, *final states]`` as in Keras."""
        from . import functional
        if functional.is_symbolic(x):  # keras.Input(...) tensors: a node of a functional graph
            return functional.call_layer(self, x, initial_state=initial_state)
        if initial_state is not None and functional.is_symbolic(
                list(initial_state) if isinstance(initial_state, (list, tuple)) else initial_state):
            raise TypeError(f"{self.name} ({type(self).__name__}) is called on an array with "
                            "symbolic initial_state tensors; call it on a keras.Input tensor to "
                            "make a graph, or pass arrays as initial_state")
        x = utils.as_float_array(x, "x", self.dtype)
        if x.ndim != 3:
            raise ValueError(f"{self.name} ({type(self).__name__}) expects sequences of shape (batch, "
                             f"timesteps, features), got array of shape {x.shape}")
        if self.built and x.shape[2] != self.input_shape[-1]:
            raise ValueError(f"{self.name} expects {self.input_shape[-1]} features per step, got "
                             f"array of shape {x.shape}")
        if x.shape[1] == 0:
            raise ValueError(f"{self.name} needs at least one timestep, got array of shape {x.shape}")
        states = self._check_initial_state(initial_state, len(x), x.dtype if self.dtype is None
                                           else self.dtype)
        utils.check_finite(x, "x")
        if not self.built:
            self.compute_output_shape(x.shape[1:])
            self.build(x.shape[1:])
            x = utils.as_float_array(x, "x", self.dtype)
            states = [np.ascontiguousarray(s, self.dtype) for s in states] if states else None
        try:
            self._initial = states
            y = np.array(self.forward(x, training=bool(training)), copy=True)
            if not self.return_state:
                return y
            return [y] + [np.array(s, copy=True) for s in self._final_states()]
        finally:
            self.release()

    # -- a call in a functional graph (fastnn.functional) -----------------------------------------
    def _graph_forward(self, x, states, training):
        """The node's outputs: [output] or, with ``return_state``, [output, *final states]; the
        arrays ``states`` (empty: zeros) are the initial state."""
        self._initial = list(states) if states else None
        out = self.forward(x, training=training)
        if not self.return_state:
            return [out]
        return [out] + self._state_outputs(x)

    def _state_outputs(self, x):
        """The final states as buffers of their own (kernel calls, so a program records them):
        h is the output itself without return_sequences, else the last processing step of hseq."""
        n, t, u = self._shape_info(x)
        if not self.return_sequences:
            return [self._last_out]
        rows = self._hseq.reshape(n, t * u)
        return [backend.kernels().take_columns(rows, (t - 1) * u,
                                               out=self._buffer("h_final", (n, u), x.dtype))]

    def _graph_backward(self, grads, need_dx, need_states):
        """Gradients of the node's inputs [x, *initial states] (None where not wanted) from the
        gradients of its outputs ``grads`` ([output, *final states], None where none arrives)."""
        self._seeds = list(grads[1:]) + [None] * (len(self._state_names()) + 1 - len(grads))
        try:
            dx = self.backward(grads[0], need_dx=need_dx)
        finally:
            self._seeds = None
        states = self._dstates if self._initial else [None] * len(need_states)
        return [dx] + [d if w else None for d, w in zip(states, need_states)]

    def _seed(self, i):
        return self._seeds[i] if self._seeds else None

    def _check_initial_state(self, initial_state, n, dtype):
        if initial_state is None:
            return None
        names = self._state_names()
        if isinstance(initial_state, np.ndarray) or not isinstance(initial_state, (list, tuple)):
            initial_state = [initial_state]
        if len(initial_state) != len(names):
            raise ValueError(f"{self.name} ({type(self).__name__}) takes {len(names)} initial state "
                             f"array(s) ({', '.join(names)}), got {len(initial_state)}")
        states = []
        for name, s in zip(names, initial_state):
            s = utils.as_float_array(s, f"initial_state {name}", dtype)
            if s.shape != (n, self.units):
                raise ValueError(f"{self.name}: initial state {name} must have shape ({n}, "
                                 f"{self.units}), got {s.shape}")
            utils.check_finite(s, f"initial_state {name}")
            states.append(np.ascontiguousarray(s))
        return states

    def _final_states(self):
        return [self._hseq[:, -1]]

    def _last(self, x, n):
        """The buffer for the last state (the output when not returning sequences)."""
        self._last_out = None if self.return_sequences else self._buffer("hlast", (n, self.units),
                                                                         x.dtype)
        return self._last_out

    def _h0(self):
        return self._initial[0] if self._initial else None

    def _shape_info(self, x):
        n, t = x.shape[0], x.shape[1]
        return n, t, self.units

    def _output(self, hseq, x):
        self._hseq = hseq
        return hseq

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": self.activation.get_config(),
                "recurrent_activation": self.recurrent_activation.get_config(),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.name_of(self.kernel_initializer),
                "recurrent_initializer": initializers.name_of(self.recurrent_initializer),
                "bias_initializer": initializers.name_of(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards, "unroll": self.unroll}

    # -- kernels (per cell) -----------------------------------------------------------------------
    def _dropped_inputs(self, x, training):
        """The cell's input: x, or in training with ``dropout`` x times one mask per sequence.
        With ``recurrent_dropout`` too, a gated cell keeps x and draws one input mask per gate
        [N, k*features] (``self._xmask``), which its kernels apply to each gate's projection."""
        training = bool(training)
        per_gate = training and self.dropout > 0 and self.recurrent_dropout > 0 and self._gates > 1
        self._in_dropped = training and self.dropout > 0 and not per_gate
        self._xmask = None
        if per_gate:
            self._xmask = self._gate_mask("xmask", (x.shape[0], self._gates * x.shape[2]),
                                          self.dropout, x.dtype)
            return x
        if not self._in_dropped:
            return x
        out, self._in_mask = backend.kernels().sequence_dropout_step(
            x, self.dropout, self._stream, out=self._buffer("x_dropped", x.shape, x.dtype),
            mask=self._buffer("in_mask", (x.shape[0], x.shape[2]), x.dtype))
        return out

    def _gate_mask(self, name, shape, rate, dtype):
        """A dropout mask of ``shape`` (0 or 1/(1-rate)), one block per gate: Dropout's generator
        on the layer's stream (``dropout_step`` of a ones array)."""
        ones = self._buffer(name + "_ones", shape, dtype)
        if isinstance(ones, np.ndarray):  # eager; a recorded program reads only the mask
            ones.fill(1)
        _, mask = backend.kernels().dropout_step(
            ones, rate, self._stream, out=self._buffer(name + "_out", shape, dtype),
            mask=self._buffer(name, shape, dtype))
        return mask

    def _recurrent_mask(self, x, training):
        """The recurrent dropout mask [N, k*units] (0 or 1/(1-rate)) in training, else None."""
        self._rmask = None
        if training and self.recurrent_dropout > 0:
            self._rmask = self._gate_mask("rmask", (x.shape[0], self._gates * self.units),
                                          self.recurrent_dropout, x.dtype)
        return self._rmask

    def _input_grad(self, dx):
        if dx is None or not self._in_dropped:
            return dx
        return backend.kernels().sequence_dropout_backward(
            dx, self._in_mask, out=self._buffer("dx_dropped", dx.shape, dx.dtype))

    def _acts(self):
        a, r = self.activation, self.recurrent_activation
        return dict(activation=a.name, alpha=a.alpha or 0.0, recurrent_activation=r.name,
                    recurrent_alpha=r.alpha or 0.0)

    def _grad_buffers(self, x, dy, need_dx):
        n = x.shape[0]
        return dict(dx=self._buffer("dx", x.shape, x.dtype) if need_dx else None,
                    dkernel=self._grads[0], drecurrent=self._grads[1],
                    dbias=self._grads[2] if self.use_bias else None,
                    dh0=self._buffer("dh0", (n, self.units), x.dtype), need_dx=need_dx)


@register
class SimpleRNN(_Recurrent):
    """Elman's recurrent layer (Keras's ``SimpleRNN``): ``h_t = tanh(x_t W + h_{t-1} R + b)``.

    Weights: kernel (features, units), recurrent_kernel (units, units), bias (units,).
    Shapes: x (N, T, F) -> (N, units), or (N, T, units) with return_sequences.
    """
    _gates = 1

    def __init__(self, units, activation="tanh", **kwargs):
        kwargs.pop("recurrent_activation", None)  # SimpleRNN has no gates
        super().__init__(units, activation=activation, **kwargs)

    def forward(self, x, training=False, logits=False):
        k, (n, t, u) = backend.kernels(), self._shape_info(x)
        a = self.activation
        self._x = x = self._dropped_inputs(x, training)
        z = self._buffer("z", (n, t, u), x.dtype)
        hseq = self._buffer("hseq", (n, t, u), x.dtype)
        last = self._last(x, n)
        k.simple_rnn_forward(x, self.kernel, self.recurrent_kernel, self.bias, self._h0(),
                             a.name, a.alpha or 0.0, self.go_backwards, z=z, hseq=hseq, hlast=last,
                             rmask=self._recurrent_mask(x, training), xmask=self._xmask)
        self._cache = (z,)
        self._y = self._output(hseq, x)
        return hseq if self.return_sequences else last

    def backward(self, dy, need_dx=True, logits=False):
        x, (z,) = self._x, self._cache
        n, t, u = self._shape_info(x)
        a = self.activation
        dx, _, _, _, dh0 = backend.kernels().simple_rnn_backward(
            dy, x, self.kernel, self.recurrent_kernel, self._h0(), z, self._y, a.name,
            a.alpha or 0.0, self.go_backwards, self.return_sequences,
            dz=self._buffer("dz", (n, t, u), x.dtype), hprev=self._buffer("hprev", (n, t, u), x.dtype),
            dh_last=self._seed(0), rmask=self._rmask, xmask=self._xmask,
            **self._grad_buffers(x, dy, need_dx))
        self._dstates = [dh0]
        return self._input_grad(dx)

    def get_config(self):
        config = super().get_config()
        del config["recurrent_activation"]
        return config


@register
class LSTM(_Recurrent):
    """Long short-term memory (Keras's ``LSTM``): gates i, f, c, o; the cell state is carried
    forward by addition, ``c_t = f * c_{t-1} + i * tanh(.)``, which keeps gradients alive over
    long sequences. ``unit_forget_bias=True`` (Keras's default) starts the forget gate's bias at 1.

    Weights: kernel (features, 4*units), recurrent_kernel (units, 4*units), bias (4*units,).
    ``initial_state=[h, c]``; with return_state the call returns [output, h, c].
    """
    _gates = 4

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        base, u = self.bias_initializer, self.units

        class ForgetOnes(initializers.Initializer):
            def sample(self, shape):
                b = np.asarray(base((4 * u,), np.float64), np.float64)
                b[u:2 * u] = 1.0
                return b
        return ForgetOnes()

    def _state_names(self):
        return ["h", "c"]

    def _c0(self):
        return self._initial[1] if self._initial else None

    def _final_states(self):
        z, gates, cseq, tc = self._cache
        last = 0 if self.go_backwards else -1
        return [self._hseq[:, -1], cseq[:, last]]

    def _state_outputs(self, x):
        n, t, u = self._shape_info(x)
        cseq = self._cache[2].reshape(n, t * u)  # by input time: the last step processed
        c = backend.kernels().take_columns(cseq, (0 if self.go_backwards else t - 1) * u,
                                           out=self._buffer("c_final", (n, u), x.dtype))
        return super()._state_outputs(x) + [c]

    def forward(self, x, training=False, logits=False):
        k, (n, t, u) = backend.kernels(), self._shape_info(x)
        self._x = x = self._dropped_inputs(x, training)
        z = self._buffer("z", (n, t, 4 * u), x.dtype)
        gates = self._buffer("gates", (n, t, 4 * u), x.dtype)
        cseq = self._buffer("cseq", (n, t, u), x.dtype)
        tc = self._buffer("tc", (n, t, u), x.dtype)
        hseq = self._buffer("hseq", (n, t, u), x.dtype)
        last = self._last(x, n)
        k.lstm_forward(x, self.kernel, self.recurrent_kernel, self.bias, self._h0(), self._c0(),
                       reverse=self.go_backwards, z=z, gates=gates, cseq=cseq, tc=tc, hseq=hseq,
                       hlast=last, rmask=self._recurrent_mask(x, training), xmask=self._xmask,
                       **self._acts())
        self._cache = (z, gates, cseq, tc)
        self._y = self._output(hseq, x)
        return hseq if self.return_sequences else last

    def backward(self, dy, need_dx=True, logits=False):
        x, (z, gates, cseq, tc) = self._x, self._cache
        n, t, u = self._shape_info(x)
        dx, _, _, _, dh0, dc0 = backend.kernels().lstm_backward(
            dy, x, self.kernel, self.recurrent_kernel, self._h0(), self._c0(), z, gates, cseq, tc,
            self._y, reverse=self.go_backwards, sequences=self.return_sequences,
            dc0=self._buffer("dc0", (n, u), x.dtype), dz=self._buffer("dz", (n, t, 4 * u), x.dtype),
            hprev=self._buffer("hprev", (n, t, u), x.dtype), dh_last=self._seed(0),
            dc_last=self._seed(1), rmask=self._rmask, xmask=self._xmask,
            **self._acts(), **self._grad_buffers(x, dy, need_dx))
        self._dstates = [dh0, dc0]
        return self._input_grad(dx)

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


@register
class GRU(_Recurrent):
    """Gated recurrent unit (Keras's ``GRU``): update gate z, reset gate r, candidate h;
    ``h_t = z * h_{t-1} + (1 - z) * hh``. ``reset_after=True`` (Keras 3's default, cuDNN's form)
    applies the reset gate after the recurrent product and keeps a second bias for it.

    Weights: kernel (features, 3*units), recurrent_kernel (units, 3*units), bias (2, 3*units) with
    reset_after (input bias, recurrent bias), else (3*units,).
    """
    _gates = 3

    def __init__(self, units, reset_after=True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = bool(reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def forward(self, x, training=False, logits=False):
        k, (n, t, u) = backend.kernels(), self._shape_info(x)
        self._x = x = self._dropped_inputs(x, training)
        zx = self._buffer("zx", (n, t, 3 * u), x.dtype)
        zr = self._buffer("zr", (n, t, 3 * u), x.dtype)
        gates = self._buffer("gates", (n, t, 3 * u), x.dtype)
        hseq = self._buffer("hseq", (n, t, u), x.dtype)
        last = self._last(x, n)
        k.gru_forward(x, self.kernel, self.recurrent_kernel, self.bias, self._h0(),
                      reset_after=self.reset_after, reverse=self.go_backwards, zx=zx, zr=zr,
                      gates=gates, hseq=hseq, hlast=last, rmask=self._recurrent_mask(x, training),
                      xmask=self._xmask, **self._acts())
        self._cache = (zx, zr, gates)
        self._y = self._output(hseq, x)
        return hseq if self.return_sequences else last

    def backward(self, dy, need_dx=True, logits=False):
        x, (zx, zr, gates) = self._x, self._cache
        n, t, u = self._shape_info(x)
        dx, _, _, _, dh0 = backend.kernels().gru_backward(
            dy, x, self.kernel, self.recurrent_kernel, self._h0(), zx, zr, gates, self._y,
            reset_after=self.reset_after, reverse=self.go_backwards,
            sequences=self.return_sequences, dax=self._buffer("dax", (n, t, 3 * u), x.dtype),
            dar=self._buffer("dar", (n, t, 3 * u), x.dtype),
            hprev=self._buffer("hprev", (n, t, u), x.dtype),
            work=self._buffer("work", (n, u), x.dtype), dh_last=self._seed(0), rmask=self._rmask,
            xmask=self._xmask, **self._acts(), **self._grad_buffers(x, dy, need_dx))
        self._dstates = [dh0]
        return self._input_grad(dx)

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}


@register
class Embedding(Layer):
    """A learned vector per token (Keras's ``Embedding``): ``y[n, t] = embeddings[x[n, t]]``.

    Inputs are integer token ids in ``[0, input_dim)`` (any integer or float dtype holding whole
    numbers); anything else is refused with a ValueError. The gradient adds each position's
    gradient into its token's row. Default initializer: Keras's ``uniform``, U(-0.05, 0.05).
    Shapes: x (N, T) -> y (N, T, output_dim); embeddings (input_dim, output_dim).
    """

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, mask_zero=False, input_length=None, input_shape=None,
                 name=None, trainable=True):
        if input_shape is None and input_length is not None:
            input_shape = (input_length,)
        super().__init__(name=name, input_shape=input_shape, trainable=trainable)
        self.input_dim = _positive_int(input_dim, "Embedding input_dim")
        self.output_dim = _positive_int(output_dim, "Embedding output_dim")
        if self.input_dim > 2 ** 24:
            raise ValueError(f"Embedding input_dim must be at most 2**24 (token ids travel as "
                             f"float32), got {input_dim}")
        if mask_zero:
            raise NotImplementedError("Embedding(mask_zero=True): masking is not supported; pad "
                                      "sequences to one length and keep token 0 as a real token")
        self.mask_zero = False
        if embeddings_initializer == "uniform":
            embeddings_initializer = initializers.RandomUniform(-0.05, 0.05)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def build(self, input_shape):
        super().build(input_shape)
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer,
                                          regularizer=self.embeddings_regularizer)

    def check_inputs(self, x):
        """ValueError unless every entry of ``x`` is a whole number in [0, input_dim)."""
        if x.size == 0:
            return
        lo, hi = x.min(), x.max()
        if not (np.all(np.isfinite(x)) and np.array_equal(x, np.floor(x))):
            bad = x[~(np.isfinite(x) & (x == np.floor(x)))].flat[0]
            raise ValueError(f"{self.name} (Embedding) expects integer token ids, got the value {bad!r}")
        if lo < 0 or hi >= self.input_dim:
            raise ValueError(f"{self.name} (Embedding) expects token ids in [0, {self.input_dim}), "
                             f"got values in [{lo:g}, {hi:g}]")

    def __call__(self, x, training=False):
        from . import functional
        if functional.is_symbolic(x):  # keras.Input(...) tensors: a node of a functional graph
            return functional.call_layer(self, x)
        arr = np.asarray(x)
        if arr.dtype.kind not in "iuf" or arr.dtype.kind == "b":
            raise TypeError(f"{self.name} (Embedding) expects integer token ids, got dtype {arr.dtype}")
        self.check_inputs(arr.astype(np.float64))
        return super().__call__(x, training)

    def forward(self, x, training=False, logits=False):
        if isinstance(x, np.ndarray):
            self.check_inputs(x)
        self._x = x
        out = self._buffer("y", tuple(x.shape) + (self.output_dim,), self.embeddings.dtype)
        return backend.kernels().embedding_forward(x, self.embeddings, out=out)

    def backward(self, dy, need_dx=True, logits=False):
        backend.kernels().embedding_backward(dy, self._x, self._grads[0])
        return None

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": initializers.name_of(self.embeddings_initializer),
                "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
                "mask_zero": self.mask_zero}
