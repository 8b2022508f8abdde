"""Tests for fastnn.datasets: logic gates, toy sets, IDX reader and MNIST loader."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from fastnn import datasets as ds

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

_TYPE_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


def idx_bytes(array: np.ndarray, type_code: int | None = None) -> bytes:
    """Serialise ``array`` as IDX (big-endian), independently of the code under test."""
    array = np.asarray(array)
    code = _TYPE_CODES[array.dtype] if type_code is None else type_code
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool | None = None) -> Path:
    data = idx_bytes(array)
    if gz is None:
        gz = path.name.endswith(".gz")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def fake_mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0] = 0
    images[-1, -1, -1] = 255
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_fake_set(directory: Path, prefix: str, n: int, seed: int = 0, gz: bool = True):
    images, labels = fake_mnist(n, seed)
    suffix = ".gz" if gz else ""
    img_name = f"{prefix}-images-idx3-ubyte{suffix}"
    lbl_name = f"{prefix}-labels-idx1-ubyte{suffix}"
    write_idx(directory / img_name, images)
    write_idx(directory / lbl_name, labels)
    return images, labels


# ---------------------------------------------------------------------------
# Logic gates
# ---------------------------------------------------------------------------

GATE_TABLES = {
    "and": [0, 0, 0, 1],
    "or": [0, 1, 1, 1],
    "nand": [1, 1, 1, 0],
    "xor": [0, 1, 1, 0],
}


def test_logic_gates_constant():
    assert ds.LOGIC_GATES == ("and", "or", "nand", "xor")


@pytest.mark.parametrize("name", sorted(GATE_TABLES))
def test_logic_gate_truth_tables(name):
    x, y = ds.logic_gate(name)
    assert x.dtype == np.float32 and x.shape == (4, 2)
    assert y.dtype == np.float32 and y.shape == (4, 1)
    np.testing.assert_array_equal(x, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y[:, 0], GATE_TABLES[name])


def test_logic_gate_is_case_insensitive():
    x1, y1 = ds.logic_gate("XoR")
    x2, y2 = ds.logic_gate("xor")
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)


def test_logic_gate_returns_fresh_arrays():
    _, y = ds.logic_gate("and")
    y[:] = 7
    _, y2 = ds.logic_gate("and")
    np.testing.assert_array_equal(y2[:, 0], GATE_TABLES["and"])


@pytest.mark.parametrize("bad", ["nor", "", "x or", 3, None])
def test_logic_gate_bad_name(bad):
    with pytest.raises(ValueError) as info:
        ds.logic_gate(bad)
    msg = str(info.value)
    for name in ds.LOGIC_GATES:
        assert name in msg
    assert repr(bad) in msg


# ---------------------------------------------------------------------------
# Toy sets
# ---------------------------------------------------------------------------

TOY_MAKERS = {
    "spiral": lambda seed: ds.make_spiral(seed=seed),
    "moons": lambda seed: ds.make_moons(seed=seed),
    "circles": lambda seed: ds.make_circles(seed=seed),
    "blobs": lambda seed: ds.make_blobs(seed=seed),
}


def _check_xy(x, y, n, n_classes):
    assert x.dtype == np.float32 and x.shape == (n, 2)
    assert y.dtype == np.int64 and y.shape == (n,)
    assert np.all(np.isfinite(x))
    assert set(np.unique(y).tolist()) == set(range(n_classes))


@pytest.mark.parametrize("kind", sorted(TOY_MAKERS))
def test_toy_sets_deterministic_for_equal_seeds(kind):
    x1, y1 = TOY_MAKERS[kind](0)
    x2, y2 = TOY_MAKERS[kind](0)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("kind", sorted(TOY_MAKERS))
def test_toy_sets_differ_for_different_seeds(kind):
    x1, _ = TOY_MAKERS[kind](0)
    x2, _ = TOY_MAKERS[kind](1)
    assert x1.shape == x2.shape
    assert not np.array_equal(x1, x2)


@pytest.mark.parametrize("n_per_class,n_classes", [(100, 3), (7, 5), (1, 1)])
def test_make_spiral_shapes_and_balance(n_per_class, n_classes):
    x, y = ds.make_spiral(n_per_class, n_classes)
    _check_xy(x, y, n_per_class * n_classes, n_classes)
    np.testing.assert_array_equal(np.bincount(y), [n_per_class] * n_classes)


def test_make_spiral_geometry():
    x, y = ds.make_spiral(50, 3, noise=0.0)
    r = np.linalg.norm(x, axis=1)
    # Radius evenly spaced in [0, 1] for each arm, independent of the noise.
    for k in range(3):
        np.testing.assert_allclose(r[y == k], np.linspace(0, 1, 50), atol=1e-6)
    # Without noise the arms are rotated copies of each other.
    angle = 2 * np.pi / 3
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    np.testing.assert_allclose(x[y == 0] @ rot.T, x[y == 1], atol=1e-5)
    # Noise only perturbs the angle: radii stay the same, points move.
    xn, _ = ds.make_spiral(50, 3, noise=0.5)
    np.testing.assert_allclose(np.linalg.norm(xn, axis=1), r, atol=1e-6)
    assert not np.allclose(xn, x)


@pytest.mark.parametrize("n", [200, 201, 2])
def test_make_moons_shapes_and_balance(n):
    x, y = ds.make_moons(n)
    _check_xy(x, y, n, 2)
    np.testing.assert_array_equal(np.bincount(y), [(n + 1) // 2, n // 2])


def test_make_moons_geometry_without_noise():
    x, y = ds.make_moons(400, noise=0.0)
    upper, lower = x[y == 0].astype(np.float64), x[y == 1].astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(upper, axis=1), 1.0, atol=1e-6)
    assert np.all(upper[:, 1] >= -1e-6)
    np.testing.assert_allclose(np.linalg.norm(lower - [1.0, 0.5], axis=1), 1.0, atol=1e-6)
    assert np.all(lower[:, 1] <= 0.5 + 1e-6)


@pytest.mark.parametrize("n", [200, 51])
def test_make_circles_shapes_balance_and_radii(n):
    x, y = ds.make_circles(n, noise=0.0, factor=0.3)
    _check_xy(x, y, n, 2)
    np.testing.assert_array_equal(np.bincount(y), [(n + 1) // 2, n // 2])
    r = np.linalg.norm(x.astype(np.float64), axis=1)
    np.testing.assert_allclose(r[y == 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(r[y == 1], 0.3, atol=1e-6)


def test_make_circles_noise_moves_points():
    x, y = ds.make_circles(200, noise=0.05)
    r = np.linalg.norm(x, axis=1)
    assert not np.allclose(r[y == 0], 1.0)
    # still clearly two rings with default settings
    assert r[y == 0].mean() > 0.9 and r[y == 1].mean() < 0.6


@pytest.mark.parametrize("n,k", [(300, 3), (10, 3), (5, 5), (8, 1)])
def test_make_blobs_shapes_and_balance(n, k):
    x, y = ds.make_blobs(n, k)
    _check_xy(x, y, n, k)
    counts = np.bincount(y, minlength=k)
    expected = [n // k + (1 if i < n % k else 0) for i in range(k)]
    np.testing.assert_array_equal(counts, expected)


@pytest.mark.parametrize("k", [2, 3, 10])
def test_make_blobs_well_separated(k):
    x, y = ds.make_blobs(100 * k, k, std=0.5)
    means = np.stack([x[y == c].mean(axis=0) for c in range(k)])
    dist = np.linalg.norm(means[:, None] - means[None], axis=-1)
    dist[np.diag_indices(k)] = np.inf
    assert dist.min() > 5.0
    for c in range(k):
        assert np.all(np.abs(x[y == c].std(axis=0) - 0.5) < 0.15)
    # Nearest-centre classification is perfect.
    pred = np.argmin(np.linalg.norm(x[:, None] - means[None], axis=-1), axis=1)
    np.testing.assert_array_equal(pred, y)


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: ds.make_spiral(0), "n_per_class"),
        (lambda: ds.make_spiral(10, 0), "n_classes"),
        (lambda: ds.make_spiral(10.5), "n_per_class"),
        (lambda: ds.make_spiral(True), "n_per_class"),
        (lambda: ds.make_spiral(10, 3, noise=-0.1), "noise"),
        (lambda: ds.make_spiral(10, 3, noise=float("nan")), "noise"),
        (lambda: ds.make_moons(1), "n_samples"),
        (lambda: ds.make_moons(-5), "n_samples"),
        (lambda: ds.make_moons(10, noise=-1), "noise"),
        (lambda: ds.make_moons(10, noise="0.1"), "noise"),
        (lambda: ds.make_circles(0), "n_samples"),
        (lambda: ds.make_circles(10, noise=-0.5), "noise"),
        (lambda: ds.make_circles(10, factor=0.0), "factor"),
        (lambda: ds.make_circles(10, factor=1.0), "factor"),
        (lambda: ds.make_circles(10, factor=1.5), "factor"),
        (lambda: ds.make_blobs(0), "n_samples"),
        (lambda: ds.make_blobs(2, 3), "n_samples"),
        (lambda: ds.make_blobs(10, 0), "n_classes"),
        (lambda: ds.make_blobs(10, 2, std=-1.0), "std"),
    ],
)
def test_toy_set_argument_errors(call, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        call()
    # Message states what was expected and what was received.
    assert "got" in str(info.value)


def test_toy_sets_accept_numpy_integers():
    x, y = ds.make_blobs(np.int64(30), np.int32(3))
    assert x.shape == (30, 2) and y.shape == (30,)


# ---------------------------------------------------------------------------
# IDX reader
# ---------------------------------------------------------------------------

IDX_ARRAYS = [
    np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    np.array([-128, -1, 0, 1, 127], dtype=np.int8),
    np.array([[-32768, -2], [300, 32767]], dtype=np.int16),
    np.array([-(2**31), -1, 0, 65536, 2**31 - 1], dtype=np.int32).reshape(5, 1),
    np.array([[1.5, -2.25, np.pi], [1e-30, -0.0, 3e38]], dtype=np.float32),
    np.array([np.pi, -1e300, 5e-324, 0.1], dtype=np.float64),
]


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("array", IDX_ARRAYS, ids=lambda a: str(a.dtype))
def test_load_idx_round_trip(tmp_path, array, gz):
    path = write_idx(tmp_path / ("data.idx" + (".gz" if gz else "")), array)
    out = ds.load_idx(path)
    assert out.dtype == array.dtype
    assert out.dtype.isnative
    assert out.shape == array.shape
    np.testing.assert_array_equal(out, array)
    out.flat[0] = out.flat[1]  # writable, not a view into a bytes object


def test_load_idx_big_endian_on_disk(tmp_path):
    # Hand-written bytes: float32 1.0 and int32 258 are big-endian on disk.
    f32 = tmp_path / "f32.idx"
    f32.write_bytes(bytes([0, 0, 0x0D, 1, 0, 0, 0, 2]) + b"\x3f\x80\x00\x00\xc0\x00\x00\x00")
    np.testing.assert_array_equal(ds.load_idx(f32), np.array([1.0, -2.0], np.float32))
    i32 = tmp_path / "i32.idx"
    i32.write_bytes(bytes([0, 0, 0x0C, 2, 0, 0, 0, 1, 0, 0, 0, 1]) + b"\x00\x00\x01\x02")
    out = ds.load_idx(i32)
    assert out.shape == (1, 1) and out.dtype == np.int32 and out[0, 0] == 258


def test_load_idx_gzip_detected_by_magic(tmp_path):
    array = np.arange(10, dtype=np.int16)
    path = write_idx(tmp_path / "no-suffix", array, gz=True)
    np.testing.assert_array_equal(ds.load_idx(path), array)


def test_load_idx_accepts_str_path(tmp_path):
    array = np.arange(6, dtype=np.uint8)
    path = write_idx(tmp_path / "a.idx", array)
    np.testing.assert_array_equal(ds.load_idx(str(path)), array)


def test_load_idx_missing_file(tmp_path):
    path = tmp_path / "nope-idx1-ubyte"
    with pytest.raises(FileNotFoundError, match="nope-idx1-ubyte"):
        ds.load_idx(path)


def _assert_value_error_mentions_file(path, *fragments):
    with pytest.raises(ValueError) as info:
        ds.load_idx(path)
    msg = str(info.value)
    assert str(path) in msg
    for fragment in fragments:
        assert fragment in msg
    return msg


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_truncated(tmp_path, gz):
    data = idx_bytes(np.arange(100, dtype=np.int32))[:-3]
    path = tmp_path / ("trunc.idx" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    _assert_value_error_mentions_file(path, "400", "397", "truncated")


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_trailing_bytes(tmp_path, gz):
    data = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4)) + b"\x00\x01"
    path = tmp_path / ("trail.idx" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    _assert_value_error_mentions_file(path, "12", "14", "trailing")


def test_load_idx_truncated_header(tmp_path):
    path = tmp_path / "hdr.idx"
    path.write_bytes(bytes([0, 0, 0x08, 3, 0, 0, 0, 5]))
    _assert_value_error_mentions_file(path, "16", "8")


@pytest.mark.parametrize("content", [b"", b"\x00\x00"])
def test_load_idx_too_short(tmp_path, content):
    path = tmp_path / "short.idx"
    path.write_bytes(content)
    _assert_value_error_mentions_file(path, "4-byte")


def test_load_idx_bad_magic(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x01\x00\x08\x01\x00\x00\x00\x01\x05")
    _assert_value_error_mentions_file(path, "magic", "00 00", "01 00 08 01")


def test_load_idx_unknown_type_code(tmp_path):
    path = tmp_path / "type.idx"
    path.write_bytes(bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 7]))
    msg = _assert_value_error_mentions_file(path, "0x0A")
    assert "0x08" in msg and "0x0E" in msg


def test_load_idx_zero_ndim(tmp_path):
    path = tmp_path / "nd0.idx"
    path.write_bytes(bytes([0, 0, 0x08, 0]))
    _assert_value_error_mentions_file(path, "ndim")


def test_load_idx_corrupt_gzip(tmp_path):
    blob = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32)))
    path = tmp_path / "corrupt.idx.gz"
    path.write_bytes(blob[: len(blob) // 2])
    _assert_value_error_mentions_file(path, "gzip")


def test_load_idx_empty_dimension(tmp_path):
    path = write_idx(tmp_path / "empty.idx", np.zeros((0, 3), dtype=np.float32))
    out = ds.load_idx(path)
    assert out.shape == (0, 3) and out.dtype == np.float32


# ---------------------------------------------------------------------------
# load_mnist on synthetic data
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_t10k_only_split(tmp_path, gz):
    images, labels = write_fake_set(tmp_path, "t10k", 50, gz=gz)
    (x_tr, y_tr), (x_te, y_te) = ds.load_mnist(tmp_path, test_size=12)
    assert x_tr.shape == (38, 28, 28) and x_te.shape == (12, 28, 28)
    assert y_tr.shape == (38,) and y_te.shape == (12,)
    assert x_tr.dtype == np.float32 and x_te.dtype == np.float32
    assert y_tr.dtype == np.int64 and y_te.dtype == np.int64
    # First len - test_size images train, the last test_size test, in order.
    np.testing.assert_allclose(x_tr, images[:38] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(x_te, images[38:] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y_tr, labels[:38])
    np.testing.assert_array_equal(y_te, labels[38:])
    both = np.concatenate([x_tr, x_te])
    assert both.min() == 0.0 and both.max() == 1.0


def test_load_mnist_no_normalize(tmp_path):
    images, labels = write_fake_set(tmp_path, "t10k", 20)
    (x_tr, y_tr), (x_te, y_te) = ds.load_mnist(str(tmp_path), normalize=False, test_size=5)
    assert x_tr.dtype == np.uint8 and x_te.dtype == np.uint8
    np.testing.assert_array_equal(np.concatenate([x_tr, x_te]), images)
    np.testing.assert_array_equal(np.concatenate([y_tr, y_te]), labels)
    assert y_tr.dtype == np.int64


def test_load_mnist_split_arrays_are_independent(tmp_path):
    write_fake_set(tmp_path, "t10k", 20)
    (x_tr, _), (x_te, _) = ds.load_mnist(tmp_path, normalize=False, test_size=5)
    assert not np.shares_memory(x_tr, x_te)


def test_load_mnist_train_files_take_precedence(tmp_path):
    train_images, train_labels = write_fake_set(tmp_path, "train", 30, seed=1, gz=False)
    test_images, test_labels = write_fake_set(tmp_path, "t10k", 15, seed=2)
    (x_tr, y_tr), (x_te, y_te) = ds.load_mnist(tmp_path, normalize=False, test_size=3)
    np.testing.assert_array_equal(x_tr, train_images)
    np.testing.assert_array_equal(y_tr, train_labels)
    np.testing.assert_array_equal(x_te, test_images)
    np.testing.assert_array_equal(y_te, test_labels)
    # test_size is ignored (even if larger than the t10k set) when train files exist.
    (x_tr, _), (x_te, _) = ds.load_mnist(tmp_path, test_size=10_000)
    assert x_tr.shape == (30, 28, 28) and x_te.shape == (15, 28, 28)
    assert x_tr.dtype == np.float32 and 0.0 <= x_tr.min() and x_tr.max() <= 1.0


def test_load_mnist_plain_file_preferred_over_gz(tmp_path):
    images, labels = write_fake_set(tmp_path, "t10k", 10, seed=3, gz=False)
    write_fake_set(tmp_path, "t10k", 12, seed=4, gz=True)
    (x_tr, _), (x_te, _) = ds.load_mnist(tmp_path, normalize=False, test_size=2)
    np.testing.assert_array_equal(np.concatenate([x_tr, x_te]), images)


def test_load_mnist_missing_directory(tmp_path):
    missing = tmp_path / "does-not-exist"
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        ds.load_mnist(missing)


def test_load_mnist_no_t10k_files(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        ds.load_mnist(tmp_path)
    msg = str(info.value)
    assert "t10k-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg
    assert str(tmp_path) in msg


def test_load_mnist_missing_t10k_labels(tmp_path):
    write_fake_set(tmp_path, "t10k", 10)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        ds.load_mnist(tmp_path)


def test_load_mnist_incomplete_train_set(tmp_path):
    write_fake_set(tmp_path, "t10k", 10)
    write_fake_set(tmp_path, "train", 10)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        ds.load_mnist(tmp_path)


def test_load_mnist_count_mismatch(tmp_path):
    images, labels = fake_mnist(10)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:9])
    with pytest.raises(ValueError, match="mismatch") as info:
        ds.load_mnist(tmp_path, test_size=2)
    assert "10" in str(info.value) and "9" in str(info.value)


@pytest.mark.parametrize(
    "bad_images",
    [
        np.zeros((10, 28, 27), dtype=np.uint8),
        np.zeros((10, 784), dtype=np.uint8),
        np.zeros((10, 28, 28, 1), dtype=np.uint8),
    ],
    ids=["28x27", "flat", "4d"],
)
def test_load_mnist_bad_image_shape(tmp_path, bad_images):
    _, labels = fake_mnist(10)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", bad_images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(ValueError, match="28, 28"):
        ds.load_mnist(tmp_path, test_size=2)


def test_load_mnist_bad_image_dtype(tmp_path):
    images, labels = fake_mnist(10)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images.astype(np.float32))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(ValueError, match="uint8"):
        ds.load_mnist(tmp_path, test_size=2)


def test_load_mnist_bad_labels(tmp_path):
    images, labels = fake_mnist(10)
    labels[3] = 10
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(ValueError, match="0..9"):
        ds.load_mnist(tmp_path, test_size=2)


def test_load_mnist_corrupt_file_names_it(tmp_path):
    write_fake_set(tmp_path, "t10k", 10)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-1]))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte"):
        ds.load_mnist(tmp_path, test_size=2)


@pytest.mark.parametrize("test_size", [0, -1, 50, 51, 2.5, True])
def test_load_mnist_bad_test_size(tmp_path, test_size):
    write_fake_set(tmp_path, "t10k", 50)
    with pytest.raises(ValueError, match="test_size"):
        ds.load_mnist(tmp_path, test_size=test_size)


@pytest.mark.parametrize("test_size", [1, 49])
def test_load_mnist_test_size_bounds(tmp_path, test_size):
    write_fake_set(tmp_path, "t10k", 50)
    (x_tr, _), (x_te, _) = ds.load_mnist(tmp_path, test_size=test_size)
    assert len(x_te) == test_size and len(x_tr) == 50 - test_size


# ---------------------------------------------------------------------------
# Real MNIST test set (shared data, outside the repository)
# ---------------------------------------------------------------------------

def test_mnist_dir_resolution_present(tmp_path, resolve_mnist_dir, mnist_sha256):
    for name in mnist_sha256:
        (tmp_path / name).write_bytes(b"")
    assert resolve_mnist_dir(tmp_path, {}) == tmp_path
    assert resolve_mnist_dir(tmp_path, {"CI": "true"}) == tmp_path


def _outcome(resolve_mnist_dir, path, environ):
    """Run resolve_mnist_dir, returning the skip/fail exception instead of raising it.

    pytest's skip/fail exceptions are caught here explicitly so that a wrong
    outcome (e.g. a skip where a failure is required) fails this test instead
    of silently skipping it.
    """
    try:
        resolve_mnist_dir(path, environ)
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        return exc
    return None


def test_mnist_dir_resolution_absent_skips_locally(tmp_path, resolve_mnist_dir):
    absent = tmp_path / "mnist"
    for environ in ({}, {"CI": "false"}, {"CI": "1"}):
        exc = _outcome(resolve_mnist_dir, absent, environ)
        assert type(exc) is pytest.skip.Exception, (environ, exc)
        assert f"MNIST test set not found at {absent}" in str(exc)


def test_mnist_dir_resolution_absent_fails_on_ci(tmp_path, resolve_mnist_dir):
    absent = tmp_path / "mnist"
    exc = _outcome(resolve_mnist_dir, absent, {"CI": "true"})
    assert type(exc) is pytest.fail.Exception, exc
    assert f"MNIST test set not found at {absent}" in str(exc)


def test_real_mnist_checksums(mnist_dir, mnist_sha256):
    for name, expected in mnist_sha256.items():
        digest = hashlib.sha256((mnist_dir / name).read_bytes()).hexdigest()
        assert digest == expected, f"{name}: sha256 {digest} != expected {expected}"


@pytest.fixture(scope="module")
def real_mnist(mnist_dir):
    return ds.load_mnist(mnist_dir)


def test_real_mnist_split(real_mnist):
    (x_tr, y_tr), (x_te, y_te) = real_mnist
    assert x_tr.shape == (8000, 28, 28) and y_tr.shape == (8000,)
    assert x_te.shape == (2000, 28, 28) and y_te.shape == (2000,)
    assert x_tr.dtype == np.float32 and x_te.dtype == np.float32
    assert y_tr.dtype == np.int64 and y_te.dtype == np.int64


def test_real_mnist_pixels_and_labels(real_mnist):
    (x_tr, y_tr), (x_te, y_te) = real_mnist
    for x in (x_tr, x_te):
        assert x.min() == 0.0 and x.max() == 1.0
    for y in (y_tr, y_te):
        assert y.min() >= 0 and y.max() <= 9
        assert set(np.unique(y).tolist()) == set(range(10))


def test_real_mnist_raw_matches_normalized(mnist_dir, real_mnist):
    (x_tr_raw, y_tr_raw), (x_te_raw, _) = ds.load_mnist(mnist_dir, normalize=False)
    assert x_tr_raw.dtype == np.uint8
    (x_tr, y_tr), _ = real_mnist
    np.testing.assert_allclose(x_tr, x_tr_raw / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y_tr, y_tr_raw)
    # The well-known first label of the MNIST test set is a 7.
    assert y_tr[0] == 7
