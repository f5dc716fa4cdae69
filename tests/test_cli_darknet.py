"""The command line as Darknet users type it, and its messages.

Every command runs `python -m darknet_rnn` in a subprocess (see test_cli.py
for the helpers): Darknet's single-dash spelling must give the same result
as the `--` spelling; vec, -tokenized, -tokens, argmax sampling, the layer
table, --lenient and the one-line errors.
"""
import re
import string

import numpy as np
import pytest

import darknet_rnn
from darknet_rnn import text as T
from test_cli import LOSS_LINE, make_cfg, make_corpus, ok, one_error_line, run


@pytest.fixture(scope="module")
def net_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("dk")
    corpus = d / "corpus.txt"
    corpus.write_bytes(make_corpus())
    cfg = make_cfg(d / "tiny.train.cfg", max_batches=300)
    infer = make_cfg(d / "tiny.cfg", batch=1, steps=1)
    # Trained on the reference kernel: the weights are then Darknet's arithmetic on
    # every machine. This BN net is chaotic (its rolling variance overflows early), so
    # fast kernels' last-bit differences give other weights, and some of those make
    # a generator whose state overflows within 1000 characters.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DARKNET_RNN_KERNEL", "reference")
        ok(run("train", cfg, "--file", corpus, "--out", d, "--srand", 5, "--max-batches", 60,
               "-q"))
    return {"dir": d, "corpus": str(corpus), "cfg": cfg, "infer": infer,
            "weights": str(d / "tiny_final.weights")}


def printable(text):
    return all(c in string.printable for c in text)


# --------------------------------------------------------------------------
# both spellings, the same result

def test_generate_darknet_spelling_equals_the_dash_dash_spelling(net_files):
    f = net_files
    darknet = ok(run("generate", f["infer"], f["weights"], "-len", 50, "-seed", "Chapter",
                     "-srand", 2, "-temp", 0.5)).stdout
    ours = ok(run("generate", f["infer"], f["weights"], "--len", 50, "--seed", "Chapter",
                  "--srand", 2, "--temp", 0.5)).stdout
    alias = ok(run("rnn", "generate", f["infer"], f["weights"], "-srand", 2, "-seed",
                   "Chapter", "-temp", 0.5, "-len", 50)).stdout
    assert darknet == ours == alias
    assert darknet.startswith(b"Chapter") and len(darknet) == 7 + 50 + 1


def test_darknet_defaults(net_files):
    """-len 1000, -temp .7, -seed two newlines, as examples/rnn.c."""
    f = net_files
    default = ok(run("generate", f["infer"], f["weights"], "-srand", 4)).stdout
    spelled = ok(run("generate", f["infer"], f["weights"], "--srand", 4, "--len", 1000,
                     "--temp", 0.7, "--seed", "\\n\\n")).stdout
    assert default == spelled and len(default) == 2 + 1000 + 1


def test_train_darknet_spelling_equals_the_dash_dash_spelling(net_files, tmp_path, monkeypatch):
    # the tiny BN cfg's rolling variance overflows by iteration 4 at this seed; the
    # spellings are compared on Darknet's run-to-the-end behaviour
    monkeypatch.setenv("DARKNET_RNN_FINITE_GUARD", "0")
    f = net_files
    ok(run("rnn", "train", f["cfg"], "-file", f["corpus"], "-srand", 9, "--max-batches", 8,
           "--out", tmp_path / "a", "-q"))
    ok(run("train", f["cfg"], "--file", f["corpus"], "--srand", 9, "--max-batches", 8,
           "--out", tmp_path / "b", "-q"))
    a = (tmp_path / "a" / "tiny_final.weights").read_bytes()
    assert a == (tmp_path / "b" / "tiny_final.weights").read_bytes()
    # -clear on resume: Darknet's flag, the same as --clear
    p = ok(run("train", f["cfg"], f["weights"], "-clear", "-file", f["corpus"], "-srand", 1,
               "--max-batches", 2, "--out", tmp_path / "c", "--progress", "lines"))
    its = [int(LOSS_LINE.match(l).group(1)) for l in p.stdout.decode().splitlines()
           if LOSS_LINE.match(l)]
    assert its == [1, 2]


def test_valid_darknet_spelling(net_files):
    f = net_files
    text = make_corpus(30, seed=3)
    a = ok(run("valid", f["infer"], f["weights"], "-seed", "ab", "-q", input=text)).stdout
    b = ok(run("valid", f["infer"], f["weights"], "--seed", "ab", "-q", input=text)).stdout
    assert a == b and b"bits per character" in a


def test_gpu_selectors_and_unused_options_are_ignored_like_darknet(net_files):
    f = net_files
    base = ok(run("generate", f["infer"], f["weights"], "--len", 10, "--srand", 1, "-q")).stdout
    p = ok(run("generate", f["infer"], f["weights"], "-i", 0, "-nogpu", "-len", 10, "-srand",
               1, "-clear", "-file", "x.txt", "-q"))
    assert p.stdout == base
    err = p.stderr.decode()
    assert "-clear is not used by generate" in err and "-file is not used by generate" in err


def test_value_options_take_values_that_look_like_options(net_files):
    f = net_files
    p = ok(run("generate", f["infer"], f["weights"], "--seed", "-len", "--len", 3, "-q"))
    assert p.stdout.startswith(b"-len") and len(p.stdout) == 4 + 3 + 1


def test_unrecognized_arguments_name_both_spellings(net_files):
    f = net_files
    p = run("generate", f["infer"], f["weights"], "-lenght", 5)
    one_error_line(p, r"unrecognized arguments: -lenght 5 .*--NAME.*-len.*generate --help")


@pytest.mark.parametrize("seed,ok_", [("4294967295", True), ("-1", True),
                                      ("4294967296", False), ("-2147483649", False),
                                      ("12345678901234", False), ("abc", False)])
def test_seeds_are_32_bit_or_an_error(net_files, seed, ok_):
    f = net_files
    p = run("generate", f["infer"], f["weights"], "--len", 5, "--srand", seed, "-q")
    if ok_:
        ok(p)
        # srand takes the C int -1 as 4294967295
        want = ok(run("generate", f["infer"], f["weights"], "--len", 5, "--srand",
                      4294967295, "-q")).stdout
        assert p.stdout == want
    else:
        one_error_line(p, r"--srand")


# --------------------------------------------------------------------------
# argmax sampling

def test_greedy_is_argmax_and_ignores_the_seed(net_files):
    f = net_files
    a = ok(run("generate", f["infer"], f["weights"], "--len", 40, "--temp", 0, "--srand", 1,
               "--seed", "the ", "-q")).stdout
    b = ok(run("generate", f["infer"], f["weights"], "--len", 40, "--greedy", "--srand", 99,
               "--seed", "the ", "-q")).stdout
    assert a == b
    # by hand: feed each byte, take the largest probability
    net = darknet_rnn.load_network(f["infer"], f["weights"])
    x = np.zeros(256, np.float32)
    out = None
    for c in b"the ":
        x[:] = 0
        x[c] = 1
        out = net.predict(x)
    want = bytearray(b"the ")
    for _ in range(40):
        c = int(np.flatnonzero(out == out.max())[0])
        want.append(c)
        x[:] = 0
        x[c] = 1
        out = net.predict(x)
    assert a == bytes(want) + b"\n"
    one_error_line(run("generate", f["infer"], f["weights"], "--temp", "-0.5"), r"--temp")


def test_python_generate_takes_a_str_seed(net_files):
    net = darknet_rnn.load_network(net_files["infer"], net_files["weights"])
    a = b"".join(T.generate(net, "The ", 20, 0, None))
    net.reset_state()
    b = b"".join(T.generate(net, b"The ", 20, 0.0, None))
    assert a == b and a.startswith(b"The ")


# --------------------------------------------------------------------------
# vec

def test_vec_matches_darknets_procedure(net_files, tmp_path):
    f = net_files
    lines = b"the cat sat\n  a\tdog ran \nthe mat\n"
    p = ok(run("vec", f["infer"], f["weights"], "-seed", "ab", input=lines))
    out = p.stdout.decode().splitlines()
    assert [l.split(",")[0] for l in out] == ["thecatsat", "adogran", "themat"]
    assert all(len(l.split(",")) == 1 + 24 for l in out)   # the [rnn] has 24 outputs
    # by hand: the state runs on across lines (Darknet's CPU reset does nothing)
    net = darknet_rnn.load_network(f["infer"], f["weights"])
    x = np.zeros(256, np.float32)

    def feed(bs):
        for c in bs:
            x[:] = 0
            x[c] = 1
            net.predict(x)
    for line, got in zip([b"thecatsat", b"adogran", b"themat"], out):
        feed(b"ab" + line + b" ")
        want = line.decode() + "".join(",%g" % float(v) for v in net.layers[0].output.ravel())
        assert got == want
    # --reset: each vector depends on its line only (no seed, short lines: the
    # carried state shows)
    short = b"the cat\nb\n"
    carry = ok(run("vec", f["infer"], f["weights"], "-seed", "", "-q",
                   input=short)).stdout.decode().splitlines()
    reset = ok(run("vec", f["infer"], f["weights"], "-seed", "", "--reset", "-q",
                   input=short)).stdout.decode().splitlines()
    alone = ok(run("vec", f["infer"], f["weights"], "-seed", "", "-q",
                   input=b"b\n")).stdout.decode().splitlines()
    assert reset[1] == alone[0] and carry[1] != alone[0] and reset[0] == carry[0]


# --------------------------------------------------------------------------
# word level: -tokenized, -tokens

WORDS_CFG = """[net]
batch=3
subdivisions=1
time_steps=5
inputs=7
learning_rate=0.1
momentum=0.9
decay=0.001
max_batches=40

[rnn]
output=12
activation=leaky

[dropout]
probability=0.1

[connected]
output=7
activation=linear

[softmax]
"""


@pytest.fixture(scope="module")
def words(tmp_path_factory):
    d = tmp_path_factory.mktemp("words")
    (d / "w.cfg").write_text(WORDS_CFG)
    ids = " ".join(str(i % 7) for i in range(1500))
    (d / "ids.txt").write_text(ids[:700] + "\n" + ids[700:])
    (d / "vocab.txt").write_text("zero\none\ntwo\n<NEWLINE>\nfour\nfive\nsix\n")
    ok(run("rnn", "train", d / "w.cfg", "-file", d / "ids.txt", "-tokenized", "-srand", 2,
           "--out", d, "-q"))
    return d


def test_tokenized_training_and_token_generation(words):
    d = words
    assert (d / "w_final.weights").exists() and (d / "w_best.weights").exists()
    p = ok(run("rnn", "generate", d / "w.cfg", d / "w_final.weights", "-tokens",
               d / "vocab.txt", "-len", 12, "-temp", 0, "-seed", "\\x01\\x02", "-q"))
    out = p.stdout
    vocab = [b"zero", b"one", b"two", b"\n", b"four", b"five", b"six"]
    assert out.startswith(b"one two ") and out.endswith(b" \n")
    # each symbol is a token and a space: 2 seed ids + 12 generated
    words_out = re.findall(rb"(zero|one|two|four|five|six|\n) ", out)
    assert len(words_out) == 14 and set(words_out) <= set(vocab)
    # the sequence i % 7 is learnt: the greedy continuation counts on
    assert out.startswith(b"one two \n four five six zero one ")


def test_tokenized_errors(words, tmp_path):
    d = words
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n4 x 5\n" + " 1 2" * 200)
    one_error_line(run("train", d / "w.cfg", "-file", bad, "-tokenized", "--out", tmp_path),
                   r"bad\.txt:2: 'x' is not a token id.*--lenient")
    big = tmp_path / "big.txt"
    big.write_text(" ".join(["1", "2", "9"] * 200))
    one_error_line(run("train", d / "w.cfg", "-file", big, "-tokenized", "--out", tmp_path),
                   r"token id 9 .*outside \[0, 7\)")
    one_error_line(run("train", d / "w.cfg", "-tokenized", "--out", tmp_path), r"--file")
    late = tmp_path / "late.txt"
    late.write_text(" 1 2" * 20 + "\n3 x 4 5\n")
    p = ok(run("train", d / "w.cfg", "-file", late, "-tokenized", "--lenient", "--out",
               tmp_path, "--max-batches", 1, "--valid-fraction", 0, "-q"))
    assert "late.txt:2: 'x' is not a token id: reading stops there (41 tokens read)" in \
        p.stderr.decode()
    short = tmp_path / "vocab.txt"
    short.write_text("a\nb\n")
    one_error_line(run("generate", d / "w.cfg", d / "w_final.weights", "--tokens", short),
                   r"2 tokens, but the network has 7 outputs")


# --------------------------------------------------------------------------
# the layer table, -q

def test_layer_table_at_load_and_quiet(net_files):
    f = net_files
    p = ok(run("generate", f["infer"], f["weights"], "--len", 5, "--srand", 3))
    err = p.stderr.decode().splitlines()
    assert err[:7] == [
        "layer     filters    size              input                output",
        "    0 RNN Layer: 256 inputs, 24 outputs",
        "\t\tconnected                             256  ->    24",
        "\t\tconnected                              24  ->    24",
        "\t\tconnected                              24  ->    24",
        "    1 connected                              24  ->   256",
        "    2 softmax                                         256"]
    assert err[7] == f"Loading weights from {f['weights']}...Done!"
    q = ok(run("generate", f["infer"], f["weights"], "--len", 5, "--srand", 3, "-q"))
    assert q.stderr == b"" and q.stdout == p.stdout


def test_quiet_training_prints_nothing(net_files, tmp_path):
    f = net_files
    p = ok(run("train", f["cfg"], "--file", f["corpus"], "--out", tmp_path, "--srand", 1,
               "--max-batches", 4, "--valid-every", 2, "--save-every", 2, "-q"))
    assert p.stdout == b"" and p.stderr == b""
    assert (tmp_path / "tiny.backup").exists() and (tmp_path / "tiny_best.weights").exists()


# --------------------------------------------------------------------------
# messages: one line, no raw bytes, no references outside the repository

def test_swapped_cfg_and_weights(net_files):
    f = net_files
    p = run("generate", f["weights"], f["infer"])
    one_error_line(p, r"tiny_final\.weights: this looks like a Darknet \.weights file, not "
                      r"a cfg.*CFG")
    assert printable(p.stderr.decode())
    p = run("generate", f["infer"], f["infer"])
    one_error_line(p, r"tiny\.cfg: this is a text file \(a Darknet cfg\?\), not weights")
    assert "version" not in p.stderr.decode()
    p = run("info", f["infer"], f["infer"])
    one_error_line(p, r"text file")


def test_binary_garbage_as_cfg_is_one_printable_line(net_files, tmp_path):
    junk = tmp_path / "junk.cfg"
    junk.write_bytes(bytes(range(1, 256)) * 3)          # no NUL, not a cfg
    p = run("generate", junk, net_files["weights"])
    one_error_line(p, r"junk\.cfg")
    assert printable(p.stderr.decode())


def test_weights_of_another_network_and_lenient(net_files, tmp_path):
    f = net_files
    other = make_cfg(tmp_path / "other.cfg", batch=1, steps=1, hidden=8)
    p = run("generate", other, f["weights"], "--len", 5)
    one_error_line(p, r"too long for this network.*--lenient")
    assert "strict=False" not in p.stderr.decode()
    p = ok(run("generate", other, f["weights"], "--len", 5, "--lenient", "-q"))
    assert b"warning" in p.stderr and len(p.stdout) == 2 + 5 + 1


def test_lenient_cfg_fallbacks(net_files, tmp_path):
    bad = tmp_path / "bad.cfg"
    bad.write_text(open(net_files["infer"]).read().replace("activation=leaky", "activation=Leaky"))
    one_error_line(run("info", bad), r"unknown activation function 'Leaky'")
    p = ok(run("info", bad, "--lenient"))
    assert b"going with ReLU" in p.stderr and b"relu" in p.stdout


def test_no_references_to_documents_outside_the_repository(net_files):
    texts = [ok(run("--help")).stdout]
    for cmd in ("train", "generate", "valid", "vec", "info"):
        texts.append(ok(run(cmd, "--help")).stdout)
    texts.append(run("train", "nope.cfg").stderr)
    texts.append(run("generate", net_files["infer"], net_files["infer"]).stderr)
    for t in texts:
        assert not re.search(rb"SPEC|\bQ\d+\b|quirk", t), t
    import darknet_rnn.cli as cli
    assert "SPEC" not in (cli.__doc__ or "") and "SPEC" not in (T.__doc__ or "")
