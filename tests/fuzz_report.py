"""Run bigger fuzz campaigns than the test suite does and count how each
hostile input ended (a tool, not a test):

    PYTHONPATH=. python tests/fuzz_report.py [EXAMPLES_PER_FAMILY]

Families: generated cfg text, random bytes as a cfg, mutated weights files
(strict and Darknet mode), random bytes as weights. Prints, per family, the
outcomes (stage reached and exception type) with their counts; any other
exception is a failure and stops the run with its input.
"""
import collections
import os
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import darknet_rnn  # noqa: E402
import test_fuzz as F  # noqa: E402


def campaign(n):
    os.environ[F.ENV_MAX_BYTES] = str(64 << 20)
    opts = settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
    tally = collections.defaultdict(collections.Counter)

    def cfg_outcome(family, text, strict=True):
        stage, err = F.run_cfg(text, strict)
        tally[family][f"{stage}: {'ok' if err is None else type(err).__name__}"] += 1

    @opts
    @given(F.cfg_text)
    def cfg_text(text):
        cfg_outcome("cfg text (generated)", text)

    @opts
    @given(F.cfg_mutated())
    def cfg_values(text):
        cfg_outcome("cfg values (valid cfg, hostile values)", text)
        cfg_outcome("cfg values, strict=False (Darknet's behaviour)", text, strict=False)

    @opts
    @given(st.binary(max_size=400))
    def cfg_bytes(data):
        cfg_outcome("cfg bytes (random)", data)

    d = tempfile.mkdtemp()
    cfg = os.path.join(d, "net.cfg")
    with open(cfg, "w") as f:
        f.write(F.WEIGHTS_CFG)
    net = darknet_rnn.load_network(cfg, seed=1)
    good = os.path.join(d, "good.weights")
    net.save_weights(good)
    with open(good, "rb") as f:
        good_bytes = f.read()
    import pathlib
    dp = pathlib.Path(d)

    def w_outcome(family, data, **kw):
        err = F.load_bytes(net, data, dp, **kw)
        tally[family]["loaded" if err is None else type(err).__name__] += 1

    @opts
    @given(F.ops)
    def weights_mut(ops):
        w_outcome("weights mutated (strict)", F._mutate(good_bytes, ops))
        w_outcome("weights mutated (strict=False)", F._mutate(good_bytes, ops), strict=False)

    @opts
    @given(st.binary(max_size=300))
    def weights_rand(data):
        w_outcome("weights random bytes (strict)", data)
        w_outcome("weights random bytes (strict=False)", data, strict=False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.seterr(all="ignore")
        for f in (cfg_text, cfg_values, cfg_bytes, weights_mut, weights_rand):
            f()
    return tally


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    for family, counts in campaign(n).items():
        total = sum(counts.values())
        print(f"{family}: {total}")
        for outcome, c in counts.most_common():
            print(f"    {c:6d}  {outcome}")
