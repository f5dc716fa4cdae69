"""The layer-type registry: everything the network needs to know about a cfg
section type, in one entry per type.

An entry (a LayerType subclass, registered with @register) says
* which section headers name it (`sections`) and how its keys are parsed
  (`parse`, after the [net] section and before the keys every layer has);
* how a layer is built from its LayerSpec for a backend (`build`): the C
  core (darknet_rnn.layers), the bit-exact NumPy twin (darknet_rnn.reference)
  or the BLAS-speed NumPy baseline of the benchmark;
* which connected-like parameter blocks it initialises, in Darknet's rand()
  order (`init_blocks`), and which it reads and writes in `.weights`, in file
  order (`weight_blocks`) - the two differ for Darknet's [gru]/[lstm];
* its parameters for the optimizer (`params`, derived from the blocks);
* how it runs forward and backward, and what it adds to the network's cost.

Network walks its layers through these methods only; no code outside this
module chooses behaviour by comparing a layer's type name. Adding a layer
type: a C file (csrc/), a NumPy-twin module (darknet_rnn/reference/), the
native wrapper class (darknet_rnn/layers/), an entry in one of this
package's modules, and a row in tests/test_layer_table.py.

_base.py: the LayerType interface, the registry and shared parsing helpers;
dense.py: [connected], [rnn] (and its bidirectional variant), [softmax],
[cost], [dropout]; gated.py: [gru], [lstm].
"""
from ._base import (ALLOC_FLOATS, BACKENDS, REGISTRY, BuildContext, LayerType,  # noqa: F401
                    alloc_bytes, backend_module, is_loss_layer, layer_type, register,
                    section_types)
from . import dense, gated  # noqa: F401,E402  (the entries register themselves)
from .dense import BIDIRECTIONAL_RNN  # noqa: F401

__all__ = ["LayerType", "register", "layer_type", "section_types", "backend_module",
           "BuildContext", "REGISTRY"]
