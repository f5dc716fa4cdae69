"""Sequence tasks beyond Darknet's language model: which rows carry a loss.

Darknet trains every time step of every stream against a truth (the
all-states case: tagging, language models). Two extensions, through
`Network.train(x, y, mask=None)` (and `forward_backward`, `forward`):

* **Masks** - `mask` (time_steps, streams) bool (or (batch,) in Darknet's
  time-major row order) marks the rows that carry a loss. The loss layers
  ([softmax], [cost]) run their Darknet forward unchanged; then the rows
  with mask False get a zero delta and a zero per-element loss, and the
  layer's cost is recomputed in Darknet's summation order, so it is bit for
  bit the sum over the unmasked rows. Their truth is never looked at (it
  may hold anything, NaN included).
* **Many-to-one** - a `y` of shape (streams, outputs) is the truth of the
  last step only: the same as a full y holding it at the last step with
  only the last step unmasked (sequence classification or regression).

Normalisation: Darknet's loss is the sum over every element of the batch
(not divided by it), and its update divides the summed gradient by
batch * subdivisions rows. Masking changes only the sum: the loss and the
gradient sum over the unmasked rows, while the update still divides by all
rows, masked ones included - nothing is renormalised. A net that trains
many-to-one on T steps therefore takes 1/T of the step a net with a loss on
every row would take for the same per-row error; to take the step Darknet
would take if the unmasked rows were the whole batch, multiply
`learning_rate` by rows / unmasked rows (time_steps for many-to-one).
Adam's step does not depend on the gradient's scale.
"""
import numpy as np

__all__ = ["check_mask", "truth_and_mask"]


def check_mask(mask, time_steps, streams):
    """A (time_steps*streams,) bool row mask from mask (time_steps, streams)
    or (time_steps*streams,), bool or integer 0/1."""
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        if not np.issubdtype(m.dtype, np.integer) or not np.isin(m, (0, 1)).all():
            raise TypeError(f"mask must be a bool array (or integers 0/1), got dtype {m.dtype}"
                            + ("" if not np.issubdtype(m.dtype, np.integer) else
                               " with values other than 0 and 1"))
        m = m.astype(np.bool_)
    n = time_steps * streams
    if m.shape not in ((time_steps, streams), (n,)):
        raise ValueError(f"mask must have shape ({time_steps}, {streams}) (time_steps, streams) "
                         f"or ({n},); got {m.shape}")
    return np.ascontiguousarray(m.reshape(n))


def truth_and_mask(net, y, mask):
    """(truth rows, keep) for a training or loss forward of `net`: y as
    Network accepts it, or (streams, outputs) for the last step only; keep
    is None (every row carries a loss) or a (batch,) bool array."""
    T, B, O = net.time_steps, net.streams, net.truths
    arr = np.asarray(y)
    if T > 1 and arr.shape == (B, O):
        if mask is not None:
            raise ValueError(f"mask: a y of shape ({B}, {O}) (streams, outputs) is the last "
                             "step's truth and already means 'only the last step'; give a "
                             f"({T}, {B}, {O}) y to combine it with a mask")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
                or arr.dtype == np.bool_):
            raise TypeError(f"y must be a numeric array, got dtype {arr.dtype}")
        full = np.zeros((T, B, O), net.dtype)
        full[-1] = arr
        keep = np.zeros((T, B), np.bool_)
        keep[-1] = True
        return net._rows(full, "y", O), keep.reshape(T * B)
    truth = net._rows(y, "y", O)
    return truth, None if mask is None else check_mask(mask, T, B)
