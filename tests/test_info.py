"""`darknet-rnn info` and darknet_rnn.info.network_summary against counts
done by hand."""
import struct

import pytest

import darknet_rnn
from darknet_rnn.info import format_summary, network_summary
from test_cli import ok, one_error_line, run

HAND = """[net]
batch=2
subdivisions=1
time_steps=3
inputs=5

[rnn]
output=3
activation=tanh
{bn}
[dropout]
probability=0.25

[connected]
output=5
activation=linear

[softmax]
"""


def write(tmp_path, bn=False):
    p = tmp_path / ("hand-bn.cfg" if bn else "hand.cfg")
    p.write_text(HAND.format(bn="batch_normalize=1\n" if bn else ""))
    return str(p)


def test_counts_by_hand(tmp_path):
    s = network_summary(write(tmp_path))
    # [rnn] 5->3: input 5*3+3, self 3*3+3, output 3*3+3; [connected] 3->5: 3*5+5
    assert [l.parameters for l in s.layers] == [18 + 12 + 12, 0, 20, 0]
    assert [l.stored for l in s.layers] == [42, 0, 20, 0]
    assert s.parameters == 62 and s.weights_bytes == 20 + 4 * 62
    # forward: 2 FLOP per multiply-add, per symbol: 2*(15 + 9 + 9) + 2*15
    assert [l.forward_flops for l in s.layers] == [66, 0, 30, 0]
    # training: forward, weight gradients and input deltas (not for the first block)
    assert s.train_flops == 3 * 96 - 2 * 15
    assert [l.options for l in s.layers] == ["tanh", "probability=0.25", "linear",
                                             "cross-entropy"]
    text = format_summary(s)
    assert "62 trainable" in text and "268 bytes" in text and "1.55 kFLOP per batch of 6" in text


def test_batch_norm_counts(tmp_path):
    s = network_summary(write(tmp_path, bn=True))
    # each of the 3 sublayers adds scales (trainable) and rolling mean/variance (stored)
    assert s.layers[0].parameters == 42 + 3 * 3 and s.layers[0].stored == 42 + 3 * 9
    assert s.layers[0].options == "tanh, batch_normalize"


def test_weights_header_and_size(tmp_path):
    cfg = write(tmp_path)
    net = darknet_rnn.load_network(cfg, seed=1)
    net.seen = 600
    w = tmp_path / "h.weights"
    net.save_weights(str(w))
    s = network_summary(cfg, str(w))
    assert (s.weights.version, s.weights.seen, s.weights.matches) == ("0.2.0", 600, True)
    assert "seen 600 (100 batches of this cfg)" in format_summary(s)
    short = tmp_path / "short.weights"
    short.write_bytes(w.read_bytes()[:-8])
    text = format_summary(network_summary(cfg, str(short)))
    assert "does NOT match the cfg, which needs 268 bytes (8 bytes missing)" in text
    old = tmp_path / "old.weights"                  # version 0.1: an int32 seen
    old.write_bytes(struct.pack("<iiii", 0, 1, 0, 6) + w.read_bytes()[20:])
    s = network_summary(cfg, str(old))
    assert s.weights.version == "0.1.0" and s.weights.seen == 6 and s.weights.matches


def test_info_command(tmp_path):
    cfg = write(tmp_path)
    net = darknet_rnn.load_network(cfg, seed=1)
    net.save_weights(str(tmp_path / "x.weights"))
    out = ok(run("info", cfg, tmp_path / "x.weights")).stdout.decode()
    assert "62 trainable" in out and "version 0.2.0, seen 0" in out and "matches" in out
    out = ok(run("info", "char-small")).stdout.decode()       # a packaged cfg by name
    assert "char-small.cfg" in out and "1 stream(s) x 1 step(s)" in out
    one_error_line(run("info", cfg, tmp_path / "none.weights"), r"none\.weights")


@pytest.mark.parametrize("name", ["rnn.train", "char-small.train"])
def test_packaged_cfgs_summarise(name):
    s = network_summary(darknet_rnn.cfg_path(name))
    assert s.parameters > 0 and s.weights_bytes == 20 + 4 * s.stored
