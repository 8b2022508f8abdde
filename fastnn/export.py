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


def _onnx_recurrent(g, x, layer):
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
    y, y_h = g.op(op, [seq, g.const(W, "W"), g.const(R, "R"), g.const(B, "B")], outputs=2,
                  hidden_size=u, **attrs)[:2]
    if layer.return_sequences:                          # Y: (T, 1, N, u) -> (N, T, u)
        return g.op("Transpose", [g.op("Squeeze", [y, g.const([1], dtype=np.int64)])], perm=[1, 0, 2])
    return g.op("Squeeze", [y_h, g.const([0], dtype=np.int64)])  # Y_h: (1, N, u) -> (N, u)


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


def to_onnx(model, path=None, opset=DEFAULT_OPSET):
    """Write ``model`` (a built fastnn Sequential) as an ONNX file at ``path`` and return the
    ``onnx.ModelProto``; with ``path=None`` only return it. The input is named ``"input"`` and
    the output ``"output"``; the batch axis is dynamic (``"batch"``). Models starting with an
    Embedding take int64 token ids; others take the model's float dtype (float32 or float64).
    ``opset``: the ONNX operator set, at least 17 (the default; see DEFAULT_OPSET)."""
    onnx = _need("onnx", "onnx")
    _built(model)
    if isinstance(opset, bool) or not isinstance(opset, int) or not \
            MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"opset must be an integer from {MIN_OPSET} to "
                         f"{onnx.defs.onnx_opset_version()} (this onnx package's newest), got {opset!r}")
    dtype = _model_dtype(model)
    g = _Graph(dtype)
    tensor_type = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    layers_ = [l for l in model.layers if not isinstance(l, L.InputLayer)]
    in_type = onnx.TensorProto.INT64 if layers_ and isinstance(layers_[0], L.Embedding) else tensor_type
    x = "input"
    for layer in layers_:
        x = _onnx_layer(g, x, layer)
    if x == "input":  # a model of identity layers only
        x = g.op("Identity", [x])
    g.nodes.append(onnx.helper.make_node("Identity", [x], ["output"]))
    in_shape = ["batch"] + list(model.input_shape[1:])
    out_shape = ["batch"] + list(model.output_shape[1:])
    graph = onnx.helper.make_graph(
        g.nodes, model.name or "fastnn_model",
        [onnx.helper.make_tensor_value_info("input", in_type, in_shape)],
        [onnx.helper.make_tensor_value_info("output", tensor_type, out_shape)], g.inits)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                                   producer_name="fastnn")
    proto.ir_version = min(proto.ir_version, 8)  # IR 8 goes with opset 17; readable by older runtimes
    onnx.checker.check_model(proto)
    if path is not None:
        onnx.save(proto, str(path))
    return proto


def export(model, filepath, format="onnx", **kwargs):
    """``model.export(filepath, format="onnx")``: Keras 3's method; fastnn writes ONNX."""
    if format != "onnx":
        raise ValueError(f"fastnn exports format='onnx' (and PyTorch modules with model.to_torch()), "
                         f"got format={format!r}")
    kwargs.pop("verbose", None)
    return to_onnx(model, filepath, **kwargs)
