"""Registry entries: [connected], [rnn] + bidirectional, [softmax], [cost], [dropout]."""
from __future__ import annotations

import warnings  # noqa: F401

from .._cfgread import COST_TYPES, _err, _warn, c_atof, c_atoi  # noqa: F401
from ..errors import CfgError, DarknetTrainingWarning  # noqa: F401
from ._base import (LayerType, register, _bn_one_row, _connected_line,  # noqa: F401
                    _dense_words, _parse_dense, entry_for_layer, block_params)

@register
class Connected(LayerType):
    name = "connected"
    sections = ("[connected]", "[conn]")

    def parse(self, r, L, strict, messages):
        _parse_dense(r, L, strict, messages)

    def build(self, ls, b):
        return b.cls("ConnectedLayer", ls.section)(
            batch=b.batch, inputs=ls.inputs, outputs=ls.outputs, activation=ls.activation,
            batch_normalize=ls.batch_normalize, learning_rate_scale=ls.learning_rate_scale,
            **b.extra())

    def check_trainable(self, ls, layer):
        return _bn_one_row(ls, layer, "a batch of 1 row")

    def weight_blocks(self, layer):
        return [layer]

    def named_blocks(self, layer):
        return [("", layer)]

    def params(self, layer, prefix=""):
        return block_params(layer, prefix)

    def backward(self, layer, inp, prev_delta, fixes):
        from ..fixes import FIX_BN_GRADIENT
        layer.backward(inp, prev_delta, fixes=fixes & FIX_BN_GRADIENT)

    def darknet_lines(self, ls):
        return [_connected_line(ls.inputs, ls.outputs)]

    def describe(self, ls):
        lr = [] if ls.learning_rate_scale == 1 else [f"learning_rate={ls.learning_rate_scale:g}"]
        return _dense_words(ls, *lr)


def _sublayers_keep_scale_one(r, L, messages):
    """A learning_rate key on a layer made of sublayers ([rnn], [gru],
    [lstm]) is read but has no effect in Darknet."""
    lr_opt = r.peek("learning_rate")
    if lr_opt is not None and lr_opt.value is not None:
        _warn(messages, f"{r.path}:{lr_opt.line}",
              f"learning_rate={lr_opt.value} on {L.section} has no effect in Darknet "
              "(the sublayers keep scale 1)")
    L.learning_rate_scale = 1.0


@register
class RNN(LayerType):
    name = "rnn"
    sections = ("[rnn]",)
    zero_delta = False           # an [rnn] forward zeroes all its sublayer deltas

    def parse(self, r, L, strict, messages):
        _parse_dense(r, L, strict, messages)
        L.shortcut = r.find_int("shortcut", 0) != 0
        # AlexeyAB keys: looked at, not consumed (pjreddie reports them unused)
        hid = r.peek("hidden")
        if hid is not None and hid.value is not None and c_atoi(hid.value) != L.outputs:
            raise CfgError(f"{r.path}:{hid.line}: key 'hidden': hidden={c_atoi(hid.value)} "
                           f"differs from output={L.outputs}; AlexeyAB's separate "
                           "hidden size is not supported (pjreddie uses output)")
        lg = r.peek("logistic")
        if lg is not None and c_atoi(lg.value) != 0:
            raise CfgError(f"{r.path}:{lg.line}: key 'logistic': AlexeyAB's logistic="
                           f"{lg.value} (self-layer activation) is not supported")
        # an extension (no Darknet reads it): two blocks, outputs concatenated
        L.bidirectional = r.find_int("bidirectional", 0) != 0
        if L.bidirectional:
            L.outputs *= 2

    def variant(self, ls):
        return BIDIRECTIONAL_RNN if ls.bidirectional else self

    def after_common_keys(self, r, L, messages):
        _sublayers_keep_scale_one(r, L, messages)

    def build(self, ls, b):
        return b.cls("RNNLayer", ls.section)(
            batch=b.streams, inputs=ls.inputs, outputs=ls.outputs, steps=b.time_steps,
            activation=ls.activation, batch_normalize=ls.batch_normalize,
            shortcut=ls.shortcut, fixes=b.fixes, stateful=b.stateful, **b.extra())

    def check_trainable(self, ls, layer):
        return _bn_one_row(ls, layer, "1 stream per time step")

    def named_blocks(self, layer):
        return [("input_layer", layer.input_layer), ("self_layer", layer.self_layer),
                ("output_layer", layer.output_layer)]

    def weight_blocks(self, layer):
        return [blk for _, blk in self.named_blocks(layer)]

    def entry(self, ls, blocks):
        # Darknet reads dontloadscales from the rnn's sublayers, where it is 0
        return entry_for_layer(ls, blocks, dontloadscales=False)

    def reset_state(self, layer, streams=None):
        layer.reset_state(streams)

    def state_arrays(self, layer):
        return [layer.state, layer.carry]

    def record_grad_norms(self, layer, on):
        layer.record_grad_norms = bool(on)
        return True

    def darknet_lines(self, ls):
        return ([f"RNN Layer: {ls.inputs} inputs, {ls.outputs} outputs"]
                + ["\t\t" + _connected_line(i, ls.outputs)
                   for i in (ls.inputs, ls.outputs, ls.outputs)])

    def describe(self, ls):
        return _dense_words(ls, *(["shortcut"] if ls.shortcut else []))


@register
class Softmax(LayerType):
    name = "softmax"
    sections = ("[softmax]", "[soft]")
    has_cost = True

    def parse(self, r, L, strict, messages):
        L.outputs = L.inputs
        L.groups = r.find_int("groups", 1)
        if L.groups <= 0 or L.inputs % L.groups != 0:
            raise _err(r, "groups", f"groups={L.groups} must be positive and divide "
                       f"the layer inputs ({L.inputs})")
        L.temperature = r.find_float("temperature", 1)
        tree, _ = r.value("tree")
        if tree is not None:
            raise _err(r, "tree", f"tree={tree}: hierarchical softmax is not supported")
        L.spatial = r.find_float("spatial", 0)
        L.noloss = r.find_int("noloss", 0) != 0

    def build(self, ls, b):
        from ..fixes import FIX_SOFTMAX_TEMPERATURE
        return b.cls("SoftmaxLayer", ls.section)(
            batch=b.batch, inputs=ls.inputs, groups=ls.groups, temperature=ls.temperature,
            noloss=ls.noloss, fixes=b.fixes & FIX_SOFTMAX_TEMPERATURE, **b.extra(False))

    def forward(self, layer, inp, truth, train):
        layer.forward(inp, truth)

    def backward(self, layer, inp, prev_delta, fixes):
        layer.backward(prev_delta)

    def set_temperature(self, layer, temperature):
        layer.temperature = temperature

    def darknet_lines(self, ls):
        return [f"softmax                                        {ls.inputs:4d}"]

    def describe(self, ls):
        words = [f"groups={ls.groups}"] if ls.groups != 1 else []
        words += [f"temperature={ls.temperature:g}"] if ls.temperature != 1 else []
        return ", ".join(words + (["noloss"] if ls.noloss else ["cross-entropy"]))

    def cost_unit(self, ls):
        return None if ls.noloss else "nats"


@register
class Cost(LayerType):
    name = "cost"
    sections = ("[cost]",)
    network_output = False
    has_cost = True

    def parse(self, r, L, strict, messages):
        L.outputs = L.inputs
        ct = r.find_str("type", "sse")
        if ct not in COST_TYPES:
            if strict:
                raise _err(r, "type", f"unknown cost type '{ct}' (expected one of "
                           + ", ".join(COST_TYPES) + ")")
            _warn(messages, r.where("type"), f"Couldn't find cost type {ct}, going with SSE")
            ct = "sse"
        L.cost_type = ct
        L.scale = r.find_float("scale", 1)
        L.ratio = r.find_float("ratio", 0)
        L.noobj = r.find_float("noobj", 1)
        L.thresh = r.find_float("thresh", 0)

    def build(self, ls, b):
        return b.cls("CostLayer", ls.section)(
            batch=b.batch, inputs=ls.inputs, cost_type=ls.cost_type, scale=ls.scale,
            **b.extra(False))

    def forward(self, layer, inp, truth, train):
        layer.forward(inp, truth)

    def backward(self, layer, inp, prev_delta, fixes):
        layer.backward(prev_delta)

    def darknet_lines(self, ls):
        return [f"cost                                           {ls.inputs:4d}"]

    def describe(self, ls):
        return ls.cost_type + ("" if ls.scale == 1 else f", scale={ls.scale:g}")

    def cost_unit(self, ls):
        return ls.cost_type


@register
class Dropout(LayerType):
    """Darknet's [dropout]: `probability` (default 0.5). It owns no buffers:
    Darknet hands it the previous layer's output and delta, so in training it
    masks and scales that output in place (the previous layer's backward
    then sees the rewritten values) and masks its delta in place; in
    inference it is the identity. The mask is drawn from the network's
    rand() stream. With exact=True the layer works out of place instead, so
    the previous layer's backward sees its own output (the true gradient)."""
    name = "dropout"
    sections = ("[dropout]",)

    def parse(self, r, L, strict, messages):
        if L.index == 0:
            raise CfgError(f"{r.path}:{r.section.line}: [dropout] cannot be the first layer: "
                           "it works on the output of the layer before it")
        L.outputs = L.inputs
        p = r.find_float("probability", .5, quiet=False)
        if not 0.0 <= p < 1.0:
            raise _err(r, "probability", f"probability={p:g} must be at least 0 and below 1")
        L.probability = p        # an extra LayerSpec attribute, only on dropout layers

    def build(self, ls, b):
        prev = b.previous
        alias = {} if b.fixes else {"output": prev.output, "delta": prev.delta}
        return b.cls("DropoutLayer", ls.section)(
            batch=b.batch, inputs=ls.inputs, probability=ls.probability, rng=b.rng,
            **alias, **b.extra(False))

    def forward(self, layer, inp, truth, train):
        layer.forward(inp, train=train)

    def backward(self, layer, inp, prev_delta, fixes):
        layer.backward(prev_delta)

    def darknet_lines(self, ls):
        return [f"dropout       p = {ls.probability:.2f}               "
                f"{ls.inputs:4d}  ->  {ls.inputs:4d}"]

    def describe(self, ls):
        return f"probability={ls.probability:g}"

class BidirectionalRNN(RNN):
    """[rnn] with bidirectional=1, an extension (no Darknet reads it): two
    independent [rnn] blocks with the section's options, one over
    t = 0..T-1, one over t = T-1..0, outputs concatenated per step (forward
    half first) into `outputs` = 2 * output units. Chosen by RNN.variant;
    .weights holds the forward block's three sublayers, then the backward
    block's, each in Darknet's order (and rand() initialises them in that
    order). Every call is a whole sequence: no stateful training, no
    step-by-step predict."""
    whole_sequence = True

    def build(self, ls, b):
        if b.stateful:
            raise CfgError(
                f"stateful=True: layer {ls.index} {ls.section} (line {ls.line}) is "
                "bidirectional; its backward block starts at the end of each sequence, "
                "so there is no state to carry into the next call - train it without "
                "stateful")
        return b.cls("BiRNNLayer", ls.section + " with bidirectional=1")(
            batch=b.streams, inputs=ls.inputs, outputs=ls.outputs // 2, steps=b.time_steps,
            activation=ls.activation, batch_normalize=ls.batch_normalize,
            shortcut=ls.shortcut, fixes=b.fixes, **b.extra())

    def named_blocks(self, layer):
        one = RNN.named_blocks
        return [(f"{d}.{name}", blk)
                for d, rnn in zip(("forward", "backward"), layer.directions)
                for name, blk in one(self, rnn)]

    def state_arrays(self, layer):
        return [a for rnn in layer.directions for a in (rnn.state, rnn.carry)]


BIDIRECTIONAL_RNN = BidirectionalRNN()

