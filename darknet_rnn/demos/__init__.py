"""`darknet-rnn demo`: two sequence tasks that show what many-to-one
training, gradient clipping and the bidirectional [rnn] are for.

    darknet-rnn demo adding [--steps 10,20,50,100] [--iterations N] [--seed S] ...
        The adding problem (Hochreiter & Schmidhuber): many-to-one regression,
        test MSE against sequence length for Darknet's backward, exact
        gradients and exact gradients with clipping, and how much gradient
        reaches each time step.
    darknet-rnn demo spaces [--steps T] [--iterations N] [--seed S] [--file TEXT] ...
        Restore the spaces removed from text (tag each byte that ends a
        word): a unidirectional against a bidirectional [rnn], accuracy on
        held-out text.

Each prints Markdown tables on stdout (progress on stderr) and is
reproducible: the same --seed gives the same numbers.
"""
import sys

DEMOS = {"adding": "adding", "spaces": "spaces"}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in DEMOS:
        out = sys.stdout if argv and argv[0] in ("-h", "--help") else sys.stderr
        print("usage: darknet-rnn demo {" + ",".join(DEMOS) + "} [options]\n\n"
              + __doc__.split("\n\n", 1)[1].rstrip(), file=out)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\ndarknet-rnn demo: error: unknown demo {argv[0]!r}", file=out)
        return 0 if out is sys.stdout else 2
    import importlib
    module = importlib.import_module(f"{__name__}.{DEMOS[argv[0]]}")
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
