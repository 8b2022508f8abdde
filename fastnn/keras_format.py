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
fastnn) and :func:`_model_config` (fastnn to Keras); a functional model (Keras's
``"class_name": "Functional"``, with ``layers`` carrying ``inbound_nodes``) belongs there too.
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
          "SimpleRNN", "LSTM", "GRU", "Embedding")
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
        dtype = (dtype.get("config") or {}).get("name")
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
    """(fastnn model, [(layer, expected weight shapes)]) from config.json's top-level object.
    The one place where Keras model classes are told apart."""
    cls = top.get("class_name") if isinstance(top, dict) else None
    if cls == "Sequential":
        return _sequential_from_config(top.get("config"), fname)
    if cls == "Functional":
        # Keras 3.15 writes a functional model as config {"name", "trainable", "layers": [...],
        # "input_layers": [[name, 0, 0], ...], "output_layers": [name, 0, 0] (one output) or a list
        # of them}; each layer entry has "name" and "inbound_nodes": [{"args": [tensor or list of
        # tensors], "kwargs": {}}], a tensor being {"class_name": "__keras_tensor__", "config":
        # {"shape", "dtype", "keras_history": [layer name, node index, tensor index]}}. Its HDF5
        # groups number *all* of model.layers in config order, InputLayers included
        # ("layers/input_layer", "layers/input_layer_1", "layers/dense", ...): _layer_paths over
        # every entry's class name, where Sequential's leave the InputLayer out.
        raise _bad(fname, "functional models (keras.Model(inputs, outputs)) cannot be read yet; "
                          "fastnn reads Sequential models")
    raise _bad(fname, f"the model class {str(cls)[:60]!r} is not a Keras model fastnn reads (Sequential)")


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
        return model, built
    except ModelFileError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        raise _bad(fname, f"cannot rebuild the model from its configuration: {str(exc)[:300]}") from None


def _add_layers(model, built, fname):
    """Add (and so build) the layers, after the weights file was checked against ``built``."""
    try:
        for layer, _, _ in built:
            model.add(layer)
    except (TypeError, ValueError, MemoryError) as exc:
        raise _bad(fname, f"cannot build the model: {str(exc)[:300]}") from None
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


def _keras_opt_arrays(opt, params):
    """fastnn's optimizer state as Keras's variable list, or None when the layout is not known."""
    groups = _slot_groups(opt)
    if groups is None:
        return None
    # Before the first update the state is what a fresh optimizer makes (Keras builds it at
    # compile time and expects it in the file).
    state = opt.slots_for(params)
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
    params = model._params
    if groups is None:
        warnings.warn(f"{fname}: the {type(opt).__name__} state is not restored (fastnn maps Keras's "
                      "state for SGD, Adam, AdamW, Adagrad and RMSprop)", stacklevel=4)
        return
    fresh = opt.fresh_slots(params)
    order = [(w, i) for g in groups for w in range(len(params)) for i in g]
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


def _compile_from(model, cc, fname):
    if not isinstance(cc, dict) or cc.get("loss") is None:
        return
    for key in ("loss_weights", "weighted_metrics"):
        if cc.get(key) is not None:
            raise _bad(fname, f"compile setting {key} is not supported by fastnn")
    metrics = cc.get("metrics") or []
    if not isinstance(metrics, list) or not all(isinstance(m, (str, dict)) for m in metrics):
        raise _bad(fname, f"metrics must be a list of names, got {str(metrics)[:100]}")
    names = []
    for m in metrics:  # a metric object is taken by its name (its settings are not read)
        ref = m if isinstance(m, str) else _object_ref(m, "a metric", fname)
        names.append(ref if isinstance(ref, str) else ref["config"].get("name") or ref["class_name"])
    metrics = names
    optimizer = _optimizer_from(cc.get("optimizer", "rmsprop"), fname)
    model.compile(optimizer=optimizer, loss=_loss_from(cc["loss"], fname), metrics=metrics or None)


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
        model, built = _model_from_config(config, fname)
        weights = _read_member(zf, "model.weights.h5", MAX_WEIGHTS_BYTES, fname)
    with _H5Errors(fname), _open_h5(weights, fname) as h5:
        arrays = _read_weights(h5, built, fname)
    _add_layers(model, built, fname)
    _assign(built, arrays, fname)
    if compile:
        with _H5Errors(fname), _open_h5(weights, fname) as h5:
            try:
                _compile_from(model, config.get("compile_config"), fname)
            except ModelFileError:
                raise
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
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
    for layer in model.layers:
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
    if layer.weights or cls == "Flatten":
        entry["build_config"] = {"input_shape": [None, *in_shape]}
    return entry


def _model_config(model, include_compile=True):
    """config.json's object for ``model`` (fastnn to Keras); the one place a functional model's
    description would be added."""
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


def _compile_config(model):
    from . import optimizers, schedules
    opt = optimizers.serialize(model.optimizer)
    opt_config = dict(opt["config"], name=opt["class_name"].lower())
    lr = model.optimizer.learning_rate_schedule
    if lr is not None:
        opt_config["learning_rate"] = _keras_object("keras.optimizers.schedules", schedules.serialize(lr))
    loss_config = dict(model.loss.get_config())
    metrics = [m for m in model._metric_ids if isinstance(m, str)]
    if len(metrics) != len(model._metric_ids):
        raise ValueError("metric objects cannot be written to a .keras file yet; compile with metric "
                         "names, or save to a .fnn file")
    return {"optimizer": _keras_object("keras.optimizers", {"class_name": opt["class_name"],
                                                            "config": opt_config}),
            "loss": _keras_object("keras.losses", {"class_name": type(model.loss).__name__,
                                                   "config": loss_config}),
            "loss_weights": None, "metrics": metrics or None, "weighted_metrics": None,
            "run_eagerly": False, "steps_per_execution": 1, "jit_compile": True}


def _h5_bytes(model, include_optimizer):
    """model.weights.h5 as bytes, in Keras's layout."""
    h5py = _h5py()
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        h5.create_group("layers")
        classes = [type(l).__name__ for l in model.layers]
        for layer, path in zip(model.layers, _layer_paths(classes)):
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
            arrays = _keras_opt_arrays(opt, model._params)
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
    for layer in model.layers:
        if type(layer).__name__ not in LAYERS:
            raise ValueError(f"layer {layer.name} ({type(layer).__name__}) has no Keras weights layout")
    _atomic_write(path, [_h5_bytes(model, include_optimizer=True)])
