"""Benchmarks run against the installed fastnn (see tests/conftest.py for why the root is removed)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]
