"""cfg reader (SPEC section 11): reading rules, options, defaults, errors,
warnings, and the golden fixtures' cfg files."""
import json
import math
import pathlib
import warnings

import numpy as np
import pytest

from darknet_rnn.cfg import (CfgWarning, LayerSpec, NetOptions, NetworkSpec, c_atof, c_atoi,
                             parse_activation, parse_cfg, parse_cfg_text)
from darknet_rnn.errors import CfgError, DarknetError

DATA = pathlib.Path(__file__).parent / "data"
CASES = sorted(p.name for p in DATA.iterdir() if (p / "meta.json").exists())

NET = "[net]\ninputs=4\n"


def f32(x):
    return float(np.float32(x))


def parse(text, **kw):
    """(spec, [warning messages])"""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        spec = parse_cfg_text(text, **kw)
    msgs = [str(w.message) for w in rec if issubclass(w.category, CfgWarning)]
    assert len(msgs) == len(rec), [str(w.message) for w in rec]
    return spec, msgs


def cfg_error(text, line, key, path="dir/my.cfg", **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CfgError) as ei:
            parse_cfg_text(text, path=path, **kw)
    err = ei.value
    assert isinstance(err, ValueError) and isinstance(err, DarknetError)
    msg = str(err)
    assert msg.startswith(f"{path}:{line}: "), msg
    if key is not None:
        assert key in msg, msg
    return msg


# --------------------------------------------------------------------------
# C number parsing

@pytest.mark.parametrize("s,v", [
    ("12", 12), ("12abc", 12), ("abc", 0), ("", 0), (None, 0), ("-3", -3), ("+7", 7),
    ("1e5", 1), ("3.9", 3), (" \v\f 42", 42), ("--1", 0), ("+-1", 0), ("0x10", 0),
    ("007", 7), ("4294967295", -1), ("2147483648", -2147483648),
    ("99999999999", 99999999999 - 23 * 2**32),
    ("99999999999999999999999", -1),            # LONG_MAX -> low 32 bits all ones
    ("-99999999999999999999999", 0),            # LONG_MIN -> low 32 bits zero
])
def test_c_atoi(s, v):
    assert c_atoi(s) == v


@pytest.mark.parametrize("s,v", [
    ("0.5", 0.5), (".5e-1x", 0.05), ("5.", 5.0), (".", 0.0), ("abc", 0.0), ("", 0.0),
    (None, 0.0), ("-2.5e3", -2500.0), ("+.25", 0.25), ("1e", 1.0), ("1e+", 1.0),
    ("1e-2,3", 0.01), ("3,5", 3.0), ("0x1.8p1", 3.0), ("0x", 0.0), ("0xg", 0.0),
    ("-0x10", -16.0), ("1e400", math.inf), ("-INF", -math.inf), ("Infinity", math.inf),
    ("infinit", math.inf), (" \v7", 7.0), ("1_0", 1.0),
])
def test_c_atof(s, v):
    assert c_atof(s) == v


def test_c_atof_nan():
    assert math.isnan(c_atof("nan"))
    assert math.isnan(c_atof("NaN(123)"))
    assert math.copysign(1, c_atof("-nan")) == -1


# --------------------------------------------------------------------------
# reading rules

def test_minimal_defaults():
    spec, w = parse("[net]\ninputs=3\n[rnn]\n")
    n = spec.net
    assert isinstance(spec, NetworkSpec) and isinstance(n, NetOptions)
    assert (n.batch, n.subdivisions, n.time_steps, n.inputs) == (1, 1, 1, 3)
    assert n.learning_rate == f32(.001) and n.momentum == f32(.9) and n.decay == f32(.0001)
    assert n.policy == "constant" and n.burn_in == 0 and n.power == 4.0
    assert n.max_batches == 0 and n.adam is False
    assert n.steps == [] and n.scales == []
    assert n.streams == 1 and n.net_batch == 1
    L = spec.layers[0]
    assert isinstance(L, LayerSpec)
    assert (L.type, L.index, L.line, L.section) == ("rnn", 0, 3, "[rnn]")
    assert (L.inputs, L.outputs, L.activation) == (3, 1, "logistic")
    assert not L.batch_normalize and not L.shortcut
    assert L.learning_rate_scale == 1.0
    assert not (L.dontload or L.dontsave or L.dontloadscales or L.stopbackward or L.onlyforward)
    assert spec.messages == [
        "batch: Using default '1'",
        "learning_rate: Using default '0.001000'",
        "momentum: Using default '0.900000'",
        "decay: Using default '0.000100'",
        "subdivisions: Using default '1'",
        "policy: Using default 'constant'",
        "max_batches: Using default '0'",
        "output: Using default '1'",
        "activation: Using default 'logistic'",
    ]
    assert w == []


def test_spaces_tabs_everywhere():
    text = "[ n e t ]\n b a t c h = 1 2\n\tinputs\t=\t5\nlearn ing_rate = 0. 5\n[rnn]\na b=1\n"
    spec, w = parse(text)
    assert spec.net.batch == 12 and spec.net.inputs == 5
    assert spec.net.learning_rate == 0.5
    assert any("Unused field: 'ab = 1'" in m for m in w)


def test_comments_and_no_inline_comments():
    text = ("# leading comment\n;another\n   # indented comment\n[net]\ninputs=4\n"
            "; c\n[connected]\noutput=5#not a comment\nactivation=linear\n")
    spec, w = parse(text)
    assert spec.net.line == 4
    assert spec.layers[0].outputs == 5           # atoi("5#not...")
    assert spec.layers[0].line == 7


def test_inline_comment_is_part_of_value():
    cfg_error(NET + "[rnn]\nactivation=tanh#comment\n", 4, "activation")


def test_crlf():
    text = "[net]\r\nbatch=4\r\ninputs=3\r\ntime_steps=2\r\n\r\n[rnn]\r\noutput=6\r\nactivation=tanh\r\n"
    spec, w = parse(text)
    assert spec.net.batch == 4 and spec.net.time_steps == 2
    assert spec.layers[0].outputs == 6 and spec.layers[0].activation == "tanh"
    assert w == []


def test_bytes_input():
    spec, _ = parse(b"[net]\ninputs=2\n[connected]\noutput=3\n")
    assert spec.layers[0].outputs == 3


def test_duplicate_key_first_wins():
    spec, w = parse(NET + "[rnn]\noutput=3\noutput=5\n")
    assert spec.layers[0].outputs == 3
    assert len(w) == 1
    assert w[0].startswith("<string>:5: Unused field: 'output = 5'")


def test_duplicate_key_in_net_first_wins_no_warning():
    spec, w = parse("[net]\ninputs=4\nbatch=2\nbatch=8\nfoo=1\n[rnn]\n")
    assert spec.net.batch == 2
    assert w == []               # [net] never reports unused keys (Q19)


def test_key_without_equals():
    spec, w = parse(NET + "[rnn]\nfoo\n")
    assert w == ["<string>:4: Unused field: 'foo = (null)' (in [rnn] at line 3)"]


def test_key_without_equals_shadows_later_value():
    # the first 'output' matches (value NULL -> default), the second is unused
    spec, w = parse(NET + "[rnn]\noutput\noutput=4\n")
    assert spec.layers[0].outputs == 1
    assert "output: Using default '1'" in spec.messages
    assert len(w) == 1 and "Unused field: 'output = 4'" in w[0] and w[0].startswith("<string>:5:")


def test_empty_value_is_error():
    msg = cfg_error("[net]\ninputs=3\nbatch=\n[rnn]\n", 3, "batch")
    assert "could not parse" in msg


def test_empty_value_only_equals():
    cfg_error("[net]\ninputs=3\n=\n", 3, None)


def test_equals_in_value_split_at_first():
    spec, w = parse(NET + "[rnn]\nfoo=a=b\n")
    assert "Unused field: 'foo = a=b'" in w[0]


def test_key_before_section():
    cfg_error("batch=1\n[net]\ninputs=3\n", 1, "batch")


def test_key_before_section_after_comments():
    cfg_error("# c\n\ninputs=3\n[net]\n", 3, "inputs")


def test_first_section_must_be_net():
    msg = cfg_error("[rnn]\noutput=3\n[net]\ninputs=3\n", 1, "[rnn]")
    assert "First section must be [net] or [network]" in msg


def test_no_sections():
    with pytest.raises(CfgError, match="no sections"):
        parse_cfg_text("")
    with pytest.raises(CfgError, match="no sections"):
        parse_cfg_text("# only\n; comments\n\n")


def test_aliases():
    spec, _ = parse("[network]\ninputs=6\n[conn]\noutput=4\n[soft]\n[connected]\noutput=2\n"
                    "[softmax]\n[cost]\n")
    assert [l.type for l in spec.layers] == ["connected", "softmax", "connected", "softmax",
                                             "cost"]
    assert [l.section for l in spec.layers] == ["[conn]", "[soft]", "[connected]",
                                                "[softmax]", "[cost]"]
    assert [(l.inputs, l.outputs) for l in spec.layers] == [(6, 4), (4, 4), (4, 2), (2, 2),
                                                            (2, 2)]
    assert [l.index for l in spec.layers] == [0, 1, 2, 3, 4]


def test_section_names_case_sensitive():
    cfg_error(NET + "[RNN]\n", 3, "[RNN]")
    cfg_error("[NET]\ninputs=3\n", 1, "[NET]")


def test_unknown_section_strict_and_lenient():
    msg = cfg_error(NET + "[rnn]\n[conv_lstm]\noutput=3\n", 4, "[conv_lstm]")
    assert "Type not recognized" in msg
    cfg_error(NET + "[rnn]\n[conv_lstm]\noutput=3\n", 4, "[conv_lstm]", strict=False)


def test_second_net_section_rejected():
    cfg_error(NET + "[rnn]\n[net]\n", 4, "[net]")


# --------------------------------------------------------------------------
# numbers in options

def test_atoi_atof_prefixes_in_cfg():
    spec, _ = parse("[net]\ninputs=3\nbatch=12abc\nlearning_rate=.5e-1x\nmomentum=abc\n"
                    "decay=1e-3\n[rnn]\noutput=7.9\n")
    assert spec.net.batch == 12
    assert spec.net.learning_rate == f32(0.05)
    assert spec.net.momentum == 0.0
    assert spec.net.decay == f32(1e-3)
    assert spec.layers[0].outputs == 7


def test_floats_are_float32():
    spec, _ = parse("[net]\ninputs=3\nlearning_rate=0.1\nmomentum=0.3\n[rnn]\n")
    assert spec.net.learning_rate == f32(0.1) != 0.1
    assert spec.net.momentum == f32(0.3)


def test_flags_any_nonzero():
    spec, _ = parse(NET + "[rnn]\nbatch_normalize=2\nshortcut=-1\ndontsave=abc\n"
                    "dontload=7\nstopbackward=1\nonlyforward=0\ndontloadscales=1\n")
    L = spec.layers[0]
    assert L.batch_normalize is True and L.shortcut is True
    assert L.dontsave is False and L.dontload is True and L.stopbackward is True
    assert L.onlyforward is False and L.dontloadscales is True


def test_every_layer_keys_consumed():
    spec, w = parse(NET + "[connected]\noutput=3\ntruth=1\nonlyforward=1\nstopbackward=1\n"
                    "dontsave=1\ndontload=1\nnumload=2\ndontloadscales=1\nlearning_rate=0.5\n"
                    "smooth=0.1\n")
    assert w == []
    L = spec.layers[0]
    assert L.truth == 1 and L.numload == 2 and L.learning_rate_scale == 0.5
    assert L.smooth == f32(0.1)


def test_height_width_channels_give_inputs():
    spec, _ = parse("[net]\nheight=2\nwidth=3\nchannels=4\n[rnn]\n")
    assert spec.net.inputs == 24 and spec.layers[0].inputs == 24


def test_streams_and_net_batch():
    spec, _ = parse("[net]\ninputs=3\nbatch=5\nsubdivisions=2\ntime_steps=7\n[rnn]\n")
    assert spec.net.streams == 2 and spec.net.net_batch == 14


# --------------------------------------------------------------------------
# activations

def test_activation_names():
    for name in ("logistic", "relu", "relie", "linear", "ramp", "tanh", "plse", "leaky",
                 "elu", "loggy", "stair", "hardtan", "lhtan", "selu"):
        spec, _ = parse(NET + f"[connected]\nactivation={name}\n")
        assert spec.layers[0].activation == name


def test_unknown_activation_strict():
    msg = cfg_error(NET + "[rnn]\noutput=3\nactivation=Tanh\n", 5, "activation")
    assert "Tanh" in msg


def test_unknown_activation_lenient():
    spec, w = parse(NET + "[rnn]\nactivation=Tanh\n", strict=False)
    assert spec.layers[0].activation == "relu"
    assert len(w) == 1 and w[0].startswith("<string>:4: ")
    assert "Couldn't find activation function Tanh, going with ReLU" in w[0]


def test_parse_activation_helper():
    assert parse_activation("tanh", True, "x:1") == "tanh"
    with pytest.raises(CfgError, match="^x:1: "):
        parse_activation("foo", True, "x:1")
    with pytest.warns(CfgWarning, match="going with ReLU"):
        assert parse_activation("foo", False, "x:1") == "relu"


# --------------------------------------------------------------------------
# policies

def test_policy_step():
    spec, _ = parse("[net]\ninputs=3\npolicy=step\nstep=5\nscale=0.5\n[rnn]\n")
    assert (spec.net.policy, spec.net.step, spec.net.scale) == ("step", 5, 0.5)


def test_policy_step_defaults_loud():
    spec, _ = parse("[net]\ninputs=3\npolicy=step\n[rnn]\n")
    assert spec.net.step == 1 and spec.net.scale == 1.0
    assert "step: Using default '1'" in spec.messages
    assert "scale: Using default '1.000000'" in spec.messages


def test_policy_steps_lists():
    spec, _ = parse("[net]\ninputs=3\npolicy=steps\nsteps=100, 200,300x\n"
                    "scales=.1,2,.5,9\n[rnn]\n")
    assert spec.net.steps == [100, 200, 300]
    assert spec.net.scales == [f32(.1), 2.0, 0.5]    # extra scales ignored


def test_policy_steps_empty_items():
    spec, _ = parse("[net]\ninputs=3\npolicy=steps\nsteps=1,,3\nscales=.5,.5,.5\n[rnn]\n")
    assert spec.net.steps == [1, 0, 3]


def test_policy_exp_sigmoid_poly():
    spec, _ = parse("[net]\ninputs=3\npolicy=exp\ngamma=0.8\n[rnn]\n")
    assert spec.net.gamma == f32(0.8)
    spec, _ = parse("[net]\ninputs=3\npolicy=sigmoid\ngamma=2\nstep=7\n[rnn]\n")
    assert (spec.net.policy, spec.net.gamma, spec.net.step) == ("sigmoid", 2.0, 7)
    spec, _ = parse("[net]\ninputs=3\npolicy=poly\npower=2\nmax_batches=8\n[rnn]\n")
    assert (spec.net.power, spec.net.max_batches) == (2.0, 8)
    spec, _ = parse("[net]\ninputs=3\npolicy=random\n[rnn]\n")
    assert spec.net.policy == "random"


def test_policy_sig_is_unknown():
    cfg_error("[net]\ninputs=3\npolicy=sig\n[rnn]\n", 3, "policy")


def test_unknown_policy_lenient():
    spec, w = parse("[net]\ninputs=3\npolicy=Steps\n[rnn]\n", strict=False)
    assert spec.net.policy == "constant"
    assert len(w) == 1 and "Couldn't find policy Steps, going with constant" in w[0]
    assert w[0].startswith("<string>:3: ")


def test_poly_max_batches_zero_warns():
    spec, w = parse("[net]\ninputs=3\npolicy=poly\n[rnn]\n")
    assert spec.net.max_batches == 0
    assert len(w) == 1 and "max_batches" in w[0]


def test_adam_warns_and_reads_b1_b2_eps():
    spec, w = parse("[net]\ninputs=3\nadam=1\nB1=.8\n[rnn]\n")
    assert spec.net.adam is True and spec.net.B1 == f32(.8)
    assert spec.net.B2 == f32(.999) and spec.net.eps == f32(1e-7)
    assert "B2: Using default '0.999000'" in spec.messages
    assert len(w) == 1 and "Adam" in w[0] and w[0].startswith("<string>:3: ")


def test_burn_in_power():
    spec, _ = parse("[net]\ninputs=3\nburn_in=4\npower=2\n[rnn]\n")
    assert spec.net.burn_in == 4 and spec.net.power == 2.0


# --------------------------------------------------------------------------
# layer keys

def test_softmax_and_cost_keys():
    spec, w = parse("[net]\ninputs=6\n[softmax]\ngroups=2\ntemperature=0.5\nnoloss=1\n"
                    "spatial=1\n[cost]\ntype=L1\nscale=2\nratio=.5\nnoobj=3\nthresh=.1\n")
    s, c = spec.layers
    assert (s.groups, s.temperature, s.noloss, s.outputs) == (2, 0.5, True, 6)
    assert (c.cost_type, c.scale, c.ratio, c.noobj, c.thresh) == ("L1", 2.0, 0.5, 3.0, f32(.1))
    assert w == []


def test_cost_defaults_and_types():
    spec, _ = parse(NET + "[cost]\n")
    assert spec.layers[0].cost_type == "sse" and spec.layers[0].scale == 1.0
    assert "type: Using default 'sse'" in spec.messages
    for t in ("sse", "masked", "L1", "seg", "smooth", "wgan"):
        spec, _ = parse(NET + f"[cost]\ntype={t}\n")
        assert spec.layers[0].cost_type == t


def test_unknown_cost_type():
    cfg_error(NET + "[cost]\ntype=l1\n", 4, "type")
    spec, w = parse(NET + "[cost]\ntype=l1\n", strict=False)
    assert spec.layers[0].cost_type == "sse"
    assert "Couldn't find cost type l1, going with SSE" in w[0]


def test_softmax_groups_must_divide():
    cfg_error("[net]\ninputs=6\n[softmax]\ngroups=4\n", 4, "groups")
    cfg_error("[net]\ninputs=6\n[softmax]\ngroups=0\n", 4, "groups")


def test_softmax_tree_not_supported():
    cfg_error(NET + "[softmax]\ntree=data/9k.tree\n", 4, "tree")


def test_rnn_learning_rate_no_effect():
    spec, w = parse(NET + "[rnn]\nlearning_rate=0.5\n")
    assert spec.layers[0].learning_rate_scale == 1.0
    assert len(w) == 1 and "no effect" in w[0] and w[0].startswith("<string>:4: ")
    spec, w = parse(NET + "[connected]\nlearning_rate=0.5\n")
    assert spec.layers[0].learning_rate_scale == 0.5 and w == []


def test_rnn_hidden_key():
    spec, w = parse(NET + "[rnn]\noutput=8\nhidden=8\n")
    assert spec.layers[0].outputs == 8
    # pjreddie reports hidden as unused (Q19)
    assert len(w) == 1 and "Unused field: 'hidden = 8'" in w[0]
    cfg_error(NET + "[rnn]\noutput=8\nhidden=16\n", 5, "hidden")


def test_rnn_logistic_key():
    spec, w = parse(NET + "[rnn]\nlogistic=0\n")
    assert len(w) == 1 and "logistic = 0" in w[0]
    cfg_error(NET + "[rnn]\nlogistic=1\n", 4, "logistic")


def test_unused_fields_reported_per_layer_with_line():
    spec, w = parse(NET + "[rnn]\noutput=2\nfoo=1\n[connected]\nbar=x\n[softmax]\nbaz=3\n"
                    "[cost]\nqux=4\n")
    assert [m.split(" (in")[0] for m in w] == [
        "<string>:5: Unused field: 'foo = 1'",
        "<string>:7: Unused field: 'bar = x'",
        "<string>:9: Unused field: 'baz = 3'",
        "<string>:11: Unused field: 'qux = 4'",
    ]
    assert "Unused field: 'foo = 1'" in spec.messages


def test_chained_sizes():
    spec, _ = parse("[net]\ninputs=7\n[rnn]\noutput=8\n[rnn]\noutput=5\n[connected]\noutput=3\n"
                    "[softmax]\n[cost]\n")
    assert [(l.inputs, l.outputs) for l in spec.layers] == [(7, 8), (8, 5), (5, 3), (3, 3),
                                                            (3, 3)]
    assert spec.outputs == 3 and spec.output_layer.index == 3


# --------------------------------------------------------------------------
# errors

@pytest.mark.parametrize("text,line,key", [
    ("[net]\ninputs=3\nsubdivisions=0\n[rnn]\n", 3, "subdivisions"),
    ("[net]\ninputs=3\nsubdivisions=-1\n[rnn]\n", 3, "subdivisions"),
    ("[net]\ninputs=3\ntime_steps=0\n[rnn]\n", 3, "time_steps"),
    ("[net]\ninputs=3\ntime_steps=-2\n[rnn]\n", 3, "time_steps"),
    ("[net]\ninputs=3\nbatch=1\nsubdivisions=2\n[rnn]\n", 3, "batch"),
    ("[net]\ninputs=3\nbatch=0\n[rnn]\n", 3, "batch"),
    ("[net]\ninputs=3\nbatch=-2\n[rnn]\n", 3, "batch"),
    ("[net]\nbatch=2\n[rnn]\n", 1, "inputs"),
    ("[net]\ninputs=0\n[rnn]\n", 2, "inputs"),
    ("[net]\ninputs=-5\n[rnn]\n", 2, "inputs"),
    ("[net]\nheight=2\nwidth=2\n[rnn]\n", 1, "inputs"),
    ("[net]\ninputs=3\n[rnn]\noutput=0\n", 4, "output"),
    ("[net]\ninputs=3\n[connected]\noutput=-1\n", 4, "output"),
    ("[net]\ninputs=3\npolicy=step\nstep=0\n[rnn]\n", 4, "step"),
    ("[net]\ninputs=3\npolicy=steps\nscales=.1\n[rnn]\n", 1, "steps"),
    ("[net]\ninputs=3\npolicy=steps\nsteps=1\n[rnn]\n", 1, "scales"),
    ("[net]\ninputs=3\npolicy=steps\nsteps=1,2,3\nscales=.1,.2\n[rnn]\n", 5, "scales"),
    ("[net]\ninputs=3\nburn_in=-1\n[rnn]\n", 3, "burn_in"),
    ("[net]\ninputs=3\npolicy=foo\n[rnn]\n", 3, "policy"),
    ("[net]\ninputs=3\n[rnn]\nactivation=swish\n", 4, "activation"),
])
def test_cfg_errors(text, line, key):
    cfg_error(text, line, key)


def test_error_from_file_names_path(tmp_path):
    p = tmp_path / "bad.cfg"
    p.write_text("[net]\ninputs=3\n[rnn]\noutput=3\nactivation=nope\n")
    with pytest.raises(CfgError) as ei:
        parse_cfg(p)
    assert str(ei.value).startswith(f"{p}:5: ")
    with pytest.raises(FileNotFoundError):
        parse_cfg(tmp_path / "missing.cfg")


def test_parse_cfg_pathlike_and_str(tmp_path):
    p = tmp_path / "ok.cfg"
    p.write_text("[net]\ninputs=3\n[rnn]\noutput=2\n")
    a = parse_cfg(p)
    b = parse_cfg(str(p))
    assert a.path == str(p) and a.layers == b.layers and a.net == b.net


# --------------------------------------------------------------------------
# golden fixtures

def _meta_steps(v):
    return [int(x) for x in v.split(",")] if isinstance(v, str) else list(v)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("which", ["net.cfg", "infer.cfg"])
def test_golden_cfgs(case, which):
    d = DATA / case
    meta = json.loads((d / "meta.json").read_text())
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        spec = parse_cfg(d / which)
    msgs = [str(w.message) for w in rec]
    assert not any("Unused field" in m for m in msgs)
    n = spec.net
    if which == "net.cfg":
        assert n.streams == meta["streams"]
        assert n.time_steps == meta["time_steps"]
        assert n.subdivisions == meta["subdivisions"]
        assert n.batch == meta["cfg_batch"]
        assert n.net_batch == meta["darknet_net_batch"]
    else:
        assert (n.streams, n.time_steps, n.subdivisions, n.net_batch) == (1, 1, 1, 1)
    assert n.inputs == meta["inputs"]
    assert spec.outputs == meta["outputs"]
    assert [l.type for l in spec.layers] == meta["layers"]
    assert spec.layers[0].inputs == meta["inputs"]
    assert any(l.batch_normalize for l in spec.layers) == meta["batch_normalize"]
    for key, v in meta["net_options"].items():
        got = getattr(n, key)
        if key == "steps":
            assert got == _meta_steps(v)
        elif key == "scales":
            assert got == [f32(x) for x in str(v).split(",")]
        elif key == "policy":
            assert got == v
        elif key == "adam":
            assert got == bool(v)
        elif isinstance(v, float):
            assert got == f32(v), key
        else:
            assert got == v, key
    if which == "infer.cfg" and meta.get("infer_softmax_temperature") is not None:
        sm = [l for l in spec.layers if l.type == "softmax"][0]
        assert sm.temperature == f32(meta["infer_softmax_temperature"])
    if n.adam:
        assert any("Adam" in m for m in msgs)


def test_golden_s08_comments_and_spaces():
    spec = parse_cfg(DATA / "s08_rnn2_hardtan_lhtan_conn_selu_cost" / "net.cfg")
    assert [l.activation for l in spec.layers[:3]] == ["hardtan", "lhtan", "selu"]
    assert spec.net.steps == [1, 2] and spec.net.scales == [2.0, 0.25]
    assert spec.net.line == 2
