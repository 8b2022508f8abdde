"""The command line: `python -m fastnn demo` trains on built-in data and prints accuracy and timings."""
import functools
import os
import re
import subprocess
import sys

import pytest


def run_cli(*args, timeout=300):
    env = {**os.environ, "PYTHONPATH": ""}
    return subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=os.path.dirname(__file__))


def test_demo_on_built_in_data():
    result = run_cli("demo", "--epochs", "15", "--budget", "0.01")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # XOR: the single layer stays at or below 0.75, the two-layer network gets all four right.
    one, two = map(float, re.search(r"accuracy: 1 layer ([\d.]+), 2 layers ([\d.]+)", out).groups())
    assert one <= 0.75 and two == 1.0
    # The spiral trains with a progress line per epoch and reaches a clearly better-than-chance accuracy.
    assert "Epoch 15/15" in out and "loss:" in out
    assert float(re.search(r"held-out accuracy: ([\d.]+)", out).group(1)) > 0.8
    # The timing table lists every batch size for both backends.
    rows = re.findall(r"^\s+(\d+) \|\s+[\d.]+ [mun]?s \|\s+[\d.]+ [mun]?s \|", out, re.M)
    assert [int(r) for r in rows] == [1, 8, 64, 512, 4096]


def test_demo_on_the_numpy_backend():
    result = run_cli("demo", "--epochs", "2", "--budget", "0.01", "--backend", "numpy")
    assert result.returncode == 0, result.stderr
    assert "on the numpy backend" in result.stdout


def test_demo_mnist(mnist_dir):
    result = run_cli("demo", "--mnist", str(mnist_dir), "--epochs", "1", "--budget", "0.01")
    assert result.returncode == 0, result.stderr
    assert "8000 training and 2000 test images" in result.stdout
    assert float(re.search(r"test accuracy: ([\d.]+)", result.stdout).group(1)) > 0.85


def test_demo_mnist_missing_directory_is_a_clear_error(tmp_path):
    result = run_cli("demo", "--mnist", str(tmp_path / "nowhere"), "--budget", "0.01")
    assert result.returncode == 2
    assert "nowhere" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["demo", "--epochs", "0"], ["demo", "--backend", "gpu"], []])
def test_bad_arguments_exit_with_usage(args):
    result = run_cli(*args)
    assert result.returncode == 2 and "usage:" in result.stderr


# The full `bench` (seven GEMM shapes, three models at five batch sizes, the PyTorch column when
# torch is installed) takes a minute or more on two cores however small --budget is, so it runs once,
# in the slow selection, for both tests below; the test after them runs the same command line in
# process on fewer shapes and batches.
@pytest.fixture(scope="module")
def full_bench(tmp_path_factory):
    pytest.importorskip("matplotlib", reason="--plot needs the plot extra (matplotlib)")
    path = tmp_path_factory.mktemp("bench") / "per_sample.png"
    return run_cli("bench", "--budget", "0.002", "--plot", str(path)), path


def bench_rows(out):
    """The GEMM, train_on_batch and predict rows that `bench` printed, parsed."""
    gemm = re.findall(r"^\| (\d+)x(\d+) @ (\d+)x(\d+) \| (\d) \| ([\d.e+-]+) \| (\d+)% \|", out, re.M)
    train = re.findall(r"^\| ([\d-]+ \w+) \| (\d+) \| [\d,]+ \| [\d,]+ \| [\d.]+x \|", out, re.M)
    predict = re.findall(r"^\| (\d+) \| [\d.]+ [mun]?s \| [\d.]+ [mun]?s \|", out, re.M)
    return gemm, [(label, int(b)) for label, b in train], [int(b) for b in predict]


@pytest.mark.slow
def test_bench_prints_every_table(full_bench):
    result, _ = full_bench
    assert result.returncode == 0, result.stderr
    out = result.stdout
    peak = float(re.search(r"multiply-add peak on \d+ threads: (\d+) GFLOP/s", out).group(1))
    assert peak > 0
    gemm_rows, train, predict = bench_rows(out)
    assert len(gemm_rows) == 14  # 7 shapes on 1 and 2 threads
    assert all(float(r[5]) > 0 for r in gemm_rows)  # values only: timings here may be under load
    assert train == [
        ("784-128-10 relu", b) for b in (1, 8, 32, 512, 2048)] + [
        ("784-256-256-10 relu", b) for b in (1, 8, 32, 512, 2048)] + [
        ("784-50-100-10 sigmoid", b) for b in (1, 8, 32, 512, 2048)]
    assert predict == [1, 8, 64, 512, 4096]


@pytest.mark.slow
def test_bench_plot_writes_a_png(full_bench):
    result, path = full_bench
    assert result.returncode == 0, result.stderr
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_bench_tables_and_plot_on_fewer_shapes(tmp_path, monkeypatch, capsys):
    """`python -m fastnn bench --plot PNG` in process, with two GEMM shapes, two small models at
    two batch sizes and three predict batch sizes: every table is printed with a row per case and
    the PNG is written. (The PyTorch column is left out here; the slow tests run it all.)"""
    pytest.importorskip("matplotlib", reason="--plot needs the plot extra (matplotlib)")
    from fastnn import __main__ as cli
    from fastnn.tools import benchmark
    monkeypatch.setattr(benchmark, "gemm_table",
                        functools.partial(benchmark.gemm_table, shapes=[(64, 64, 64), (32, 128, 784)]))
    monkeypatch.setattr(benchmark, "TRAIN_MODELS", (((784, 32, 10), "relu"), ((784, 16, 16, 10), "sigmoid")))
    monkeypatch.setattr(benchmark, "TRAIN_BATCHES", (1, 8))
    monkeypatch.setattr(benchmark, "predict_table",
                        functools.partial(benchmark.predict_table, batch_sizes=(1, 8, 64)))
    monkeypatch.setattr(benchmark, "torch_rates", lambda *args, **kwargs: None)
    path = tmp_path / "per_sample.png"
    assert cli.main(["bench", "--budget", "0.002", "--plot", str(path)]) == 0
    out = capsys.readouterr().out
    assert float(re.search(r"multiply-add peak on \d+ threads: (\d+) GFLOP/s", out).group(1)) > 0
    gemm_rows, train, predict = bench_rows(out)
    assert [(int(r[0]), int(r[1]), int(r[3]), int(r[4])) for r in gemm_rows] == [
        (64, 64, 64, 1), (32, 784, 128, 1), (64, 64, 64, 2), (32, 784, 128, 2)]
    assert all(float(r[5]) > 0 for r in gemm_rows)
    assert train == [("784-32-10 relu", 1), ("784-32-10 relu", 8),
                     ("784-16-16-10 sigmoid", 1), ("784-16-16-10 sigmoid", 8)]
    assert predict == [1, 8, 64]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_busy_note_names_the_load_and_stays_silent_on_an_idle_machine():
    from fastnn.tools import benchmark
    assert benchmark.busy_note(None) is None and benchmark.busy_note(0.0) is None
    note = benchmark.busy_note(1.5, "ratios")
    assert "busy" in note and "1.5" in note and "ratios" in note
    load = benchmark.other_load(0.05)
    assert load is None or load >= 0.0


def test_round_trip_note_speaks_only_when_the_round_trip_moved():
    from fastnn.tools import benchmark
    assert benchmark.round_trip_note([]) is None
    assert benchmark.round_trip_note([None, 85.0]) is None      # one measurement: no change
    assert benchmark.round_trip_note([80.0, 95.0, None, 150.0]) is None  # within 2x
    note = benchmark.round_trip_note([82.0, 431.0, 85.0])
    assert "82" in note and "431" in note and "one thread" in note
    ns = benchmark.core_round_trip(0.01)
    assert ns is None or ns > 0


def test_bench_peers_rejects_zero_rounds():
    result = run_cli("bench", "--peers", "--rounds", "0")
    assert result.returncode == 2 and "--rounds" in result.stderr


@pytest.mark.parametrize("framework", ["fastnn", "numpy"])
def test_peers_worker_times_a_short_epoch_of_this_checkout(framework):
    # The worker runs in a fresh process that must import this fastnn (not shadow the standard
    # library with the package's own modules, as a PYTHONPATH pointing inside the package would).
    from fastnn.tools import peers
    seconds = peers.time_epoch(sys.executable, framework, peers.MODELS[2], 32, samples=128)
    assert 0.0 < seconds < 60.0
    env = peers._env()
    first = env["PYTHONPATH"].split(os.pathsep)[0]
    assert os.path.isdir(os.path.join(first, "fastnn")), first


def test_peers_report_prints_the_round_trip_and_notes_when_it_moved(monkeypatch):
    from fastnn.tools import benchmark, peers
    monkeypatch.setattr(peers, "find_peers", lambda *a: {"fastnn": sys.executable, "numpy": sys.executable})
    monkeypatch.setattr(peers, "time_epoch", lambda python, fw, model, batch, samples: 1.0 if fw == "fastnn" else 2.0)
    monkeypatch.setattr(benchmark, "other_load", lambda seconds=0.5: 0.0)
    for trips, moved in (([84.0, 86.0, 90.0], False), ([84.0, 430.0, 88.0], True)):
        values = iter(trips * 10)
        monkeypatch.setattr(benchmark, "core_round_trip", lambda seconds=0.05: next(values))
        lines = []
        peers.report(rounds=1, models=peers.MODELS[:1], batches=(32,), write=lines.append)
        assert "| 784-256-256-10 relu | 32 | 1.00 | 2.00 | 2.00x |" in lines
        summary = next(line for line in lines if "round trip" in line and line.startswith("("))
        assert f"{min(trips[:2]):.0f}-{max(trips[:2]):.0f} ns" in summary
        assert any("changed from" in line for line in lines) == moved
