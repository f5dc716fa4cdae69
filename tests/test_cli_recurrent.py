"""The char-RNN command line with [gru] and [lstm] networks: the shipped cfg
files fit together, `train` runs with and without --exact (the note about
Darknet's behaviour is printed once, and only without --exact), and the
trained weights generate and validate."""
import re

import pytest

import darknet_rnn
from conftest import assert_bitwise
from test_cli import ROOT, make_corpus, ok, run

TINY = """[net]
batch={batch}
subdivisions=1
time_steps={steps}
inputs=256
learning_rate=0.5
momentum=0.9
decay=0.0001
max_batches=20
policy=constant

{layer}
[connected]
output=256
activation=linear

[softmax]
"""
LAYERS = {"gru": "[gru]\noutput=16\ntanh=1\nbatch_normalize=1\n",
          "lstm": "[lstm]\noutput=16\n"}   # (Darknet's BN backward diverges with 4 streams)


@pytest.mark.parametrize("name", ["char-gru", "char-lstm"])
def test_shipped_cfgs_train_and_infer_shapes_fit(name, tmp_path):
    train = darknet_rnn.load_network(f"{ROOT}/cfg/{name}.train.cfg", seed=1)
    train.save_weights(tmp_path / "w")
    infer = darknet_rnn.load_network(f"{ROOT}/cfg/{name}.cfg", tmp_path / "w")
    for p, q in zip(train.params(), infer.params()):
        assert p.name == q.name
        assert_bitwise(p.value, q.value, p.name)
    small = darknet_rnn.load_network(f"{ROOT}/cfg/char-small.train.cfg", seed=1)
    count = lambda n: sum(p.value.size for p in n.params() if p.name.endswith("weights"))  # noqa
    assert abs(count(train) - count(small)) <= 0.01 * count(small)   # equal parameters


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_train_generate_valid(layer, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(make_corpus(400))
    train_cfg = tmp_path / f"{layer}.train.cfg"
    train_cfg.write_text(TINY.format(batch=4, steps=8, layer=LAYERS[layer]))
    infer_cfg = tmp_path / f"{layer}.cfg"
    infer_cfg.write_text(TINY.format(batch=1, steps=1, layer=LAYERS[layer]))
    notes = {}
    for mode in ("darknet", "exact"):
        args = ["train", train_cfg, "--file", corpus, "--out", tmp_path / mode, "--srand", 3,
                "--progress", "none", "--valid-every", 0]
        p = ok(run(*args, *(["--exact"] if mode == "exact" else [])))
        err = p.stderr.decode()
        notes[mode] = [l for l in err.splitlines() if f"warning: [{layer}]" in l]
        assert re.search(r"validation \d+\.\d+", err + p.stdout.decode())   # the final summary
    assert len(notes["darknet"]) == 1 and "--exact" in notes["darknet"][0]
    assert notes["exact"] == []
    weights = tmp_path / "exact" / f"{layer}_final.weights"
    g = ok(run("generate", infer_cfg, weights, "--srand", 1, "--len", 50))
    assert len(g.stdout) >= 50
    v = ok(run("valid", infer_cfg, weights, "--file", corpus, "-q"))
    assert re.search(rb"\d+\.\d+", v.stdout)
