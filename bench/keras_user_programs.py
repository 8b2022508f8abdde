"""Run the Keras programs of tests/keras_programs/ in real Keras and in fastnn, and compare.

    KERAS_BACKEND=jax python bench/keras_user_programs.py --keras-python /path/to/keras-venv/bin/python

needs a separate environment with Keras 3 (any backend), scikit-learn and h5py. Each program runs
unchanged in Keras and with only its imports swapped in fastnn (see tests/keras_programs/run.py).
It prints, per program, whether both ran, the time each took and every difference beyond the
tolerances, and writes Keras's results to tests/fixtures/keras_programs.json, the reference that
tests/test_keras_user_programs.py compares fastnn against.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "keras_programs"))
from run import PROGRAMS, differences, run_program  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "keras_programs.json"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras-python", required=True, help="python of an env with Keras 3")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite the fixture")
    parser.add_argument("--only", nargs="*", default=None,
                        help="run only the programs whose names contain one of these words "
                             "(their entries in the fixture are replaced, the others kept)")
    args = parser.parse_args()
    env = dict(os.environ)
    env.setdefault("KERAS_BACKEND", "jax")
    fastnn_env = dict(env, PYTHONPATH=str(ROOT))
    programs = [p for p in PROGRAMS if not args.only or any(w in p.stem for w in args.only)]
    reference = {}
    if args.only and FIXTURE.exists():
        reference = {k: v for k, v in json.loads(FIXTURE.read_text(encoding="utf-8")).items()
                     if k in {p.stem for p in PROGRAMS}}
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for program in programs:
            t0 = time.perf_counter()
            k, kdone = run_program(program, "keras", Path(tmp) / "keras" / program.stem,
                                   python=args.keras_python, env=env)
            t1 = time.perf_counter()
            f, fdone = run_program(program, "fastnn", Path(tmp) / "fastnn" / program.stem,
                                   env=fastnn_env)
            t2 = time.perf_counter()
            status = []
            if kdone.returncode:
                status.append("Keras FAILED: " + kdone.stderr.strip().splitlines()[-1])
            if fdone.returncode:
                status.append("fastnn FAILED: " + fdone.stderr.strip().splitlines()[-1])
            if k is not None:
                reference[program.stem] = k
            if k is not None and f is not None:
                status += differences(k, f)
            failures += bool(status)
            print(f"{program.stem:28s} Keras {t1 - t0:5.1f} s  fastnn {t2 - t1:5.1f} s  "
                  f"{'agree' if not status else '; '.join(status)}")
            for name, value in (("Keras ", k), ("fastnn", f)):
                print(f"    {name} {value}")
    if not args.no_write:
        FIXTURE.write_text(json.dumps(reference, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {FIXTURE.relative_to(ROOT)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
