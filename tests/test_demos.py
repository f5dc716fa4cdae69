"""`darknet-rnn demo adding|spaces` on tiny settings: the data they build,
the tables they print, reproducibility, and results that a broken many-to-one
or bidirectional path would not reach."""
import random
import re

import numpy as np
import pytest

from darknet_rnn import cli
from darknet_rnn.demos import adding, spaces


def rows(out, first_cell=None):
    """The body rows of the Markdown tables in `out`, as lists of cells."""
    got = []
    for line in out.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if cells[0] in ("steps", "model"):
                continue
            if first_cell is None or cells[0] == first_cell:
                got.append(cells)
    return got


def run(capsys, argv):
    assert cli.main(argv) == 0
    return capsys.readouterr().out


def no_times(out):
    """The output without its wall times (the one thing a seed does not fix)."""
    return re.sub(r"\| [0-9.]+ s \|", "| - |", out)


def test_adding_batches():
    rng = np.random.default_rng(0)
    x, y = adding.make_batch(rng, 9, 200)
    assert x.shape == (9, 200, 2) and y.shape == (200, 1) and x.dtype == np.float32
    values, markers = x[:, :, 0], x[:, :, 1]
    assert ((values >= 0) & (values < 1)).all()
    assert set(np.unique(markers)) == {0.0, 1.0}
    assert (markers.sum(axis=0) == 2).all()
    for s in range(200):
        first, second = np.flatnonzero(markers[:, s])
        assert first < 4 <= second           # one in each half (half = 9 // 2)
        assert y[s, 0] == np.float32(values[first, s] + values[second, s])
    assert abs(np.var(y) - 2 / 12) < 0.04     # what a constant predictor scores


TINY = ["demo", "adding", "--steps", "4,7", "--iterations", "20", "--streams", "4",
        "--hidden", "6", "--test", "16"]


def test_adding_tables_and_reproducibility(capsys):
    out = run(capsys, TINY)
    body = rows(out)
    results = [r for r in body if r[1] in adding.RECIPES and len(r) == 5]
    assert [(r[0], r[1]) for r in results] == [(s, n) for s in ("4", "7") for n in adding.RECIPES]
    for r in results:
        assert np.isfinite(float(r[2])) and float(r[2]) >= 0
    clipped = [r[3] for r in results if r[1] == "exact+clip"]
    assert all(c.endswith("/20") for c in clipped)
    assert [r[3] for r in results if r[1] != "exact+clip"] == ["", "", "", ""]
    constant = [float(r[2]) for r in body if r[1] == "constant (mean)"]
    assert len(constant) == 2 and all(0.08 < c < 0.3 for c in constant)
    # the gradient table: every length, initial weights and each recipe,
    # relative to the last step
    norms = [r for r in body if len(r) == 7]
    assert [(r[0], r[1]) for r in norms] == [(s, n) for s in ("4", "7")
                                             for n in ("initial weights",) + tuple(adding.RECIPES)]
    assert all(float(r[-1]) == 1.0 and min(map(float, r[2:])) > 0 for r in norms)
    assert "| steps | weights | t=0 | t=T/4 | t=T/2 | t=3T/4 | t=T-1 |" in out
    assert adding.norm_columns(7) == [0, 1, 3, 5, 6]
    assert no_times(run(capsys, TINY)) == no_times(out)
    assert no_times(run(capsys, TINY + ["--seed", "2"])) != no_times(out)


def test_adding_many_to_one_learns_and_the_gradient_vanishes(capsys):
    out = run(capsys, ["demo", "adding", "--steps", "6", "--iterations", "400", "--streams",
                       "16", "--hidden", "16", "--test", "128", "--recipes", "exact",
                       "--learning-rate", "0.01"])
    body = rows(out, "6")
    constant = float(body[0][2])
    exact = float(next(r for r in body if r[1] == "exact")[2])
    assert exact < 0.2 * constant, out
    initial = next(r for r in body if r[1] == "initial weights")
    rel = [float(c) for c in initial[2:]]
    assert rel[-1] == 1.0 and rel[0] < rel[-1] and rel == sorted(rel), out


def test_adding_arguments(capsys):
    with pytest.raises(SystemExit):
        cli.main(["demo", "adding", "--recipes", "exact,nope"])
    assert "unknown recipe 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["demo", "adding", "--steps", "0"])
    assert cli.main(["demo"]) == 2
    assert cli.main(["demo", "nope"]) == 2
    assert "unknown demo 'nope'" in capsys.readouterr().err


def test_strip_spaces():
    codes, labels = spaces.strip_spaces(b"ab cd\n\t e")
    assert bytes(codes) == b"abcde"
    assert labels.tolist() == [0, 1, 0, 1, 0]
    codes, labels = spaces.strip_spaces(b"  x yz ")
    assert bytes(codes) == b"xyz" and labels.tolist() == [1, 0, 1]


def test_spaces_tagging_windows_cover_the_text(tmp_path):
    """tag() hands every window to the network once, in order."""
    class Echo:                       # a network that tags the byte 'b'
        time_steps, streams = 4, 3

        def infer(self, x):
            return np.stack([1 - x[..., 98], x[..., 98]], axis=-1)
    codes = np.frombuffer(b"abcabbbxbb" * 3 + b"xy", np.uint8)
    pred, n = spaces.tag(Echo(), codes)
    assert n == 32 and pred.tolist() == [int(c == 98) for c in codes[:32]]


def test_spaces_bidirectional_sees_the_future(tmp_path, capsys):
    """Words 'a' and 'ab': whether an 'a' ends a word depends only on the
    next byte, so a unidirectional tagger cannot beat 2/3 while a
    bidirectional one can be right almost everywhere."""
    rnd = random.Random(0)
    text = tmp_path / "ab.txt"
    text.write_text(" ".join(rnd.choice(["a", "ab"]) for _ in range(6000)) + "\n")
    argv = ["demo", "spaces", "--file", str(text), "--iterations", "150", "--streams", "8",
            "--steps", "12", "--hidden", "8", "--learning-rate", "0.02"]
    out = run(capsys, argv)
    acc = {r[0]: float(r[2]) for r in rows(out)}
    assert set(acc) == {"never a space", "unidirectional", "bidirectional"}
    assert acc["unidirectional"] < 0.7
    assert acc["bidirectional"] > 0.9
    assert no_times(run(capsys, argv)) == no_times(out)
    example = out.split("```")[1].strip().splitlines()
    assert [line.split(":")[0].strip() for line in example] == ["truth", "unidirectional",
                                                                 "bidirectional"]
    shown = example[0].split(": ", 1)[1].strip()
    assert len(shown.replace(" ", "")) == 60 and shown in text.read_text()


def test_spaces_arguments(tmp_path, capsys):
    short = tmp_path / "short.txt"
    short.write_text("a b c d\n")
    with pytest.raises(SystemExit):
        cli.main(["demo", "spaces", "--file", str(short)])
    assert "too short" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["demo", "spaces", "--hidden", "1"])
