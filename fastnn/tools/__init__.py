"""Measuring fastnn, outside the runtime: the benchmark cases behind ``python -m fastnn bench``
(``benchmark``) and the same cases run in PyTorch, TF-Keras and scikit-learn in their own processes
(``peers``). Nothing here is imported by ``import fastnn``; the benchmarks in ``bench/`` use it too.
"""
