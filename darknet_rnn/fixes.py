"""Switches for the places where Darknet's CPU backward departs from the
true gradient (SPEC section 14). 0 reproduces Darknet; FIX_ALL gives exact
BPTT. Values equal the dn_fix enum in csrc/darknet_rnn.h."""

FIX_COPY_BEFORE_SCALE = 1      # Q2: input layer gets dL/dh, not the f'(b)-scaled delta
FIX_SHORTCUT_CARRY = 2         # Q3: shortcut carries the raw dL/dh
FIX_STORED_STATE = 4           # Q4: output layer uses the stored state (keeps the shortcut term)
FIX_BN_STEP_STATS = 8          # Q5: BN backward uses each step's own statistics
FIX_BN_GRADIENT = 16           # Q6: BN backward is the derivative of Darknet's BN forward
FIX_SOFTMAX_TEMPERATURE = 32   # Q11: softmax delta divided by the temperature
# [gru] / [lstm] (the fixtures' README in tests/data/rec describes Darknet's CPU behaviour)
FIX_GRU_BACKWARD = 64          # [gru] backpropagates (Darknet's CPU backward is empty)
FIX_LSTM_PREV_STATE = 128      # [lstm] step 0's previous h, c: the state the datum started from
FIX_LSTM_CELL_CARRY = 256      # [lstm] the cell-gradient carry starts at 0 in every backward
FIX_LSTM_NEXT_STATE = 512      # [lstm] the next datum starts from the last step's h, c
FIX_ALL = 1023
