"""The text of `darknet-rnn train`: the corpus (bytes, or token ids with
--tokenized) split into training and held-back parts, and the checks that it
fits the network, each failing with one sentence."""
from . import text as textlib
from .cliargs import UsageError

__all__ = ["training_text", "check_length", "symbols"]


def training_text(args):
    """(train, valid, name, vocab): bytes, or token ids with --tokenized
    (vocab: None for bytes, else filled in later from the network)."""
    if args.tokenized:
        if args.file is None:
            raise UsageError("--tokenized (-tokenized) needs --file FILE (-file FILE): "
                             "a file of token ids")
        corpus = textlib.read_tokenized_data(args.file, lenient=args.lenient)
        name = args.file
    elif args.file is None:
        corpus, name = textlib.default_corpus(), "the embedded corpus (pydoc_data.topics)"
    else:
        corpus, name = textlib.load_text(args.file), args.file
    train_text, valid_text = textlib.split_text(corpus, args.valid_fraction)
    return train_text, valid_text, name


def check_length(net, args, train_text, valid_text, name, unit):
    need = net.streams * net.time_steps + 1
    if len(train_text) < need:
        held = (f", after holding back {args.valid_fraction:g} for validation"
                if len(valid_text) else "")
        raise textlib.TextError(
            f"the training text ({len(train_text)} {unit} of {name}{held}) is shorter than "
            f"one batch: {net.streams} streams x {net.time_steps} steps + 1 = {need} {unit}")


def symbols(net, args, train_text, valid_text):
    """(symbol, unit, vocab) of the run, after checking the texts fit the net."""
    if args.tokenized:
        vocab = int(net.inputs)
        if net.outputs != net.inputs:
            raise textlib.TextError(f"{args.cfg}: word-level training needs as many outputs "
                                    f"as inputs (has {net.outputs} and {net.inputs})")
        for data in (train_text, valid_text):
            textlib.check_token_ids(data, vocab, args.file)
        return "token", "tokens", vocab
    textlib.check_byte_network(net, args.cfg)
    return "character", "bytes", None
