"""The labs (fastnn.labs, ``python -m fastnn lab``): every claim measured in quick mode holds, the
result has its documented structure, figures are drawn headless, and the command line works."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import labs
from fastnn.labs import _base, rnn as recurrent_module

PNG = b"\x89PNG\r\n\x1a\n"
HANGUL = range(0xAC00, 0xD7A4)
MISSING_RNN = recurrent_module.missing_layers()
RNN_REASON = ("the recurrent lab needs fastnn.layers." + ", ".join(MISSING_RNN)
              + ", which fastnn does not have yet")


def _needs(name):
    if name == "metrics":
        pytest.importorskip("sklearn", reason="the metrics lab compares with scikit-learn")
    if name == "recurrent" and MISSING_RNN:
        pytest.skip(RNN_REASON)


def _check_structure(result, name, out):
    assert isinstance(result, labs.LabResult)
    assert result.name == name and result.quick is True
    assert result.claims and all(isinstance(v, bool) for v in result.claims.values())
    assert set(result.details) == set(result.claims)
    assert all(isinstance(d, str) and d for d in result.details.values())
    assert result.numbers
    for key, value in result.numbers.items():
        assert isinstance(value, (float, list)), (key, value)
    assert len(result.text) > 200
    assert result.figures, "every lab draws at least one figure"
    for path in result.figures:
        path = Path(path)
        assert path.parent == Path(out) and path.suffix == ".png"
        assert path.read_bytes()[:8] == PNG


@pytest.mark.parametrize("name", labs.names())
def test_quick_lab_claims_hold(name, tmp_path):
    _needs(name)
    result = labs.run(name, quick=True, out=tmp_path)
    _check_structure(result, name, tmp_path)
    # Claims comparing wall-clock times are checked in bench/test_bench_labs.py, not here: a unit
    # test must not depend on how busy the machine is (see test_batching_numbers_are_consistent).
    assert result.timed <= set(result.claims)
    failed = {k: result.details[k] for k, held in result.claims.items()
              if not held and k not in result.timed}
    assert not failed, failed
    report = result.report()
    assert all(f"[{'PASS' if held else 'FAIL'}] {k}:" in report for k, held in result.claims.items())
    assert str(tmp_path) in report


def test_only_the_batching_speed_claim_is_timed(tmp_path):
    """Every other claim is a deterministic measurement and must hold in the unit tests."""
    timed = {name: labs.run(name, quick=True, out=tmp_path / name).timed
             for name in ("batching", "backprop")}
    assert timed == {"batching": {"batching_several_times_cheaper"}, "backprop": set()}


def test_batching_numbers_are_consistent(tmp_path):
    """The structure of the timing, not its outcome: positive finite times for each backend and
    batch size, speed-ups that are the ratios of those times, a claim that agrees with them."""
    result = labs.batching(quick=True, out=tmp_path)
    n = result.numbers
    for backend in ("native", "numpy"):
        times = [n[f"{backend}_seconds_per_image_batch_{k}"] for k in ("1", "100", "all")]
        assert all(np.isfinite(t) and 0 < t < 1 for t in times), (backend, times)
        assert n[f"{backend}_speedup_batch_100_over_1"] == pytest.approx(times[0] / times[1], rel=1e-12)
    speedups = [n[f"{b}_speedup_batch_100_over_1"] for b in ("native", "numpy")]
    assert result.claims["batching_several_times_cheaper"] == (min(speedups) >= 3)  # the stated 3x
    assert result.claims["same_answers"] and n["max_difference_single_vs_batch"] == 0.0


def test_names_become_functions():
    assert len(labs.names()) == 15
    for name in labs.names():
        fn = getattr(labs, name.replace("-", "_"))
        assert fn is labs.get(name) is labs.get(name.replace("-", "_"))
    assert fastnn.labs is labs


def test_korean_text(tmp_path):
    en = labs.backprop(quick=True, out=tmp_path / "en")
    ko = labs.backprop(quick=True, out=tmp_path / "ko", lang="ko")
    assert ko.text != en.text and ko.title != en.title
    for text in [ko.text, ko.title, *ko.details.values()]:
        assert any(ord(c) in HANGUL for c in text), text
    assert not any(ord(c) in HANGUL for c in en.text)
    assert ko.claims == en.claims and ko.numbers == en.numbers
    for name in labs.names():  # every lab has both explanations, each in its language
        doc_ko = labs.get(name).titles["ko"]
        assert any(ord(c) in HANGUL for c in doc_ko), name


def _system_has_hangul_font():
    """Asked of fontconfig, independently of the labs' own look-up."""
    import shutil
    if not shutil.which("fc-list"):
        return False
    out = subprocess.run(["fc-list", ":lang=ko", "file"], capture_output=True, text=True).stdout
    return bool(out.strip())


def _draws_hangul(family):
    from matplotlib import font_manager
    font = font_manager.get_font(font_manager.findfont(family, fallback_to_default=False))
    return all(font.get_char_index(ord(c)) for c in "기울기 소실".replace(" ", ""))


@pytest.mark.skipif(not _system_has_hangul_font(), reason="no font with Hangul is installed "
                    "(fc-list :lang=ko lists none)")
def test_hangul_font_found_even_when_matplotlib_index_is_stale(monkeypatch):
    pytest.importorskip("matplotlib", reason="figures need matplotlib")
    from matplotlib import font_manager
    manager = font_manager.fontManager
    stale = [e for e in manager.ttflist if not _base._has_hangul(e.fname)]
    monkeypatch.setattr(manager, "ttflist", stale)   # as if the fonts came after the cache
    monkeypatch.setattr(_base, "_HANGUL", [])
    family = _base._hangul_font()
    assert family is not None and _draws_hangul(family)
    lab = _base.Lab(_base.LabResult("t", "t", "ko", True), True, None, "ko", None)
    assert lab.ft("layer", "층") == "층"


def test_without_hangul_font_figures_fall_back_to_english(monkeypatch, tmp_path):
    pytest.importorskip("matplotlib", reason="figures need matplotlib")
    from matplotlib import font_manager
    manager = font_manager.fontManager
    monkeypatch.setattr(manager, "ttflist", [e for e in manager.ttflist
                                             if not _base._has_hangul(e.fname)])
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *a, **k: [])
    monkeypatch.setattr(_base, "_HANGUL", [])
    assert _base._hangul_font() is None
    lab = _base.Lab(_base.LabResult("t", "t", "ko", True), True, None, "ko", None)
    assert lab.ft("layer", "층") == "layer"
    result = labs.vanishing_gradients(quick=True, out=tmp_path, lang="ko")
    assert result.figures and all(Path(p).read_bytes()[:8] == PNG for p in result.figures)
    assert any(ord(c) in HANGUL for c in result.text)   # the explanation stays Korean


def test_without_matplotlib_figures_are_skipped(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    result = labs.backprop(quick=True, out=tmp_path)
    assert result.figures == [] and not list(tmp_path.iterdir())
    assert "matplotlib" in result.figures_skipped and "skipped" in result.figures_skipped
    assert result.passed and result.figures_skipped in result.report()


@pytest.mark.parametrize("kwargs, error, words", [
    ({"lang": "fr"}, ValueError, ["lang", "'fr'"]),
    ({"quick": "yes"}, TypeError, ["quick", "'yes'"]),
    ({"out": 3}, TypeError, ["out", "int"]),
])
def test_bad_arguments(kwargs, error, words):
    with pytest.raises(error) as info:
        labs.backprop(**kwargs)
    assert all(w in str(info.value) for w in words)


def test_unknown_lab_names_the_labs():
    with pytest.raises(ValueError, match="unknown lab 'xor'.*perceptron"):
        labs.get("xor")


def test_missing_mnist_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        labs.overfitting_dropout(quick=False, mnist=tmp_path / "nowhere")


def test_full_runs_read_mnist(mnist_dir):
    lab = _base.Lab(_base.LabResult("t", "t", "en", False), False, None, "en", mnist_dir)
    x, y, xt, yt, source = _base.image_data(lab, 300, 100)
    assert x.shape == (300, 784) and xt.shape == (100, 784) and "MNIST" in source
    assert set(np.unique(y)) <= set(range(10)) and len(np.unique(y)) == 10


def test_quick_runs_do_not_read_mnist(monkeypatch, tmp_path):
    monkeypatch.setattr(_base, "MNIST_CANDIDATES", ())
    monkeypatch.setenv("FASTNN_MNIST", str(tmp_path / "nowhere"))
    lab = _base.Lab(_base.LabResult("t", "t", "en", True), True, None, "en", None)
    assert "MNIST" not in _base.image_data(lab, 100, 50)[4]


@pytest.mark.skipif(not MISSING_RNN, reason="the recurrent layers exist: the lab runs (see above)")
def test_recurrent_lab_names_the_missing_layers():
    with pytest.raises(NotImplementedError) as info:
        labs.recurrent(quick=True)
    assert all(f"fastnn.layers.{name}" in str(info.value) for name in MISSING_RNN)


def test_adding_problem_targets():
    x, y = recurrent_module.adding_problem(64, 50, seed=3)
    assert x.shape == (64, 50, 2) and y.shape == (64, 1)
    assert np.all(x[:, :, 1].sum(axis=1) == 2)
    assert np.all(x[:, :25, 1].sum(axis=1) == 1)
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * x[:, :, 1]).sum(axis=1), rtol=1e-6)


def run_cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(Path(fastnn.__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "fastnn", "lab", *args], capture_output=True,
                          text=True, timeout=300, env=env, cwd=cwd)


def test_cli_list(tmp_path):
    result = run_cli("--list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in labs.names():
        assert f"  {name} " in result.stdout


def test_cli_runs_a_lab(tmp_path):
    result = run_cli("backprop", "--quick", "--out", str(tmp_path / "figs"), "--lang", "ko", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "== backprop:" in out and "[PASS] w_becomes_1.02:" in out and "FAIL" not in out
    assert "1.02" in out and "연쇄 법칙" in out
    assert str(tmp_path / "figs") in out and (tmp_path / "figs" / "backprop_worked_example.png").is_file()


@pytest.mark.parametrize("args", [["nope"], [], ["backprop", "--lang", "fr"]])
def test_cli_bad_arguments_exit_with_usage(args, tmp_path):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "usage:" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(not MISSING_RNN, reason="the recurrent layers exist")
def test_cli_unavailable_lab_exits_2(tmp_path):
    result = run_cli("recurrent", "--quick", cwd=tmp_path)
    assert result.returncode == 2 and "SimpleRNN" in result.stderr and "Traceback" not in result.stderr


def test_lesson_book_is_offline_and_complete(tmp_path):
    from html.parser import HTMLParser
    from fastnn.labs.book import write_book
    results = [labs.backprop(quick=True, out=tmp_path / "backprop"),
               labs.activations(quick=True, out=tmp_path / "activations", lang="en")]
    path = write_book(tmp_path, results, quick=True, unavailable={"recurrent": "needs LSTM"})
    page = path.read_text(encoding="utf-8")

    class Refs(HTMLParser):
        def __init__(self):
            super().__init__()
            self.refs = []

        def handle_starttag(self, tag, attrs):
            self.refs += [v for k, v in attrs if k in ("src", "href")]
    parser = Refs()
    parser.feed(page)
    images = [r for r in parser.refs if r.endswith(".png")]
    assert len(images) == sum(len(r.figures) for r in results)
    assert all((tmp_path / r).is_file() for r in images)           # relative, beside the page
    assert all(r.startswith("#") for r in parser.refs if r not in images)  # nothing external
    assert "http" not in page and "@import" not in page
    for r in results:
        assert f"python -m fastnn lab {r.name} --quick" in page
        assert all(key in page for key in r.claims)
    assert page.count(">PASS<") == sum(len(r.claims) for r in results)
    assert "needs LSTM" in page


def test_cli_writes_the_book(tmp_path):
    result = run_cli("backprop", "--quick", "--html", str(tmp_path / "book"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "book" / "index.html").read_text(encoding="utf-8")
    assert "backprop" in page and (tmp_path / "book" / "backprop" / "backprop_worked_example.png").is_file()
