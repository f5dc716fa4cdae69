"""Learning-rate policies (SPEC section 10): hand-worked values and the
rates recorded by Darknet in the golden fixtures."""
import json
import math
import pathlib
import warnings

import numpy as np
import pytest

from darknet_rnn._rand import GlibcRandom
from darknet_rnn.cfg import NetOptions, parse_cfg
from darknet_rnn.policy import batch_num, current_rate, uint64_to_float32

DATA = pathlib.Path(__file__).parent / "data"
CASES = sorted(p.name for p in DATA.iterdir() if (p / "meta.json").exists())

f32 = np.float32


def bits(x):
    return int(np.float32(x).view(np.uint32))


def same(a, b):
    """Bitwise float32 equality (NaN-aware)."""
    return bits(a) == bits(b)


def net(**kw):
    kw = {k: (float(f32(v)) if isinstance(v, float) else v) for k, v in kw.items()}
    return NetOptions(**kw)


LR = 0.1


def test_constant():
    n = net(learning_rate=LR, policy="constant")
    for b in (0, 1, 7, 10**6, 2**64 - 1):
        r = current_rate(n, b)
        assert isinstance(r, np.float32)
        assert same(r, f32(LR))


def test_step():
    n = net(learning_rate=LR, policy="step", step=2, scale=0.5)
    for b in range(0, 9):
        exp = f32(float(f32(LR)) * math.pow(float(f32(0.5)), b // 2))
        assert same(current_rate(n, b), exp), b
    assert same(current_rate(n, 5), f32(float(f32(LR)) * 0.25))


def test_step_scale_not_representable():
    n = net(learning_rate=0.3, policy="step", step=3, scale=0.7)
    for b in (0, 3, 7, 30):
        exp = f32(float(f32(0.3)) * math.pow(float(f32(0.7)), b // 3))
        assert same(current_rate(n, b), exp)


def test_steps():
    n = net(learning_rate=LR, policy="steps", steps=[2, 4], scales=[float(f32(.5)), float(f32(.2))])
    r1 = f32(LR)
    r2 = f32(r1 * f32(.5))
    r3 = f32(r2 * f32(.2))
    expected = [r1, r1, r2, r2, r3, r3, r3]
    for b, e in enumerate(expected):
        assert same(current_rate(n, b), e), b


def test_steps_scale_greater_than_one_and_unsorted():
    n = net(learning_rate=0.3, policy="steps", steps=[1, 2], scales=[2.0, float(f32(.25))])
    assert same(current_rate(n, 0), f32(0.3))
    assert same(current_rate(n, 1), f32(f32(0.3) * f32(2)))
    assert same(current_rate(n, 2), f32(f32(f32(0.3) * f32(2)) * f32(.25)))
    # a negative step compares as a huge unsigned value: stops the scan
    n = net(learning_rate=0.3, policy="steps", steps=[-1, 0], scales=[0.5, 0.5])
    assert same(current_rate(n, 10), f32(0.3))


def test_exp():
    n = net(learning_rate=LR, policy="exp", gamma=0.8)
    for b in (0, 1, 3, 10, 1000):
        exp = f32(float(f32(LR)) * math.pow(float(f32(0.8)), float(b)))
        assert same(current_rate(n, b), exp), b


def test_poly():
    n = net(learning_rate=0.2, policy="poly", power=2.0, max_batches=8)
    for b in range(0, 12):
        base = f32(f32(1) - f32(f32(b) / f32(8)))
        exp = f32(float(f32(0.2)) * math.pow(float(base), 2.0))
        assert same(current_rate(n, b), exp), b


def test_poly_fractional_power_past_end_is_nan():
    n = net(learning_rate=0.2, policy="poly", power=0.5, max_batches=4)
    assert np.isnan(current_rate(n, 6))       # pow(negative, 0.5) in C: NaN


def test_poly_max_batches_zero():
    n = net(learning_rate=0.2, policy="poly", power=4.0, max_batches=0)
    assert np.isnan(current_rate(n, 0))       # 0/0
    assert current_rate(n, 3) == np.inf       # pow(-inf, 4) = inf


def test_random():
    n = net(learning_rate=LR, policy="random", power=2.0)
    rng, twin = GlibcRandom(5), GlibcRandom(5)
    for b in range(5):
        u = f32(f32(twin.rand()) / f32(2**31))
        exp = f32(float(f32(LR)) * math.pow(float(u), 2.0))
        assert same(current_rate(n, b, rng), exp)
    with pytest.raises(ValueError):
        current_rate(n, 1)


def test_sigmoid_unsigned_wrap():
    n = net(learning_rate=0.5, policy="sigmoid", gamma=1.0, step=2)
    assert current_rate(n, 0) == 0 and bits(current_rate(n, 0)) == 0
    assert bits(current_rate(n, 1)) == 0
    assert same(current_rate(n, 2), f32(0.25))          # lr / 2
    for b in (3, 4, 10):
        exp = f32(0.5 * (1.0 / (1.0 + math.exp(float(f32(b - 2))))))
        assert same(current_rate(n, b), exp)


def test_sigmoid_gamma_scaled():
    n = net(learning_rate=0.5, policy="sigmoid", gamma=0.3, step=5)
    for b in (5, 6, 9, 40):
        g = f32(f32(0.3) * f32(b - 5))
        exp = f32(float(f32(0.5)) * (1.0 / (1.0 + math.exp(float(g)))))
        assert same(current_rate(n, b), exp)
    # negative gamma: the wrapped difference makes exp(-huge) = 0 -> full rate
    n = net(learning_rate=0.5, policy="sigmoid", gamma=-1.0, step=5)
    assert same(current_rate(n, 1), f32(0.5))


def test_burn_in():
    n = net(learning_rate=0.8, policy="constant", burn_in=4, power=2.0)
    for b in range(4):
        ratio = f32(f32(b) / f32(4))
        exp = f32(float(f32(0.8)) * math.pow(float(ratio), 2.0))
        assert same(current_rate(n, b), exp), b
    assert same(current_rate(n, 4), f32(0.8))
    assert bits(current_rate(n, 0)) == 0


def test_burn_in_before_policy():
    n = net(learning_rate=0.5, policy="step", step=1, scale=0.5, burn_in=3, power=1.0)
    assert same(current_rate(n, 1), f32(0.5 * float(f32(f32(1) / f32(3)))))
    assert same(current_rate(n, 3), f32(0.5 * 0.125))


def test_burn_in_default_power_four():
    n = net(learning_rate=1.0, policy="constant", burn_in=10)
    assert n.power == 4.0
    assert same(current_rate(n, 5), f32(math.pow(0.5, 4)))


def test_uint64_to_float32_no_double_rounding():
    # exactly halfway after rounding to double, just above halfway in exact terms
    n = (1 << 63) + (1 << 39) + 1
    via_double = f32(float(n))
    direct = uint64_to_float32(n)
    assert int(direct) == (1 << 63) + (1 << 40)
    assert int(via_double) == (1 << 63)
    vals = [0, 1, 2**24 + 1, 2**24 + 3, 2**53 + 1, n, 2**64 - 1, 12345678901234567]
    ref = np.array(vals, dtype=np.uint64).astype(np.float32)
    for v, r in zip(vals, ref):
        assert same(uint64_to_float32(v), r), v


def test_batch_num():
    n = net(batch=4, subdivisions=2, time_steps=4)        # streams 2, net_batch 8
    assert n.net_batch == 8
    assert batch_num(8, n) == 0
    assert batch_num(16, n) == 1
    assert batch_num(47, n) == 2
    n = net(batch=3, subdivisions=1, time_steps=8)
    assert batch_num(24, n) == 1 and batch_num(72, n) == 3


@pytest.mark.parametrize("case", CASES)
def test_golden_rates(case):
    d = DATA / case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = parse_cfg(d / "net.cfg")
    rates = np.load(d / "data.npz")["rate"]
    meta = json.loads((d / "meta.json").read_text())
    assert spec.net.net_batch == meta["darknet_net_batch"]
    for i, expected in enumerate(rates):
        seen = (i + 1) * spec.net.net_batch
        b = seen // (spec.net.net_batch * spec.net.subdivisions)
        assert batch_num(seen, spec.net) == b
        got = current_rate(spec.net, b)
        assert same(got, expected), (case, i, got, expected)
