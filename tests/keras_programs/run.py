"""Run one of the Keras programs in this folder, with Keras or with fastnn.

Only the imports change: ``import keras`` becomes ``import fastnn as keras``, ``from keras.x import``
becomes ``from fastnn.keras.x import``, and ``tensorflow`` (the course notes write ``import
tensorflow as tf`` / ``from tensorflow.keras.x import``) becomes ``fastnn``. With Keras, a
small ``tensorflow`` stand-in (only for programs that import it) maps ``tf.keras`` and ``tf.random`` onto Keras 3 so the notes' blocks
run on any Keras backend. Each program runs in a fresh interpreter in its own working folder; the
last line it prints, a Python literal, is its result.
"""
import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROGRAMS = sorted(HERE.glob("p[0-9][0-9]_*.py"))

_FASTNN_IMPORTS = [
    (r"^import keras$", "import fastnn as keras"),
    (r"^import tensorflow as tf$", "import fastnn as tf"),
    (r"^from keras import ", "from fastnn.keras import "),
    (r"^from keras\.", "from fastnn.keras."),
    (r"^from tensorflow\.keras import ", "from fastnn.keras import "),
    (r"^from tensorflow\.keras\.", "from fastnn.keras."),
]

_TF_STANDIN = """\
import sys, keras
sys.modules.update({"tensorflow.keras": keras, "tensorflow.keras.models": keras.models,
                    "tensorflow.keras.layers": keras.layers})
random = keras.random
"""


def swap_imports(source):
    """Return ``source`` with Keras's (and TensorFlow's) import lines pointing at fastnn."""
    lines = []
    for line in source.splitlines():
        for pattern, replacement in _FASTNN_IMPORTS:
            line = re.sub(pattern, replacement, line)
        lines.append(line)
    return "\n".join(lines) + "\n"


def run_program(path, engine, workdir, python=None, timeout=300, env=None):
    """Run program ``path`` with ``engine`` ("fastnn" or "keras") in ``workdir``.

    Returns ``(result, completed)``: the literal on the last line of stdout (None when the program
    failed) and the ``subprocess.CompletedProcess``.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    source = Path(path).read_text(encoding="utf-8")
    env = dict(os.environ if env is None else env)
    if engine == "fastnn":
        source = swap_imports(source)
    elif engine == "keras" and "tensorflow" in source:
        standin = workdir / "_standin" / "tensorflow"
        standin.mkdir(parents=True, exist_ok=True)
        (standin / "__init__.py").write_text(_TF_STANDIN, encoding="utf-8")
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in [str(standin.parent), env.get("PYTHONPATH", "")] if p)
    elif engine != "keras":
        raise ValueError(f"engine must be 'fastnn' or 'keras', got {engine!r}")
    script = workdir / Path(path).name
    script.write_text(source, encoding="utf-8")
    done = subprocess.run([python or sys.executable, script.name], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=timeout)
    result = None
    if done.returncode == 0:
        tail = [line for line in done.stdout.splitlines() if line.strip()]
        try:
            result = ast.literal_eval(tail[-1]) if tail else None
        except (ValueError, SyntaxError):
            result = None
        if not isinstance(result, dict):    # the notes' blocks: their summaries and printed shapes
            result = {"total_params": [int(m.group(1).replace(",", "")) for m in
                                       map(_TOTAL.search, tail) if m],
                      "printed_shapes": [m.group(1) for m in map(_SHAPE.search, tail) if m]}
    return result, done


_TOTAL = re.compile(r"Total params:\s*([\d,]+)")
_SHAPE = re.compile(r"(\(\d+(?:, \d+)*\))\s*$")


# Scores that depend on the random draws: fastnn must land within these distances of Keras's.
# Everything else a program reports (log keys, shapes, dtypes, names, flags) must be equal.
ABSOLUTE = {"acc": 0.06, "manual_acc": 0.06, "auc": 0.04, "precision": 0.08, "recall": 0.08,
            "final_acc": 0.08}
RELATIVE = {"mae": 0.25, "mse": 0.4}


def differences(keras_result, fastnn_result):
    """Return a list of the ways ``fastnn_result`` departs from ``keras_result`` (empty: agree)."""
    # as JSON sees them (the reference is a JSON file): tuples and lists are alike
    keras_result, fastnn_result = (json.loads(json.dumps(r)) for r in (keras_result, fastnn_result))
    out = []
    for key in sorted(set(keras_result) | set(fastnn_result)):
        if key not in keras_result or key not in fastnn_result:
            out.append(f"{key}: only one side reports it")
            continue
        k, f = keras_result[key], fastnn_result[key]
        if key in ABSOLUTE:
            if not abs(k - f) <= ABSOLUTE[key]:
                out.append(f"{key}: Keras {k:.4f}, fastnn {f:.4f} (allowed ±{ABSOLUTE[key]})")
        elif key in RELATIVE:
            if not abs(k - f) <= RELATIVE[key] * abs(k):
                out.append(f"{key}: Keras {k:.4g}, fastnn {f:.4g} (allowed ±{RELATIVE[key]:.0%})")
        elif k != f:
            out.append(f"{key}: Keras {k!r}, fastnn {f!r}")
    return out
