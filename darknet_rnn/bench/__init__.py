"""`darknet-rnn bench`: the speed of the C core against NumPy baselines.

runner.py times the native fast path, the native reference kernels and the
BLAS-speed NumPy baseline (numpy_layers.py: the same layers written the way
an expert NumPy user would, also reachable as load_network(...,
backend="numpy")) in interleaved rounds, one child process per thread count.
"""
from .runner import main

__all__ = ["main"]
