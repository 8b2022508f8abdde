"""Test configuration: tests run against the *installed* fastnn, and find the shared MNIST data.

`pip install ".[test]" && pytest` from the repository root must exercise the package pip built,
never the source folder `fastnn/` (which has no compiled `_core`). pytest runs in importlib mode
(pyproject.toml) so it does not put the root on sys.path; `python -m pytest` still adds the current
directory, which is removed here before fastnn is imported.
"""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]

import fastnn  # noqa: E402  (after the sys.path fix above)

if fastnn.backend._core is None:
    pytest.exit(f"fastnn's native extension did not import ({fastnn.backend._CORE_ERROR}); "
                f"install the package first: pip install '.[test]'  (fastnn imported from "
                f"{Path(fastnn.__file__).parent})", returncode=2)

MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"
MNIST_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "b3d1ecee69772f10ad3399fcfc183a460646f07b37c22f1e3902096b8afcbc32",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}


def _resolve_mnist_dir(path, environ):
    """Return ``path`` if it holds the MNIST test set; otherwise skip, or fail when CI=true."""
    missing = [name for name in MNIST_SHA256 if not (Path(path) / name).is_file()]
    if not missing:
        return Path(path)
    reason = (f"MNIST test set not found at {path} (missing: {', '.join(missing)}); place "
              "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz in ../shared/data/mnist "
              "next to the repository to run these tests")
    if environ.get("CI") == "true":
        pytest.fail(reason + " [CI=true: missing data is an error]")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def resolve_mnist_dir():
    return _resolve_mnist_dir


@pytest.fixture(scope="session")
def mnist_sha256():
    return dict(MNIST_SHA256)


@pytest.fixture(scope="session")
def mnist_dir():
    """Directory holding the real MNIST t10k files (skips, or fails when CI=true)."""
    return _resolve_mnist_dir(MNIST_DIR, os.environ)


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """The project's MNIST split, flattened: first 8,000 images train, last 2,000 test, pixels/255."""
    (x_train, y_train), (x_test, y_test) = fastnn.datasets.load_mnist(mnist_dir)
    return (x_train.reshape(-1, 784), y_train), (x_test.reshape(-1, 784), y_test)


@pytest.fixture(autouse=True)
def _restore_global_state():
    """Every test starts on the native backend with float32 and leaves it that way."""
    backend, floatx, threads = fastnn.get_backend(), fastnn.floatx(), fastnn.get_num_threads()
    yield
    fastnn.set_backend(backend)
    fastnn.set_floatx(floatx)
    fastnn.set_num_threads(threads)


