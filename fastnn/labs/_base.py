"""What every lab shares: the result object, the registry, figures and data look-up.

A lab is a function ``body(lab)`` that trains and measures, recording what it measured with
``lab.number``, what the measurements show with ``lab.claim`` (a claim is a comparison of
measured numbers against a threshold stated in its description), and its pictures with
``lab.figure``. ``register`` turns it into the public ``fastnn.labs.NAME(quick, out, lang)``.
"""
import os
import tempfile
from pathlib import Path

import numpy as np

from .. import backend, utils

LANGS = ("en", "ko")
REGISTRY = {}  # lab name (with "-") -> public function, in course order

SKIPPED_FIGURES = {
    "en": "figures skipped: matplotlib is not installed (pip install \"fastnn[plot]\")",
    "ko": "그림 생략: matplotlib이 설치되어 있지 않습니다 (pip install \"fastnn[plot]\")",
}


class LabResult:
    """What a lab measured.

    ``claims``: claim name -> bool (did the measurement hold); ``numbers``: measured values by
    name; ``figures``: paths of the PNG files written; ``text``: the explanation in the chosen
    language; ``details``: claim name -> one line saying what was compared, with the numbers;
    ``figures_skipped``: None, or why no figures were drawn; ``timed``: the names of the claims
    that compare wall-clock times (their outcome depends on how busy the machine is)."""

    def __init__(self, name, title, lang, quick):
        self.name, self.title, self.lang, self.quick = name, title, lang, quick
        self.claims, self.numbers, self.details = {}, {}, {}
        self.timed = set()
        self.figures, self.text, self.figures_skipped, self.out = [], "", None, None

    @property
    def passed(self):
        """True when every claim held."""
        return bool(self.claims) and all(self.claims.values())

    def report(self):
        """The explanation, each claim with its numbers and PASS/FAIL, and where the figures are."""
        lines = [f"== {self.name}: {self.title} ==", "", self.text.strip(), ""]
        for key, held in self.claims.items():
            lines.append(f"[{'PASS' if held else 'FAIL'}] {key}: {self.details[key]}")
        lines.append("")
        if self.figures_skipped:
            lines.append(self.figures_skipped)
        else:
            lines.append(("figures:" if self.lang == "en" else "그림:") + f" {self.out}")
            lines += [f"  {Path(p).name}" for p in self.figures]
        return "\n".join(lines)

    def __repr__(self):
        held = sum(self.claims.values())
        return f"<LabResult {self.name}: {held}/{len(self.claims)} claims hold, {len(self.figures)} figures>"


class Lab:
    """The context a lab body runs in (settings, what it records)."""

    def __init__(self, result, quick, out, lang, mnist):
        self.result, self.quick, self.lang, self.mnist = result, quick, lang, mnist
        self._out = out

    def t(self, en, ko):
        return en if self.lang == "en" else ko

    def ft(self, en, ko):
        """Text inside a figure: Korean only when a font with Hangul is installed (otherwise the
        labels would be drawn as empty boxes), English else."""
        return ko if self.lang == "ko" and _hangul_font() else en

    def number(self, key, value):
        value = float(value) if np.ndim(value) == 0 else np.asarray(value, dtype=float).tolist()
        self.result.numbers[key] = value
        return value

    def claim(self, key, holds, en, ko, timed=False):
        """Record claim ``key`` (``holds`` is the outcome of the measured comparison); ``en``/``ko``
        describe it, with the numbers already formatted in; ``timed``: the comparison is of
        wall-clock times."""
        self.result.claims[key] = bool(holds)
        if timed:
            self.result.timed.add(key)
        self.result.details[key] = self.t(en, ko)

    def figure(self, filename, draw, figsize=(6, 4.5)):
        """Draw with ``draw(fig)`` on a new matplotlib Figure (no pyplot, so always headless) and
        save it as ``out/filename``; without matplotlib, note that figures were skipped."""
        try:
            from matplotlib.figure import Figure
        except ImportError:
            self.result.figures_skipped = SKIPPED_FIGURES[self.lang]
            return None
        if self._out is None:
            self._out = tempfile.mkdtemp(prefix=f"fastnn-lab-{self.result.name}-")
        out = Path(self._out)
        out.mkdir(parents=True, exist_ok=True)
        self.result.out = str(out)
        import matplotlib
        font = _hangul_font() if self.lang == "ko" else None
        with matplotlib.rc_context({"font.family": [font, "DejaVu Sans"]} if font else {}):
            fig = Figure(figsize=figsize, dpi=100)
            draw(fig)
            fig.tight_layout()
            path = out / filename
            fig.savefig(path)
        self.result.figures.append(str(path))
        return str(path)


_HANGUL = []
# Preferred families first. A .ttc collection is indexed by matplotlib under the name of its first
# face only, so Noto's Pan-CJK files appear as "Noto Sans CJK JP" although every face holds Hangul.
HANGUL_FAMILIES = ("Noto Sans CJK KR", "Noto Sans KR", "NanumGothic", "Malgun Gothic",
                   "Apple SD Gothic Neo", "AppleGothic", "UnDotum", "Baekmuk Gulim",
                   "Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK HK")
HANGUL_PROBE = "한글"


def _hangul_font():
    """The family name of an installed font that draws Hangul, or None (looked up once)."""
    if not _HANGUL:
        try:
            _HANGUL.append(_find_hangul_font())
        except ImportError:
            _HANGUL.append(None)
    return _HANGUL[0]


def _has_hangul(path):
    from matplotlib import font_manager
    try:
        font = font_manager.get_font(path)
        return all(font.get_char_index(ord(c)) for c in HANGUL_PROBE)
    except (OSError, RuntimeError, ValueError):
        return False


def _find_hangul_font():
    """Look among the fonts matplotlib has indexed, then among the system's font files it has not
    (its index is a cache written once, so fonts installed later are missing from it); a font is
    chosen only if it really has Hangul glyphs. A font found outside the index is added to this
    process's font manager (not to the cache on disk)."""
    from matplotlib import font_manager
    manager = font_manager.fontManager
    indexed = {}
    for entry in manager.ttflist:
        indexed.setdefault(entry.name, entry.fname)
    found = {name: path for name, path in indexed.items()
             if name in HANGUL_FAMILIES and _has_hangul(path)}
    if not found:
        known = {entry.fname for entry in manager.ttflist}
        for path in sorted(font_manager.findSystemFonts()):
            if path in known or not _has_hangul(path):
                continue
            name = font_manager.ttfFontProperty(font_manager.get_font(path)).name
            manager.addfont(path)
            found.setdefault(name, path)
    if not found:
        return None
    return min(found, key=lambda n: (HANGUL_FAMILIES.index(n) if n in HANGUL_FAMILIES
                                     else len(HANGUL_FAMILIES), n))


def _check_args(quick, out, lang):
    if not isinstance(quick, (bool, np.bool_)):
        raise TypeError(f"quick must be True or False, got {quick!r}")
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}")
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a directory path or None, got {type(out).__name__}")


def register(name, title, text):
    """Decorator: ``body(lab)`` becomes the public lab ``name``; ``title``/``text`` are dicts by
    language."""
    def wrap(body):
        def run(quick=False, out=None, lang="en", mnist=None):
            _check_args(quick, out, lang)
            result = LabResult(name, title[lang], lang, bool(quick))
            result.text = text[lang].strip()
            utils.set_random_seed(0)
            threads = backend.get_num_threads()
            if quick:  # the quick models are tiny: one thread is faster, above all on busy cores
                backend.set_num_threads(1)
            try:
                body(Lab(result, bool(quick), out, lang, mnist))
            finally:
                backend.set_num_threads(threads)
            return result
        run.__name__ = name.replace("-", "_")
        run.__qualname__ = run.__name__
        run.__doc__ = (f"Lab '{name}': {title['en']}.\n\n{text['en'].strip()}\n\n"
                       "quick=True runs in seconds on small built-in data; out is the directory for "
                       "the figures (a new temporary one when None); lang is 'en' or 'ko'; mnist is "
                       "a directory of MNIST IDX files for the labs that train on MNIST in full "
                       "mode. Returns a LabResult.")
        run.lab_name = name
        run.titles = dict(title)
        REGISTRY[name] = run
        return run
    return wrap


# -- data ---------------------------------------------------------------------------------------
MNIST_CANDIDATES = ("../shared/data/mnist", "../../shared/data/mnist", "/work/shared/data/mnist")


def mnist_dir(lab):
    """The MNIST directory for a full run: the one given, else $FASTNN_MNIST, else the course's
    usual ``../shared/data/mnist``; None when none exists."""
    if lab.mnist is not None:
        path = Path(lab.mnist)
        if not path.is_dir():
            raise FileNotFoundError(f"mnist must be a directory of MNIST IDX files, got {str(path)!r} "
                                    "(not a directory)")
        return path
    for candidate in (os.environ.get("FASTNN_MNIST"),) + MNIST_CANDIDATES:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def image_data(lab, n_train, n_test):
    """(x_train, y_train, x_test, y_test, source) of flattened images for the MNIST labs.

    Full runs use MNIST (see :func:`mnist_dir`), else scikit-learn's bundled 8x8 digits; quick runs
    use the digits when scikit-learn is installed, else a generated 10-class problem (blobs in 64
    dimensions) -- a stand-in that needs nothing."""
    rng = np.random.default_rng(0)
    path = None if lab.quick else mnist_dir(lab)
    if path is not None:
        from ..datasets import load_mnist
        (x_tr, y_tr), (x_te, y_te) = load_mnist(path)
        x_tr = x_tr.reshape(len(x_tr), -1)
        x_te = x_te.reshape(len(x_te), -1)
        tr = rng.permutation(len(x_tr))[:n_train]
        te = rng.permutation(len(x_te))[:n_test]
        return x_tr[tr], y_tr[tr], x_te[te], y_te[te], f"MNIST ({path})"
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        load_digits = None
    if load_digits is not None:
        d = load_digits()
        x = (d.data / 16.0).astype(np.float32)
        y = d.target.astype(np.int64)
        order = rng.permutation(len(x))
        x, y = x[order], y[order]
        n_train = min(n_train, len(x) - n_test)
        return x[:n_train], y[:n_train], x[-n_test:], y[-n_test:], "scikit-learn digits (8x8)"
    centres = rng.normal(0.0, 1.0, (10, 64))
    y = rng.integers(0, 10, n_train + n_test)
    x = (centres[y] + rng.normal(0.0, 1.5, (len(y), 64))).astype(np.float32)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:], "generated blobs"


def shuffled(x, y, seed=0):
    order = np.random.default_rng(seed).permutation(len(x))
    return x[order], y[order]


def accuracy(model, x, y):
    """Accuracy of ``model`` on (x, y) in inference mode (binary for one output)."""
    p = model.predict(x, batch_size=max(1, min(len(x), 4096)))
    if p.shape[1] == 1:
        return float(np.mean((p[:, 0] > 0.5) == (np.asarray(y).reshape(-1) > 0.5)))
    return float(np.mean(np.argmax(p, axis=1) == np.asarray(y).reshape(-1)))


def fmt(x):
    """A measured number for a sentence: 4 significant digits."""
    return f"{float(x):.4g}"
