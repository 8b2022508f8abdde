"""How the package's modules import each other: no cycles, and measuring code stays out of
``import fastnn``. Each check runs in a fresh interpreter, where import order is not yet decided."""
import subprocess
import sys

import pytest

MODULES = ["fastnn.gradcheck", "fastnn.utils", "fastnn.models", "fastnn.metrics",
           "fastnn.metrics.objects", "fastnn.metrics.inputs", "fastnn.plot", "fastnn.tools.benchmark",
           "fastnn.tools.peers", "fastnn.keras.utils", "fastnn.keras.metrics"]


def _python(code):
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_first(module):
    # A cycle shows up as "partially initialized module" when the module in it is imported first.
    _python(f"import {module}")


def test_import_fastnn_leaves_the_measuring_tools_out():
    out = _python("import sys, fastnn; print(sorted(m for m in sys.modules if m.startswith('fastnn')))")
    assert "fastnn.tools" not in out and "fastnn.gradcheck" not in out, out
    assert "fastnn.models" in out  # the check above saw the package's own imports


def test_gradient_check_is_reachable_from_utils_and_keras_utils():
    out = _python("import fastnn, fastnn.keras.utils as ku; "
                  "print(fastnn.utils.gradient_check is ku.gradient_check, 'gradient_check' in dir(fastnn.utils))")
    assert out.split() == ["True", "True"]
    with pytest.raises(AttributeError, match="no_such_helper"):
        import fastnn
        fastnn.utils.no_such_helper


def test_metrics_helpers_are_not_public_names_of_keras_metrics():
    import fastnn.keras.metrics as km
    assert "AUC" in km.__all__ and "roc_auc_score" in km.__all__
    assert not {"inputs", "objects", "ranking", "classification"} & set(km.__all__)
    with pytest.raises(AttributeError):
        km.inputs
