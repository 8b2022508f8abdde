"""Model files: one file holding a JSON description and raw arrays, versioned, checksummed and
written atomically. No pickle: loading parses JSON and copies bytes into float arrays, so a file
can never run code.

Layout (all integers little-endian)::

    b"FASTNN\\x00M"              8 bytes  magic
    format_version               u32      FORMAT_VERSION
    header_length                u64      bytes of the JSON header
    header                       JSON     kind ("model" / "weights"), model config, dtype, compile
                                          config, and for every array its name, dtype, shape,
                                          offset and length in the payload
    payload                      bytes    the arrays, C order, one after another
    sha256                       32 bytes of everything above: any truncation or flipped bit fails

``save_model`` writes to a temporary file in the target's directory, fsyncs it and renames it over
the target (``os.replace`` is atomic), so a crash mid-save leaves the previous file intact.
Loading checks the whole file before building anything, and ``load_weights`` checks every array
against the model before changing any, so a bad file leaves the model untouched.
"""
import hashlib
import json
import math
import os
import struct
import tempfile
import warnings

import numpy as np

MAGIC = b"FASTNN\x00M"
FORMAT_VERSION = 1
_DIGEST = 32                                   # sha256 bytes at the end of the file
_PREFIX = struct.Struct("<8sIQ")               # magic, format_version, header_length
_DTYPES = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8")}
MAX_HEADER_BYTES = 64 << 20                    # a header longer than this is not a model file


class ModelFileError(ValueError):
    """A file that is not a valid fastnn model file (truncated, corrupted, wrong version, or not
    matching the model it is loaded into)."""


# -- writing ----------------------------------------------------------------------------------

def _array_entries(arrays, prefix):
    """Header entries and the byte chunks for ``arrays``, laid out from offset 0."""
    entries, chunks, offset = [], [], 0
    for i, a in enumerate(arrays):
        a = np.ascontiguousarray(a)
        if a.dtype.name not in _DTYPES:
            raise TypeError(f"{prefix} array {i} has dtype {a.dtype}; only float32 and float64 are saved")
        data = a.astype(_DTYPES[a.dtype.name], copy=False).tobytes()
        entries.append({"name": f"{prefix}/{i}", "dtype": a.dtype.name, "shape": list(a.shape),
                        "offset": offset, "length": len(data)})
        chunks.append(data)
        offset += len(data)
    return entries, chunks


def _encode(header, chunks):
    header_bytes = json.dumps(header, sort_keys=True, allow_nan=False).encode("utf-8")
    body = [_PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_bytes)), header_bytes, *chunks]
    digest = hashlib.sha256()
    for part in body:
        digest.update(part)
    return body + [digest.digest()]


def _atomic_write(path, parts):
    """Write ``parts`` to ``path`` via a temporary file in the same directory, fsync, rename."""
    path = os.fsdecode(os.fspath(path))
    directory = os.path.dirname(os.path.abspath(path))
    try:  # an overwritten file keeps its permissions; a new one gets those the umask gives
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        mode = None
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        if mode is None:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            for part in parts:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (POSIX); not possible on every platform
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _compile_config(model):
    if model.loss is None:
        return None
    loss_config = dict(model.loss.get_config())  # name and reduction included: the loss as it was
    metrics = [c for c in map(_metric_config, model._metric_ids) if c is not None]
    config = {"loss": {"class_name": type(model.loss).__name__, "config": loss_config},
              "metrics": metrics}
    per_output = getattr(model, "_losses", None)
    if per_output and len(per_output) > 1:
        config["per_output"] = {
            "losses": [{"class_name": type(l).__name__,
                        "config": {k: v for k, v in l.get_config().items() if k != "name"}} for l in per_output],
            "loss_weights": list(model._loss_weights),
            "metrics": [[c for c in map(_metric_config, ms) if c is not None] for ms in model._metric_spec]}
    return config


def _keras_extension(path, weights):
    """Which file a path asks for: "keras" (``.keras`` / ``.weights.h5``: Keras 3's formats,
    ``fastnn.keras_format``) or "fastnn" (any other name); a fastnn file is never written under a
    Keras extension, so ``.h5``/``.hdf5`` names that are not Keras 3's are refused."""
    from . import keras_format
    lower = os.fsdecode(os.fspath(path)).lower()
    if keras_format.is_keras_weights_path(lower):
        if not weights:
            raise ValueError(f"{os.fspath(path)!r}: .weights.h5 files hold weights only; use "
                             "model.save_weights, or save the model to a .keras (Keras) or .fnn file")
        return "keras"
    if lower.endswith(".keras"):
        if weights:
            raise ValueError(f"{os.fspath(path)!r}: a .keras file holds a whole model; use model.save, "
                             "or save_weights to a .weights.h5 (Keras) or .fnn file")
        return "keras"
    if lower.endswith((".h5", ".hdf5")):
        raise ValueError(f"{os.fspath(path)!r}: Keras's legacy HDF5 format is not written; use a .keras "
                         "or .weights.h5 name (Keras 3's formats) or .fnn (fastnn's own)")
    return "fastnn"


def _keras_kind(path):
    """"keras"/"h5" when ``path`` holds a Keras file (zip / HDF5), else None."""
    from . import keras_format
    try:
        return keras_format.sniff(path)
    except OSError:
        return None


def _metric_config(metric):
    """A name stays a name; a metric object becomes its class and constructor arguments. A metric
    that cannot be described (a user's class or function) is left out with a warning naming it."""
    from . import metrics
    if isinstance(metric, str):
        return metric
    cls = type(metric)
    try:
        if getattr(metrics, cls.__name__, None) is not cls:
            raise TypeError("not a fastnn.metrics class")
        config = metric.get_config()
        json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as exc:
        warnings.warn(f"metric {metric!r} is not saved ({exc}); compile the loaded model with it "
                      "again", UserWarning, stacklevel=4)
        return None
    return {"class_name": cls.__name__, "config": config}


def _metric_from_config(entry, name):
    from . import metrics
    if isinstance(entry, str):
        return entry
    if not (isinstance(entry, dict) and isinstance(entry.get("class_name"), str)
            and isinstance(entry.get("config"), dict)):
        raise ModelFileError(f"{name}: malformed metric entry {str(entry)[:100]}")
    cls = getattr(metrics, entry["class_name"], None)
    if not (isinstance(cls, type) and issubclass(cls, metrics.Metric)) or cls in (
            metrics.Metric, metrics.MeanMetricWrapper) or entry["class_name"].startswith("_"):
        raise ModelFileError(f"{name}: unknown metric {entry['class_name']!r}")
    return cls.from_config(entry["config"])


def save_model(model, path, include_optimizer=True):
    """Write ``model`` (architecture, compile settings, weights, optionally the optimizer state)
    to the single file ``path``, atomically; a ``.keras`` name writes Keras 3's format."""
    from . import optimizers
    if _keras_extension(path, weights=False) == "keras":
        from . import keras_format
        return keras_format.save_model(model, path, include_optimizer=include_optimizer)
    config = model.get_config()
    stored = _stored_layers(model, config)
    arrays = [w for layer in stored for w in layer.weights]
    header = {"kind": "model", "model_config": config,
              "dtype": None if model._dtype is None else model._dtype.name,
              "compile_config": _compile_config(model), "optimizer": None,
              "layer_states": [layer.get_state() for layer in stored]}
    entries, chunks = _array_entries(arrays, "weights")
    if model.optimizer is not None:
        header["optimizer"] = {"config": optimizers.serialize(model.optimizer), "iterations": None}
        if include_optimizer and model.optimizer.has_state:
            iterations, variables = model.optimizer.get_state()
            variables = _to_file_order(variables, _param_order(model, stored))
            opt_entries, opt_chunks = _array_entries(variables, "optimizer")
            shift = sum(len(c) for c in chunks)
            for e in opt_entries:
                e["offset"] += shift
            entries += opt_entries
            chunks += opt_chunks
            header["optimizer"]["iterations"] = iterations
    header["arrays"] = entries
    _atomic_write(path, _encode(header, chunks))


def save_weights(model, path):
    """Write only the weight arrays of ``model`` (and its config, to check against on loading);
    a ``.weights.h5`` name writes Keras's weights file."""
    if _keras_extension(path, weights=True) == "keras":
        from . import keras_format
        return keras_format.save_weights(model, path)
    config = model.get_config()
    entries, chunks = _array_entries([w for layer in _stored_layers(model, config)
                                      for w in layer.weights], "weights")
    header = {"kind": "weights", "model_config": config, "arrays": entries}
    _atomic_write(path, _encode(header, chunks))


# -- reading ----------------------------------------------------------------------------------

def read_file(path):
    """(header dict, {array name: new array}) after checking magic, version, checksum and layout;
    ModelFileError naming the problem otherwise."""
    path = os.fsdecode(os.fspath(path))
    name = os.path.basename(path)
    with open(path, "rb") as f:
        # The magic and the declared header length come first: a file that is not a fastnn file
        # (or claims a header longer than itself) is refused before the rest is read.
        data = f.read(_PREFIX.size)
        if len(data) == _PREFIX.size:
            magic, _, header_length = _PREFIX.unpack_from(data)
            if magic != MAGIC:
                raise ModelFileError(f"{name} is not a fastnn model file (starts with {data[:8]!r}, "
                                     f"expected {MAGIC!r})")
            try:
                size = os.fstat(f.fileno()).st_size
            except OSError:
                size = None
            if size is not None and header_length > size:
                raise ModelFileError(f"{name} is truncated or corrupted: its header claims {header_length} "
                                     f"bytes, the file has {size}")
            if header_length > MAX_HEADER_BYTES:
                raise ModelFileError(f"{name} declares a {header_length}-byte header, more than the "
                                     f"{MAX_HEADER_BYTES} bytes a fastnn header may have")
            data += f.read()
    if len(data) < _PREFIX.size + _DIGEST:
        if not MAGIC.startswith(data[:len(MAGIC)]) or not data:
            raise ModelFileError(f"{name} is not a fastnn model file ({len(data)} bytes, no fastnn header)")
        raise ModelFileError(f"{name} is truncated: {len(data)} bytes, shorter than any fastnn model file")
    magic, version, header_length = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise ModelFileError(f"{name} is not a fastnn model file (starts with {data[:8]!r}, expected {MAGIC!r})")
    if hashlib.sha256(data[:-_DIGEST]).digest() != data[-_DIGEST:]:
        raise ModelFileError(f"{name} is corrupted or truncated: its sha256 checksum does not match "
                             f"its contents ({len(data)} bytes)")
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{name} has file format version {version}; this fastnn reads version "
                             f"{FORMAT_VERSION}")
    start = _PREFIX.size
    payload = memoryview(data)[start + header_length:len(data) - _DIGEST]
    try:
        header = json.loads(data[start:start + header_length].decode("utf-8"))
        if not isinstance(header, dict) or not isinstance(header.get("arrays"), list):
            raise ValueError("the header must be a JSON object with a list of arrays")
        if header.get("dtype") is not None and header["dtype"] not in _DTYPES:
            raise ValueError(f"the model dtype must be float32 or float64, got {header['dtype']!r}")
        arrays = {}
        for e in header["arrays"]:
            if not isinstance(e, dict) or e.get("dtype") not in _DTYPES:
                raise ValueError(f"array entries need a float32 or float64 dtype, got {e!r:.200}")
            dtype = _DTYPES[e["dtype"]]
            shape = tuple(int(s) for s in e["shape"])
            offset, length = int(e["offset"]), int(e["length"])
            if min(shape, default=0) < 0 or offset < 0 or length < 0 or offset + length > len(payload) \
                    or length != math.prod(shape) * dtype.itemsize:
                raise ValueError(f"array {e['name']} does not fit the payload")
            arrays[e["name"]] = np.frombuffer(payload[offset:offset + length], dtype=dtype).reshape(
                shape).astype(dtype.newbyteorder("="), copy=True)
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{name} has a malformed header: {str(exc)[:300]}") from None
    return header, arrays


def _stored_layers(model, config=None):
    """The layers in the order a .fnn file stores their weights and states: the order of the
    configuration's layer list. For a Sequential that is ``model.layers``; for a functional model
    it is the graph's creation order (inputs, then each layer at its first call), which files
    written before ``model.layers`` took Keras's order also used, so they still load."""
    config = model.get_config() if config is None else config
    if not isinstance(config, dict) or "output_layers" not in config:
        return model.layers
    return [model.get_layer(entry["name"]) for entry in config["layers"]]


def _param_order(model, stored):
    """For each trainable weight in file order, its index in ``model.trainable_weights``."""
    position = {id(p): j for j, p in enumerate(model.trainable_weights)}
    return [position[id(w)] for layer in stored for w in layer.trainable_weights]


def _to_file_order(variables, order):
    """The optimizer's state (k arrays per trainable weight, in the model's weight order) with
    the weights' groups in file order."""
    if not order or not variables or len(variables) % len(order):
        return list(variables)
    k = len(variables) // len(order)
    return [variables[j * k + s] for j in order for s in range(k)]


def _from_file_order(variables, order):
    """The inverse of :func:`_to_file_order`."""
    if not order or not variables or len(variables) % len(order):
        return list(variables)
    k = len(variables) // len(order)
    out = [None] * len(variables)
    for i, j in enumerate(order):
        out[j * k:(j + 1) * k] = variables[i * k:(i + 1) * k]
    return out


def _file_layers(model, header):
    """:func:`_stored_layers` of the file's configuration when it names the model's layers (a
    functional model), else of the model's own."""
    config = header.get("model_config")
    if isinstance(config, dict) and "output_layers" in config and isinstance(config.get("layers"), list):
        names = {l.name for l in model.layers}
        if all(isinstance(e, dict) and e.get("name") in names for e in config["layers"]) and \
                len(config["layers"]) == len(model.layers):
            return _stored_layers(model, config)
    return _stored_layers(model)


def _current_weights(model, header):
    """The model's weight arrays in the file's order (see :func:`_stored_layers`)."""
    return [w for layer in _file_layers(model, header) for w in layer.weights]


def _weights_from(header, arrays, name, model):
    """The file's weight arrays, checked against the model's weights in file order (count, shape)."""
    weights = [arrays[e["name"]] for e in header["arrays"] if e["name"].startswith("weights/")]
    current = _current_weights(model, header)
    if len(weights) != len(current):
        raise ModelFileError(f"{name} holds {len(weights)} weight arrays, the model {model.name} has "
                             f"{len(current)}")
    for i, (cur, new) in enumerate(zip(current, weights)):
        if cur.shape != new.shape:
            raise ModelFileError(f"{name}: weight {i} has shape {new.shape}, the model expects {cur.shape}")
    return weights


def load_weights(model, path):
    """Load weights saved by ``save_weights`` or ``save`` into ``model`` (built, same layer shapes);
    checks the whole file and every shape before changing any weight."""
    name = os.path.basename(os.fspath(path))
    if _keras_kind(path) is not None:
        from . import keras_format
        if _keras_kind(path) == "keras":
            raise ModelFileError(f"{name} is a whole Keras model (.keras); load it with load_model")
        return keras_format.load_weights(model, path)
    header, arrays = read_file(path)
    if not model.built:
        raise ModelFileError(f"{model.name} is not built; build it (or fit/predict once) before "
                             f"loading weights from {name}")
    weights = _weights_from(header, arrays, name, model)
    for cur, new in zip(_current_weights(model, header), weights):
        cur[...] = new


def load_model(path, compile=True):
    """The model saved in ``path``: same architecture and weights (identical predictions) and, when
    the file holds it, the optimizer with its state (identical continued training)."""
    from . import losses, optimizers
    from .layers import get as layer_from_config
    from .layers import weight_budget
    from .models import Sequential
    name = os.path.basename(os.fspath(path))
    kind = _keras_kind(path)
    if kind is not None:
        from . import keras_format
        if kind == "h5":
            raise ModelFileError(f"{name} is an HDF5 file: Keras weights (.weights.h5) go into a built "
                                 "model with model.load_weights; legacy Keras .h5 models are not read")
        return keras_format.load_model(path, compile=compile)
    header, arrays = read_file(path)
    if header.get("kind") != "model":
        raise ModelFileError(f"{name} holds only weights (save_weights); build the model and call "
                             "model.load_weights, or save it with model.save")
    # Building allocates the weights (and their gradients): a configuration whose weights are
    # larger than the file's is refused before they are allocated.
    budget = sum(arrays[e["name"]].size for e in header["arrays"] if e["name"].startswith("weights/"))
    try:
        config = header["model_config"]
        with weight_budget(budget):  # layers bigger than the file's weights are refused unbuilt
            if "output_layers" in config:  # a functional model (fastnn.functional)
                from .functional import Functional
                from . import backend
                before = backend.floatx()
                try:  # the layers are built as the graph is rebuilt: in the file's dtype
                    if header.get("dtype") is not None:
                        backend.set_floatx(header["dtype"])
                    model = Functional.from_config(config)
                finally:
                    backend.set_floatx(before)
            else:
                model = Sequential(name=config.get("name"))
                if header.get("dtype") is not None:
                    model._dtype = np.dtype(header["dtype"])
                for layer_config in config["layers"]:
                    model.add(layer_from_config(layer_config))
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise ModelFileError(f"{name}: cannot rebuild the model from its configuration: {exc}") from None
    weights = _weights_from(header, arrays, name, model)
    for cur, new in zip(_current_weights(model, header), weights):
        cur[...] = new
    stored = _file_layers(model, header)
    states = header.get("layer_states") or [{}] * len(stored)
    try:
        if len(states) != len(stored):
            raise ValueError(f"{len(states)} layer states for {len(stored)} layers")
        for layer, state in zip(stored, states):
            layer.set_state(state)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(f"{name}: layer state does not match the model: {exc}") from None
    try:
        compile_config = header.get("compile_config")
        if compile and compile_config is not None:
            loss_cls = getattr(losses, compile_config["loss"]["class_name"], None)
            if not (isinstance(loss_cls, type) and issubclass(loss_cls, losses.Loss)) or loss_cls is losses.Loss:
                raise ModelFileError(f"{name}: unknown loss {compile_config['loss']['class_name']!r}")
            opt = header.get("optimizer")
            optimizer = optimizers.deserialize(opt["config"]) if opt else "adam"
            if "per_output" in compile_config:  # a functional model with several outputs
                per = compile_config["per_output"]
                made = []
                for entry in per["losses"]:
                    cls = getattr(losses, entry["class_name"], None)
                    if not (isinstance(cls, type) and issubclass(cls, losses.Loss)) or cls is losses.Loss:
                        raise ModelFileError(f"{name}: unknown loss {entry['class_name']!r}")
                    made.append(cls(**entry["config"]))
                model.compile(optimizer=optimizer, loss=made, loss_weights=per["loss_weights"],
                              metrics=[[_metric_from_config(m, name) for m in ms]
                                       for ms in per["metrics"]])
            else:
                model.compile(optimizer=optimizer, loss=loss_cls(**compile_config["loss"]["config"]),
                              metrics=[_metric_from_config(m, name)
                                       for m in compile_config.get("metrics") or []] or None)
            if opt and opt.get("iterations") is not None:
                variables = [arrays[e["name"]] for e in header["arrays"] if e["name"].startswith("optimizer/")]
                variables = _from_file_order(variables, _param_order(model, stored))
                try:
                    model.optimizer.set_state(model.trainable_weights, opt["iterations"], variables)
                except ValueError as exc:
                    raise ModelFileError(f"{name}: optimizer state does not match the model: {exc}") from None
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(f"{name}: cannot restore the compile settings: {str(exc)[:300]}") from None
    return model
