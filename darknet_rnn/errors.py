"""Exceptions raised by darknet_rnn.

Every error is a DarknetError and also subclasses the built-in it resembles,
so `except ValueError` works for bad configuration or files.
"""


class DarknetError(Exception):
    """Base class of every darknet_rnn error."""


class CfgError(DarknetError, ValueError):
    """A .cfg file (or a network description) is invalid. The message names
    the file, line and key at fault where there is one."""


class WeightsError(DarknetError, ValueError):
    """A .weights file does not match the network (size, header, format)."""


class KernelError(DarknetError, ValueError):
    """A requested kernel is unknown or not supported by this CPU."""


class NativeError(DarknetError, RuntimeError):
    """The C core returned an error status."""


class DarknetTrainingWarning(UserWarning):
    """Training reproduces what Darknet's CPU build does, which is not a true
    gradient for this network (shown once; exact=True trains exactly)."""


class DivergenceError(DarknetError, FloatingPointError):
    """Training or inference produced NaN or infinity (the finite guard,
    darknet_rnn.guard). The message names the iteration and the first layer
    whose output, gradient or parameters went non-finite; `iteration`,
    `layer` (index or None) and `what` hold the same, and `checkpoint` the
    last finite checkpoint a TrainingRun wrote (None if none)."""

    def __init__(self, message, *, iteration=None, layer=None, what=None):
        super().__init__(message)
        self.iteration = iteration
        self.layer = layer
        self.what = what
        self.checkpoint = None
