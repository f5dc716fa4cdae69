"""`python -m darknet_rnn ...` is the `darknet-rnn` command (see cli.py)."""
import sys

from .cli import main

sys.exit(main())
