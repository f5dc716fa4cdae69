"""Loading a network for the command line: the CFG argument resolved (a
path, or the name of a packaged cfg), both files checked for being what
they claim before they are parsed (so a swapped CFG and WEIGHTS gives a
plain sentence, not bytes of the other file), Darknet's lenient fallbacks
on request, and the layer table Darknet prints while it loads.
"""
import os

from .cfgfiles import resolve_cfg
from .errors import CfgError, WeightsError
from .files import open_regular

LENIENT_HINT = ("--lenient loads it the way Darknet does (the parameters it does not "
                "cover keep their initial values; extra bytes are ignored).")
_TABLE_HEADER = "layer     filters    size              input                output"


def check_cfg_file(path):
    """CfgError if `path` is evidently not a cfg (binary content); only
    regular files are opened (a FIFO or device would block or never end)."""
    f, _ = open_regular(path, "cfg file", CfgError)
    with f:
        head = f.read(4096)
    if b"\0" in head:
        what = "a Darknet .weights file" if b"\0" in head[:12] else "a binary file"
        raise CfgError(f"{path}: this looks like {what}, not a cfg (text). The cfg comes "
                       "first: CFG [WEIGHTS]")


def check_weights_file(path):
    """WeightsError if `path` is evidently not Darknet weights (a text file,
    a Git LFS pointer, an HTML page): Darknet's header starts with three
    little-endian int32 version numbers, which always contain zero bytes."""
    f, _ = open_regular(path, "weights file", WeightsError)
    with f:
        head = f.read(512)
    if len(head) < 12 or b"\0" in head[:12]:
        return
    text = head.lstrip()
    if text.startswith(b"version https://git-lfs"):
        raise WeightsError(f"{path}: this is a Git LFS pointer, not the weights: fetch the "
                           "real file (git lfs pull)")
    if text[:1] == b"<":
        raise WeightsError(f"{path}: this is an HTML/XML page (a failed download?), not "
                           "Darknet weights")
    if text[:1] in (b"[", b"#", b";") or b"[net]" in head or b"[network]" in head:
        raise WeightsError(f"{path}: this is a text file (a Darknet cfg?), not weights. "
                           "The cfg comes first: CFG WEIGHTS")
    raise WeightsError(f"{path}: not a Darknet .weights file (it does not start with "
                       "Darknet's version header)")


def layer_table(net):
    """The lines Darknet prints while it parses the cfg: a header, then per
    layer its number and Darknet's description (an [rnn] adds its three
    connected sublayers)."""
    lines = [_TABLE_HEADER]
    for k, ls in zip(net.kinds, net.spec.layers):
        first, *rest = k.darknet_lines(ls)
        lines.append(f"{ls.index:5d} {first}")
        lines += rest
    return lines


def load_output(net, weights=None):
    """What Darknet prints while it loads: the layer table, then "Loading
    weights from PATH...Done!" when there are weights. (A command prints it
    once its own checks passed, so that an error stays one line.)"""
    lines = layer_table(net)
    if weights is not None:
        lines.append(f"Loading weights from {weights}...Done!")
    return lines


def load_net(cfg, weights=None, *, training=False, lenient=False, **kw):
    """darknet_rnn.load_network for a command: resolve and check the files,
    strict unless lenient; a weights error names --lenient."""
    import darknet_rnn
    cfg = resolve_cfg(cfg, training=training)
    check_cfg_file(cfg)
    if weights is not None:
        weights = os.fspath(weights)
        if os.path.isdir(weights):
            raise IsADirectoryError(21, f"weights argument is a directory: {weights}", weights)
        if os.path.exists(weights):
            check_weights_file(weights)
    try:
        net = darknet_rnn.load_network(cfg, weights, strict=not lenient, **kw)
    except WeightsError as e:
        msg = str(e).replace("Pass strict=False to load it the way Darknet does.", LENIENT_HINT)
        raise WeightsError(msg) from None
    return net
