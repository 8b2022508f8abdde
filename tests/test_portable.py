"""Portability of the C++ sources: the forms that compilers without GCC's vector extensions (MSVC)
compile give the same bits as the vector-extension forms that GCC and Clang compile.

These tests compile small C++ programs with the C++ compiler that builds the extension; they skip,
saying so, where there is none.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

CSRC = Path(__file__).resolve().parents[1] / "csrc"

DRIVER = r"""
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <vector>

#define FASTNN_SIGMOID_NS vec
#define FASTNN_VEC_BYTES BYTES
#define FASTNN_SIGMOID_LANE_LOOP 0
#include "sigmoid_kernel.inc"
#undef FASTNN_SIGMOID_NS
#undef FASTNN_SIGMOID_LANE_LOOP
#define FASTNN_SIGMOID_NS lanes
#define FASTNN_SIGMOID_LANE_LOOP 1
#include "sigmoid_kernel.inc"

// Reads float32 values from stdin, writes both forms' results to stdout.
int main() {
    std::vector<float> x;
    float v;
    while (std::fread(&v, sizeof v, 1, stdin) == 1) x.push_back(v);
    std::vector<float> a(x.size()), b(x.size());
    fastnn::vec::sigmoid_f32(a.data(), x.data(), fastnn::idx(x.size()));
    fastnn::lanes::sigmoid_f32(b.data(), x.data(), fastnn::idx(x.size()));
    std::fwrite(a.data(), sizeof(float), a.size(), stdout);
    std::fwrite(b.data(), sizeof(float), b.size(), stdout);
    return 0;
}
"""


def _cxx():
    cxx = os.environ.get("CXX") or (sysconfig.get_config_var("CXX") or "").split(" ")[0]
    for candidate in (cxx, "c++", "g++", "clang++"):
        if candidate and shutil.which(candidate):
            return candidate
    return None


def _inputs():
    rng = np.random.default_rng(7)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-38, 88.7, 89.0, 89.5,
                        -103.9, -104.0, -110.0, 15.9, -15.9, 0.5, -0.5], np.float32)
    # Every exponent and sign, random mantissas (NaN payloads included), plus the clamp edges.
    bits = rng.integers(0, 2**32, 200_003, dtype=np.uint64).astype(np.uint32).view(np.float32)
    return np.concatenate([special, rng.standard_normal(100_001).astype(np.float32) * 40, bits])


@pytest.mark.parametrize("vec_bytes", [16, 32, 64])
def test_sigmoid_lane_loop_matches_vector_extensions_bitwise(tmp_path, vec_bytes):
    cxx = _cxx()
    if cxx is None:
        pytest.skip("no C++ compiler on PATH (CXX, c++, g++ or clang++) to build the comparison")
    if sys.platform == "win32":
        pytest.skip("the comparison needs GCC or Clang vector extensions")
    src = tmp_path / "driver.cpp"
    src.write_text(DRIVER)
    exe = tmp_path / "driver"
    # The extension's own optimisation flags (setup.py): -O3 and no fast-math.
    subprocess.run([cxx, "-std=c++17", "-O3", "-fno-math-errno", f"-DBYTES={vec_bytes}",
                    f"-I{CSRC}", str(src), "-o", str(exe)], check=True, capture_output=True)
    x = _inputs()
    out = subprocess.run([str(exe)], input=x.tobytes(), check=True, capture_output=True).stdout
    both = np.frombuffer(out, np.uint32)
    assert both.size == 2 * x.size
    vec, lanes = both[:x.size], both[x.size:]
    mismatch = np.flatnonzero(vec != lanes)
    assert mismatch.size == 0, (f"{mismatch.size} values differ, first x={x[mismatch[0]]!r}: "
                                f"{vec[mismatch[0]]:#x} vs {lanes[mismatch[0]]:#x}")
    # And both are a sigmoid: within a few ulp of float64 where the result is a normal float.
    y = vec.view(np.float32)
    xd = x.astype(np.float64)
    with np.errstate(all="ignore"):
        ref = np.where(xd >= 0, 1 / (1 + np.exp(-xd)), np.exp(xd) / (1 + np.exp(xd)))
    normal = np.isfinite(xd) & (ref > 1e-37)
    ulp = np.spacing(ref[normal].astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(y[normal] - ref[normal]) / ulp) <= 3
    assert np.array_equal(np.isnan(y), np.isnan(x))
