"""Switches for the places where Darknet's CPU backward departs from the
true gradient (SPEC section 14). 0 reproduces Darknet; FIX_ALL gives exact
BPTT. Values equal the dn_fix enum in csrc/darknet_rnn.h."""

FIX_COPY_BEFORE_SCALE = 1      # Q2: input layer gets dL/dh, not the f'(b)-scaled delta
FIX_SHORTCUT_CARRY = 2         # Q3: shortcut carries the raw dL/dh
FIX_STORED_STATE = 4           # Q4: output layer uses the stored state (keeps the shortcut term)
FIX_BN_STEP_STATS = 8          # Q5: BN backward uses each step's own statistics
FIX_BN_GRADIENT = 16           # Q6: BN backward is the derivative of Darknet's BN forward
FIX_SOFTMAX_TEMPERATURE = 32   # Q11: softmax delta divided by the temperature
FIX_ALL = 63
