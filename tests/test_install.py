"""What a user sees of the installation: the version, `python -m fastnn info`, a loud warning (never
a silent fallback) when the native extension cannot load, and a progress bar that reads well in a
notebook and for fast steps."""
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastnn
from fastnn.utils import Progbar, format_duration

PACKAGE_PARENT = str(Path(fastnn.__file__).resolve().parents[1])

# Makes `import fastnn._core` fail in a child process, as a missing or broken build would.
BLOCK_CORE = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "fastnn._core":
            raise ImportError("simulated: libgomp.so.1: cannot open shared object file")
        return None
sys.meta_path.insert(0, _Block())
"""


def _python(code, *args):
    env = dict(os.environ, PYTHONPATH=PACKAGE_PARENT)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, cwd=os.path.dirname(PACKAGE_PARENT) or "/", timeout=120)


def test_version_is_single_sourced_and_printed():
    from importlib.metadata import PackageNotFoundError, version
    result = _python("import sys, fastnn.__main__ as m; sys.exit(m.main(['--version']))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"fastnn {fastnn.__version__} ")
    try:
        assert version("fastnn-cpu") == fastnn.__version__
    except PackageNotFoundError:
        pytest.skip("the fastnn-cpu distribution is not installed (tests run on a source folder)")


def test_info_names_backend_build_openmp_threads_and_cpu_variants():
    result = _python("import sys, fastnn.__main__ as m; sys.exit(m.main(['info']))")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"fastnn {fastnn.__version__}" in out
    assert "backend: native" in out
    core = fastnn.backend._core
    assert core.build_info["compiler"] in out
    assert ("OpenMP " in out) if core.openmp else ("no OpenMP" in out)
    assert f"threads: {fastnn.get_num_threads()}" in out
    assert f"chosen {core.cpu_capability()}" in out
    assert "cores' round trip: " in out
    assert "NumPy" in out


def test_missing_extension_warns_with_cause_and_fix_and_backend_says_so():
    result = _python(BLOCK_CORE + """
import warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import fastnn
print("BACKEND", fastnn.get_backend())
print("ERROR", fastnn.backend.native_error())
print("WARNINGS", [(w.category.__name__, str(w.message)) for w in caught])
try:
    fastnn.set_backend("native")
except RuntimeError as exc:
    print("SET", exc)
""")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "BACKEND numpy" in out
    assert "NativeExtensionWarning" in out and "NumPy reference" in out
    assert "libgomp.so.1: cannot open shared object file" in out  # the cause
    assert "fix:" in out and "pip install" in out                 # and what to do
    assert "SET the native backend is not available" in out


def test_missing_extension_warns_by_default_and_info_fails_loudly():
    # Default warning filters (no catch_warnings): the user sees it on stderr.
    result = _python(BLOCK_CORE + "import sys, fastnn.__main__ as m; sys.exit(m.main(['info']))")
    assert result.returncode == 1
    assert "NativeExtensionWarning" in result.stderr
    assert "NOT LOADED" in result.stdout and "fix:" in result.stdout


@pytest.mark.parametrize("seconds, text", [
    (0.0, "0us"), (2.4e-6, "2.40us"), (41.25e-6, "41.2us"), (412e-6, "412us"), (0.99996e-3, "1.00ms"), (850e-9, "850ns"), (0.99996e-6, "1.00us"),
    (38.2e-3, "38.2ms"), (0.9997, "1.00s"), (2.414, "2.41s"), (125.0, "125s"),
])
def test_durations_keep_three_digits_and_never_round_to_zero(seconds, text):
    assert format_duration(seconds) == text


def test_fast_steps_report_microseconds_not_0ms():
    stream = io.StringIO()
    bar = Progbar(1000, stream=stream, interactive=False)
    bar.update(1000, [("loss", 0.5)], finalize=True)
    line = stream.getvalue()
    match = re.search(r" - (\S+) (\S+)/step", line)
    assert match, line
    total, per_step = match.groups()
    assert per_step[-2:] in ("us", "ns") and float(per_step[:-2]) > 0, line
    assert not re.search(r"(^| )0(s|ms|us)", line), line


def test_progress_bar_redraws_in_a_notebook(monkeypatch):
    # Jupyter's stdout is no terminal, but it draws "\r" as a redraw of the line.
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setitem(sys.modules, "ipykernel", type(sys)("ipykernel"))
    bar = Progbar(4)
    assert bar.interactive
    bar._interval = 0.0
    bar.update(1, [("loss", 0.123456), ("accuracy", 0.5)])
    bar.update(2, [("loss", 0.25)])
    bar.update(4, [("loss", 0.125)], finalize=True)
    text = out.getvalue()
    frames = text.split("\r")[1:]
    assert len(frames) == 3 and frames[0].startswith("1/4") and text.endswith("\n")
    # A shorter line covers the longer one before it.
    assert len(frames[1]) >= len(frames[0])


def test_progress_bar_in_a_log_file_prints_only_the_last_line(monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    out = io.StringIO()
    bar = Progbar(4, stream=out)
    assert not bar.interactive
    bar.update(2, [("loss", 0.5)])
    bar.update(4, [("loss", 0.25)], finalize=True)
    assert "\r" not in out.getvalue() and out.getvalue().count("\n") == 1
