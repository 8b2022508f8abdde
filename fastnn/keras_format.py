"""Keras 3's own files: ``.keras`` models and ``.weights.h5`` weights, read and written.

A ``.keras`` file is a zip holding ``metadata.json`` (Keras version, date), ``config.json`` (the
model: ``{"class_name": "Sequential", "config": {"layers": [...]}, "compile_config": ...}``) and
``model.weights.h5``, an HDF5 file in which each layer's variables are the datasets
``layers/<snake_case class name>[_k]/vars/0, 1, ...`` (recurrent layers keep theirs under
``.../cell/vars``) and the optimizer's are ``optimizer/vars/0, 1, ...`` (the step, the learning
rate, then the slots). A ``.weights.h5`` file is that HDF5 file on its own.

Both are untrusted input. Nothing named in a file is imported or evaluated: class names are looked
up in the fixed tables below. The zip's declared sizes are checked and every member is read with
a cap, and a member compressed more than any Keras file is (Keras stores them uncompressed) is
refused as a zip bomb; weight datasets must be plain contiguous arrays whose shapes match
what the layer will create, checked from the configuration *before* any layer is built, so a file
of a few hundred bytes cannot make fastnn allocate gigabytes. Every malformed case raises
``saving.ModelFileError``. Writing goes through ``saving._atomic_write`` (temporary file, fsync,
rename), as for fastnn's own format.

h5py is an optional dependency (``pip install "fastnn-cpu[keras]"``).

The model's description is translated in one place, :func:`_model_from_config` (Keras to
fastnn) and :func:`_model_config` (fastnn to Keras), for Sequential and functional models (Keras's
``"class_name": "Functional"``, laid out as the comment above :func:`_history` says). A functional
file's graph is untrusted too: every reference is checked (a missing layer, an out-of-range call or
tensor index, a cycle, a call that leads to no output: ModelFileError), the number of layers, calls
and merged tensors is bounded, and every shape and weight size is computed before anything is built.
A subclassed fastnn model is written as the functional graph its ``call`` traced.
"""
import datetime
import inspect
import io
import json
import os
import re
import warnings
import zipfile

import numpy as np

from .saving import ModelFileError, _atomic_write

KERAS_VERSION = "3.15.1"           # the Keras version fastnn's files say they come from
MAX_JSON_BYTES = 16 << 20          # config.json / metadata.json larger than this are refused
MAX_WEIGHTS_BYTES = 4 << 30        # model.weights.h5 larger than this is refused
MAX_MEMBERS = 64                   # a .keras zip with more members than this is not a model
MAX_LAYERS = 10_000                # a Sequential config with more layers than this is refused
MAX_RATIO = 200                    # a member above 1 MiB compressed more than this is a zip bomb
                                   # (Keras stores its members uncompressed)
ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

# Keras layer classes fastnn reads and writes (Keras name -> fastnn registry name).
LAYERS = ("InputLayer", "Dense", "Dropout", "BatchNormalization", "LayerNormalization", "Activation",
          "Softmax", "ReLU", "LeakyReLU", "ELU", "PReLU", "Flatten", "Normalization", "Rescaling",
          "Identity", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
          "SimpleRNN", "LSTM", "GRU", "Embedding", "Add", "Subtract", "Multiply", "Average", "Maximum",
          "Minimum", "Concatenate", "Reshape")
_MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate")
MAX_NODES = 10_000                 # a functional config with more layer calls than this is refused
MAX_MERGE_INPUTS = 1_000           # a merge of more tensors than this is refused
_RECURRENT = ("SimpleRNN", "LSTM", "GRU")

# Settings Keras stores that fastnn has no parameter for: accepted only with the value given here
# (the one that means "off"); any other value is refused with a clear error.
_KERAS_ONLY = {
    "dtype": None, "quantization_config": None, "rms_scaling": False, "synchronized": False,
    "renorm": False, "renorm_clipping": None, "renorm_momentum": 0.99, "stateful": False,
    "zero_output_for_mask": False, "data_format": "channels_last", "shared_axes": None,
    "alpha_constraint": None, "beta_regularizer": None, "gamma_regularizer": None,
    "beta_constraint": None, "gamma_constraint": None, "recurrent_constraint": None,
    "kernel_constraint": None, "bias_constraint": None, "embeddings_constraint": None,
    "activity_regularizer": None, "noise_shape": None, "lora_rank": None, "lora_alpha": None,
    "input_length": None, "sparse": False, "ragged": False,
}
_ANY = object()                    # a setting whose value does not matter (a name; EMA's rate when EMA is off)
_OPTIMIZER_KERAS_ONLY = {"name": _ANY, "use_ema": False, "ema_momentum": _ANY,
                         "ema_overwrite_frequency": None, "loss_scale_factor": None,
                         "gradient_accumulation_steps": None}
_LOSS_KERAS_ONLY = {"name": _ANY, "reduction": "sum_over_batch_size", "dtype": None,
                    "ignore_class": None, "axis": -1}
_INIT_KERAS_ONLY = {"input_axes": None, "output_axes": None}


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("reading and writing Keras files (.keras, .weights.h5) needs h5py: "
                          'pip install "fastnn-cpu[keras]" (or pip install h5py)') from None
    return h5py


def is_keras_model_path(path):
    return os.fsdecode(os.fspath(path)).lower().endswith(".keras")


def is_keras_weights_path(path):
    return os.fsdecode(os.fspath(path)).lower().endswith(".weights.h5")


def sniff(path):
    """"keras" (a zip), "h5" (an HDF5 file) or None, from the first bytes of ``path``."""
    with open(os.fsdecode(os.fspath(path)), "rb") as f:
        head = f.read(8)
    if head.startswith(ZIP_MAGIC):
        return "keras"
    if head == HDF5_MAGIC:
        return "h5"
    return None


def _snake(name):
    """Keras's ``naming.to_snake_case``: the HDF5 group of a layer is its class name so spelled."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _layer_paths(class_names):
    """The HDF5 group of each layer's variables, in model order, as Keras names them."""
    used, paths = {}, []
    for cls in class_names:
        base = _snake(cls)
        if base in used:
            used[base] += 1
            base = f"{base}_{used[base]}"
        else:
            used[base] = 0
        paths.append(f"layers/{base}/cell/vars" if cls in _RECURRENT else f"layers/{base}/vars")
    return paths


# -- Keras configuration -> fastnn objects ------------------------------------------------------

def _bad(name, message):
    return ModelFileError(f"{name}: {message}")


def _object_ref(value, what, fname):
    """A Keras serialized object (``{"module", "class_name", "config", ...}``) as fastnn's
    ``{"class_name", "config"}``; strings and None pass through."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if not isinstance(value, dict) or not isinstance(value.get("class_name"), str):
        raise _bad(fname, f"{what} must be a name or a Keras object description, got {str(value)[:120]}")
    if value.get("registered_name") not in (None, value["class_name"]):
        raise _bad(fname, f"{what} is the custom object {value['registered_name']!r}; fastnn reads "
                          "only Keras's built-in objects")
    config = value.get("config") or {}
    if not isinstance(config, dict):
        raise _bad(fname, f"{what} config must be an object, got {str(config)[:120]}")
    config = {k: v for k, v in config.items() if not (k in _INIT_KERAS_ONLY and v == _INIT_KERAS_ONLY[k])}
    return {"class_name": value["class_name"], "config": config}


def _accepted(cls):
    params = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            params |= {p.name for p in inspect.signature(init).parameters.values()
                       if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return params - {"self", "kwargs"}


def _layer_kwargs(class_name, config, fname):
    from . import layers as layers_module
    cls = layers_module._REGISTRY[class_name]
    accepted = _accepted(cls)
    kwargs = {}
    for key, value in config.items():
        if key in ("shared_object_id", "dtype"):  # the dtype is the model's (_dtype_of)
            continue
        if key in ("axis",) and isinstance(value, list):
            if len(value) != 1:
                raise _bad(fname, f"{class_name} over several axes {value} is not supported")
            value = value[0]
        if key.endswith(("_initializer", "_regularizer", "_constraint")) or key == "activation":
            value = _object_ref(value, f"{class_name}.{key}", fname)
            if key == "activation" and isinstance(value, dict):
                raise _bad(fname, f"{class_name}.activation must be an activation name, got {value}")
        if key in accepted:
            kwargs[key] = value
        elif key in _KERAS_ONLY and value == _KERAS_ONLY[key]:
            continue
        else:
            raise _bad(fname, f"{class_name} setting {key}={str(value)[:80]} is not supported by fastnn")
    return cls, kwargs


def _dtype_of(config, fname):
    dtype = config.get("dtype")
    if isinstance(dtype, dict):
        inner = dtype.get("config")
        dtype = inner.get("name") if isinstance(inner, dict) else inner
    if dtype in (None, "float32", "float64"):
        return dtype
    raise _bad(fname, f"layer dtype {str(dtype)[:40]!r} is not supported (float32 or float64)")


def _expected_shapes(class_name, config, in_shape):
    """Weight shapes the layer will create for inputs ``in_shape`` (no batch axis), computed
    from its configuration before anything is allocated."""
    c = in_shape[-1]
    if class_name == "Dense":
        return [(c, config["units"])] + ([(config["units"],)] if config.get("use_bias", True) else [])
    if class_name == "BatchNormalization":
        return ([(c,)] * (bool(config.get("scale", True)) + bool(config.get("center", True)))
                + [(c,), (c,)])
    if class_name == "LayerNormalization":
        return [(c,)] * (bool(config.get("scale", True)) + bool(config.get("center", True)))
    if class_name == "PReLU":
        return [(c,)]
    if class_name == "Normalization":
        return [] if config.get("mean") is not None else [(c,), (c,)]
    if class_name == "Embedding":
        return [(config["input_dim"], config["output_dim"])]
    if class_name in _RECURRENT:
        u = config["units"]
        k = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}[class_name]
        shapes = [(c, k * u), (u, k * u)]
        if config.get("use_bias", True):
            shapes.append((2, k * u) if class_name == "GRU" and config.get("reset_after", True) else (k * u,))
        return shapes
    return []


def _check_size(value, what, fname, limit=1 << 31):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit:
        raise _bad(fname, f"{what} must be a positive integer, got {str(value)[:40]}")


def _layer_specs(config, fname):
    """[(class_name, fastnn kwargs)] and the input shape of a Keras Sequential config."""
    layers = config.get("layers")
    if not isinstance(layers, list):
        raise _bad(fname, "the Sequential config has no list of layers")
    if len(layers) > MAX_LAYERS:
        raise _bad(fname, f"{len(layers)} layers, more than the {MAX_LAYERS} fastnn reads")
    specs, input_shape = [], None
    for i, entry in enumerate(layers):
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise _bad(fname, f"layer {i} is not a Keras layer description")
        cls = entry.get("class_name")
        if cls not in LAYERS:
            raise _bad(fname, f"layer {i} is of class {str(cls)[:60]!r}, which fastnn does not have; "
                              f"fastnn reads {', '.join(LAYERS)}")
        lc = entry["config"]
        if cls == "InputLayer":
            shape = lc.get("batch_shape", lc.get("batch_input_shape"))
            if i != 0 or not isinstance(shape, list) or len(shape) < 2:
                raise _bad(fname, "InputLayer must come first and give batch_shape [null, d1, ...]")
            input_shape = shape[1:]
            continue
        if input_shape is None and i == 0:
            build = (entry.get("build_config") or {}).get("input_shape") or config.get("build_input_shape")
            if isinstance(build, list) and len(build) >= 2:
                input_shape = build[1:]
        specs.append((cls, lc))
    if input_shape is None:
        raise _bad(fname, "the model has no input shape (Keras writes an InputLayer or build_input_shape)")
    for s in input_shape:
        _check_size(s, "every input dimension", fname)
    return specs, tuple(input_shape)


def _model_from_config(top, fname):
    """(build, [(layer, class name, expected weight shapes)]) from config.json's top-level object:
    ``build()`` builds (allocates) and returns the model, once the weights file has been checked
    against the expected shapes. The one place where Keras model classes are told apart."""
    cls = top.get("class_name") if isinstance(top, dict) else None
    if cls == "Sequential":
        return _sequential_from_config(top.get("config"), fname)
    if cls == "Functional":
        return _functional_from_config(top.get("config"), fname)
    raise _bad(fname, f"the model class {str(cls)[:60]!r} is not a Keras model fastnn reads "
                      "(Sequential, Functional)")


def _sequential_from_config(config, fname):
    from .layers import InputLayer
    from .models import Sequential
    if not isinstance(config, dict):
        raise _bad(fname, "the Sequential config must be an object")
    specs, input_shape = _layer_specs(config, fname)
    dtypes = {_dtype_of(lc, fname) for _, lc in specs} - {None}
    if len(dtypes) > 1:
        raise _bad(fname, f"layers of several dtypes {sorted(dtypes)}; fastnn models have one")
    built, shape = [], input_shape
    try:
        layers = []
        for cls, lc in specs:
            klass, kwargs = _layer_kwargs(cls, lc, fname)
            for key in ("units", "input_dim", "output_dim"):
                if key in kwargs:
                    _check_size(kwargs[key], f"{cls}.{key}", fname)
            layer = klass(**kwargs)
            expected = _expected_shapes(cls, kwargs, shape)
            if sum(int(np.prod(s)) for s in expected) > MAX_WEIGHTS_BYTES // 4:
                raise _bad(fname, f"{cls} would have more weights than any Keras file fastnn reads")
            shape = layer.compute_output_shape(shape)
            layers.append(layer)
            built.append((layer, cls, expected))
        model = Sequential(name=config.get("name") if isinstance(config.get("name"), str) else None)
        if dtypes:
            model._dtype = np.dtype(dtypes.pop())
        model.add(InputLayer(shape=input_shape))

        def finish():
            _add_layers(model, built, fname)
            return model
        return finish, built
    except ModelFileError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, NotImplementedError) as exc:
        raise _bad(fname, f"cannot rebuild the model from its configuration: {str(exc)[:300]}") from None


# A functional model (Keras's "Functional"): config {"name", "trainable", "layers": [...],
# "input_layers", "output_layers"}. Each layer entry has "name" and "inbound_nodes", one per call
# of the layer: {"args": [tensor] or [[tensor, ...]] (a merge), "kwargs": {}}, a tensor being
# {"class_name": "__keras_tensor__", "config": {"shape", "dtype", "keras_history": [layer name,
# node index, tensor index]}}; node k of a layer is its k-th inbound node (an InputLayer has none
# listed and one node, 0). "input_layers" / "output_layers" are a flat [name, node, 0] (one
# tensor), a list of them, or a dict of them by name. The "layers" list is Keras's model.layers,
# ordered as its map_graph orders operations (by depth from the outputs, then by first visit in a
# depth-first walk from the outputs, a dict's keys sorted), and model.weights.h5 numbers *all* of
# them in that order, InputLayers included ("layers/input_layer", "layers/dense_1", ...).

def _history(value, fname, where):
    """(layer name, node index, tensor index) of a Keras tensor description (or a bare [name, node,
    index]); the tensor index picks one output of a call that gives several (a recurrent layer
    with return_state: [output, h] or [output, h, c])."""
    if isinstance(value, dict):
        if value.get("class_name") != "__keras_tensor__" or not isinstance(value.get("config"), dict):
            raise _bad(fname, f"{where}: expected a Keras tensor, got {str(value)[:100]}")
        value = value["config"].get("keras_history")
    if not (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)
            and all(isinstance(i, int) and not isinstance(i, bool) for i in value[1:])):
        raise _bad(fname, f"{where}: a tensor reference must be [layer name, node index, tensor index], "
                          f"got {str(value)[:100]}")
    return value[0], value[1], value[2]


def _io_structure(value, fname, what):
    """("single" | "list" | "dict", [(layer name, node)], [dict keys]) of input_layers / output_layers."""
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return "single", [_history(value, fname, what)], None
    if isinstance(value, dict) and value:
        if len(value) > MAX_NODES:
            raise _bad(fname, f"{what} lists {len(value)} tensors")
        return "dict", [_history(v, fname, f"{what}[{k!r}]") for k, v in value.items()], list(value)
    if isinstance(value, list) and value:
        if len(value) > MAX_NODES:
            raise _bad(fname, f"{what} lists {len(value)} tensors")
        return "list", [_history(v, fname, what) for v in value], None
    raise _bad(fname, f"{what} must be a tensor reference, a list or a dict of them, got {str(value)[:100]}")


def _functional_from_config(config, fname):
    import heapq
    from . import functional
    if not isinstance(config, dict):
        raise _bad(fname, "the Functional config must be an object")
    entries = config.get("layers")
    if not isinstance(entries, list) or not entries:
        raise _bad(fname, "the Functional config has no list of layers")
    if len(entries) > MAX_LAYERS:
        raise _bad(fname, f"{len(entries)} layers, more than the {MAX_LAYERS} fastnn reads")
    # 1. Every entry and every call checked, nothing built yet.
    specs, index, calls, n_nodes = [], {}, [], 0
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise _bad(fname, f"layer {i} is not a Keras layer description")
        cls, name = entry.get("class_name"), entry.get("name")
        if cls not in LAYERS:
            raise _bad(fname, f"layer {i} is of class {str(cls)[:60]!r}, which fastnn does not have; "
                              f"fastnn reads {', '.join(LAYERS)}")
        if not isinstance(name, str) or not name:
            raise _bad(fname, f"layer {i} ({cls}) has no name")
        if name in index:
            raise _bad(fname, f"two layers are named {name[:60]!r}")
        inbound = entry.get("inbound_nodes")
        if not isinstance(inbound, list):
            raise _bad(fname, f"layer {name[:60]!r} has no list of inbound_nodes")
        if cls == "InputLayer" and inbound:
            raise _bad(fname, f"InputLayer {name[:60]!r} lists inbound nodes")
        if cls != "InputLayer" and not inbound:
            raise _bad(fname, f"layer {name[:60]!r} ({cls}) is never called in the graph")
        index[name] = i
        specs.append((cls, name, entry["config"]))
        for k, node in enumerate(inbound):
            n_nodes += 1
            if n_nodes > MAX_NODES:
                raise _bad(fname, f"more than the {MAX_NODES} layer calls fastnn reads")
            where = f"layer {name[:60]!r} call {k}"
            if not isinstance(node, dict) or not isinstance(node.get("args"), list) or len(node["args"]) != 1:
                raise _bad(fname, f"{where}: expected {{'args': [tensor or list of tensors], 'kwargs': {{}}}}, "
                                  f"got {str(node)[:100]}")
            kwargs = dict(node.get("kwargs") or {}) if isinstance(node.get("kwargs") or {}, dict) else None
            # Keras records the call context of a recurrent layer ({"training": false, "mask": null});
            # fastnn takes training from fit/predict, as Keras does for every other layer. A
            # recurrent layer's initial_state is a tensor or a list of them.
            states = kwargs.pop("initial_state", None) if kwargs is not None and cls in _RECURRENT else None
            if states is not None and not isinstance(states, list):
                states = [states]
            if kwargs is None or any(not (v is None or (k == "training" and isinstance(v, bool)))
                                     for k, v in kwargs.items()):
                raise _bad(fname, f"{where}: call arguments {str(kwargs)[:100]} are not supported by fastnn")
            arg = node["args"][0]
            multi = isinstance(arg, list)
            if multi != (cls in _MERGES):
                raise _bad(fname, f"{where}: {cls} takes " + ("a list of tensors" if cls in _MERGES else "one tensor"))
            refs = [_history(t, fname, where) for t in (arg if multi else [arg])]
            if multi and len(refs) < 2:
                raise _bad(fname, f"{where}: a merge of {len(refs)} tensors (it takes two or more)")
            if len(refs) > MAX_MERGE_INPUTS:
                raise _bad(fname, f"{where}: a merge of {len(refs)} tensors")
            n_states = 0
            if states:
                if len(states) > 2:
                    raise _bad(fname, f"{where}: {len(states)} initial states")
                refs += [_history(t, fname, where) for t in states]
                n_states = len(states)
            calls.append((i, k, refs, multi, n_states))
    n_out = {name: (1 if cls == "InputLayer" else len(entries[index[name]]["inbound_nodes"]))
             for cls, name, _ in specs}
    # tensors per call: a recurrent layer with return_state gives [output, *final states]
    n_tensors = {name: (1 + (2 if cls == "LSTM" else 1) if cls in _RECURRENT and lc.get("return_state")
                        else 1) for cls, name, lc in specs}

    def check_ref(ref, where):
        name, k, j = ref
        if name not in index:
            raise _bad(fname, f"{where} refers to the layer {name[:60]!r}, which the model does not have")
        if not 0 <= k < n_out[name]:
            raise _bad(fname, f"{where} refers to call {k} of layer {name[:60]!r}, which has {n_out[name]}")
        if not 0 <= j < n_tensors[name]:
            raise _bad(fname, f"{where}: tensor index {j} of layer {name[:60]!r} is out of range (its "
                              f"calls give {n_tensors[name]} tensor(s))")
    for i, k, refs, *_ in calls:
        for ref in refs:
            check_ref(ref, f"layer {specs[i][1][:60]!r} call {k}")
    in_kind, in_refs, in_keys = _io_structure(config.get("input_layers"), fname, "input_layers")
    out_kind, out_refs, out_keys = _io_structure(config.get("output_layers"), fname, "output_layers")
    for ref in in_refs + out_refs:
        check_ref(ref, "the model's inputs/outputs")
    for name, k, _ in in_refs:
        if specs[index[name]][0] != "InputLayer":
            raise _bad(fname, f"the model input {name[:60]!r} is not an InputLayer")
    if len(set(in_refs)) != len(in_refs):
        raise _bad(fname, "input_layers lists one input twice")
    inputs_listed = {name for name, _, _ in in_refs}
    for cls, name, _ in specs:
        if cls == "InputLayer" and name not in inputs_listed:
            raise _bad(fname, f"InputLayer {name[:60]!r} is not among the model's input_layers")
    # 2. An order of the calls in which every tensor exists before it is read (Kahn's algorithm);
    # calls left over depend on each other (a cycle).
    waiting, readers, ready = {}, {}, []
    for c, (i, k, refs, *_) in enumerate(calls):
        missing = sorted({r[:2] for r in refs if specs[index[r[0]]][0] != "InputLayer"})
        waiting[c] = len(missing)
        for r in missing:
            readers.setdefault(r, []).append(c)
        if not missing:
            heapq.heappush(ready, c)
    by_output = {(specs[i][1], k): c for c, (i, k, *_) in enumerate(calls)}
    order = []
    while ready:
        c = heapq.heappop(ready)
        order.append(c)
        i, k = calls[c][:2]
        for reader in readers.get((specs[i][1], k), ()):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(ready, reader)
    if len(order) != len(calls):
        stuck = sorted({specs[calls[c][0]][1][:40] for c in waiting if waiting[c] > 0})[:10]
        raise _bad(fname, f"the graph has a cycle: the calls of {stuck} wait on each other's outputs")
    # Every call leads to an output (Keras writes only the model's own nodes).
    used, stack = set(), [r[:2] for r in out_refs if r[:2] in by_output]
    while stack:
        ref = stack.pop()
        if ref in used:
            continue
        used.add(ref)
        stack.extend(r[:2] for r in calls[by_output[ref]][2] if r[:2] in by_output)
    for ref in by_output:
        if ref not in used:
            raise _bad(fname, f"call {ref[1]} of layer {ref[0][:60]!r} does not lead to any output")
    dtypes = {_dtype_of(lc, fname) for _, _, lc in specs} - {None}
    if len(dtypes) > 1:
        raise _bad(fname, f"layers of several dtypes {sorted(dtypes)}; fastnn models have one")
    dtype = dtypes.pop() if dtypes else None
    # 3. Layers made (no weights yet), every shape computed, each layer's weights checked
    # against the size bounds.
    try:
        layers, kwargs_of, shapes, first_in, tensors, total = {}, {}, {}, {}, {}, 0
        for cls, name, lc in specs:
            if cls == "InputLayer":
                shape = lc.get("batch_shape", lc.get("batch_input_shape"))
                if not isinstance(shape, list) or len(shape) < 2:
                    raise _bad(fname, f"InputLayer {name[:60]!r} must give batch_shape [null, d1, ...]")
                for s in shape[1:]:
                    _check_size(s, "every input dimension", fname)
                shapes[(name, 0, 0)] = tuple(shape[1:])
                tensors[(name, 0, 0)] = functional.Input(shape=tuple(shape[1:]), name=name, dtype=dtype)
                layers[name] = tensors[(name, 0, 0)].node.layer
                continue
            klass, kwargs = _layer_kwargs(cls, lc, fname)
            for key in ("units", "input_dim", "output_dim"):
                if key in kwargs:
                    _check_size(kwargs[key], f"{cls}.{key}", fname)
            layers[name], kwargs_of[name] = klass(**kwargs), kwargs
        expected_of = {}
        for c in order:
            i, k, refs, multi, n_states = calls[c]
            cls, name, _ = specs[i]
            layer = layers[name]
            in_shapes = [shapes[r] for r in refs[:len(refs) - n_states]]
            shape_in = in_shapes if multi else in_shapes[0]
            if name in first_in:
                if first_in[name] != shape_in:
                    raise _bad(fname, f"the shared layer {name[:60]!r} is called on inputs of shapes "
                                      f"{first_in[name]} and {shape_in}")
            else:
                first_in[name] = shape_in
                expected = _expected_shapes(cls, kwargs_of[name], shape_in)
                total += sum(int(np.prod(s)) for s in expected)
                if total > MAX_WEIGHTS_BYTES // 4:
                    raise _bad(fname, "the layers would have more weights than any Keras file fastnn reads")
                expected_of[name] = expected
            shapes[(name, k, 0)] = tuple(layer.compute_output_shape(shape_in))
            for j in range(1, n_tensors[name]):
                shapes[(name, k, j)] = (layer.units,)
        built = [(layers[name], cls, expected_of.get(name, [])) for cls, name, _ in specs]
    except ModelFileError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError,
            NotImplementedError) as exc:
        raise _bad(fname, f"cannot rebuild the model from its configuration: {str(exc)[:300]}") from None
    model_name = config.get("name") if isinstance(config.get("name"), str) else None

    def finish():
        try:
            for c in order:
                i, k, refs, multi, n_states = calls[c]
                ins = [tensors[r] for r in refs]
                args, states = ins[:len(ins) - n_states], ins[len(ins) - n_states:]
                out = functional.call_layer(layers[specs[i][1]], args if multi else args[0],
                                            initial_state=states or None)
                for j, t in enumerate(out if isinstance(out, list) else [out]):
                    tensors[(specs[i][1], k, j)] = t

            def pick(kind, refs, keys):
                got = [tensors[r] for r in refs]
                return got[0] if kind == "single" else dict(zip(keys, got)) if kind == "dict" else got
            model = functional.Functional(pick(in_kind, in_refs, in_keys), pick(out_kind, out_refs, out_keys),
                                          name=model_name)
        except (TypeError, ValueError, MemoryError) as exc:
            raise _bad(fname, f"cannot build the model: {str(exc)[:300]}") from None
        if dtype is not None:
            model._dtype = np.dtype(dtype)
        _check_built(built, fname)
        return model
    return finish, built


def _add_layers(model, built, fname):
    """Add (and so build) the layers, after the weights file was checked against ``built``."""
    try:
        for layer, _, _ in built:
            model.add(layer)
    except (TypeError, ValueError, MemoryError) as exc:
        raise _bad(fname, f"cannot build the model: {str(exc)[:300]}") from None
    _check_built(built, fname)


def _check_built(built, fname):
    for layer, cls, expected in built:
        if [w.shape for w in layer.weights] != [tuple(s) for s in expected]:
            raise _bad(fname, f"{cls} {layer.name} has weights of shapes {[w.shape for w in layer.weights]}, "
                              f"the file {expected}")


# -- HDF5 weights --------------------------------------------------------------------------------

def _dataset(h5, path, shape, fname, kinds="f"):
    """The dataset at ``path`` checked (plain contiguous array of ``shape``) before reading it."""
    h5py = _h5py()
    obj = h5.get(path)
    if not isinstance(obj, h5py.Dataset):
        raise _bad(fname, f"the weights file has no array {path}")
    if tuple(obj.shape) != tuple(shape):
        raise _bad(fname, f"array {path} has shape {tuple(obj.shape)}, the layer expects {tuple(shape)}")
    if obj.dtype.kind not in kinds or obj.dtype.itemsize not in (2, 4, 8):
        raise _bad(fname, f"array {path} has dtype {obj.dtype}; Keras weights are floats")
    if obj.chunks is not None or obj.compression is not None or obj.external:
        raise _bad(fname, f"array {path} is chunked or compressed; Keras writes plain arrays")
    if int(np.prod(shape)) and obj.id.get_storage_size() != obj.dtype.itemsize * int(np.prod(shape)):
        raise _bad(fname, f"array {path} does not hold the data its shape declares")
    return obj


def _read_weights(h5, built, fname):
    """Every layer's arrays, each checked before it is read; nothing changes on failure."""
    paths = _layer_paths([cls for _, cls, _ in built])
    out = []
    for (_, _, expected), path in zip(built, paths):
        out.append([np.array(_dataset(h5, f"{path}/{i}", s, fname)[()]) for i, s in enumerate(expected)])
    return out


class _H5Errors:
    """Turns what h5py raises on a damaged file (OSError, RuntimeError, KeyError, ValueError...)
    into ModelFileError."""

    def __init__(self, fname):
        self.fname = fname

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is None or issubclass(kind, ModelFileError) or not issubclass(
                kind, (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError,
                       OverflowError, MemoryError, EOFError, NotImplementedError)):
            return False
        raise ModelFileError(f"{self.fname}: the weights file is damaged ({kind.__name__}: "
                             f"{str(exc)[:200]})") from None


def _open_h5(data, fname):
    h5py = _h5py()
    try:
        return h5py.File(io.BytesIO(data), "r")
    except (OSError, ValueError) as exc:
        raise _bad(fname, f"model.weights.h5 is not a readable HDF5 file: {str(exc)[:200]}") from None


def _assign(built, arrays, fname, check_only=False):
    from . import utils
    for (layer, cls, _), values in zip(built, arrays):
        for w, v in zip(layer.weights, values):
            try:
                utils.check_fits_dtype(v, f"{cls} {layer.name} weight", w.dtype)
            except ValueError as exc:
                raise _bad(fname, str(exc)) from None
    if check_only:
        return
    for (layer, _, _), values in zip(built, arrays):
        for w, v in zip(layer.weights, values):
            w[...] = v


# Keras's optimizer variables after (iteration, learning_rate): groups of slot indices into
# fastnn's per-weight slot tuple; a group of several is interleaved per weight, as Keras's
# ``add_optimizer_variables(vars, [names])`` makes them.
def _slot_groups(opt):
    name = type(opt).__name__
    if name == "SGD":
        return [(0,)] if opt.momentum else []
    if name in ("Adam", "AdamW"):
        return [(0, 1)] + ([(2,)] if opt.amsgrad else [])
    if name == "Adagrad":
        return [(0,)]
    if name == "RMSprop":
        return [(0,)] + ([(2,)] if opt.momentum else []) + ([(1,)] if opt.centered else [])
    return None


def _opt_head(opt):
    """Keras's first optimizer variables: the step, and the learning rate unless a schedule
    computes it (Keras keeps no variable for it then)."""
    head = [np.array(opt.iterations, np.int64)]
    if opt.learning_rate_schedule is None:
        head.append(np.array(opt.learning_rate, np.float32))
    return head


def _keras_order(model):
    """For each of Keras's trainable variables in order, its index in ``model.trainable_weights``."""
    position = {id(p): j for j, p in enumerate(model.trainable_weights)}
    return [position[id(p)] for p in _keras_params(model)]


def _keras_opt_arrays(opt, model):
    """fastnn's optimizer state as Keras's variable list, or None when the layout is not known."""
    groups = _slot_groups(opt)
    if groups is None:
        return None
    params = model.trainable_weights
    # Before the first update the state is what a fresh optimizer makes (Keras builds it at
    # compile time and expects it in the file).
    state = opt.slots_for(params)
    state = [state[j] for j in _keras_order(model)]
    out = _opt_head(opt)
    for group in groups:
        for slots in state:
            out += [slots[i] for i in group]
    return out


def _restore_optimizer(model, h5, fname):
    """Restore the optimizer's state from ``optimizer/vars``; a layout fastnn cannot map is
    skipped with a warning (the model trains on from a fresh optimizer state)."""
    opt = model.optimizer
    group = h5.get("optimizer/vars")
    if opt is None or group is None or len(group) == 0:
        return
    groups = _slot_groups(opt)
    params = model.trainable_weights
    if groups is None:
        warnings.warn(f"{fname}: the {type(opt).__name__} state is not restored (fastnn maps Keras's "
                      "state for SGD, Adam, AdamW, Adagrad and RMSprop)", stacklevel=4)
        return
    fresh = opt.fresh_slots(params)
    keras_order = _keras_order(model)                        # Keras's variable w is params[keras_order[w]]
    order = [(keras_order[w], i) for g in groups for w in range(len(params)) for i in g]
    head = len(_opt_head(opt))
    if len(group) == head and not opt.has_state:
        return  # a compiled optimizer that never updated: nothing to restore
    if len(group) != head + len(order):
        warnings.warn(f"{fname}: the optimizer state has {len(group)} arrays, {type(opt).__name__} for "
                      f"this model {head + len(order)}; it is not restored", stacklevel=4)
        return
    step = _dataset(h5, "optimizer/vars/0", (), fname, kinds="iuf")[()]
    values = {}
    for k, (w, i) in enumerate(order):
        values[(w, i)] = np.array(_dataset(h5, f"optimizer/vars/{k + head}", params[w].shape, fname)[()])
    step = int(step)
    if step < 0:
        raise _bad(fname, f"the optimizer step {step} is negative")
    variables = [values[(w, i)].astype(params[w].dtype) for w, slots in enumerate(fresh)
                 for i, s in enumerate(slots) if s is not None]
    try:
        opt.set_state(params, step, variables)
    except ValueError as exc:
        raise _bad(fname, f"optimizer state does not match the model: {exc}") from None


# -- compile configuration -----------------------------------------------------------------------

def _filter(config, cls, keras_only, what, fname):
    accepted = _accepted(cls)
    out = {}
    for key, value in (config or {}).items():
        if key in accepted and key != "name":
            out[key] = value
        elif key in keras_only and (keras_only[key] is _ANY or value == keras_only[key]):
            continue
        else:
            raise _bad(fname, f"{what} setting {key}={str(value)[:60]} is not supported by fastnn")
    return out


def _optimizer_from(value, fname):
    from . import optimizers, schedules
    if isinstance(value, str):
        return optimizers.get(value)
    ref = _object_ref(value, "the optimizer", fname)
    cls = optimizers._BY_NAME.get(ref["class_name"].lower())
    if cls is None:
        raise _bad(fname, f"unknown optimizer {ref['class_name'][:60]!r}; fastnn has "
                          f"{', '.join(sorted(optimizers._BY_NAME))}")
    config = _filter(ref["config"], cls, _OPTIMIZER_KERAS_ONLY, ref["class_name"], fname)
    lr = config.get("learning_rate")
    if isinstance(lr, dict):
        lr = _object_ref(lr, "the learning-rate schedule", fname)
        klass = schedules._BY_NAME.get(lr["class_name"])
        if klass is None:
            raise _bad(fname, f"unknown learning-rate schedule {lr['class_name'][:60]!r}")
        config["learning_rate"] = klass(**_filter(lr["config"], klass, {"name": _ANY}, lr["class_name"], fname))
    return cls(**config)


def _loss_from(value, fname):
    from . import losses
    if isinstance(value, str):
        return losses.get(value)
    ref = _object_ref(value, "the loss", fname)
    cls = losses._BY_NAME.get(ref["class_name"].lower())
    if cls is None:
        raise _bad(fname, f"unknown loss {ref['class_name'][:60]!r}")
    return cls(**_filter(ref["config"], cls, _LOSS_KERAS_ONLY, ref["class_name"], fname))


# Metric classes both libraries have with the same meaning: the settings written to and read from a
# Keras file, and fastnn settings that must keep their default (Keras has no such setting).
_METRICS = {
    "Accuracy": ((), {"threshold": 0.5}),
    "BinaryAccuracy": (("threshold",), {}),
    "CategoricalAccuracy": ((), {}),
    "SparseCategoricalAccuracy": ((), {}),
    "TopKCategoricalAccuracy": (("k",), {}),
    "SparseTopKCategoricalAccuracy": (("k",), {}),
    "Precision": (("thresholds", "top_k", "class_id"), {}),
    "Recall": (("thresholds", "top_k", "class_id"), {}),
    "AUC": (("num_thresholds", "curve", "summation_method", "multi_label", "num_labels",
             "label_weights", "from_logits"), {}),
    "MeanSquaredError": ((), {"multioutput": "uniform_average"}),
    "MeanAbsoluteError": ((), {"multioutput": "uniform_average"}),
    "RootMeanSquaredError": ((), {"multioutput": "uniform_average"}),
    "CosineSimilarity": (("axis",), {}),
}


def _metric_entry(metric):
    """A compile metric as Keras writes it: a name stays a name, an object becomes Keras's
    description of the same metric; an object Keras has no counterpart for is refused by name."""
    from . import metrics
    if isinstance(metric, str):
        return metric
    cls = type(metric).__name__
    spec = _METRICS.get(cls)
    if spec is None or getattr(metrics, cls, None) is not type(metric):
        raise ValueError(f"metric {metric.name!r} ({cls}) has no Keras counterpart to write to a .keras "
                         f"file (those with one: {', '.join(sorted(_METRICS))}); compile with a metric "
                         "name, or save to a .fnn file")
    keep, fixed = spec
    config = metric.get_config()
    for key, default in fixed.items():
        if config.get(key, default) != default:
            raise ValueError(f"metric {metric.name!r} ({cls}) has {key}={config[key]!r}, which Keras's "
                             f"{cls} cannot express (only {default!r}); save to a .fnn file")
    out = {"name": metric.name, "dtype": "float32"}
    out.update({k: config[k] for k in keep if k in config})
    return _keras_object("keras.metrics", {"class_name": cls, "config": out})


def _metric_names(value, fname):
    """fastnn compile metrics from Keras's metric entries (a name, an object, or a list of them):
    an object of a class both libraries have (``_METRICS``) with its settings, another object by its
    name."""
    from . import metrics
    if value is None:
        return []
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(m, (str, dict)) for m in value):
        raise _bad(fname, f"metrics must be a list of names, got {str(value)[:100]}")
    names = []
    for m in value:
        ref = m if isinstance(m, str) else _object_ref(m, "a metric", fname)
        if isinstance(ref, str):
            names.append(ref)
            continue
        name = ref["config"].get("name")
        if name is not None and not isinstance(name, str):
            raise _bad(fname, f"a metric name must be a string, got {str(name)[:60]}")
        if ref["class_name"] in _METRICS:
            keep = _METRICS[ref["class_name"]][0]
            settings = {k: ref["config"][k] for k in keep if k in ref["config"]}
            try:
                if name is not None:
                    settings["name"] = name
                names.append(getattr(metrics, ref["class_name"])(**settings))
            except (TypeError, ValueError) as exc:
                raise _bad(fname, f"metric {ref['class_name']} settings: {exc}") from None
        else:
            names.append(name or ref["class_name"])
    return names


def _compile_from(model, cc, fname):
    if not isinstance(cc, dict) or cc.get("loss") is None:
        return
    functional = _is_functional(model)
    if cc.get("weighted_metrics") is not None:
        raise _bad(fname, "compile setting weighted_metrics is not supported by fastnn")
    if not functional and cc.get("loss_weights") is not None:
        raise _bad(fname, "compile setting loss_weights is not supported by fastnn for a Sequential model")
    metrics, loss = cc.get("metrics"), cc["loss"]
    if functional and isinstance(metrics, dict):
        metrics = {str(k): _metric_names(v, fname) for k, v in metrics.items()}
    elif functional and isinstance(metrics, list) and metrics and all(isinstance(m, list) for m in metrics):
        metrics = [_metric_names(m, fname) for m in metrics]
    else:
        metrics = _metric_names(metrics, fname)
    if functional and isinstance(loss, dict) and "class_name" not in loss:
        loss = {str(k): _loss_from(v, fname) for k, v in loss.items()}
    elif functional and isinstance(loss, list):
        loss = [_loss_from(v, fname) for v in loss]
    else:
        loss = _loss_from(loss, fname)
    optimizer = _optimizer_from(cc.get("optimizer", "rmsprop"), fname)
    if functional:
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics or None, loss_weights=cc.get("loss_weights"))
    else:
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics or None)


# -- reading ---------------------------------------------------------------------------------------

def _read_member(zf, name, limit, fname):
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise _bad(fname, f"the .keras archive has no {name}") from None
    if info.file_size > limit:
        raise _bad(fname, f"{name} declares {info.file_size} bytes, more than the {limit} fastnn reads")
    if info.file_size > 1 << 20 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise _bad(fname, f"{name} expands {info.file_size // max(info.compress_size, 1)}-fold "
                          f"({info.compress_size} to {info.file_size} bytes): refused as a zip bomb")
    if info.flag_bits & 0x1:
        raise _bad(fname, f"{name} is encrypted")
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, RuntimeError, ValueError) as exc:
        raise _bad(fname, f"cannot read {name}: {str(exc)[:200]}") from None
    if len(data) > limit or len(data) != info.file_size:
        raise _bad(fname, f"{name} does not hold the {info.file_size} bytes its zip entry declares")
    return data


def _json(data, what, fname):
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _bad(fname, f"{what} is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise _bad(fname, f"{what} must be a JSON object")
    return value


def _open_zip(path, fname):
    try:
        zf = zipfile.ZipFile(path)
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise ModelFileError(f"{fname} is not a fastnn model file, nor a readable .keras archive (zip): "
                             f"{str(exc)[:200]}") from None
    if len(infos) > MAX_MEMBERS:
        zf.close()
        raise _bad(fname, f"the archive has {len(infos)} members; a .keras model has 3")
    return zf


def load_model(path, compile=True):
    """The Sequential model in the ``.keras`` file ``path`` (written by Keras 3 or by fastnn)."""
    _h5py()
    fname = os.path.basename(os.fsdecode(os.fspath(path)))
    with _open_zip(os.fsdecode(os.fspath(path)), fname) as zf:
        names = set(zf.namelist())
        if "model.weights.h5" not in names:
            if "model.weights.npz" in names:
                raise _bad(fname, "the weights are in model.weights.npz; fastnn reads model.weights.h5")
            raise _bad(fname, "the .keras archive has no model.weights.h5")
        config = _json(_read_member(zf, "config.json", MAX_JSON_BYTES, fname), "config.json", fname)
        if "metadata.json" in names:
            _json(_read_member(zf, "metadata.json", MAX_JSON_BYTES, fname), "metadata.json", fname)
        finish, built = _model_from_config(config, fname)
        weights = _read_member(zf, "model.weights.h5", MAX_WEIGHTS_BYTES, fname)
    with _H5Errors(fname), _open_h5(weights, fname) as h5:
        arrays = _read_weights(h5, built, fname)
    model = finish()
    _assign(built, arrays, fname)
    if compile:
        with _H5Errors(fname), _open_h5(weights, fname) as h5:
            try:
                _compile_from(model, config.get("compile_config"), fname)
            except ModelFileError:
                raise
            except (TypeError, ValueError, KeyError, AttributeError, NotImplementedError) as exc:
                raise _bad(fname, f"cannot restore the compile settings: {str(exc)[:300]}") from None
            _restore_optimizer(model, h5, fname)
    return model


def load_weights(model, path):
    """Load a Keras ``.weights.h5`` file into the built fastnn ``model``; every array is checked
    before any weight changes."""
    fname = os.path.basename(os.fsdecode(os.fspath(path)))
    if not model.built:
        raise ModelFileError(f"{model.name} is not built; build it (or fit/predict once) before "
                             f"loading weights from {fname}")
    path = os.fsdecode(os.fspath(path))
    size = os.path.getsize(path)
    if size > MAX_WEIGHTS_BYTES:
        raise _bad(fname, f"{size} bytes, more than the {MAX_WEIGHTS_BYTES} a weights file may have")
    with open(path, "rb") as f:
        data = f.read(MAX_WEIGHTS_BYTES + 1)
    built = []
    for layer in _keras_layers(model):
        cls = type(layer).__name__
        if cls not in LAYERS:
            raise ModelFileError(f"{model.name}: layer {layer.name} ({cls}) has no Keras weights layout")
        built.append((layer, cls, [w.shape for w in layer.weights]))
    with _H5Errors(fname), _open_h5(data, fname) as h5:
        arrays = _read_weights(h5, built, fname)
        _assign(built, arrays, fname, check_only=True)
        if model.optimizer is not None and model.optimizer.has_state:
            _restore_optimizer(model, h5, fname)  # checks all, then sets all
    _assign(built, arrays, fname)


# -- fastnn objects -> Keras configuration --------------------------------------------------------

def _keras_object(module, ref):
    """fastnn's ``{"class_name", "config"}`` (or a name) as Keras's serialized object."""
    if ref is None or isinstance(ref, str):
        return ref
    return {"module": module, "class_name": ref["class_name"], "config": ref["config"],
            "registered_name": None}


def _layer_config(layer, dtype, in_shape):
    cls = type(layer).__name__
    if cls not in LAYERS:
        raise ValueError(f"layer {layer.name} ({cls}) has no Keras equivalent; save to a .fnn file")
    config = dict(layer.get_config())
    act = config.get("activation")
    if act is not None and (not isinstance(act, str) or act in ("step", "gelu_tanh")):
        raise ValueError(f"layer {layer.name}: activation {act!r} has no Keras name (Keras knows its "
                         "activations by name only); save to a .fnn file")
    for key, value in list(config.items()):
        if key.endswith("_initializer"):
            config[key] = _keras_object("keras.initializers", value)
        elif key.endswith("_regularizer"):
            config[key] = _keras_object("keras.regularizers", value)
        elif key.endswith("_constraint"):
            config[key] = _keras_object("keras.constraints", value)
    config.pop("input_shape", None)
    if cls == "SimpleRNN" and config.get("seed") is None:
        config.pop("seed", None)  # Keras's SimpleRNN lists no seed in its config
    config["dtype"] = dtype
    entry = {"module": "keras.layers", "class_name": cls, "config": config, "registered_name": None}
    if cls in _MERGES:
        entry["build_config"] = {"input_shape": [[None, *s] for s in in_shape]}
    elif layer.weights or cls == "Flatten":
        entry["build_config"] = {"input_shape": [None, *in_shape]}
    return entry


def _model_config(model, include_compile=True):
    """config.json's object for ``model`` (fastnn to Keras): a Sequential, or a functional model
    (a subclassed model is written as the graph its call traced)."""
    if _is_functional(model):
        top = _functional_config(model, model._dtype.name)
        top["compile_config"] = _compile_config(model) if include_compile and model.loss is not None else {}
        return top
    if type(model).__name__ != "Sequential":
        raise ValueError(f"only Sequential models are written as .keras files, got {type(model).__name__}")
    if model._input_shape is None:
        raise ValueError(f"{model.name} is not built; build it (or fit/predict once) before saving "
                         "it as a .keras file (Keras needs the input shape)")
    dtype = model._dtype.name
    shapes = [model._input_shape] + model._output_shapes(model._input_shape)
    layers = [{"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
               "config": {"batch_shape": [None, *model._input_shape], "dtype": dtype, "sparse": False,
                          "ragged": False, "name": "input_layer", "optional": False}}]
    layers += [_layer_config(l, dtype, s) for l, s in zip(model.layers, shapes)]
    top = {"module": "keras", "class_name": "Sequential", "registered_name": None,
           "config": {"name": model.name, "trainable": model.trainable, "dtype": dtype,
                      "layers": layers, "build_input_shape": [None, *model._input_shape]},
           "build_config": {"input_shape": [None, *model._input_shape]}}
    top["compile_config"] = _compile_config(model) if include_compile and model.loss is not None else {}
    return top


def _is_functional(model):
    from .functional import Functional
    return isinstance(model, Functional)


def _keras_layers(model):
    """The layers of ``model`` in the order of Keras's ``model.layers`` (which numbers the HDF5
    groups and orders the optimizer's variables): fastnn's ``model.layers`` keeps that order (for
    a functional model Keras's map_graph order, InputLayers included)."""
    return list(model.layers)


def _keras_params(model):
    """The trainable weights in the order of Keras's ``model.trainable_variables``."""
    return [w for layer in _keras_layers(model) for w in layer.trainable_weights]


def _functional_config(model, dtype):
    from .layers import InputLayer
    layers = _keras_layers(model)
    names = [l.name for l in layers]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"layer names {dup} are used twice; Keras needs one name per layer")
    ref = {}
    for t in model._inputs:
        ref[id(t)] = [t.node.layer.name, 0, 0]
    nodes_of = {}
    for node in model._nodes:
        for t in node.outputs:
            ref[id(t)] = [node.layer.name, node.index, t.index]
        nodes_of.setdefault(id(node.layer), []).append(node)

    def tensor(t):
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(t.shape), "dtype": dtype, "keras_history": ref[id(t)]}}
    entries = []
    for layer in layers:
        if isinstance(layer, InputLayer):
            entries.append({"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                            "config": {"batch_shape": [None, *layer.input_shape_arg], "dtype": dtype,
                                       "sparse": False, "ragged": False, "name": layer.name, "optional": False},
                            "name": layer.name, "inbound_nodes": []})
            continue
        nodes = sorted(nodes_of[id(layer)], key=lambda n: n.index)
        first = nodes[0]
        in_shape = [t._tail for t in first.inputs] if first.multi else first.inputs[0]._tail
        entry = _layer_config(layer, dtype, in_shape)
        entry["name"] = layer.name
        entry["inbound_nodes"] = [{"args": [[tensor(t) for t in n.inputs] if n.multi else tensor(n.inputs[0])],
                                   "kwargs": ({"initial_state": [tensor(t) for t in n.inputs[1:]]}
                                              if n.states else {})} for n in nodes]
        entries.append(entry)

    def io(tensors, kind, keys):
        refs = [ref[id(t)] for t in tensors]
        return refs[0] if kind == "single" else dict(zip(keys, refs)) if kind == "dict" else refs
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": {"name": model.name, "trainable": model.trainable, "layers": entries,
                       "input_layers": io(model._inputs, model._in_kind, model._input_names),
                       "output_layers": io(model._outputs, model._out_kind, model._output_names)},
            "registered_name": "Functional", "build_config": {"input_shape": None}}


def _compile_config(model):
    from . import optimizers, schedules
    opt = optimizers.serialize(model.optimizer)
    opt_config = dict(opt["config"], name=opt["class_name"].lower())
    lr = model.optimizer.learning_rate_schedule
    if lr is not None:
        opt_config["learning_rate"] = _keras_object("keras.optimizers.schedules", schedules.serialize(lr))
    if _is_functional(model):
        losses, spec, weights = model._losses, model._metric_spec, model._loss_weights
    else:
        losses, spec, weights = [model.loss], [model._metric_ids], [1.0]
    spec = [[_metric_entry(m) for m in ms] for ms in spec]  # refused before anything is written

    def loss_object(loss):
        return _keras_object("keras.losses", {"class_name": type(loss).__name__, "config": dict(loss.get_config())})
    kind = model._out_kind if _is_functional(model) else "single"
    if kind == "single":
        loss, metrics, loss_weights = loss_object(losses[0]), list(spec[0]) or None, None
    elif kind == "dict":
        keys = model._output_names
        loss = {k: loss_object(l) for k, l in zip(keys, losses)}
        metrics = {k: list(m) for k, m in zip(keys, spec)} if any(spec) else None
        loss_weights = dict(zip(keys, weights))
    else:
        loss = [loss_object(l) for l in losses]
        metrics = [list(m) for m in spec] if any(spec) else None
        loss_weights = list(weights)
    if all(w == 1.0 for w in weights):
        loss_weights = None
    return {"optimizer": _keras_object("keras.optimizers", {"class_name": opt["class_name"],
                                                            "config": opt_config}),
            "loss": loss, "loss_weights": loss_weights, "metrics": metrics, "weighted_metrics": None,
            "run_eagerly": False, "steps_per_execution": 1, "jit_compile": True}


def _h5_bytes(model, include_optimizer):
    """model.weights.h5 as bytes, in Keras's layout."""
    h5py = _h5py()
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        h5.create_group("layers")
        layers = _keras_layers(model)
        for layer, path in zip(layers, _layer_paths([type(l).__name__ for l in layers])):
            if path.endswith("/cell/vars"):
                h5.create_group(path[:-len("/cell/vars")] + "/vars").attrs["name"] = layer.name
            group = h5.create_group(path)
            group.attrs["name"] = (layer.name + "_cell") if path.endswith("/cell/vars") else layer.name
            arrays = list(layer.weights)
            if type(layer).__name__ == "Normalization" and arrays:
                arrays.append(np.array(0, np.int64))  # Keras's adapt() sample count
            for i, w in enumerate(arrays):
                group.create_dataset(str(i), data=np.asarray(w))
        opt = model.optimizer
        if include_optimizer and opt is not None:
            group = h5.create_group("optimizer/vars")
            group.attrs["name"] = type(opt).__name__.lower()
            arrays = _keras_opt_arrays(opt, model)
            if arrays is None:
                arrays = _opt_head(opt)
                if opt.has_state:
                    warnings.warn(f"the {type(opt).__name__} state is not written to the Keras file "
                                  "(fastnn maps SGD, Adam, AdamW, Adagrad and RMSprop)", stacklevel=4)
            for i, a in enumerate(arrays):
                group.create_dataset(str(i), data=np.asarray(a))
        h5.create_group("vars").attrs["name"] = model.name
    return buf.getvalue()


def save_model(model, path, include_optimizer=True):
    """Write ``model`` as a Keras 3 ``.keras`` file, atomically."""
    _h5py()
    config = json.dumps(_model_config(model), allow_nan=False).encode("utf-8")
    metadata = json.dumps({"keras_version": KERAS_VERSION,
                           "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", metadata)
        zf.writestr("config.json", config)
        zf.writestr("model.weights.h5", _h5_bytes(model, include_optimizer))
    _atomic_write(path, [buf.getvalue()])


def save_weights(model, path):
    """Write the weights (and optimizer state) of ``model`` as a Keras ``.weights.h5`` file."""
    if not model.built:
        raise ValueError(f"{model.name} is not built; nothing to save")
    for layer in _keras_layers(model):
        if type(layer).__name__ not in LAYERS:
            raise ValueError(f"layer {layer.name} ({type(layer).__name__}) has no Keras weights layout")
    _atomic_write(path, [_h5_bytes(model, include_optimizer=True)])
