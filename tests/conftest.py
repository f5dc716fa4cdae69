import json
import pathlib

import numpy as np
import pytest

DATA = pathlib.Path(__file__).parent / "data"

# Shared parametrisations: the implementations of the same math, and the
# kernels of the C core (reference = Darknet's loops, bit-exact).
BACKENDS = ("native", "reference")


def _kernels():
    try:
        from darknet_rnn._ffi import available_kernels
    except ImportError:           # no compiled module: the reference kernel still names the row
        return ("reference",)
    return tuple(available_kernels())


KERNELS = _kernels()


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each implementation: the C core and the bit-exact NumPy twin."""
    return request.param


@pytest.fixture(params=KERNELS)
def kernel(request):
    """Each kernel of the C core this CPU runs."""
    return request.param


def golden_cases():
    return [c["case"] for c in json.loads((DATA / "index.json").read_text())]


def describe_mismatch(a, b, limit=5):
    """max abs/rel diff and the first mismatching positions, for messages."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return f"shape {a.shape} != {b.shape}"
    both_nan = np.isnan(a) & np.isnan(b)
    bad = ~((a == b) | both_nan)
    if not bad.any():
        return "equal"
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.abs(a - b)
        rel = diff / np.maximum(np.abs(a), np.abs(b))
    idx = np.argwhere(bad)[:limit]
    first = ", ".join(f"{tuple(i)}: {a[tuple(i)]!r} vs {b[tuple(i)]!r}" for i in idx)
    return (f"{bad.sum()} of {bad.size} differ; max abs {np.nanmax(diff[bad]):.3g}, "
            f"max rel {np.nanmax(rel[bad]):.3g}; first: {first}")


def assert_bitwise(actual, expected, what):
    """Equal values, NaN where the other has NaN (signed zeros compare equal)."""
    a = np.asarray(actual)
    e = np.asarray(expected)
    ok = a.shape == e.shape and np.array_equal(a, e, equal_nan=True)
    assert ok, f"{what}: {describe_mismatch(a, e)}"


def assert_close(actual, expected, what, rtol, atol):
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    ok = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    assert ok.all(), f"{what} (rtol={rtol}, atol={atol}): {describe_mismatch(a, e)}"


@pytest.fixture
def data_dir():
    return DATA


# --------------------------------------------------------------------------
# The long checks (issue 13): `pytest --full` also runs the tests marked
# `full` - the whole suite again under AddressSanitizer + UBSan
# (test_sanitizers.py) and the 64-bit size tests (test_sizes64.py). README's
# test command, which CI runs, passes --full.

def pytest_addoption(parser):
    parser.addoption("--full", action="store_true", default=False,
                     help="also run the long checks: the suite under ASan+UBSan, 64-bit sizes")


def pytest_configure(config):
    config.addinivalue_line("markers", "full: a long check, run with --full (CI)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--full"):
        return
    skip = pytest.mark.skip(reason="a long check: run with --full")
    for item in items:
        if "full" in item.keywords:
            item.add_marker(skip)
