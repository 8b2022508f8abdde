"""Test configuration: the tests run against whichever fastnn Python imports, and find the shared
MNIST data.

At the repository root that is the source folder itself, built in place by the README's
``pip install -e ".[test]"`` (an editable install). The wheel round trip in ``.ci/run`` copies
``tests/`` out of the tree and runs it against an installed wheel. Either way the native extension
must have loaded: the suite refuses to run on a silent NumPy fallback.
"""
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

import fastnn  # noqa: E402

if fastnn.backend._core is None:
    pytest.exit(f"fastnn's native extension did not import ({fastnn.backend._CORE_ERROR}); "
                f"build it first: pip install -e '.[test]'  (fastnn imported from "
                f"{Path(fastnn.__file__).parent})", returncode=2)

# FASTNN_MNIST_DIR points a copy of tests/ outside the repository (the wheel round trip) at the data.
MNIST_DIR = Path(os.environ.get("FASTNN_MNIST_DIR") or ROOT.parent / "shared" / "data" / "mnist")
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


@pytest.fixture(params=["native", "numpy"])
def backend(request):
    """Run the test on each backend (``_restore_global_state`` restores the previous one afterwards).
    A module that parametrizes ``backend`` itself overrides this."""
    fastnn.set_backend(request.param)
    return request.param


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    """NumPy's BLAS runs on one thread in the test process. The tests call NumPy (references,
    tolerance bounds) and fastnn's kernels in turn, and OpenBLAS's idle workers keep spinning for
    milliseconds after each call: on two cores the next native call then waits for a core
    (measured: a 300x257 @ 257x513 float32 gemm took 56 ms right after a NumPy matmul, 0.4 ms
    with BLAS on one thread). fastnn's own threads (OpenMP) are not limited; tests that time NumPy
    set its thread count themselves."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(autouse=True)
def _restore_global_state():
    """Every test starts on the native backend with float32 and leaves it that way."""
    backend, floatx, threads = fastnn.get_backend(), fastnn.floatx(), fastnn.get_num_threads()
    adaptive = fastnn.backend._core is None or fastnn.backend._core.adaptive_threads()
    yield
    fastnn.set_backend(backend)
    fastnn.set_floatx(floatx)
    fastnn.set_num_threads("auto" if adaptive else threads)




def pytest_report_header(config):
    """Which fastnn the run tests: the source folder (editable install) or an installed wheel."""
    core = fastnn.backend._core
    return (f"fastnn {fastnn.__version__} from {Path(fastnn.__file__).parent} "
            f"(native extension {Path(core.__file__).name}, {core.cpu_capability()})")
