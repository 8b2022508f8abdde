"""Typing: fastnn ships py.typed and a stub of the compiled module that names exactly what the
module defines, so a type checker sees real types instead of Any."""
import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastnn
from fastnn import _core

PACKAGE = Path(fastnn.__file__).resolve().parent
STUB = PACKAGE / "_core.pyi"
REGENERATE = "regenerate it: pip install pybind11-stubgen && python tools/gen_stubs.py"


def _stub_names():
    tree = ast.parse(STUB.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return {n for n in names if not n.startswith("_")}


def test_package_is_marked_typed_and_has_a_core_stub():
    assert (PACKAGE / "py.typed").is_file()
    assert STUB.is_file(), f"fastnn/_core.pyi is missing; {REGENERATE}"


def test_core_stub_names_what_the_compiled_module_defines():
    compiled = {n for n in dir(_core) if not n.startswith("_")}
    stub = _stub_names()
    assert stub, "the stub defines nothing"
    missing, extra = sorted(compiled - stub), sorted(stub - compiled)
    assert not missing and not extra, (f"fastnn/_core.pyi is out of date (in the module only: "
                                       f"{missing}; in the stub only: {extra}); {REGENERATE}")


USER_PROGRAM = '''
import numpy as np
import fastnn
from fastnn import _core

threads: int = _core.get_num_threads()
variant: str = _core.cpu_capability()
backend_name: str = fastnn.get_backend()
y = _core.sigmoid_forward(np.zeros((2, 3), np.float32))
fastnn.set_num_threads(1)
'''


WRONG_LINES = 'wrong: str = _core.get_num_threads()\nalso_wrong: int = fastnn.get_backend()\n'


@pytest.fixture(scope="module")
def mypy_run(tmp_path_factory):
    """One mypy run (mypy takes seconds to start) over two user programs: ``clean.py``, the program
    above, and ``wrong.py``, the same program with two assignments of the wrong type added."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install mypy) to type-check a user program")
    folder = tmp_path_factory.mktemp("typing")
    (folder / "clean.py").write_text(USER_PROGRAM)
    (folder / "wrong.py").write_text(USER_PROGRAM + WRONG_LINES)
    # MYPYPATH: the folder holding the imported fastnn (an editable install is an import hook
    # that mypy cannot follow).
    env = dict(os.environ, MYPYPATH=str(PACKAGE.parent))
    # --strict, except bare tuple results in the generated stub (pybind11 does not say their items)
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--disable-error-code",
                             "type-arg", "--no-incremental", "--follow-imports=silent",
                             "clean.py", "wrong.py"],
                            capture_output=True, text=True, cwd=folder, env=env, timeout=300)
    # 1: mypy ran and found errors (those of wrong.py); 0 or 2 would mean a test below cannot hold
    assert result.returncode == 1 and "checked 2 source files" in result.stdout, \
        result.stdout + result.stderr
    return result


def test_a_user_program_type_checks_clean_under_mypy(mypy_run):
    reported = [line for line in mypy_run.stdout.splitlines() if line.startswith("clean.py")]
    assert not reported, mypy_run.stdout


def test_mypy_sees_real_types_not_any(mypy_run):
    # Were the module Any, mypy would accept this; with the stub it knows the return is an int.
    first = USER_PROGRAM.count("\n") + 1  # the two added lines, wherever the program ends
    errors = [line.split(":")[1] for line in mypy_run.stdout.splitlines()
              if line.startswith("wrong.py:") and ": error:" in line]
    assert errors == [str(first), str(first + 1)], mypy_run.stdout
