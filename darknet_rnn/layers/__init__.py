"""Darknet's layers on the C core: ConnectedLayer, RNNLayer, GRULayer,
LSTMLayer, SoftmaxLayer, CostLayer, DropoutLayer.

Same classes, methods and attribute names as darknet_rnn.reference (the
NumPy twin). Every parameter and buffer is a float32 NumPy array that the C
structs point into, so `layer.weights[0, 0] = 1` changes what C computes;
assigning a whole array (`layer.weights = w`) copies into the same buffer.

Layout: rows are time-major (row t*batch + s is stream s at step t).
"""
from ..activations import ACTIVATIONS  # noqa: F401  (re-exported)
from ..fixes import FIX_ALL, FIX_BN_GRADIENT  # noqa: F401  (re-exported)
from .birnn import BiRNNLayer
from .core import (COST_TYPES, ConnectedLayer, CostLayer, DropoutLayer, RNNLayer,  # noqa: F401
                   SoftmaxLayer, check_array, positive_int)
from .gated import GRULayer, LSTMLayer

__all__ = ["ConnectedLayer", "RNNLayer", "GRULayer", "LSTMLayer", "SoftmaxLayer", "CostLayer",
           "DropoutLayer", "BiRNNLayer", "ACTIVATIONS", "COST_TYPES"]
