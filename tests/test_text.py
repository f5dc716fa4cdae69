"""darknet_rnn.text: corpus, Darknet's batch layout and stream jumps, the
training loop, sampling and validation arithmetic.

Most tests run against FakeNet, a deterministic bigram model with the subset
of the Network API the char-RNN code uses; the rest use the real network.
"""
import math

import numpy as np
import pytest

from darknet_rnn import text as T
from darknet_rnn._rand import RAND_MAX, GlibcRandom
from darknet_rnn.errors import DarknetError


class FakeNet:
    """A bigram model (one row of logits per previous byte) trained by SGD on
    Darknet's softmax cross-entropy. Stateless, deterministic."""

    inputs = outputs = 256

    def __init__(self, streams=2, time_steps=4, max_batches=10, lr=0.5, subdivisions=1):
        self.streams, self.time_steps, self.subdivisions = streams, time_steps, subdivisions
        self.batch = streams * time_steps
        self.max_batches = max_batches
        self.seen = 0
        self.lr = lr
        self.logits = np.zeros((256, 256), dtype=np.float64)
        self.temperature = 1.0
        self.predict_calls = 0
        self.resets = 0
        self.trained = []          # (x, y) of every train call

    def _probs(self, rows):
        z = self.logits[rows] / self.temperature
        z = np.exp(z - z.max(axis=-1, keepdims=True))
        return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)

    def train(self, x, y):
        assert x.shape == (self.time_steps, self.streams, 256) and x.dtype == np.float32
        assert y.shape == x.shape and y.dtype == np.float32
        self.trained.append((x.copy(), y.copy()))
        self.seen += self.batch
        xi = x.reshape(-1, 256).argmax(axis=1)
        yi = y.reshape(-1, 256).argmax(axis=1)
        p = self._probs(xi)
        cost = float(-np.log(p[np.arange(xi.size), yi]).sum())
        grad = y.reshape(-1, 256) - p
        np.add.at(self.logits, xi, self.lr * grad)
        return cost

    def predict(self, x):
        self.predict_calls += 1
        x = np.asarray(x)
        if self.batch == 1:
            assert x.shape == (256,)
            return self._probs(int(x.argmax()))
        assert x.shape == (self.time_steps, self.streams, 256)
        return self._probs(x.reshape(-1, 256).argmax(axis=1))

    def current_batch(self):
        return self.seen // (self.batch * self.subdivisions)

    def current_rate(self):
        return self.lr

    def reset_state(self):
        self.resets += 1

    def set_temperature(self, t):
        self.temperature = t


class UniformNet(FakeNet):
    """Always predicts the uniform distribution (8 bits per character)."""

    def _probs(self, rows):
        rows = np.asarray(rows)
        return np.full(rows.shape + (256,), 1.0 / 256, dtype=np.float32)


TEXT = (b"the quick brown fox jumps over the lazy dog. " * 40)


# --------------------------------------------------------------------------
# corpus and files

def test_default_corpus_is_the_sorted_pydoc_topics():
    from pydoc_data import topics
    corpus = T.default_corpus()
    assert isinstance(corpus, bytes)
    assert len(corpus) > 400_000
    assert 0 not in corpus
    first = sorted(topics.topics)[0]
    assert corpus.startswith(topics.topics[first].encode("utf-8"))
    assert corpus == T.default_corpus()


def test_load_text_reads_bytes(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"abc\xc3\xa9\n")
    assert T.load_text(p) == b"abc\xc3\xa9\n"


def test_load_text_rejects_zero_byte_naming_offset(tmp_path):
    p = tmp_path / "z.txt"
    p.write_bytes(b"hello\x00world")
    with pytest.raises(T.TextError, match="offset 5"):
        T.load_text(p)
    assert issubclass(T.TextError, DarknetError) and issubclass(T.TextError, ValueError)


def test_load_text_errors(tmp_path):
    with pytest.raises(OSError):
        T.load_text(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(T.TextError, match="empty"):
        T.load_text(tmp_path / "empty.txt")


def test_split_text():
    tr, va = T.split_text(b"0123456789" * 10, 0.1)
    assert tr == (b"0123456789" * 10)[:90] and va == b"0123456789"
    assert T.split_text(b"abcdef", 0.0) == (b"abcdef", b"")
    assert T.split_text(b"abcdef", 0.1) == (b"abcdef", b"")   # would be < 2 bytes
    with pytest.raises(ValueError):
        T.split_text(b"abc", 1.0)


def test_decode_escapes():
    assert T.decode_escapes("\\n\\n") == b"\n\n"
    assert T.decode_escapes("a\\tb\\\\c\\x41\\q") == b"a\tb\\cA\\q"
    assert T.decode_escapes("é") == "é".encode()
    assert T.decode_escapes("\n") == b"\n"


# --------------------------------------------------------------------------
# batches

def test_get_batch_layout_and_offsets():
    text = b"abcdefghij"
    offsets = np.array([0, 7], dtype=np.int64)
    x, y = T.get_batch(text, offsets, streams=2, steps=4)
    assert x.shape == y.shape == (4, 2, 256)
    assert x.dtype == y.dtype == np.float32
    assert np.all(x.sum(axis=-1) == 1) and np.all(y.sum(axis=-1) == 1)
    xs = x.argmax(-1)
    ys = y.argmax(-1)
    # stream 0 reads abcd, stream 1 wraps: hija
    assert bytes(xs[:, 0].tolist()) == b"abcd" and bytes(ys[:, 0].tolist()) == b"bcde"
    assert bytes(xs[:, 1].tolist()) == b"hija" and bytes(ys[:, 1].tolist()) == b"ijab"
    # time-major rows: row t*streams + s
    rows = x.reshape(-1, 256).argmax(-1)
    assert bytes(rows.tolist()) == b"ahbicjda"
    assert offsets.tolist() == [4, 1]


def test_get_batch_rejects_zero_bytes_and_bad_offsets():
    with pytest.raises(T.TextError, match="offset 3"):
        T.get_batch(b"abc\x00def", np.array([1], dtype=np.int64), 1, 4)
    with pytest.raises(TypeError):
        T.get_batch(b"abcdef", [0], 1, 2)


def test_rand_size_t_is_eight_low_bytes():
    a, b = GlibcRandom(7), GlibcRandom(7)
    v = T.rand_size_t(a)
    parts = [b.rand() & 0xFF for _ in range(8)]
    assert v == int.from_bytes(bytes(parts), "big")


def test_char_batcher_draws_like_darknet():
    text = bytes(range(1, 200)) * 3
    n = len(text)
    b = T.CharBatcher(text, streams=5, steps=3, rng=GlibcRandom(11))
    ref = GlibcRandom(11)
    expect = [T.rand_size_t(ref) % n for _ in range(5)]
    assert b.offsets.tolist() == expect
    for _ in range(200):
        x, _ = b.next_batch()
        assert x.argmax(-1)[0].tolist() == [text[o] for o in expect]
        expect = [(o + 3) % n for o in expect]
        jumped = b.jump()
        want = []
        for s in range(5):
            if ref.rand() % 64 == 0:
                expect[s] = T.rand_size_t(ref) % n
                want.append(s)
        assert jumped == want
        assert b.offsets.tolist() == expect


def test_jump_frequency_is_one_in_64():
    b = T.CharBatcher(TEXT, streams=8, steps=2, rng=GlibcRandom(3))
    jumps = sum(len(b.jump()) for _ in range(2000))
    assert abs(jumps / 16000 - 1 / 64) < 0.005


def test_char_batcher_too_short():
    with pytest.raises(T.TextError, match="shorter than one batch"):
        T.CharBatcher(b"x" * 16, streams=4, steps=4, rng=GlibcRandom(1))
    T.CharBatcher(b"x" * 17, streams=4, steps=4, rng=GlibcRandom(1))


@pytest.mark.parametrize("n", [0, 1, 30, 4095, 4096, 12345, 100_003])
def test_skip_draws_matches_calling_rand(n):
    fast, slow = GlibcRandom(99), GlibcRandom(99)
    T.skip_draws(fast, n)
    for _ in range(n):
        slow.rand()
    assert [fast.rand() for _ in range(50)] == [slow.rand() for _ in range(50)]


# --------------------------------------------------------------------------
# sampling

def _darknet_sample(probs, r_int):
    """sample_array after the 1e-4 floor, scalar float32 as in C."""
    a = [np.float32(p) for p in probs]
    a = [np.float32(0) if float(p) < 0.0001 else p for p in a]
    s = np.float32(0)
    for p in a:
        s = np.float32(s + p)
    scale = np.float32(1.0 / float(s))
    a = [np.float32(p * scale) for p in a]
    r = np.float32(np.float32(r_int) / np.float32(RAND_MAX))
    for i, p in enumerate(a):
        r = np.float32(r - p)
        if r <= 0:
            return i
    return len(a) - 1


class _FixedRand:
    def __init__(self, values):
        self.values = list(values)

    def rand(self):
        return self.values.pop(0)


def test_sample_index_matches_scalar_c_arithmetic():
    gen = np.random.default_rng(0)
    draws = GlibcRandom(5)
    for k in range(300):
        logits = gen.normal(0, 3, 256)
        p = np.exp(logits - logits.max())
        p = (p / p.sum()).astype(np.float32)
        r = draws.rand() if k % 3 else [0, 1, RAND_MAX, RAND_MAX - 1][k % 4]
        assert T.sample_index(p, _FixedRand([r])) == _darknet_sample(p, r)


def test_sample_index_edges():
    p = np.zeros(256, np.float32)
    p[65] = 1.0
    assert T.sample_index(p, _FixedRand([0])) == 0       # r = 0 stops at once, as in C
    assert T.sample_index(p, _FixedRand([1])) == 65
    assert T.sample_index(p, _FixedRand([RAND_MAX])) == 65
    tiny = np.full(256, 1e-5, np.float32)     # everything under the floor
    assert T.sample_index(tiny, _FixedRand([5])) == 255
    two = np.zeros(256, np.float32)
    two[[10, 20]] = 0.5
    assert T.sample_index(two, _FixedRand([RAND_MAX // 4])) == 10
    assert T.sample_index(two, _FixedRand([3 * (RAND_MAX // 4)])) == 20


def test_generate_primes_echoes_and_samples():
    net = FakeNet(streams=1, time_steps=1)
    out = list(T.generate(net, b"abc", n=20, temp=0.5, rng=GlibcRandom(1)))
    assert all(isinstance(b, bytes) and len(b) == 1 for b in out)
    assert b"".join(out[:3]) == b"abc" and len(out) == 23
    assert net.predict_calls == 2 + 20
    assert net.temperature == 0.5
    again = b"".join(T.generate(FakeNet(1, 1), b"abc", 20, 0.5, GlibcRandom(1)))
    assert again == b"".join(out)
    other = b"".join(T.generate(FakeNet(1, 1), b"abc", 20, 0.5, GlibcRandom(2)))
    assert other != again
    # each sample uses exactly one rand(), as Darknet's sample_array
    rng = GlibcRandom(1)
    ref = GlibcRandom(1)
    fn = FakeNet(1, 1)
    s = b"".join(T.generate(fn, b"\n\n", 10, 1.0, rng, echo_seed=False))
    want = []
    c = ord("\n")
    for _ in range(10):
        c = _darknet_sample(fn._probs(c), ref.rand())
        want.append(c)
    assert s == bytes(want)


def test_generate_errors():
    with pytest.raises(T.TextError, match="empty"):
        list(T.generate(FakeNet(1, 1), b"", 5))
    with pytest.raises(T.TextError, match="batch=1"):
        list(T.generate(FakeNet(2, 1), b"ab", 5))


def test_generate_streams():
    net = FakeNet(streams=3, time_steps=1)
    out = T.generate_streams(net, b"th", n=30, temp=0.7, rng=GlibcRandom(4))
    assert len(out) == 3 and all(len(s) == 32 and s.startswith(b"th") for s in out)
    assert len(set(out)) > 1
    assert out == T.generate_streams(FakeNet(3, 1), b"th", 30, 0.7, GlibcRandom(4))


# --------------------------------------------------------------------------
# validation

def test_validate_uniform_is_8_bits():
    net = UniformNet(streams=1, time_steps=1)
    text = b"ab cd\nef\tg"
    rows = list(T.iter_validate(net, text))
    assert [r.count for r in rows] == list(range(1, len(text)))
    assert net.predict_calls == 2 + len(text) - 1      # primed with "\n\n"
    last = rows[-1]
    assert last.bpc == pytest.approx(8.0, abs=1e-6)
    assert last.perplexity == pytest.approx(256.0, rel=1e-5)
    assert last.words == 1 + 3
    assert last.word_perplexity == pytest.approx(2 ** (8.0 * 9 / 4), rel=1e-5)
    assert T.validate(UniformNet(1, 1), text) == last
    assert T.format_valid_line(last) == (
        f"9 BPC: {last.bpc:.4f}   Perplexity: {last.perplexity:.4f}    "
        f"Word Perplexity: {last.word_perplexity:.4f}")


def test_validate_float32_running_sum():
    net = FakeNet(streams=1, time_steps=1)
    net.logits = np.random.default_rng(1).normal(0, 2, (256, 256))
    text = TEXT[:300]
    got = T.validate(net, text, seed=b"xy")
    log2 = float(np.float32(math.log(2)))
    s = np.float32(0)
    words = 1
    for c, nxt in zip(text[:-1], text[1:]):
        s = np.float32(float(s) + math.log(float(net._probs(c)[nxt])) / log2)
        words += nxt in b" \n\t"
    assert got.bpc == float(np.float32(-s) / np.float32(len(text) - 1))
    assert got.word_perplexity == 2.0 ** float(np.float32(-s) / np.float32(words))


def test_validate_needs_batch_one_and_two_bytes():
    with pytest.raises(T.TextError, match="batch=1"):
        T.validate(UniformNet(2, 1), b"abc")
    with pytest.raises(T.TextError, match="2 bytes"):
        T.validate(UniformNet(1, 1), b"a")


def test_evaluate_bpc_uniform_and_counts():
    net = UniformNet(streams=3, time_steps=4)
    r = T.evaluate_bpc(net, TEXT[:101])
    assert r.bpc == pytest.approx(8.0)
    assert r.count == (100 // 3) * 3
    assert net.resets == 1          # starts from zero; states are restored, not zeroed, after


def test_evaluate_bpc_puts_carried_states_back(tmp_path):
    """Validation in the middle of stateful training must not disturb it."""
    import darknet_rnn
    cfg = tmp_path / "s.cfg"
    cfg.write_text("[net]\nbatch=2\ntime_steps=3\ninputs=256\nlearning_rate=0.1\n"
                   "[rnn]\noutput=8\nactivation=tanh\n[connected]\noutput=256\n"
                   "activation=linear\n[softmax]\n")
    net = darknet_rnn.load_network(cfg, seed=1, stateful=True)
    x, y = T.get_batch(np.frombuffer(TEXT, np.uint8), np.array([0, 40]), 2, 3)
    net.train(x, y)
    before = [a.copy() for a in net.state_arrays()]
    assert before[1].any()
    T.evaluate_bpc(net, TEXT[:200])
    for a, b in zip(net.state_arrays(), before):
        assert np.array_equal(a, b)


def test_check_byte_network():
    net = FakeNet()
    net.inputs = 10
    with pytest.raises(T.TextError, match="inputs=10"):
        T.check_byte_network(net)


# --------------------------------------------------------------------------
# training loop

def test_train_loop_darknet_bookkeeping():
    net = FakeNet(streams=2, time_steps=4, max_batches=30, lr=5.0)
    steps = []
    last = T.train(net, TEXT, rng=GlibcRandom(1), callback=steps.append)
    assert [s.iteration for s in steps] == list(range(1, 31))
    assert last is steps[-1] and net.current_batch() == 30
    avg = None
    for s, (x, y) in zip(steps, net.trained):
        loss = np.float32(s.loss)
        avg = loss if avg is None else avg
        avg = np.float32(float(avg) * .9 + float(loss) * .1)
        assert s.avg_loss == float(avg)
        assert s.seen == s.iteration * 8
        assert s.epochs == pytest.approx(s.seen / len(TEXT))
        assert s.darknet_line().startswith(f"{s.iteration}: {s.loss:f}, {s.avg_loss:f} avg, ")
    assert steps[0].loss == pytest.approx(math.log(256), rel=1e-5)   # zero logits
    assert steps[-1].avg_loss < steps[0].loss - 2.0                  # it learned


def test_train_matches_batcher_sequence():
    net = FakeNet(streams=3, time_steps=5, max_batches=12)
    T.train(net, TEXT, rng=GlibcRandom(8))
    b = T.CharBatcher(TEXT, 3, 5, GlibcRandom(8))
    for x, y in net.trained:
        bx, by = b.next_batch()
        b.jump()
        assert np.array_equal(x, bx) and np.array_equal(y, by)


def test_train_resumes_from_seen_and_stops_on_callback():
    net = FakeNet(streams=2, time_steps=4, max_batches=20)
    net.seen = 8 * 15
    steps = []
    T.train(net, TEXT, rng=GlibcRandom(1), callback=steps.append)
    assert [s.iteration for s in steps] == [16, 17, 18, 19, 20]
    net = FakeNet(streams=2, time_steps=4, max_batches=20)
    n = T.train(net, TEXT, rng=GlibcRandom(1), callback=lambda s: s.iteration == 3)
    assert n.iteration == 3 and net.current_batch() == 3
    assert T.train(net, TEXT, rng=GlibcRandom(1), max_batches=3) is None


def test_train_validates_periodically():
    net = FakeNet(streams=2, time_steps=4, max_batches=10)
    steps = []
    T.train(net, TEXT, rng=GlibcRandom(1), valid_text=TEXT[:200], valid_every=4,
            callback=steps.append)
    have = [s.iteration for s in steps if s.valid is not None]
    assert have == [4, 8, 10]
    assert steps[-1].valid.bpc < 8.0


# --------------------------------------------------------------------------
# with the real network

def _real_net(tmp_path, body, **kw):
    darknet_rnn = pytest.importorskip("darknet_rnn")
    p = tmp_path / "n.cfg"
    p.write_text(body)
    return darknet_rnn.load_network(str(p), **kw)


TINY = """[net]
batch=4
subdivisions=1
time_steps=6
inputs=256
learning_rate=0.1
momentum=0.9
decay=0.001
max_batches=5
policy=constant

[rnn]
output=16
activation=leaky
batch_normalize=1

[connected]
output=256
activation=leaky

[softmax]
"""


def test_init_draws_counts_connected_weights(tmp_path):
    net = _real_net(tmp_path, TINY, seed=3)
    assert T.init_draws(net) == 256 * 16 + 16 * 16 + 16 * 16 + 16 * 256
    # the network's generator stands where skipping that many draws puts a fresh one
    ref = T.skip_draws(GlibcRandom(3), T.init_draws(net))
    assert [net.rng.rand() for _ in range(5)] == [ref.rand() for _ in range(5)]


def test_train_real_network_reduces_loss(tmp_path):
    net = _real_net(tmp_path, TINY, seed=1)
    steps = []
    T.train(net, TEXT, rng=GlibcRandom(1), max_batches=40, callback=steps.append)
    assert len(steps) == 40
    assert all(math.isfinite(s.loss) for s in steps)
    assert steps[-1].avg_loss < steps[0].loss - 1.0


# --------------------------------------------------------------------------
# the facade

def test_text_reexports_the_charrnn_modules():
    from darknet_rnn.charrnn import batches, corpus, evaluate, loop, sampling
    assert len(set(T.__all__)) == len(T.__all__)
    for name in T.__all__:
        assert hasattr(T, name), name
    assert T.train is loop.train and T.TrainStep is loop.TrainStep
    assert T.CharBatcher is batches.CharBatcher and T.skip_draws is batches.skip_draws
    assert T.TextError is corpus.TextError and T.load_text is corpus.load_text
    assert T.validate is evaluate.validate and T.ValidResult is evaluate.ValidResult
    assert T.generate is sampling.generate and T.sample_index is sampling.sample_index
