"""Trained models out of fastnn: ONNX files (for ONNX Runtime and other serving engines) and
PyTorch modules, and PyTorch ``nn.Sequential`` models into fastnn.

``to_onnx(model, path)`` (also ``model.export(path, format="onnx")``, Keras 3's name) writes the
model's inference computation: dropout and noise layers are the identity, batch normalization uses
its moving statistics. ``to_torch(model)`` (``model.to_torch()``) returns an ``nn.Module`` in eval
mode computing the same outputs; ``from_torch(seq)`` builds a fastnn ``Sequential`` from the layer
types both libraries have. ``onnx`` and ``torch`` are optional: ``pip install "fastnn-cpu[onnx]"``,
``pip install torch``.
"""
import math

import numpy as np

from . import layers as L
from .activations import Activation as _Act
from .reference.activations import SELU_ALPHA, SELU_SCALE

# Opset 17: the first with a LayerNormalization operator (one node, as Keras computes it), while
# keeping every operator used here at semantics unchanged since (Reduce* moved axes to inputs in
# 18, which this exporter avoids needing); ONNX Runtime has run opset 17 since 1.12 (2022), so the
# files load in the runtimes people deploy today.
DEFAULT_OPSET = 17
MIN_OPSET = 17

_IDENTITY_LAYERS = (L.Dropout, L.GaussianNoise, L.GaussianDropout, L.Identity,
                    L.ActivityRegularization, L.InputLayer)


def _need(module, extra):
    try:
        return __import__(module)
    except ImportError as exc:
        raise ImportError(f"this export needs the {module!r} package: pip install "
                          f"\"fastnn-cpu[{extra}]\"" if extra else f"pip install {module}") from exc


def _built(model):
    if not getattr(model, "built", False) or model.input_shape is None:
        raise ValueError("the model is not built: call model.build(input_shape) or fit it before "
                         "exporting it")
    return model


def _model_dtype(model):
    for layer in model.layers:
        for w in layer.weights:
            return w.dtype
    from . import backend
    return np.dtype(backend.floatx())


# --------------------------------------------------------------------------------------- ONNX

class _Graph:
    """The nodes and initializers of one ONNX graph, with fresh names."""

    def __init__(self, dtype):
        import onnx
        self.onnx, self.dtype = onnx, np.dtype(dtype)
        self.nodes, self.inits, self._n = [], [], 0

    def name(self, hint):
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value, hint="c", dtype=None):
        from onnx import numpy_helper
        arr = np.asarray(value, self.dtype if dtype is None else dtype)
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type, inputs, hint=None, outputs=1, **attrs):
        names = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names


def _onnx_activation(g, x, act):
    """The ONNX nodes of a fastnn activation applied to the tensor ``x``; returns the output."""
    name, alpha = act.name, act.alpha
    if name == "linear":
        return x
    simple = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu", "softsign": "Softsign",
              "exponential": "Exp"}
    if name in simple:
        return g.op(simple[name], [x])
    if name == "leaky_relu":
        return g.op("LeakyRelu", [x], alpha=float(alpha))
    if name == "elu":
        return g.op("Elu", [x], alpha=float(alpha))
    if name == "celu":
        return g.op("Celu", [x], alpha=float(alpha))
    if name == "selu":
        return g.op("Selu", [x], alpha=float(SELU_ALPHA), gamma=float(SELU_SCALE))
    if name == "step":
        return g.op("Cast", [g.op("Greater", [x, g.const(0.0)])],
                    to=g.onnx.helper.np_dtype_to_tensor_dtype(g.dtype))
    if name == "softplus":  # max(x, 0) + log(1 + exp(-|x|)): no overflow for large x
        e = g.op("Exp", [g.op("Neg", [g.op("Abs", [x])])])
        return g.op("Add", [g.op("Relu", [x]), g.op("Log", [g.op("Add", [e, g.const(1.0)])])])
    if name == "gelu":  # x * (1 + erf(x / sqrt 2)) / 2
        erf = g.op("Erf", [g.op("Mul", [x, g.const(1 / math.sqrt(2.0))])])
        return g.op("Mul", [g.op("Mul", [x, g.const(0.5)]), g.op("Add", [erf, g.const(1.0)])])
    if name == "gelu_tanh":  # x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)
        x3 = g.op("Mul", [g.op("Mul", [x, x]), x])
        u = g.op("Add", [x, g.op("Mul", [x3, g.const(0.044715)])])
        return g.op("Mul", [x, g.op("Sigmoid", [g.op("Mul", [u, g.const(2 * math.sqrt(2 / math.pi))])])])
    if name == "silu":
        return g.op("Mul", [x, g.op("Sigmoid", [x])])
    if name == "mish":
        return g.op("Mul", [x, g.op("Tanh", [_onnx_activation(g, x, _Act("softplus"))])])
    if name == "relu6":
        return g.op("Clip", [x, g.const(0.0), g.const(6.0)])
    if name == "hard_sigmoid":
        return g.op("HardSigmoid", [x], alpha=1 / 6, beta=0.5)
    if name == "hard_silu":
        return g.op("Mul", [x, g.op("HardSigmoid", [x], alpha=1 / 6, beta=0.5)])
    if name == "softmax":
        return g.op("Softmax", [x], axis=-1)
    if name == "log_softmax":
        return g.op("LogSoftmax", [x], axis=-1)
    raise ValueError(f"the {name!r} activation has no ONNX export")


# ONNX's recurrent operators take their cell functions by name; these are the ones fastnn shares.
_RNN_ACTS = {"tanh": ("Tanh", None, None), "sigmoid": ("Sigmoid", None, None), "relu": ("Relu", None, None),
             "softsign": ("Softsign", None, None), "softplus": ("Softplus", None, None),
             "leaky_relu": ("LeakyRelu", "alpha", None), "elu": ("Elu", "alpha", None),
             "hard_sigmoid": ("HardSigmoid", 1 / 6, 0.5), "linear": ("Affine", 1.0, 0.0)}


def _rnn_acts(layer, acts):
    # activation_alpha / activation_beta hold the parameters of the functions that take one, in
    # the order of the functions (ONNX Runtime's reading: a function without the parameter
    # consumes no entry).
    names, alphas, betas = [], [], []
    for act in acts:
        if act.name not in _RNN_ACTS:
            raise ValueError(f"{layer.name} ({type(layer).__name__}): the {act.name!r} cell activation "
                             "has no ONNX export (ONNX's recurrent operators take "
                             f"{', '.join(_RNN_ACTS)})")
        op, a, b = _RNN_ACTS[act.name]
        names.append(op)
        if a is not None:
            alphas.append(float(act.alpha) if a == "alpha" else a)
        if b is not None:
            betas.append(b)
    attrs = {"activations": names}
    if alphas:
        attrs["activation_alpha"] = alphas
    if betas:
        attrs["activation_beta"] = betas
    return attrs


def _gate_blocks(w, order, u):
    """Reorder the gate blocks of the last axis of ``w`` (k*u wide) by ``order``."""
    return np.concatenate([w[..., i * u:(i + 1) * u] for i in order], axis=-1)


def _onnx_recurrent(g, x, layer, states=(), with_states=False):
    """A recurrent layer as ONNX's RNN / LSTM / GRU operator; ``states``: the names of its initial
    state tensors (h, and c for an LSTM; none: zeros); ``with_states``: return [output, *final
    states] (Y_h, Y_c: the last processed step, as Keras's return_state) instead of the output."""
    u = layer.units
    kernel, rec = np.asarray(layer.kernel), np.asarray(layer.recurrent_kernel)
    k = layer._gates
    if isinstance(layer, L.LSTM):  # Keras i, f, c, o -> ONNX i, o, f, c
        op, order = "LSTM", (0, 3, 1, 2)
        acts = [layer.recurrent_activation, layer.activation, layer.activation]
        b_in = np.zeros(k * u) if layer.bias is None else np.asarray(layer.bias)
        b_rec = np.zeros(k * u)
        attrs = {}
    elif isinstance(layer, L.GRU):  # z, r, h in both
        op, order = "GRU", (0, 1, 2)
        acts = [layer.recurrent_activation, layer.activation]
        if layer.bias is None:
            b_in, b_rec = np.zeros(k * u), np.zeros(k * u)
        elif layer.reset_after:
            b_in, b_rec = np.asarray(layer.bias[0]), np.asarray(layer.bias[1])
        else:
            b_in, b_rec = np.asarray(layer.bias), np.zeros(k * u)
        attrs = {"linear_before_reset": int(layer.reset_after)}
    else:
        op, order = "RNN", (0,)
        acts = [layer.activation]
        b_in = np.zeros(u) if layer.bias is None else np.asarray(layer.bias)
        b_rec = np.zeros(u)
        attrs = {}
    attrs.update(_rnn_acts(layer, acts))
    W = _gate_blocks(kernel, order, u).T[None]          # (1, k*u, F)
    R = _gate_blocks(rec, order, u).T[None]             # (1, k*u, u)
    B = np.concatenate([_gate_blocks(b_in, order, u), _gate_blocks(b_rec, order, u)])[None]
    seq = g.op("Transpose", [x], perm=[1, 0, 2])        # (T, N, F): ONNX's default layout
    if layer.go_backwards:  # Keras feeds the steps last to first and returns them in that order
        seq = g.op("Slice", [seq, g.const([-1], dtype=np.int64), g.const([-(2 ** 62)], dtype=np.int64),
                             g.const([0], dtype=np.int64), g.const([-1], dtype=np.int64)])
    ins = [seq, g.const(W, "W"), g.const(R, "R"), g.const(B, "B")]
    if states:  # initial_h (and initial_c): (1, N, u); sequence_lens left out ("")
        ins += [""] + [g.op("Unsqueeze", [s, g.const([0], dtype=np.int64)]) for s in states]
    n_out = 3 if isinstance(layer, L.LSTM) else 2
    got = g.op(op, ins, outputs=n_out, hidden_size=u, **attrs)
    y = got[0]
    finals = [g.op("Squeeze", [f, g.const([0], dtype=np.int64)]) for f in got[1:n_out]]  # (N, u)
    if layer.return_sequences:                          # Y: (T, 1, N, u) -> (N, T, u)
        out = g.op("Transpose", [g.op("Squeeze", [y, g.const([1], dtype=np.int64)])], perm=[1, 0, 2])
    else:
        out = finals[0]
    return [out] + finals if with_states else out


def _onnx_relu_clip(g, x, layer):
    slope, top, threshold = layer._clip_args()
    pos = g.op("Where", [g.op("Greater", [x, g.const(threshold)]),
                         g.op("Clip", [x, g.const(0.0)] + ([g.const(top)] if math.isfinite(top) else [])),
                         g.const(0.0)])
    if slope == 0:
        return pos
    neg = g.op("Relu", [g.op("Sub", [g.const(threshold), x])])
    return g.op("Sub", [pos, g.op("Mul", [neg, g.const(slope)])])


def _onnx_layer(g, x, layer):
    if isinstance(layer, _IDENTITY_LAYERS):
        return x
    if isinstance(layer, L.Dense):
        y = g.op("MatMul", [x, g.const(layer.kernel, "kernel")])
        if layer.bias is not None:
            y = g.op("Add", [y, g.const(layer.bias, "bias")])
        return _onnx_activation(g, y, layer.activation)
    if isinstance(layer, L.ReLU) and layer._clipped():
        return _onnx_relu_clip(g, x, layer)
    if isinstance(layer, L.Activation):
        return _onnx_activation(g, x, layer.activation)
    if isinstance(layer, L.BatchNormalization):  # inference form: one scale and shift per feature
        var = np.asarray(layer.moving_variance, np.float64)
        scale = 1.0 / np.sqrt(var + layer.epsilon)
        if layer.gamma is not None:
            scale = scale * np.asarray(layer.gamma, np.float64)
        shift = -np.asarray(layer.moving_mean, np.float64) * scale
        if layer.beta is not None:
            shift = shift + np.asarray(layer.beta, np.float64)
        return g.op("Add", [g.op("Mul", [x, g.const(scale, "bn_scale")]), g.const(shift, "bn_shift")])
    if isinstance(layer, L.LayerNormalization):
        c = layer.input_shape[-1]
        gamma = np.ones(c) if layer.gamma is None else layer.gamma
        beta = np.zeros(c) if layer.beta is None else layer.beta
        return g.op("LayerNormalization", [x, g.const(gamma, "ln_gamma"), g.const(beta, "ln_beta")],
                    axis=-1, epsilon=float(layer.epsilon))
    if isinstance(layer, L.PReLU):
        return g.op("PRelu", [x, g.const(layer.alpha, "alpha")])
    if isinstance(layer, L.Flatten):
        return g.op("Flatten", [x], axis=1)
    if isinstance(layer, L.Rescaling):
        c = layer.input_shape[-1]
        scale, offset = layer._vectors(c, g.dtype)
        return g.op("Add", [g.op("Mul", [x, g.const(scale)]), g.const(offset)])
    if isinstance(layer, L.Normalization):
        s = np.maximum(np.sqrt(np.asarray(layer.variance, np.float64)), L.NORMALIZATION_EPSILON)
        mean = np.asarray(layer.mean, np.float64)
        if layer.invert:
            return g.op("Add", [g.op("Mul", [x, g.const(s)]), g.const(mean)])
        return g.op("Div", [g.op("Sub", [x, g.const(mean)]), g.const(s)])
    if isinstance(layer, (L.SimpleRNN, L.LSTM, L.GRU)):
        if layer.return_state:
            raise ValueError(f"{layer.name} ({type(layer).__name__}): return_state=True has no "
                             "export (a Sequential model has one output)")
        return _onnx_recurrent(g, x, layer)
    if isinstance(layer, L.Embedding):
        return g.op("Gather", [g.const(layer.embeddings, "embeddings"), x], axis=0)
    raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) has no ONNX export; the "
                     "exported types are Dense, Activation and its subclasses, BatchNormalization, "
                     "LayerNormalization, PReLU, Flatten, Rescaling, Normalization, SimpleRNN, LSTM, "
                     "GRU, Embedding and the dropout/noise layers")


_ONNX_MERGES = {"Add": "Sum", "Subtract": "Sub", "Multiply": "Mul", "Maximum": "Max",
                "Minimum": "Min"}


def _onnx_graph_layer(g, ins, layer):
    """One node of a functional graph: the merges and Reshape, else a layer of one input."""
    kind = type(layer).__name__
    if isinstance(layer, L.Concatenate):  # fastnn concatenates along the last axis only
        return g.op("Concat", ins, axis=-1)
    if isinstance(layer, L.Average):  # the sum scaled (ONNX Runtime has no float64 Mean)
        return g.op("Mul", [g.op("Sum", ins), g.const(1.0 / len(ins))])
    if kind in _ONNX_MERGES and isinstance(layer, L._Merge):
        return g.op(_ONNX_MERGES[kind], ins)
    if isinstance(layer, L.Reshape):  # 0 keeps the (dynamic) batch size
        return g.op("Reshape", [ins[0], g.const([0] + list(layer.target_shape), dtype=np.int64)])
    return _onnx_layer(g, ins[0], layer)


def _onnx_value_info(onnx, name, elem_type, shape):
    return onnx.helper.make_tensor_value_info(name, elem_type, ["batch"] + list(shape[1:]))


def to_onnx(model, path=None, opset=DEFAULT_OPSET):
    """Write ``model`` (a built fastnn Sequential or functional model) as an ONNX file at ``path``
    and return the ``onnx.ModelProto``; with ``path=None`` only return it. A Sequential model's
    input is named ``"input"`` and its output ``"output"``; a functional model's inputs keep the
    names of its ``Input`` tensors and its outputs are ``"output"`` (one) or ``"output_0"``,
    ``"output_1"``, ... (several, in the model's order). The batch axis is dynamic (``"batch"``).
    Inputs read by an Embedding take int64 token ids; others take the model's float dtype
    (float32 or float64). ``opset``: the ONNX operator set, at least 17 (the default; see
    DEFAULT_OPSET)."""
    onnx = _need("onnx", "onnx")
    _built(model)
    if isinstance(opset, bool) or not isinstance(opset, int) or not \
            MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"opset must be an integer from {MIN_OPSET} to "
                         f"{onnx.defs.onnx_opset_version()} (this onnx package's newest), got {opset!r}")
    dtype = _model_dtype(model)
    g = _Graph(dtype)
    tensor_type = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    if _is_functional(model):
        in_names, out_names, in_types = _onnx_functional(g, model, tensor_type, onnx)
        in_shapes = [t.shape for t in model.inputs]
        out_shapes = [t.shape for t in model.outputs]
    else:
        layers_ = [l for l in model.layers if not isinstance(l, L.InputLayer)]
        in_types = [onnx.TensorProto.INT64 if layers_ and isinstance(layers_[0], L.Embedding)
                    else tensor_type]
        x = "input"
        for layer in layers_:
            x = _onnx_layer(g, x, layer)
        if x == "input":  # a model of identity layers only
            x = g.op("Identity", [x])
        g.nodes.append(onnx.helper.make_node("Identity", [x], ["output"]))
        in_names, out_names = ["input"], ["output"]
        in_shapes, out_shapes = [model.input_shape], [model.output_shape]
    graph = onnx.helper.make_graph(
        g.nodes, model.name or "fastnn_model",
        [_onnx_value_info(onnx, n, t, s) for n, t, s in zip(in_names, in_types, in_shapes)],
        [_onnx_value_info(onnx, n, tensor_type, s) for n, s in zip(out_names, out_shapes)], g.inits)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                                   producer_name="fastnn")
    proto.ir_version = min(proto.ir_version, 8)  # IR 8 goes with opset 17; readable by older runtimes
    onnx.checker.check_model(proto)
    if path is not None:
        onnx.save(proto, str(path))
    return proto


def _is_functional(model):
    from .functional import Functional
    return isinstance(model, Functional)


def _onnx_functional(g, model, tensor_type, onnx):
    """The nodes of a functional model's graph, in its order; (input names, output names, input
    element types)."""
    in_names = []
    for i, t in enumerate(model.inputs):
        name = t.name or f"input_{i}"
        if name in in_names:
            name = f"{name}_{i}"
        in_names.append(name)
    values = {id(t): name for t, name in zip(model.inputs, in_names)}
    reads_ids = {id(t): False for t in model.inputs}
    for node in model._nodes:
        if isinstance(node.layer, L.Embedding):
            for t in node.inputs:
                if id(t) in reads_ids:
                    reads_ids[id(t)] = True
        ins = [values[id(t)] for t in node.inputs]
        if node.states or len(node.outputs) > 1:  # a recurrent call with states
            outs = _onnx_recurrent(g, ins[0], node.layer, ins[1:], len(node.outputs) > 1)
            outs = outs if isinstance(outs, list) else [outs]
        else:
            outs = [_onnx_graph_layer(g, ins, node.layer)]
        for t, name in zip(node.outputs, outs):
            values[id(t)] = name
    outs = model.outputs
    out_names = ["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))]
    for t, name in zip(outs, out_names):
        g.nodes.append(onnx.helper.make_node("Identity", [values[id(t)]], [name]))
    in_types = [onnx.TensorProto.INT64 if reads_ids[id(t)] else tensor_type for t in model.inputs]
    return in_names, out_names, in_types


def export(model, filepath, format="onnx", **kwargs):
    """``model.export(filepath, format="onnx")``: Keras 3's method; fastnn writes ONNX."""
    if format != "onnx":
        raise ValueError(f"fastnn exports format='onnx' (and PyTorch modules with model.to_torch()), "
                         f"got format={format!r}")
    kwargs.pop("verbose", None)
    return to_onnx(model, filepath, **kwargs)


# ------------------------------------------------------------------------------------ PyTorch
# Modules PyTorch lacks are defined once, on first use (torch is optional), as module-level
# classes of this module so that the nn.Module pickles.

def _torch_classes():
    torch = _need("torch", None)
    if "TorchRecurrent" in globals():
        return torch
    nn = torch.nn

    class TorchStep(nn.Module):
        """Heaviside step, ``1 if x > 0 else 0``."""

        def forward(self, x):
            return (x > 0).to(x.dtype)

    class TorchExp(nn.Module):
        def forward(self, x):
            return torch.exp(x)

    class TorchAffine(nn.Module):
        """``x * scale + offset`` over the last axis (Rescaling, Normalization, inference BN)."""

        def __init__(self, scale, offset):
            super().__init__()
            self.register_buffer("scale", scale)
            self.register_buffer("offset", offset)

        def forward(self, x):
            return x * self.scale + self.offset

    class TorchReLUClip(nn.Module):
        """Keras's ReLU with max_value, negative_slope and threshold."""

        def __init__(self, slope, top, threshold):
            super().__init__()
            self.slope, self.top, self.threshold = slope, top, threshold

        def forward(self, x):
            pos = torch.where(x > self.threshold, x.clamp(0, self.top), torch.zeros_like(x))
            return pos - self.slope * torch.relu(self.threshold - x)

    class TorchChannelsLast(nn.Module):
        """A (N, C) module applied to (N, ..., C) inputs: BatchNorm1d and PReLU on sequences."""

        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, x):
            return self.module(x.reshape(-1, x.shape[-1])).reshape(x.shape)

    class TorchRecurrent(nn.Module):
        """An ``nn.RNN``/``LSTM``/``GRU`` (batch_first) with Keras's return_sequences and
        go_backwards: the steps run last to first with go_backwards, and the output is every state
        in processing order, or the last state."""

        def __init__(self, rnn, return_sequences=False, go_backwards=False):
            super().__init__()
            self.rnn, self.return_sequences, self.go_backwards = rnn, return_sequences, go_backwards

        def forward(self, x):
            if self.go_backwards:
                x = torch.flip(x, dims=[1])
            y = self.rnn(x)[0]
            return y if self.return_sequences else y[:, -1]

    class TorchTokens(nn.Module):
        """``nn.Embedding`` for token ids given in any numeric dtype."""

        def __init__(self, embedding):
            super().__init__()
            self.embedding = embedding

        def forward(self, x):
            return self.embedding(x.long())

    for cls in (TorchStep, TorchExp, TorchAffine, TorchReLUClip, TorchChannelsLast, TorchRecurrent,
                TorchTokens):
        cls.__module__, cls.__qualname__ = __name__, cls.__name__
        globals()[cls.__name__] = cls
    return torch


def _torch_activation(act, where):
    torch = _torch_classes()
    nn = torch.nn
    plain = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "selu": nn.SELU,
             "silu": nn.SiLU, "mish": nn.Mish, "relu6": nn.ReLU6, "hard_sigmoid": nn.Hardsigmoid,
             "hard_silu": nn.Hardswish, "softsign": nn.Softsign, "linear": nn.Identity,
             "step": TorchStep, "exponential": TorchExp}
    if act.name in plain:
        return plain[act.name]()
    if act.name == "leaky_relu":
        return nn.LeakyReLU(act.alpha)
    if act.name == "elu":
        return nn.ELU(act.alpha)
    if act.name == "celu":
        return nn.CELU(act.alpha)
    if act.name == "softplus":
        return nn.Softplus(beta=1.0, threshold=30.0)  # beyond 30, x + log1p(exp(-x)) rounds to x
    if act.name in ("gelu", "gelu_tanh"):
        return nn.GELU(approximate="none" if act.name == "gelu" else "tanh")
    if act.name == "softmax":
        return nn.Softmax(dim=-1)
    if act.name == "log_softmax":
        return nn.LogSoftmax(dim=-1)
    raise ValueError(f"{where}: the {act.name!r} activation has no PyTorch export")


def _t(torch, value, dtype):
    return torch.tensor(np.asarray(value, np.float64), dtype=dtype)


def _torch_layer(torch, layer, dtype, rank):
    nn = torch.nn
    if isinstance(layer, _IDENTITY_LAYERS):
        return [nn.Identity()] if isinstance(layer, L.Identity) else \
            [nn.Dropout(layer.rate)] if isinstance(layer, L.Dropout) else []
    if isinstance(layer, L.Dense):
        lin = nn.Linear(layer.kernel.shape[0], layer.units, bias=layer.bias is not None, dtype=dtype)
        with torch.no_grad():
            lin.weight.copy_(_t(torch, np.asarray(layer.kernel).T, dtype))
            if layer.bias is not None:
                lin.bias.copy_(_t(torch, layer.bias, dtype))
        act = layer.activation
        return [lin] if act.name == "linear" else [lin, _torch_activation(act, layer.name)]
    if isinstance(layer, L.ReLU) and layer._clipped():
        return [TorchReLUClip(*layer._clip_args())]
    if isinstance(layer, L.Activation):
        return [_torch_activation(layer.activation, layer.name)]
    c = layer.input_shape[-1] if layer.input_shape else None
    if isinstance(layer, L.BatchNormalization):
        bn = nn.BatchNorm1d(c, eps=layer.epsilon, momentum=1 - layer.momentum,
                            affine=layer.gamma is not None or layer.beta is not None, dtype=dtype)
        with torch.no_grad():
            bn.running_mean.copy_(_t(torch, layer.moving_mean, dtype))
            bn.running_var.copy_(_t(torch, layer.moving_variance, dtype))
            if bn.affine:
                bn.weight.copy_(_t(torch, np.ones(c) if layer.gamma is None else layer.gamma, dtype))
                bn.bias.copy_(_t(torch, np.zeros(c) if layer.beta is None else layer.beta, dtype))
        return [bn if rank == 2 else TorchChannelsLast(bn)]
    if isinstance(layer, L.LayerNormalization):
        ln = nn.LayerNorm(c, eps=layer.epsilon, dtype=dtype)
        with torch.no_grad():
            ln.weight.copy_(_t(torch, np.ones(c) if layer.gamma is None else layer.gamma, dtype))
            ln.bias.copy_(_t(torch, np.zeros(c) if layer.beta is None else layer.beta, dtype))
        return [ln]
    if isinstance(layer, L.PReLU):
        pr = nn.PReLU(c, dtype=dtype)
        with torch.no_grad():
            pr.weight.copy_(_t(torch, layer.alpha, dtype))
        return [pr if rank == 2 else TorchChannelsLast(pr)]
    if isinstance(layer, L.Flatten):
        return [nn.Flatten()]
    if isinstance(layer, L.Rescaling):
        scale, offset = layer._vectors(c, np.float64)
        return [TorchAffine(_t(torch, scale, dtype), _t(torch, offset, dtype))]
    if isinstance(layer, L.Normalization):
        s = np.maximum(np.sqrt(np.asarray(layer.variance, np.float64)), L.NORMALIZATION_EPSILON)
        mean = np.asarray(layer.mean, np.float64)
        scale, offset = (s, mean) if layer.invert else (1 / s, -mean / s)
        return [TorchAffine(_t(torch, scale, dtype), _t(torch, offset, dtype))]
    if isinstance(layer, (L.SimpleRNN, L.LSTM, L.GRU)):
        return [_torch_recurrent(torch, layer, dtype)]
    if isinstance(layer, L.Embedding):
        emb = nn.Embedding(layer.input_dim, layer.output_dim, dtype=dtype)
        with torch.no_grad():
            emb.weight.copy_(_t(torch, layer.embeddings, dtype))
        return [TorchTokens(emb)]
    raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) has no PyTorch export")


def _torch_recurrent(torch, layer, dtype):
    nn, u, kind = torch.nn, layer.units, type(layer).__name__
    where = f"{layer.name} ({kind})"
    if layer.return_state:
        raise ValueError(f"{where}: return_state=True has no export (a Sequential has one output)")
    f = layer.kernel.shape[0]
    act = layer.activation.name
    if isinstance(layer, L.SimpleRNN):
        if act not in ("tanh", "relu"):
            raise ValueError(f"{where}: torch.nn.RNN computes tanh or relu cells, not {act!r}")
        rnn, order = nn.RNN(f, u, nonlinearity=act, bias=True, batch_first=True, dtype=dtype), (0,)
    else:
        if act != "tanh" or layer.recurrent_activation.name != "sigmoid":
            raise ValueError(f"{where}: torch.nn.{kind} computes tanh cells with sigmoid gates, not "
                             f"{act!r} with {layer.recurrent_activation.name!r}")
        if isinstance(layer, L.LSTM):  # i, f, c, o in both
            rnn, order = nn.LSTM(f, u, batch_first=True, dtype=dtype), (0, 1, 2, 3)
        else:
            if not layer.reset_after:
                raise ValueError(f"{where}: torch.nn.GRU applies the reset gate after the recurrent "
                                 "product (reset_after=True); reset_after=False has no PyTorch export")
            rnn, order = nn.GRU(f, u, batch_first=True, dtype=dtype), (1, 0, 2)  # Keras z, r, h -> r, z, n
    k = layer._gates
    if layer.bias is None:
        b_ih, b_hh = np.zeros(k * u), np.zeros(k * u)
    elif isinstance(layer, L.GRU):
        b_ih, b_hh = np.asarray(layer.bias[0]), np.asarray(layer.bias[1])
    else:
        b_ih, b_hh = np.asarray(layer.bias), np.zeros(k * u)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(_t(torch, _gate_blocks(np.asarray(layer.kernel), order, u).T, dtype))
        rnn.weight_hh_l0.copy_(_t(torch, _gate_blocks(np.asarray(layer.recurrent_kernel), order, u).T, dtype))
        rnn.bias_ih_l0.copy_(_t(torch, _gate_blocks(b_ih, order, u), dtype))
        rnn.bias_hh_l0.copy_(_t(torch, _gate_blocks(b_hh, order, u), dtype))
    return TorchRecurrent(rnn, layer.return_sequences, layer.go_backwards)


def to_torch(model):
    """A ``torch.nn.Sequential`` in eval mode computing ``model.predict`` (same dtype, same
    weights, copied): Dense -> Linear (+ activation module), BatchNormalization -> BatchNorm1d with
    the moving statistics, LayerNormalization -> LayerNorm, recurrent layers -> nn.RNN/LSTM/GRU
    (batch_first) inside :class:`TorchRecurrent`, Dropout -> Dropout, noise layers dropped.
    Raises ValueError naming a layer PyTorch has no counterpart for."""
    torch = _torch_classes()
    _built(model)
    if _is_functional(model):
        raise ValueError(f"to_torch exports Sequential models; {model.name or 'this model'} is a "
                         "functional graph (export it with model.export(path, format='onnx'))")
    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[_model_dtype(model)]
    modules, shape = [], tuple(model.input_shape[1:])
    for layer in model.layers:
        modules += _torch_layer(torch, layer, dtype, len(shape) + 1)
        shape = layer.compute_output_shape(shape)
    return torch.nn.Sequential(*modules).eval()


def _from_torch_activation(module):
    nn = _torch_classes().nn
    for cls, name in ((nn.Sigmoid, "sigmoid"), (nn.Tanh, "tanh"), (nn.ReLU, "relu"), (nn.SELU, "selu"),
                      (nn.SiLU, "silu"), (nn.Mish, "mish"), (nn.ReLU6, "relu6"),
                      (nn.Hardsigmoid, "hard_sigmoid"), (nn.Hardswish, "hard_silu"),
                      (nn.Softsign, "softsign")):
        if type(module) is cls:
            return _Act(name)
    if type(module) is nn.LeakyReLU:
        return _Act("leaky_relu", module.negative_slope)
    if type(module) is nn.ELU:
        return _Act("elu", module.alpha)
    if type(module) is nn.CELU:
        return _Act("celu", module.alpha)
    if type(module) is nn.GELU:
        return _Act("gelu" if module.approximate == "none" else "gelu_tanh")
    if type(module) is nn.Softplus and module.beta == 1:
        return _Act("softplus")
    if type(module) in (nn.Softmax, nn.LogSoftmax) and module.dim in (-1, 1, None):
        return _Act("softmax" if type(module) is nn.Softmax else "log_softmax")
    if type(module) in (TorchStep, TorchExp):
        return _Act("step" if type(module) is TorchStep else "exponential")
    return None


def _np(t):
    return t.detach().cpu().double().numpy()


def from_torch(sequential, input_shape=None):
    """A built fastnn ``Sequential`` (float32 or float64 as the torch model) with the weights of
    a ``torch.nn.Sequential`` of: Linear (an activation module after it becomes Dense's
    activation), the activations both libraries have, BatchNorm1d (with its running statistics),
    LayerNorm (over the last axis), PReLU, Dropout, Identity, Flatten, Embedding, and
    RNN/LSTM/GRU (batch_first, one layer, one direction) -- bare, they return every state
    (``return_sequences=True``) as their first output does; inside :class:`TorchRecurrent` (what
    :func:`to_torch` makes) as it says. ``input_shape`` (one sample's shape) is read from the first
    Linear/BatchNorm1d/LayerNorm when not given; recurrent and Embedding models need it
    (``(timesteps, features)``, ``(timesteps,)``). Raises ValueError naming the first module fastnn
    has no counterpart for, before building anything."""
    torch = _torch_classes()
    nn = torch.nn
    if not isinstance(sequential, nn.Sequential):
        raise TypeError(f"from_torch expects a torch.nn.Sequential, got {type(sequential).__name__}")
    mods = list(sequential)
    params = list(sequential.parameters())
    dtype = np.float64 if params and params[0].dtype == torch.float64 else np.float32
    specs, first_width, i = [], None, 0

    def where(m, j):
        return f"module {j} ({type(m).__name__})"

    while i < len(mods):
        m = mods[i]
        if type(m) is nn.Linear:
            act = _from_torch_activation(mods[i + 1]) if i + 1 < len(mods) else None
            weights = [_np(m.weight).T] + ([_np(m.bias)] if m.bias is not None else [])
            specs.append((L.Dense(m.out_features, activation=act, use_bias=m.bias is not None), weights))
            first_width = first_width or m.in_features
            i += 2 if act is not None else 1
            continue
        act = _from_torch_activation(m)
        if act is not None:
            specs.append((L.Activation(act), []))
        elif type(m) is nn.Dropout:
            specs.append((L.Dropout(m.p), []))
        elif type(m) is nn.Identity:
            specs.append((L.Identity(), []))
        elif type(m) is nn.Flatten:
            if m.start_dim != 1 or m.end_dim != -1:
                raise ValueError(f"{where(m, i)}: only Flatten(start_dim=1, end_dim=-1) has a "
                                 "fastnn layer")
            specs.append((L.Flatten(), []))
        elif type(m) is nn.BatchNorm1d:
            if not m.track_running_stats:
                raise ValueError(f"{where(m, i)}: BatchNorm1d without running statistics has no "
                                 "inference form in fastnn")
            momentum = 0.1 if m.momentum is None else m.momentum
            w = ([_np(m.weight), _np(m.bias)] if m.affine else []) + \
                [_np(m.running_mean), _np(m.running_var)]
            specs.append((L.BatchNormalization(momentum=1 - momentum, epsilon=m.eps, center=m.affine,
                                               scale=m.affine), w))
            first_width = first_width or m.num_features
        elif type(m) is nn.LayerNorm:
            if len(m.normalized_shape) != 1:
                raise ValueError(f"{where(m, i)}: fastnn normalizes the last axis only, got "
                                 f"normalized_shape={tuple(m.normalized_shape)}")
            c = m.normalized_shape[0]
            w = [np.ones(c) if m.weight is None else _np(m.weight),
                 np.zeros(c) if getattr(m, "bias", None) is None else _np(m.bias)]
            specs.append((L.LayerNormalization(epsilon=m.eps), w))
            first_width = first_width or c
        elif type(m) is nn.PReLU:
            specs.append((L.PReLU(), ["broadcast", _np(m.weight)]))
        elif type(m) in (nn.Embedding, TorchTokens):
            e = m.embedding if type(m) is TorchTokens else m
            if e.padding_idx is not None or e.max_norm is not None:
                raise ValueError(f"{where(m, i)}: padding_idx and max_norm have no fastnn counterpart")
            specs.append((L.Embedding(e.num_embeddings, e.embedding_dim), [_np(e.weight)]))
        elif type(m) is TorchRecurrent or type(m) in (nn.RNN, nn.LSTM, nn.GRU):
            wrapped = type(m) is TorchRecurrent
            rnn = m.rnn if wrapped else m
            specs.append(_from_torch_recurrent(nn, rnn, m.return_sequences if wrapped else True,
                                               m.go_backwards if wrapped else False, where(rnn, i)))
        else:
            raise ValueError(f"{where(m, i)} has no fastnn counterpart; from_torch takes Linear, "
                             "activation modules, BatchNorm1d, LayerNorm, PReLU, Dropout, Identity, "
                             "Flatten, Embedding, RNN, LSTM and GRU")
        i += 1
    if input_shape is None:
        if first_width is None or isinstance(specs[0][0], (L.SimpleRNN, L.LSTM, L.GRU, L.Embedding,
                                                             L.Flatten)):
            raise ValueError("from_torch needs input_shape= (one sample's shape, e.g. (timesteps, "
                             "features)) for this model: its first module does not say it")
        input_shape = (first_width,)
    from . import backend
    from .models import Sequential
    before = backend.floatx()
    backend.set_floatx(np.dtype(dtype).name)
    try:
        model = Sequential([layer for layer, _ in specs])
        model.build((None,) + tuple(input_shape))
    finally:
        backend.set_floatx(before)
    for layer, weights in specs:
        if weights and isinstance(weights[0], str):  # PReLU: one slope per feature, or one shared
            weights = [np.broadcast_to(weights[1], layer.alpha.shape)]
        if weights:
            layer.set_weights(weights)
    return model


def _from_torch_recurrent(nn, rnn, seqs, back, where):
    if not rnn.batch_first or rnn.num_layers != 1 or rnn.bidirectional or \
            getattr(rnn, "proj_size", 0) or not rnn.bias:
        raise ValueError(f"{where}: fastnn's recurrent layers match batch_first=True, num_layers=1, "
                         "bidirectional=False, bias=True (and no proj_size)")
    u = rnn.hidden_size
    w_ih, w_hh = _np(rnn.weight_ih_l0).T, _np(rnn.weight_hh_l0).T
    b_ih, b_hh = _np(rnn.bias_ih_l0), _np(rnn.bias_hh_l0)
    if type(rnn) is nn.GRU:  # torch r, z, n -> Keras z, r, h
        order = (1, 0, 2)
        layer = L.GRU(u, return_sequences=seqs, go_backwards=back, reset_after=True)
        bias = np.stack([_gate_blocks(b_ih, order, u), _gate_blocks(b_hh, order, u)])
    else:
        order = (0, 1, 2, 3) if type(rnn) is nn.LSTM else (0,)
        if type(rnn) is nn.LSTM:
            layer = L.LSTM(u, return_sequences=seqs, go_backwards=back)
        else:
            layer = L.SimpleRNN(u, activation=rnn.nonlinearity, return_sequences=seqs, go_backwards=back)
        bias = b_ih + b_hh
    return layer, [_gate_blocks(w_ih, order, u), _gate_blocks(w_hh, order, u), bias]
