"""Darknet's activation names, in the order of its ACTIVATION enum (and of
dn_activation in csrc/darknet_rnn.h). Names are case-sensitive."""

ACTIVATIONS = ("logistic", "relu", "relie", "linear", "ramp", "tanh", "plse",
               "leaky", "elu", "loggy", "stair", "hardtan", "lhtan", "selu")

_INDEX = {name: i for i, name in enumerate(ACTIVATIONS)}


def activation_index(name, argname="activation"):
    """The dn_activation id of `name`; ValueError for an unknown name."""
    if not isinstance(name, str):
        raise TypeError(f"{argname} must be a str, got {type(name).__name__}")
    try:
        return _INDEX[name]
    except KeyError:
        raise ValueError(
            f"{argname}: unknown activation {name!r}; expected one of "
            + ", ".join(ACTIVATIONS)) from None
