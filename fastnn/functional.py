"""The functional API: ``keras.Input`` tensors, layers called on them, ``keras.Model(inputs, outputs)``.

Calling a layer on symbolic tensors computes nothing: it records a :class:`Node` (the layer, the
tensors it reads, the tensor it gives) and returns a new :class:`SymbolicTensor` with the output's
shape. ``Model(inputs, outputs)`` walks back from the outputs to the inputs and keeps the nodes in
the order they were created (which is an order of the graph: a node is created after the tensors
it reads). The engine (``fastnn.models.Model``) trains, evaluates and saves it like a Sequential.

A forward pass runs the nodes in order; a backward pass runs them in reverse. A tensor read by
several nodes gets the sum of their gradients, added in reverse node order (``merge_forward``, a
fixed order: the same bits on every run and on both backends' program). A layer called several
times (a shared layer) keeps, per call, what its forward pass saved for backward and its scratch
buffers; its weight gradient is the sum over its calls, added in the same fixed order.
"""
import itertools
import json
import math
import weakref

import numpy as np

from . import backend, data_adapter, program, tracking
from . import losses as losses_module
from . import metrics as metrics_module
from .layers import InputLayer, _auto_name
from .layers import get as layer_from_config
from .models import Model, _releasing

_order = itertools.count()  # creation order of nodes: a topological order of every graph
_MAXIMUM = 3  # fastnn.reference.merge.MERGE_OPS["maximum"]: max(g, g) copies g, NaN included
_ADD = 0


class Node:
    """One call of a layer in a graph: ``output = layer(inputs)``, or for a recurrent layer
    ``[output, *final states] = layer(x, initial_state=[...])``. ``inputs`` lists every tensor the
    call reads: the call's own (one, or a merge's list), then the initial states (``states`` of
    them); ``outputs`` every tensor it gives (``output`` is the first), each knowing its index."""

    def __init__(self, layer, inputs, output_shape, multi, states=0, state_shapes=()):
        self.layer, self.inputs, self.multi = layer, list(inputs), multi
        self.states = states
        self.order = next(_order)
        self.outputs = [SymbolicTensor(shape, self, index=i)
                        for i, shape in enumerate([output_shape, *state_shapes])]
        self.output = self.outputs[0]

    @property
    def args(self):
        """The tensors of the call's own argument (without the initial states)."""
        return self.inputs[:len(self.inputs) - self.states]

    @property
    def graph_call(self):
        """Whether the layer runs through its graph methods (initial states or several outputs)."""
        return hasattr(self.layer, "_graph_forward")


class SymbolicTensor:
    """A tensor of a graph being described: its shape (``(None, ...)``), dtype and the node that
    gives it. ``keras.Input(...)`` makes one; a layer called on one returns another."""

    def __init__(self, shape, node, dtype=None, name=None, index=0):
        self._tail, self.node, self.index = tuple(shape), node, index
        self.dtype = np.dtype(dtype or backend.floatx())
        self.name = name or (node.layer.name if node is not None else None)

    @property
    def shape(self):
        return (None,) + self._tail

    def __repr__(self):
        return f"<SymbolicTensor shape={self.shape} dtype={self.dtype.name} name={self.name!r}>"


def is_symbolic(x):
    if isinstance(x, SymbolicTensor):
        return True
    return isinstance(x, (list, tuple)) and bool(x) and all(isinstance(t, SymbolicTensor) for t in x)


def Input(shape=None, name=None, dtype=None, batch_size=None, **kwargs):
    """``keras.Input(shape=(784,))``: the symbolic input of a functional model (also accepted as
    the first entry of a Sequential model). ``batch_size`` is accepted and ignored (every batch
    size runs). An integer ``dtype`` (``"int32"``, token ids for an ``Embedding``) says what the
    data holds; fastnn computes in ``floatx`` and converts the ids on the way in."""
    if shape is None:
        shape = kwargs.pop("batch_shape", None)
        shape = None if shape is None else tuple(shape)[1:]
    if kwargs:
        raise TypeError(f"Input got unexpected arguments {sorted(kwargs)}")
    if shape is not None and isinstance(shape, (list, tuple)) and any(d is None for d in shape):
        raise ValueError(f"Input shape {tuple(shape)} has an axis of unknown size: fastnn needs every "
                         "size but the batch's, e.g. a fixed number of timesteps (pad sequences to "
                         "one length), Input(shape=(T, features))")
    if dtype is not None and np.dtype(dtype).kind not in "fiu":
        raise ValueError(f"Input dtype must be a float or integer dtype, got {dtype!r}")
    if dtype is not None and np.dtype(dtype).kind in "iu":
        dtype = None
    layer = InputLayer(shape=shape, name=name)
    node = Node(layer, [], layer.input_shape_arg, False)
    node.output.dtype = np.dtype(dtype or backend.floatx())
    layer._input_tensor = node.output  # Sequential([Input(...), ...]) takes its layer
    return node.output


def _state_tensors(layer, initial_state, dtype):
    """The initial-state tensors of a recurrent layer's call, checked: as many as the layer has
    states (LSTM: [h, c]), each of shape (None, units) and the call's dtype."""
    if initial_state is None:
        return []
    names = layer._state_names()
    states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
    where = f"{layer.name} ({type(layer).__name__})"
    for s in states:
        if not isinstance(s, SymbolicTensor):
            raise TypeError(f"{where} is called on keras.Input tensors, so its initial_state must be "
                            f"tensors of the graph (keras.Input or layer outputs), got "
                            f"{type(s).__name__}")
    if len(states) != len(names):
        raise ValueError(f"{where} takes {len(names)} initial state tensor(s) ({', '.join(names)}), "
                         f"got {len(states)}")
    for name, s in zip(names, states):
        if s._tail != (layer.units,):
            raise ValueError(f"{where}: initial state {name} must have shape (None, {layer.units}), "
                             f"got {s.shape}")
        if s.dtype != dtype:
            raise ValueError(f"{where}: initial state {name} has dtype {s.dtype.name}, the input "
                             f"{dtype.name}")
    return states


def call_layer(layer, x, initial_state=None):
    """``layer(x)`` on symbolic tensors: builds the layer for their shapes (ValueError when they
    do not fit it) and records the node. A recurrent layer takes ``initial_state`` tensors and,
    with ``return_state``, gives ``[output, *final states]`` (LSTM: h and c; GRU, SimpleRNN: h)."""
    multi = getattr(layer, "_multi_input", False)
    inputs = list(x) if isinstance(x, (list, tuple)) else [x]
    if not multi and len(inputs) != 1:
        raise ValueError(f"{layer.name} ({type(layer).__name__}) takes one tensor, got {len(inputs)}")
    if isinstance(layer, InputLayer):
        raise ValueError("an InputLayer is not called on tensors; use keras.Input(shape=...)")
    shapes = [t._tail for t in inputs]
    shape_in = shapes if multi else shapes[0]
    if layer.built:
        built_for = tuple(tuple(s) for s in layer.input_shape) if multi else tuple(layer.input_shape)
        want = tuple(tuple(s) for s in shape_in) if multi else tuple(shape_in)
        if built_for != want:
            raise ValueError(f"layer {layer.name} is built for inputs {layer.input_shape}, but is "
                             f"called on {[t.shape for t in inputs] if multi else inputs[0].shape}")
    out_shape = layer.compute_output_shape(shape_in)  # ValueError naming the layer
    if initial_state is not None and not hasattr(layer, "_state_names"):
        raise TypeError(f"{layer.name} ({type(layer).__name__}) takes no initial_state")
    states = _state_tensors(layer, initial_state, inputs[0].dtype)
    state_shapes = [(layer.units,)] * len(layer._state_names()) if getattr(layer, "return_state", False) else []
    if not layer.built:
        if layer.dtype is None:
            layer.dtype = inputs[0].dtype
        try:
            layer.build(shape_in)
        except BaseException:
            layer._unbuild()
            raise
    node = Node(layer, inputs + states, tuple(out_shape), multi, len(states), state_shapes)
    for t in node.outputs:
        t.dtype = inputs[0].dtype
    return list(node.outputs) if state_shapes else node.output


def _keras_layer_order(inputs, outputs):
    """``model.layers`` in Keras's order, so that ``get_weights``/``set_weights`` lists, the
    optimizer's variables and Keras's weight files match a Keras model of the same graph entry for
    entry. ``inputs`` and ``outputs`` as Keras flattens them (a dict's tensors by sorted key).

    A node's depth is its longest path to an output (the outputs' nodes: 0; a node feeding one of
    depth d: at least d + 1), a layer's depth the largest of its calls' depths. Layers come from
    the deepest to depth 0; layers of equal depth in the order a depth-first walk from the outputs
    (each output in turn, a node's inputs in order) first reaches them. Inputs that no output
    depends on come last, at depth 0."""
    finished, first_seen, post = set(), {}, []
    for out in outputs:  # depth-first from each output, without recursion (deep graphs)
        stack = []

        def enter(node):
            if id(node) in finished:
                return
            first_seen.setdefault(id(node.layer), len(first_seen))
            stack.append((node, iter(node.inputs)))
        enter(out.node)
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                if id(node) not in finished:
                    finished.add(id(node))
                    post.append(node)
            else:
                enter(nxt.node)
    node_depth, layer_depth, by_id = {}, {}, {}
    for node in reversed(post):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = node_depth[id(node)] = depth
        by_id[id(node.layer)] = node.layer
        for t in node.inputs:
            node_depth[id(t.node)] = max(depth + 1, node_depth.get(id(t.node), 0))
    for t in inputs:  # inputs no output reads
        if id(t.node.layer) not in layer_depth:
            layer_depth[id(t.node.layer)], first_seen[id(t.node.layer)] = 0, -1
            by_id[id(t.node.layer)] = t.node.layer
    keys = sorted(layer_depth, key=lambda k: (-layer_depth[k], first_seen[k]))
    return [by_id[k] for k in keys]


def _structure(value, what):
    """(list of tensors, names or None, kind) of a tensor, a list or a dict of tensors."""
    if isinstance(value, SymbolicTensor):
        return [value], "single"
    if isinstance(value, dict):
        tensors = list(value.values())
        kind = "dict"
    elif isinstance(value, (list, tuple)):
        tensors, kind = list(value), "list"
    else:
        raise TypeError(f"Model {what} must be a keras.Input tensor (or the output of a layer called "
                        f"on one), a list or a dict of them; got {type(value).__name__}")
    if not tensors:
        raise ValueError(f"Model {what} is empty")
    for t in tensors:
        if not isinstance(t, SymbolicTensor):
            raise TypeError(f"Model {what} must hold symbolic tensors (keras.Input(...) and layers "
                            f"called on them), got {type(t).__name__}")
    return tensors, kind


class _OutputMetric:
    """A metric of one output of a model with several: its name prefixed with the output's."""

    def __init__(self, metric, index, prefix):
        self._metric, self._index = metric, index
        self.name = f"{prefix}_{metric.name}" if prefix else metric.name

    def update_state(self, y, pack):
        y = y.arrays[self._index] if isinstance(y, data_adapter.Batch) else y
        out = pack.outputs[self._index] if isinstance(pack, _Pack) else pack
        return self._metric.update_state(y, out)

    def __getattr__(self, name):
        return getattr(self._metric, name)


class _OutputLoss:
    """The mean over samples of one output's loss (before its loss weight, as Keras reports it),
    as ``<output>_loss``."""

    def __init__(self, index, name):
        self._index, self.name = index, name
        self.reset_state()

    def reset_state(self):
        self._total, self._count = 0.0, 0

    def update_state(self, y, pack):
        self._total += float(pack.losses[self._index]) * len(y)
        self._count += len(y)

    def result(self):
        return self._total / self._count if self._count else 0.0


class _Pack:
    """What a step gives the metrics of a model with several outputs."""
    __slots__ = ("outputs", "losses")

    def __init__(self, outputs, losses):
        self.outputs, self.losses = outputs, losses


class Functional(Model):
    """``Model(inputs, outputs)``: a graph of layers from ``keras.Input`` tensors to outputs, with
    one or several inputs and outputs (a tensor, a list, or a dict by name), shared layers and
    skip connections. Inputs and targets are given in the same structure (a list in order, or a
    dict by input / output name)."""
    _CONFIG_CLASS = "Functional"
    _RUNTIME = Model._RUNTIME | {"_node_states", "_fused_set"}

    def __init__(self, inputs=None, outputs=None, name=None):
        if inputs is None or outputs is None:
            raise ValueError("Model(inputs, outputs) needs both the input tensors (keras.Input) and "
                             "the output tensors of the layers called on them")
        ins, in_kind = _structure(inputs, "inputs")
        outs, out_kind = _structure(outputs, "outputs")
        for t in ins:
            if t.node is None or not isinstance(t.node.layer, InputLayer):
                raise ValueError(f"Model inputs must be keras.Input(...) tensors; {t!r} is the output "
                                 f"of layer {t.node.layer.name if t.node else '?'}")
        if len({id(t) for t in ins}) != len(ins):
            raise ValueError("Model inputs list one keras.Input twice")
        known = {id(t) for t in ins}
        nodes, seen, stack = [], set(), list(outs)
        while stack:  # every node between the inputs and the outputs
            t = stack.pop()
            if id(t) in known or id(t.node) in seen:
                continue
            if isinstance(t.node.layer, InputLayer):
                raise ValueError(f"output(s) of this Model depend on the input {t.name!r} "
                                 f"(shape {t.shape}), which is not among the model's inputs "
                                 f"{[i.name for i in ins]}: the outputs are not connected to the "
                                 "given inputs (or the tensor comes from another graph)")
            seen.add(id(t.node))
            nodes.append(t.node)
            stack.extend(t.node.inputs)
        nodes.sort(key=lambda n: n.order)
        self._inputs, self._outputs = ins, outs
        self._in_kind, self._out_kind = in_kind, out_kind
        self._nodes = nodes
        self._input_names = [t.node.layer.name for t in ins]
        self._output_names = [t.node.layer.name for t in outs]
        if out_kind == "dict":
            self._output_names = list(outputs.keys())
        if in_kind == "dict":
            self._input_names = list(inputs.keys())

        def flat(tensors, names, kind):  # as Keras flattens them: a dict by sorted key
            return [t for _, t in sorted(zip(names, tensors), key=lambda p: p[0])] \
                if kind == "dict" else tensors
        layers = _keras_layer_order(flat(ins, self._input_names, in_kind),
                                    flat(outs, self._output_names, out_kind))
        self._layers = layers
        self._input_shape = ins[0]._tail
        self._dtype = ins[0].dtype
        calls = {}
        for node in nodes:  # a shared layer's calls after the first get their own buffers
            node.index = calls.get(id(node.layer), 0)
            calls[id(node.layer)] = node.index + 1
        self._shared = {id(l) for l in layers if calls.get(id(l), 0) > 1}
        self._losses, self._loss_weights, self._metric_spec = None, None, []
        self._node_states, self._fused_set = {}, frozenset()
        super().__init__(name=name or _auto_name("functional"))
        for layer in layers:
            if layer.__dict__.get("_model") is None:
                object.__setattr__(layer, "_model", weakref.ref(self))

    # -- structure --------------------------------------------------------------------------------
    @property
    def layers(self):
        return list(self._layers)

    @property
    def built(self):
        return True

    def build(self, input_shape=None):
        """Built at construction (the inputs' shapes are known)."""

    @property
    def inputs(self):
        return list(self._inputs)

    @property
    def outputs(self):
        return list(self._outputs)

    @property
    def input_shape(self):
        shapes = [t.shape for t in self._inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        shapes = [t.shape for t in self._outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    def _output_shapes(self, input_shape=None, layers=None):
        return [self._outputs[0]._tail]

    def get_layer(self, name=None, index=None):
        """The layer called ``name``, or at position ``index`` of ``model.layers``."""
        if (name is None) == (index is None):
            raise ValueError(f"get_layer needs exactly one of name= or index=, got name={name!r}, "
                             f"index={index!r}")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, int) or \
                    not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"index {index!r} is out of range: {self.name} has {len(self._layers)} layers")
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r} in {self.name}; its layers are "
                         f"{[l.name for l in self._layers]}")

    # -- compile ----------------------------------------------------------------------------------
    def _per_output(self, value, what, default=None):
        """``value`` as one entry per output: a list in order, a dict by output name, or one value
        for every output."""
        n = len(self._outputs)
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(self._output_names))
            if unknown:
                raise ValueError(f"compile {what} names unknown outputs {unknown}; the outputs are "
                                 f"{self._output_names}")
            return [value.get(name, default) for name in self._output_names]
        if isinstance(value, (list, tuple)) and what != "metrics":
            if len(value) != n:
                raise ValueError(f"compile {what} has {len(value)} entries for {n} outputs "
                                 f"{self._output_names}")
            return list(value)
        return [value] * n

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None):
        """As ``Sequential.compile``, with ``loss``, ``loss_weights`` and ``metrics`` per output
        (a list in output order or a dict by output name; one loss or metric list for all)."""
        with self._lock:
            if loss is None:
                raise ValueError("compile needs a loss, e.g. loss='sparse_categorical_crossentropy'")
            losses = [losses_module.get(l) if l is not None else None
                      for l in self._per_output(loss, "loss")]
            if any(l is None for l in losses):
                raise ValueError(f"compile needs a loss for every output {self._output_names}")
            weights = [1.0] * len(losses) if loss_weights is None else \
                self._per_output(loss_weights, "loss_weights", 1.0)
            for w in weights:
                if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
                    raise ValueError(f"loss_weights must be finite numbers, got {loss_weights!r}")
            if metrics is None:
                spec = [[] for _ in losses]
            elif isinstance(metrics, str):
                spec = [[metrics] for _ in losses]
            elif isinstance(metrics, dict):
                spec = [list([m] if isinstance(m, str) else (m or []))
                        for m in self._per_output(metrics, "metrics", [])]
            elif len(losses) > 1 and metrics and all(isinstance(m, (list, tuple)) for m in metrics):
                if len(metrics) != len(losses):
                    raise ValueError(f"compile metrics has {len(metrics)} lists for {len(losses)} outputs")
                spec = [list(m) for m in metrics]
            else:
                spec = [list(metrics) for _ in losses]
            for ms, l in zip(spec, losses):
                for m in ms:
                    metrics_module.get(m, l, (2,))
            super().compile(optimizer=optimizer, loss=losses[0], metrics=spec[0])
            self._losses, self._loss_weights, self._metric_spec = losses, [float(w) for w in weights], spec

    def _make_metrics(self, output_shape=None):
        if len(self._outputs) == 1:
            tail = self._outputs[0]._tail
            return [_OutputMetric(m if len(tail) == 1 else data_adapter.StepMetric(m), 0, None)
                    for m in (metrics_module.get(i, self._losses[0], tail[-1:] if len(tail) > 1 else tail)
                              for i in self._metric_spec[0])]
        made = [_OutputLoss(i, f"{name}_loss") for i, name in enumerate(self._output_names)]
        for i, (ids, loss, t) in enumerate(zip(self._metric_spec, self._losses, self._outputs)):
            for m in ids:
                metric = metrics_module.get(m, loss, t._tail[-1:] if len(t._tail) > 1 else t._tail)
                made.append(_OutputMetric(data_adapter.StepMetric(metric) if len(t._tail) > 1 else metric,
                                          i, self._output_names[i]))
        return made

    def _step_outputs(self, results):
        if len(self._outputs) == 1:
            return results[0]
        n = len(self._outputs)
        return _Pack(list(results[:n]), list(results[n:]))

    # -- inputs -----------------------------------------------------------------------------------
    def _arrange(self, value, names, what):
        """``value`` (an array, a list in order, a dict by name) as a list, one per name."""
        if isinstance(value, dict):
            missing = [n for n in names if n not in value]
            if missing:
                raise ValueError(f"{what} is missing {missing}; the model's {what} are {names}")
            return [value[n] for n in names]
        if isinstance(value, (list, tuple)) and len(names) > 1:
            if len(value) != len(names):
                raise ValueError(f"{self.name} has {len(names)} {what} {names}, got a list of {len(value)}")
            return list(value)
        if len(names) > 1:
            raise ValueError(f"{self.name} has {len(names)} {what} {names}: pass a list or a dict of arrays, "
                             f"got {type(value).__name__}")
        return [value]

    def _prepare_x(self, x, expected=None):
        arrays = []
        for value, t, name in zip(self._arrange(x, self._input_names, "inputs"), self._inputs,
                                  self._input_names):
            a = data_adapter.check_input(value, name, t._tail, self._dtype, self.name)
            arrays.append(a)
        if len({len(a) for a in arrays}) > 1:
            raise ValueError(f"{self.name}'s inputs must have one number of samples, got "
                             f"{[len(a) for a in arrays]}")
        return data_adapter.Batch(arrays)

    def _prepare_xy(self, x, y, what="x", expected=None):
        if self._losses is None:
            raise RuntimeError("the model must be compiled before training or evaluation: call "
                               "model.compile(optimizer=..., loss=...)")
        x = self._prepare_x(x)
        if len(x) == 0:
            raise ValueError(f"{what} is empty; at least one sample is needed")
        for a in x.arrays:
            data_adapter.utils.check_finite(a, what)
        ys = []
        for value, t, loss in zip(self._arrange(y, self._output_names, "outputs"), self._outputs, self._losses):
            ys.append(data_adapter.prepare_targets(loss, value, len(x), t._tail, x.dtype))
        return x, data_adapter.Batch(ys)

    # -- the graph --------------------------------------------------------------------------------
    def _fused(self):
        """Indices of the outputs trained through their logits (the producing layer's activation
        pairs with the output's loss, and nothing else reads the activated tensor)."""
        readers = {}
        for node in self._nodes:
            for t in node.inputs:
                readers[id(t)] = readers.get(id(t), 0) + 1
        fused = set()
        for i, (t, loss) in enumerate(zip(self._outputs, self._losses or [])):
            act = getattr(t.node.layer, "activation", None)
            if (act is not None and t.node.layer._activation_is_output and not loss.from_logits
                    and act.name == loss.fused_activation and len(t.node.outputs) == 1
                    and not readers.get(id(t)) and [id(o) for o in self._outputs].count(id(t)) == 1
                    and id(t.node.layer) not in self._shared):
                fused.add(i)
        return frozenset(fused)

    def _set_node(self, node):
        object.__setattr__(node.layer, "_node_index", node.index)
        if id(node.layer) in self._shared and (id(node), "state") in self._node_states:
            for key, value in self._node_states[(id(node), "state")].items():
                object.__setattr__(node.layer, key, value)

    def _forward(self, xs, training, logits=frozenset()):
        """Outputs of the graph for input arrays ``xs`` (in the model's order), as a list."""
        object.__setattr__(self, "_eager", True)  # the layers now hold arrays: release them
        xs = data_adapter.as_list(xs)
        values = {id(t): x for t, x in zip(self._inputs, xs)}
        logit_tensors = {id(self._outputs[i]) for i in logits} if logits else set()
        self._node_states = {}
        for node in self._nodes:
            layer = node.layer
            ins = [values[id(t)] for t in node.inputs]
            object.__setattr__(layer, "_node_index", node.index)
            if node.graph_call:
                outs = layer._graph_forward(ins[0], ins[1:], training)
            else:
                outs = [layer.forward(ins if node.multi else ins[0], training=training,
                                      logits=id(node.output) in logit_tensors)]
            if id(layer) in self._shared:
                self._node_states[(id(node), "state")] = {
                    k: layer.__dict__[k] for k in layer._RUNTIME if k in layer.__dict__}
            for t, out in zip(node.outputs, outs):
                values[id(t)] = out
        return [values[id(t)] for t in self._outputs]

    def _needs_grad(self):
        need = {}
        for t in self._inputs:
            need[id(t)] = False
        for node in self._nodes:
            wanted = (bool(node.layer.trainable_weights)
                      or any(need.get(id(t), False) for t in node.inputs))
            for t in node.outputs:
                need[id(t)] = wanted
        return need

    def _sum_into(self, acc, g, key):
        kernels = backend.kernels()
        return kernels.merge_forward(acc, g, _ADD, 1.0, out=self._buffer(key, acc.shape, acc.dtype))

    def _backward(self, grads, logits=frozenset()):
        """Backward passes of the nodes in reverse order from the outputs' gradients ``grads``."""
        object.__setattr__(self, "_eager", True)
        kernels = backend.kernels()
        if not isinstance(grads, (list, tuple)):
            grads = [grads]
        need = self._needs_grad()
        pending = {}
        for t, g in zip(self._outputs, grads):
            pending.setdefault(id(t), []).append(g)
        logit_tensors = {id(self._outputs[i]) for i in logits} if logits else set()
        visited = {}
        for node in reversed(self._nodes):
            per_output = [pending.pop(id(t), None) for t in node.outputs]
            if not any(per_output) or not need[id(node.output)]:
                continue
            grads = []
            for j, parts in enumerate(per_output):  # each output's gradients summed
                grad = parts[0] if parts else None
                for k, g in enumerate(parts[1:] if parts else (), 1):
                    grad = self._sum_into(grad, g, ("gsum", node.order, k) if j == 0
                                          else ("gsum", node.order, j, k))
                grads.append(grad)
            layer = node.layer
            self._set_node(node)
            saved = None
            if visited.get(id(layer)) and layer.trainable:  # a shared layer: keep the sum so far
                saved = [kernels.merge_forward(g, g, _MAXIMUM, 1.0,
                                               out=self._buffer(("wsum", node.order, j), g.shape, g.dtype))
                         for j, g in enumerate(layer.grads)]
            visited[id(layer)] = True
            wants = [need[id(t)] for t in node.inputs]
            if node.graph_call:
                dxs = layer._graph_backward(grads, wants[0], wants[1:])
            else:
                dx = layer.backward(grads[0], need_dx=any(wants),
                                    logits=id(node.output) in logit_tensors)
                dxs = dx if node.multi else [dx]
            if saved is not None:
                for g, s in zip(layer.grads, saved):
                    kernels.merge_forward(g, s, _ADD, 1.0, out=g)
            if not any(wants):
                continue
            for t, d, w in zip(node.inputs, dxs, wants):
                if w:
                    pending.setdefault(id(t), []).append(d)
        for layer in self._layers:
            object.__setattr__(layer, "_node_index", None)

    def _losses_of(self, x, y, training, weights, want_outputs):
        """Forward pass and every output's loss: (total, [loss_i], [dL/dh_i], [outputs])."""
        fused = self._fused()
        hs = self._forward(x, training, logits=fused)
        ys = data_adapter.as_list(y)
        total, per_output, grads, outputs = None, [], [], []
        for i, (h, yi, loss, w) in enumerate(zip(hs, ys, self._losses, self._loss_weights)):
            shape, hr, yr = h.shape, *data_adapter.step_rows(h, yi)
            wi = weights
            if weights is not None and len(shape) > 2:
                wi = np.repeat(weights, len(hr) // shape[0])
            fn = loss.logits_value_and_grad if i in fused else loss.value_and_grad
            grad_out = self._buffer(("dout", i), hr.shape, hr.dtype) if training else None
            value, grad = fn(yr, hr, grad_out, training)
            if wi is not None:  # the loss weights each row's value and gradient (its reduction)
                value = loss.weighted_value(yr, hr, wi, i in fused, grad if training else None)
            per_output.append(value)  # reported unweighted, as Keras does (<output>_loss)
            if w != 1.0:
                value = value * w
                if training:
                    grad = backend.kernels().clip_gradient(grad, w, math.inf, out=grad)
            total = value if total is None else total + value
            grads.append(None if grad is None else grad.reshape(shape))
            out = hr
            if i in fused:
                t_act = self._outputs[i].node.layer.activation
                out = program.when(want_outputs, lambda act=t_act, hr=hr, i=i: act.forward(
                    hr, out=self._buffer(("outputs", i), hr.shape, hr.dtype)))
            outputs.append(None if out is None else out.reshape(shape))
        return total, per_output, grads, outputs

    def _loss_and_outputs(self, x, y, training, weights=None):
        total, per_output, grads, outputs = self._losses_of(x, y, training, weights, True)
        if len(self._outputs) == 1:
            return total, grads[0], outputs[0]
        return total, grads, _Pack(outputs, [float(v) for v in per_output])

    def _describe_evaluate(self, x, y):
        total, per_output, _, outputs = self._losses_of(x, y, False, None, True)
        return [total] + outputs + (per_output if len(self._outputs) > 1 else [])

    def _describe_train_step(self, x, y, lr, step, want_outputs, weights=None):
        total, per_output, grads, outputs = self._losses_of(x, y, True, weights, want_outputs)
        self._backward(grads, logits=self._fused())
        total = total + self._regularization_loss(add_grads=True)
        self.optimizer.update(self._params, self._grads, lr, step)
        return [total] + outputs + (per_output if len(self._outputs) > 1 else [])

    # -- inference --------------------------------------------------------------------------------
    def _predict_program_for(self, x):
        cached = self._programs.get("predict")
        if cached is not None and cached[0] == tracking.count() and backend.get_backend() == "native":
            return cached[1]
        arrays = data_adapter.as_list(x)
        return self._program("predict", lambda *bufs: self._forward(data_adapter.Batch(list(bufs)),
                                                                   training=False),
                             [(a.shape[1:], a.dtype) for a in arrays], 0)

    def _result(self, outs):
        if self._out_kind == "single":
            return outs[0]
        if self._out_kind == "dict":
            return dict(zip(self._output_names, outs))
        return list(outs)

    @_releasing
    def predict(self, x, batch_size=None, verbose=0, callbacks=None, steps=None):
        """Outputs for ``x`` (one array, or a list / dict of arrays per input): one array, or a
        list / dict per output as the model's outputs were given."""
        with self._lock:
            from . import utils
            batch_size = utils.check_batch_size(batch_size, allow_none=True) or 4096
            x = self._prepare_x(x)
            if steps is not None:
                x = x[:steps * batch_size]
            results = [np.empty((len(x),) + t._tail, dtype=self._dtype) for t in self._outputs]
            compiled = self._predict_program_for(x)
            for lo in range(0, len(x), batch_size):
                xb = x[lo:lo + batch_size]
                if compiled is not None:
                    outs = compiled.run(len(xb), xb.arrays, [])
                else:
                    outs = self._forward(xb, training=False)
                for r, o in zip(results, outs):
                    r[lo:lo + len(xb)] = o
            return self._result(results)

    @_releasing
    def __call__(self, x, training=False):
        if is_symbolic(x):
            raise ValueError("calling a functional model on symbolic tensors (nesting models) is not "
                             "supported yet; call its layers instead")
        with self._lock:
            x = self._prepare_x(x)
            if training:
                self._check_training_batch(len(x))
            compiled = None if training or not len(x) else self._predict_program_for(x)
            if compiled is not None:  # one native call, as predict
                outs = compiled.run(len(x), x.arrays, [])
            else:
                outs = self._forward(x, training=bool(training))
            return self._result([np.array(o, copy=True) for o in outs])

    def predict_on_batch(self, x):
        return self(x)

    # -- description ------------------------------------------------------------------------------
    def summary(self, print_fn=None):
        """A Keras-style table: layer, output shape, parameters, and the layers each call reads."""
        print_fn = print_fn or print
        shapes = [str(n.output.shape if len(n.outputs) == 1 else [t.shape for t in n.outputs])
                  for n in self._nodes]
        widths = (max([33] + [len(f"{l.name} ({type(l).__name__})") + 2 for l in self._layers]),
                  max([26] + [len(t) + 2 for t in shapes]), 12, 30)
        rule = "_" * sum(widths)
        lines = [f'Model: "{self.name}"', rule,
                 f"{'Layer (type)':<{widths[0]}}{'Output Shape':<{widths[1]}}{'Param #':>{widths[2]}}"
                 f"  {'Connected to'}", "=" * sum(widths)]
        for t in self._inputs:
            l = t.node.layer
            lines.append(f"{l.name + ' (InputLayer)':<{widths[0]}}{str(t.shape):<{widths[1]}}{0:>{widths[2]},}  -")
        for node, shape in zip(self._nodes, shapes):
            l = node.layer
            reads = ", ".join(t.node.layer.name + (f"[{t.index}]" if t.index else "") for t in node.inputs)
            lines.append(f"{l.name + ' (' + type(l).__name__ + ')':<{widths[0]}}{shape:<{widths[1]}}"
                         f"{(l.count_params() if node.index == 0 else 0):>{widths[2]},}  {reads}")
        self._print_summary(lines, widths, rule, print_fn)

    def get_config(self):
        """The graph as data: layers (by name) with the tensors each call reads."""
        index = {}
        for t in self._inputs:
            index[id(t)] = [t.node.layer.name, 0]
        layers = []
        for t in self._inputs:
            l = t.node.layer
            layers.append({"class_name": "InputLayer", "name": l.name,
                           "config": {"input_shape": list(l.input_shape_arg), "name": l.name},
                           "inbound_nodes": []})
        by_layer = {}
        for node in self._nodes:
            for t in node.outputs:  # [layer, call] or, for a call's later outputs, [layer, call, index]
                index[id(t)] = [node.layer.name, node.index] + ([t.index] if t.index else [])
            entry = by_layer.get(id(node.layer))
            if entry is None:
                entry = by_layer[id(node.layer)] = {
                    "class_name": type(node.layer).__name__, "name": node.layer.name,
                    "config": node.layer.get_config(), "inbound_nodes": []}
                layers.append(entry)
            refs = [index[id(t)] for t in node.args]
            if node.states:  # a recurrent call with initial states
                refs = {"args": refs, "initial_state": [index[id(t)] for t in node.inputs[len(refs):]]}
            entry["inbound_nodes"].append(refs)
        outs = [index[id(t)] for t in self._outputs]
        ins = [index[id(t)] for t in self._inputs]
        return {"name": self.name, "layers": layers,
                "input_layers": dict(zip(self._input_names, ins)) if self._in_kind == "dict" else ins,
                "output_layers": dict(zip(self._output_names, outs)) if self._out_kind == "dict" else outs,
                "input_kind": self._in_kind, "output_kind": self._out_kind}

    @classmethod
    def from_config(cls, config):
        """The model ``get_config`` describes (fresh weights)."""
        tensors, pending = {}, []

        def key(ref):  # [layer, call] or [layer, call, output index]
            return (ref[0], ref[1], ref[2] if len(ref) > 2 else 0)
        for entry in config["layers"]:
            if entry["class_name"] == "InputLayer":
                c = entry["config"]
                tensors[(entry["name"], 0, 0)] = Input(shape=tuple(c["input_shape"]), name=entry["name"])
                continue
            layer = layer_from_config({"class_name": entry["class_name"], "config": entry["config"]})
            pending.append((entry["name"], layer, list(enumerate(entry["inbound_nodes"]))))

        def reads(inbound):  # the tensors a call reads: its arguments, then its initial states
            if isinstance(inbound, dict):
                return list(inbound["args"]) + list(inbound["initial_state"])
            return list(inbound)
        # Each layer's calls in its order; a call whose inputs come from a layer listed later (a
        # shared layer called again on a later layer's output) waits for the next pass.
        while any(calls for _, _, calls in pending):
            progressed = False
            for name, layer, calls in pending:
                while calls and all(key(ref) in tensors for ref in reads(calls[0][1])):
                    k, inbound = calls.pop(0)
                    states = None
                    if isinstance(inbound, dict):
                        states = [tensors[key(ref)] for ref in inbound["initial_state"]]
                        inbound = inbound["args"]
                    ins = [tensors[key(ref)] for ref in inbound]
                    multi = getattr(layer, "_multi_input", False)
                    out = layer(ins if multi else ins[0], **({"initial_state": states} if states else {}))
                    for j, t in enumerate(out if isinstance(out, list) else [out]):
                        tensors[(name, k, j)] = t
                    progressed = True
            if not progressed:
                name, _, calls = next(p for p in pending if p[2])
                missing = [ref for ref in reads(calls[0][1]) if key(ref) not in tensors]
                raise ValueError(f"the graph's configuration cannot be rebuilt: call {calls[0][0]} of "
                                 f"layer {name!r} reads {missing}, which no layer of it gives")

        def pick(refs, kind):
            if isinstance(refs, dict):
                return {k: tensors[key(v)] for k, v in refs.items()}
            got = [tensors[key(r)] for r in refs]
            return got[0] if kind == "single" else got
        return cls(pick(config["input_layers"], config.get("input_kind", "list")),
                   pick(config["output_layers"], config.get("output_kind", "list")),
                   name=config.get("name"))

    def to_json(self, **kwargs):
        return json.dumps({"class_name": "Functional", "config": self.get_config(), "backend": "fastnn"},
                          **kwargs)


_TRACED_CLASSES = {}


def trace_subclassed(model, x):
    """Turn a subclassed model (``__init__`` creates layers, ``call(x, training)`` uses them) into
    the graph its ``call`` describes: ``call`` runs once on symbolic inputs shaped like ``x``, with
    ``training=True`` (a layer used only in training still runs in inference mode when predicting),
    and the model then works as ``Model(inputs, outputs)`` of what it returned. A ``call`` that
    computes on the values themselves (NumPy arithmetic, Python branches on data) cannot be traced:
    TypeError naming what failed."""
    name = type(model).__name__

    def symbolic(value, key):
        shape = np.shape(value)
        if len(shape) < 2:
            raise ValueError(f"{name} expects a batch of inputs (at least 2-D), got shape {shape}")
        return Input(shape=shape[1:], name=key)
    if isinstance(x, dict):
        inputs = {k: symbolic(v, k) for k, v in x.items()}
    elif isinstance(x, (list, tuple)):
        inputs = [symbolic(v, None) for v in x]
    else:
        inputs = symbolic(x, None)
    try:
        try:
            outputs = model.call(inputs, training=True)
        except TypeError as exc:
            if "training" not in str(exc):
                raise
            outputs = model.call(inputs)
    except Exception as exc:  # noqa: BLE001 -- any failure of the trace is reported the same way
        raise TypeError(f"{name}.call could not be traced: fastnn runs a subclassed model as the graph "
                        f"its call() builds from layers (called on keras.Input-like tensors); "
                        f"arithmetic on the tensors themselves, or Python decisions on their values, "
                        f"cannot be traced ({type(exc).__name__}: {exc})") from exc
    if not (is_symbolic(outputs) or (isinstance(outputs, dict) and is_symbolic(list(outputs.values())))):
        raise TypeError(f"{name}.call must return the output of its layers (a tensor, a list or a dict "
                        f"of them), got {type(outputs).__name__}")
    cls = type(model)
    traced = _TRACED_CLASSES.get(cls)
    if traced is None:
        traced = _TRACED_CLASSES[cls] = type(cls.__name__, (cls, Functional),
                                             {"__module__": cls.__module__, "_CONFIG_CLASS": "Functional"})
    pending = model.__dict__.pop("_compile_args", None)
    keep = {k: model.__dict__[k] for k in ("name",) if k in model.__dict__}
    object.__setattr__(model, "_untraced", False)
    object.__setattr__(model, "__class__", traced)
    Functional.__init__(model, inputs, outputs, name=keep.get("name"))
    if pending is not None:
        optimizer, loss, metrics, loss_weights = pending
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics, loss_weights=loss_weights)


def is_functional_config(config):
    return isinstance(config, dict) and "output_layers" in config
