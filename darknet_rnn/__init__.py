"""darknet_rnn: Darknet's recurrent networks (rnn, gru, lstm, connected, softmax, cost)
on a C core with a NumPy twin, reading/writing Darknet .cfg and .weights.

    import darknet_rnn
    net = darknet_rnn.load_network(darknet_rnn.cfg_path("rnn"), "rnn.weights")
    out = net.predict(x)
"""
from .errors import (CfgError, DarknetError, DivergenceError, KernelError, NativeError,
                     WeightsError)

__version__ = "0.1.0"

__all__ = ["load_network", "Network", "DarknetError", "CfgError", "WeightsError",
           "KernelError", "NativeError", "DivergenceError", "build_info", "set_kernel",
           "set_num_threads", "cfg_path"]


def __getattr__(name):
    # Lazy: `import darknet_rnn.reference` / `.cfg` work without the native build.
    if name in ("load_network", "Network"):
        from . import network
        return getattr(network, name)
    if name in ("set_kernel", "set_num_threads"):
        from . import _ffi
        return getattr(_ffi, name)
    if name == "cfg_path":
        from .cfgfiles import cfg_path
        return cfg_path
    if name == "build_info":
        from .info import build_info
        return build_info
    raise AttributeError(f"module 'darknet_rnn' has no attribute {name!r}")
