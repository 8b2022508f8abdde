"""Small datasets for fastnn lessons, examples and tests.

Three families of data live here:

* **Logic gates** (:func:`logic_gate`): the four-row truth tables used by the
  perceptron and XOR lessons.
* **Generated 2-D toy sets** (:func:`make_spiral`, :func:`make_moons`,
  :func:`make_circles`, :func:`make_blobs`): deterministic for a given
  ``seed`` and returned as ``(x float32 (n, 2), y int64 (n,))``.  Samples are
  ordered by class; shuffle them (the model's ``fit`` does) before training.
* **MNIST** (:func:`load_idx`, :func:`load_mnist`): a reader for the IDX file
  format and a loader for lessons that returns float32 pixels already scaled to
  [0, 1] (do not divide them by 255 again).
* **Keras's loaders** (``mnist.load_data()``, ``fashion_mnist.load_data()``):
  what ``keras.datasets`` returns -- uint8 pixels in 0..255 -- read from the
  Keras cache directory; they never download.

MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges and is
released under the Creative Commons Attribution-Share Alike 3.0 license
(CC BY-SA 3.0).

Only NumPy and the standard library are used.
"""

from __future__ import annotations

import gzip
import math
import numbers
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "LOGIC_GATES",
    "logic_gate",
    "make_spiral",
    "make_moons",
    "make_circles",
    "make_blobs",
    "load_idx",
    "load_mnist",
    "MNIST_FILES",
    "mnist",
    "fashion_mnist",
]

# ---------------------------------------------------------------------------
# Argument validation helpers
# ---------------------------------------------------------------------------


def _check_int(name: str, value, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise ValueError naming expected vs received."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"{name} must be an integer >= {minimum}, got {value!r} "
            f"({type(value).__name__})"
        )
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def _check_nonneg(name: str, value) -> float:
    """Return ``value`` as a float, or raise ValueError unless it is finite and >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"{name} must be a real number >= 0, got {value!r} ({type(value).__name__})"
        )
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite real number >= 0, got {value}")
    return value


def _split_counts(n_samples: int, n_classes: int) -> list[int]:
    """Split ``n_samples`` as evenly as possible; the first ``n % k`` classes get one extra."""
    base, extra = divmod(n_samples, n_classes)
    return [base + (1 if k < extra else 0) for k in range(n_classes)]


def _labels(counts: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


# ---------------------------------------------------------------------------
# Logic gates
# ---------------------------------------------------------------------------

#: Names accepted by :func:`logic_gate`.
LOGIC_GATES: tuple[str, ...] = ("and", "or", "nand", "xor")

_GATE_OUTPUTS = {
    "and": (0, 0, 0, 1),
    "or": (0, 1, 1, 1),
    "nand": (1, 1, 1, 0),
    "xor": (0, 1, 1, 0),
}


def logic_gate(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the truth table of a two-input logic gate.

    Parameters
    ----------
    name:
        One of :data:`LOGIC_GATES` (``"and"``, ``"or"``, ``"nand"``, ``"xor"``),
        case-insensitive.

    Returns
    -------
    (x, y):
        ``x`` is float32 of shape (4, 2) with rows ``[0,0], [0,1], [1,0], [1,1]``;
        ``y`` is float32 of shape (4, 1) holding the gate's 0/1 output for each row.
        Fresh arrays are returned on every call.

    Raises
    ------
    ValueError
        If ``name`` is not one of the valid gate names.
    """
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in _GATE_OUTPUTS:
        raise ValueError(
            f"unknown logic gate {name!r}; expected one of {', '.join(LOGIC_GATES)} "
            "(case-insensitive)"
        )
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array(_GATE_OUTPUTS[key], dtype=np.float32).reshape(4, 1)
    return x, y


# ---------------------------------------------------------------------------
# Generated 2-D toy sets
# ---------------------------------------------------------------------------


def make_spiral(
    n_per_class: int = 100, n_classes: int = 3, noise: float = 0.2, seed=0
) -> tuple[np.ndarray, np.ndarray]:
    """Generate the classic interleaved-arms spiral.

    Class ``k`` is one arm: its points have radius evenly spaced in [0, 1] and
    angle ``2*pi*k/n_classes + 4*r`` plus Gaussian angle noise of standard
    deviation ``noise`` (radians).  With the default noise the arms are not
    linearly separable, which is the point of the exercise.

    Parameters
    ----------
    n_per_class: points per arm (integer >= 1).
    n_classes: number of arms / classes (integer >= 1).
    noise: standard deviation of the angle noise (>= 0).
    seed: seed for ``np.random.default_rng``; equal seeds give equal data.

    Returns
    -------
    (x, y):
        ``x`` float32 of shape (n_per_class * n_classes, 2) with every point
        inside the unit disc; ``y`` int64 of shape (n_per_class * n_classes,)
        with exactly ``n_per_class`` samples of each label 0 .. n_classes-1,
        ordered by class.
    """
    n_per_class = _check_int("n_per_class", n_per_class)
    n_classes = _check_int("n_classes", n_classes)
    noise = _check_nonneg("noise", noise)
    rng = np.random.default_rng(seed)

    radius = np.linspace(0.0, 1.0, n_per_class)
    xs = []
    for k in range(n_classes):
        angle = (
            2.0 * np.pi * k / n_classes
            + 4.0 * radius
            + noise * rng.standard_normal(n_per_class)
        )
        xs.append(np.column_stack((radius * np.cos(angle), radius * np.sin(angle))))
    x = np.concatenate(xs).astype(np.float32)
    y = _labels([n_per_class] * n_classes)
    return x, y


def make_moons(
    n_samples: int = 200, noise: float = 0.1, seed=0
) -> tuple[np.ndarray, np.ndarray]:
    """Generate two interleaving half circles ("moons").

    Label 0 is the upper half of the unit circle centred at (0, 0); label 1 is
    the lower half circle centred at (1, 0.5), so each moon's tip reaches into
    the other's hollow.  Angles are uniform along each arc and Gaussian noise
    of standard deviation ``noise`` is added to both coordinates.

    Parameters
    ----------
    n_samples: total number of points (integer >= 2).
    noise: standard deviation of the coordinate noise (>= 0).
    seed: seed for ``np.random.default_rng``; equal seeds give equal data.

    Returns
    -------
    (x, y):
        ``x`` float32 of shape (n_samples, 2); ``y`` int64 of shape (n_samples,)
        with ``ceil(n_samples/2)`` zeros followed by ``floor(n_samples/2)`` ones.
    """
    n_samples = _check_int("n_samples", n_samples, minimum=2)
    noise = _check_nonneg("noise", noise)
    rng = np.random.default_rng(seed)

    n0, n1 = _split_counts(n_samples, 2)
    t0 = rng.uniform(0.0, np.pi, n0)
    t1 = rng.uniform(0.0, np.pi, n1)
    upper = np.column_stack((np.cos(t0), np.sin(t0)))
    lower = np.column_stack((1.0 - np.cos(t1), 0.5 - np.sin(t1)))
    x = np.concatenate((upper, lower))
    x = x + noise * rng.standard_normal(x.shape)
    return x.astype(np.float32), _labels([n0, n1])


def make_circles(
    n_samples: int = 200, noise: float = 0.05, factor: float = 0.5, seed=0
) -> tuple[np.ndarray, np.ndarray]:
    """Generate a small circle inside a larger one.

    Label 0 lies on the unit circle, label 1 on a concentric circle of radius
    ``factor``.  Angles are uniform and Gaussian noise of standard deviation
    ``noise`` is added to both coordinates.

    Parameters
    ----------
    n_samples: total number of points (integer >= 2).
    noise: standard deviation of the coordinate noise (>= 0).
    factor: inner radius relative to the outer one, strictly between 0 and 1.
    seed: seed for ``np.random.default_rng``; equal seeds give equal data.

    Returns
    -------
    (x, y):
        ``x`` float32 of shape (n_samples, 2); ``y`` int64 of shape (n_samples,)
        with ``ceil(n_samples/2)`` zeros (outer) followed by
        ``floor(n_samples/2)`` ones (inner).
    """
    n_samples = _check_int("n_samples", n_samples, minimum=2)
    noise = _check_nonneg("noise", noise)
    if (
        isinstance(factor, (bool, np.bool_))
        or not isinstance(factor, numbers.Real)
        or not 0.0 < float(factor) < 1.0
    ):
        raise ValueError(f"factor must be a real number with 0 < factor < 1, got {factor!r}")
    factor = float(factor)
    rng = np.random.default_rng(seed)

    n_outer, n_inner = _split_counts(n_samples, 2)
    t_outer = rng.uniform(0.0, 2.0 * np.pi, n_outer)
    t_inner = rng.uniform(0.0, 2.0 * np.pi, n_inner)
    outer = np.column_stack((np.cos(t_outer), np.sin(t_outer)))
    inner = factor * np.column_stack((np.cos(t_inner), np.sin(t_inner)))
    x = np.concatenate((outer, inner))
    x = x + noise * rng.standard_normal(x.shape)
    return x.astype(np.float32), _labels([n_outer, n_inner])


def _blob_centres(n_classes: int) -> np.ndarray:
    """Fixed, well-separated centres on a circle: neighbours are at least 6 apart."""
    if n_classes == 1:
        return np.zeros((1, 2))
    radius = max(4.0, 3.0 / math.sin(math.pi / n_classes))
    angle = 2.0 * np.pi * np.arange(n_classes) / n_classes + np.pi / 2
    return radius * np.column_stack((np.cos(angle), np.sin(angle)))


def make_blobs(
    n_samples: int = 300, n_classes: int = 3, std: float = 0.5, seed=0
) -> tuple[np.ndarray, np.ndarray]:
    """Generate isotropic Gaussian blobs, one per class.

    The centres are fixed (independent of ``seed``): they are spread evenly on
    a circle whose radius is chosen so that neighbouring centres are at least
    6 units apart (the first centre is straight up at (0, radius); a single
    class is centred at the origin).  With the default ``std=0.5`` the classes
    are therefore linearly separable with a wide margin.

    Parameters
    ----------
    n_samples: total number of points (integer >= n_classes).
    n_classes: number of blobs / classes (integer >= 1).
    std: standard deviation of each blob along each axis (>= 0).
    seed: seed for ``np.random.default_rng``; equal seeds give equal data.

    Returns
    -------
    (x, y):
        ``x`` float32 of shape (n_samples, 2); ``y`` int64 of shape (n_samples,),
        ordered by class.  Every class gets ``n_samples // n_classes`` samples and
        the first ``n_samples % n_classes`` classes get one more.
    """
    n_classes = _check_int("n_classes", n_classes)
    n_samples = _check_int("n_samples", n_samples, minimum=n_classes)
    std = _check_nonneg("std", std)
    rng = np.random.default_rng(seed)

    counts = _split_counts(n_samples, n_classes)
    y = _labels(counts)
    centres = _blob_centres(n_classes)
    x = centres[y] + std * rng.standard_normal((n_samples, 2))
    return x.astype(np.float32), y


# ---------------------------------------------------------------------------
# IDX files and MNIST
# ---------------------------------------------------------------------------

# IDX type code -> big-endian dtype of the stored data.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_TYPE_NAMES = {
    0x08: "uint8",
    0x09: "int8",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_maybe_gzipped(path: Path) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read()
    if path.name.endswith(".gz") or raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(
                f"{path}: expected a valid gzip stream, but decompression failed ({exc})"
            ) from exc
    return raw


def load_idx(path) -> np.ndarray:
    """Read one IDX file (the format MNIST is distributed in) into an ndarray.

    The file may be plain or gzip-compressed; it is decompressed when its name
    ends in ``.gz`` or its first two bytes are the gzip magic ``1f 8b``.

    The IDX header is two zero bytes, a type code, the number of dimensions
    ``ndim``, then ``ndim`` big-endian uint32 sizes; the big-endian data
    follow.  Supported type codes: 0x08 uint8, 0x09 int8, 0x0B int16,
    0x0C int32, 0x0D float32, 0x0E float64.

    Returns
    -------
    numpy.ndarray
        A new array of the declared shape, with the declared element type in
        native byte order (e.g. ``uint8`` for MNIST images of shape
        (N, 28, 28) and labels of shape (N,)).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not valid IDX: bad magic, unknown type code, a corrupt
        gzip stream, or a data size that does not match the declared shape
        (truncated file or trailing bytes).  The message names the file, what
        was expected and what was found.  A partially filled array is never
        returned.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    data = _read_maybe_gzipped(path)

    if len(data) < 4:
        raise ValueError(
            f"{path}: expected at least a 4-byte IDX magic number, found only "
            f"{len(data)} byte(s)"
        )
    zero0, zero1, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise ValueError(
            f"{path}: bad IDX magic number: expected the first two bytes to be 00 00, "
            f"found {data[:4].hex(' ')} (is this really an IDX file?)"
        )
    if type_code not in _IDX_DTYPES:
        valid = ", ".join(f"0x{c:02X} {n}" for c, n in _IDX_TYPE_NAMES.items())
        raise ValueError(
            f"{path}: unknown IDX type code 0x{type_code:02X}; expected one of {valid}"
        )
    if ndim == 0:
        raise ValueError(f"{path}: expected an IDX file with ndim >= 1, found ndim 0")

    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(
            f"{path}: truncated IDX header: expected {header_len} bytes for {ndim} "
            f"dimension sizes, found {len(data)} bytes"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = _IDX_DTYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header_len
    if found != expected:
        what = "truncated" if found < expected else "trailing data after the array"
        raise ValueError(
            f"{path}: IDX size mismatch ({what}): shape {shape} of "
            f"{_IDX_TYPE_NAMES[type_code]} needs {expected} data bytes, found {found}"
        )
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header_len)
    # astype to native byte order always copies, giving a writable, owned array.
    return array.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


#: Standard MNIST file names (without the optional ``.gz`` suffix).
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _find(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / (name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _load_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = load_idx(images_path)
    labels = load_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"{images_path}: expected MNIST images of shape (N, 28, 28), found {images.shape}"
        )
    if images.dtype != np.uint8:
        raise ValueError(
            f"{images_path}: expected uint8 (IDX type 0x08) MNIST images, found {images.dtype}"
        )
    if labels.ndim != 1:
        raise ValueError(
            f"{labels_path}: expected MNIST labels of shape (N,), found {labels.shape}"
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"image/label count mismatch: {images_path} has {images.shape[0]} images "
            f"but {labels_path} has {labels.shape[0]} labels"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(
            f"{labels_path}: expected labels in 0..9, found values in "
            f"{labels.min()}..{labels.max()}"
        )
    return images, labels.astype(np.int64)


def load_mnist(path, normalize: bool = True, test_size: int = 2000):
    """Load MNIST from a directory of IDX files, Keras-style.

    Files are looked up under their standard names, each either plain or with
    a ``.gz`` suffix (plain wins if both exist): ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte``.

    * If both train files exist they are the training set and the t10k files
      are the test set; ``test_size`` is then ignored (but must still be an
      integer >= 1).
    * If **only** the t10k files exist (the project's shared data holds only
      the 10,000-image MNIST test set), the project convention applies: the
      first ``len - test_size`` images form the training split and the last
      ``test_size`` images the test split.  With the shared data and the
      default ``test_size=2000`` that is 8,000 / 2,000.

    Parameters
    ----------
    path: directory containing the files.
    normalize: if True, pixels are float32 scaled to [0, 1] (divided by 255);
        if False they are the raw uint8 values.
    test_size: size of the held-out split in the t10k-only case,
        1 <= test_size <= N - 1.

    Returns
    -------
    ((x_train, y_train), (x_test, y_test)):
        ``x_*`` of shape (N, 28, 28), float32 in [0, 1] or uint8;
        ``y_*`` int64 of shape (N,) with digit labels 0..9.

    Raises
    ------
    FileNotFoundError
        If the directory does not exist, if no t10k files are found (the
        message lists the names looked for), or if only one of the two train
        files is present.
    ValueError
        On invalid IDX contents, image/label count mismatch, images not of
        shape (N, 28, 28) or not uint8, labels outside 0..9, or ``test_size`` out of range.

    MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges,
    released under CC BY-SA 3.0.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory not found: {directory}")
    test_size = _check_int("test_size", test_size)

    found = {key: _find(directory, name) for key, name in MNIST_FILES.items()}

    def looked_for(*keys: str) -> str:
        return ", ".join(f"{MNIST_FILES[k]}[.gz]" for k in keys)

    if found["test_images"] is None or found["test_labels"] is None:
        missing = [k for k in ("test_images", "test_labels") if found[k] is None]
        raise FileNotFoundError(
            f"MNIST test files not found in {directory}: looked for "
            f"{looked_for(*missing)} (each plain or gzipped)"
        )
    has_train_images = found["train_images"] is not None
    has_train_labels = found["train_labels"] is not None
    if has_train_images != has_train_labels:
        missing = "train_labels" if has_train_images else "train_images"
        raise FileNotFoundError(
            f"incomplete MNIST training set in {directory}: found one train file but "
            f"not {looked_for(missing)}"
        )

    x_test, y_test = _load_pair(found["test_images"], found["test_labels"])
    if has_train_images:
        x_train, y_train = _load_pair(found["train_images"], found["train_labels"])
    else:
        n = x_test.shape[0]
        if not 1 <= test_size <= n - 1:
            raise ValueError(
                f"test_size must be between 1 and {n - 1} (the t10k set has {n} images), "
                f"got {test_size}"
            )
        split = n - test_size
        x_train, y_train = x_test[:split].copy(), y_test[:split].copy()
        x_test, y_test = x_test[split:].copy(), y_test[split:].copy()

    if normalize:
        x_train = x_train.astype(np.float32) / np.float32(255.0)
        x_test = x_test.astype(np.float32) / np.float32(255.0)
    return (x_train, y_train), (x_test, y_test)


# ---------------------------------------------------------------------------
# Keras's dataset loaders (keras.datasets.mnist / fashion_mnist)
# ---------------------------------------------------------------------------

KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
FASHION_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded datasets: ``$KERAS_HOME/datasets``, default ``~/.keras/datasets``."""
    import os
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets"


def _keras_mnist_npz(path: Path):
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in _NPZ_KEYS if k not in data.files]
        if missing:
            raise ValueError(f"{path}: expected Keras's mnist.npz with arrays {', '.join(_NPZ_KEYS)}; "
                             f"missing {', '.join(missing)} (found {', '.join(data.files)})")
        arrays = {k: data[k] for k in _NPZ_KEYS}
    for split in ("train", "test"):
        x, y = arrays["x_" + split], arrays["y_" + split]
        if x.ndim != 3 or x.shape[1:] != (28, 28) or x.dtype != np.uint8:
            raise ValueError(f"{path}: x_{split} must be uint8 images of shape (N, 28, 28), got "
                             f"{x.dtype} array of shape {x.shape}")
        if y.shape != (x.shape[0],):
            raise ValueError(f"{path}: y_{split} must hold one label per image, shape ({x.shape[0]},), "
                             f"got {y.shape}")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _keras_idx_dir(directory: Path):
    """Keras's tuple from a directory of the four IDX files; labels uint8 as Keras returns them.
    A directory with only the t10k files gives load_mnist's split of them (8,000 / 2,000)."""
    (x_train, y_train), (x_test, y_test) = load_mnist(directory, normalize=False)
    return (x_train, y_train.astype(np.uint8)), (x_test, y_test.astype(np.uint8))


class _KerasLoader:
    """``load_data()`` of one Keras dataset, reading files the user placed; never downloads."""

    def __init__(self, name: str, default: str, source: str, layout: str):
        self.name, self.default, self.source, self.layout = name, default, source, layout

    def _missing(self, where: Path):
        return FileNotFoundError(
            f"keras.datasets.{self.name}.load_data: {where} not found. fastnn never downloads; "
            f"put {self.layout} there (from {self.source}), or pass path= to the file or to a "
            "directory of the four IDX files (train-images-idx3-ubyte[.gz], "
            "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])")

    def load_data(self, path=None):
        """((x_train, y_train), (x_test, y_test)) as Keras returns them: uint8 images (N, 28, 28)
        with pixels 0..255 and uint8 labels (N,); 60,000 / 10,000 samples for the full set.

        ``path``: a file name in the Keras cache (``$KERAS_HOME/datasets``, default
        ``~/.keras/datasets``), an absolute path to Keras's ``mnist.npz``, or a directory of the
        four IDX files. Divide by 255 before training, as Keras tutorials do."""
        where = keras_cache_dir() / (self.default if path is None else Path(path))
        if where.is_dir():
            if _find(where, MNIST_FILES["test_images"]) is None:
                raise self._missing(where / (MNIST_FILES["test_images"] + ".gz"))
            return _keras_idx_dir(where)
        if not where.is_file():
            raise self._missing(where)
        if where.suffix != ".npz":
            raise ValueError(f"keras.datasets.{self.name}.load_data expects an .npz file or a directory "
                             f"of IDX files, got {where}")
        return _keras_mnist_npz(where)


mnist = _KerasLoader("mnist", "mnist.npz", KERAS_MNIST_URL, "Keras's mnist.npz")
fashion_mnist = _KerasLoader("fashion_mnist", "fashion-mnist", FASHION_MNIST_URL,
                             "the four Fashion-MNIST IDX .gz files (the directory Keras fills)")
