/* darknet_rnn.h - the one public C header of darknet_rnn.
 *
 * cffi reads this file as its cdef (lines starting with '#' are dropped by
 * csrc/build.py), so it holds only plain declarations: enums, structs,
 * prototypes. Every exported symbol is prefixed dn_.
 *
 * Ownership: Python (NumPy) owns every buffer; the structs below only borrow
 * pointers. C never allocates (except dn_pool_create, the thread pool a
 * context may own), prints, asserts on user input or exits; every entry
 * point returns a dn_status (0 = DN_OK).
 *
 * Layout: all matrices are row-major float32. Rows are time-major: row
 * t*batch + s is stream s at time step t (SPEC section 1).
 */
#ifndef DARKNET_RNN_H
#define DARKNET_RNN_H

typedef enum {
    DN_OK = 0,
    DN_ERR_ARG = 1,          /* a size, pointer or flag is invalid */
    DN_ERR_ACTIVATION = 2,   /* unknown activation id */
    DN_ERR_KERNEL = 3,       /* kernel id unknown or not supported by this CPU */
    DN_ERR_COST_TYPE = 4,    /* unknown cost type id */
    DN_ERR_MEMORY = 5        /* out of memory (dn_pool_create only) */
} dn_status;

/* Darknet's ACTIVATION enum, same order. */
typedef enum {
    DN_LOGISTIC = 0, DN_RELU = 1, DN_RELIE = 2, DN_LINEAR = 3, DN_RAMP = 4,
    DN_TANH = 5, DN_PLSE = 6, DN_LEAKY = 7, DN_ELU = 8, DN_LOGGY = 9,
    DN_STAIR = 10, DN_HARDTAN = 11, DN_LHTAN = 12, DN_SELU = 13
} dn_activation;

/* Cost types of [cost] (Darknet's COST_TYPE names). */
typedef enum {
    DN_COST_SSE = 0, DN_COST_MASKED = 1, DN_COST_L1 = 2, DN_COST_SEG = 3,
    DN_COST_SMOOTH = 4, DN_COST_WGAN = 5
} dn_cost_type;

/* GEMM / layer kernels. REFERENCE reproduces Darknet's loops and summation
 * order bit for bit; the others are fast paths (tolerance only). */
typedef enum {
    DN_KERNEL_REFERENCE = 0, DN_KERNEL_PORTABLE = 1, DN_KERNEL_AVX2 = 2,
    DN_KERNEL_AVX512 = 3
} dn_kernel;

/* Departures of Darknet's CPU RNN/BN backward from the true gradient
 * (SPEC section 14). 0 = reproduce Darknet; DN_FIX_ALL = exact BPTT. */
typedef enum {
    DN_FIX_COPY_BEFORE_SCALE = 1,   /* Q2: input layer gets dL/dh, not f'(b)-scaled */
    DN_FIX_SHORTCUT_CARRY = 2,      /* Q3: shortcut carries the raw dL/dh */
    DN_FIX_STORED_STATE = 4,        /* Q4: output layer uses the stored state */
    DN_FIX_BN_STEP_STATS = 8,       /* Q5: BN backward uses each step's statistics */
    DN_FIX_BN_GRADIENT = 16,        /* Q6: BN backward is the derivative of its forward */
    DN_FIX_SOFTMAX_TEMPERATURE = 32,/* Q11: softmax delta divided by the temperature */
    DN_FIX_GRU_BACKWARD = 64,       /* [gru] backpropagates (Darknet's CPU backward is empty) */
    DN_FIX_LSTM_PREV_STATE = 128,   /* [lstm] step 0 sees the state the datum started from */
    DN_FIX_LSTM_CELL_CARRY = 256,   /* [lstm] the cell-gradient carry starts at 0 per backward */
    DN_FIX_LSTM_NEXT_STATE = 512,   /* [lstm] the next datum starts from the last step's h, c */
    DN_FIX_ALL = 1023
} dn_fix;

/* A pool of worker threads (pool.c); opaque. */
typedef struct dn_pool dn_pool;

/* Execution context, passed explicitly (no global state in C). */
typedef struct dn_ctx {
    int kernel;      /* dn_kernel */
    int threads;     /* >= 1 */
    float *work;     /* GEMM packing workspace (NULL for REFERENCE) */
    long work_floats;/* its size; at least dn_gemm_work_floats(kernel, threads) */
    dn_pool *pool;   /* NULL, or workers for threads > 1 (else threads are
                        created per call) */
} dn_ctx;

/* threads = workers + the calling thread. Workers spin briefly, then sleep,
 * while there is no work. dn_pool_threads: threads actually running (fewer
 * than asked if the system refused some). */
int dn_pool_create(int threads, dn_pool **out);
void dn_pool_destroy(dn_pool *pool);
int dn_pool_threads(const dn_pool *pool);

/* A fully connected layer. For a plain [connected] layer steps == 1 and
 * batch is the network batch; inside an RNN batch is the stream count and
 * steps the number of time steps, and a call works on one step's rows. */
typedef struct dn_connected {
    int batch;               /* rows per call */
    int steps;               /* row blocks allocated */
    int inputs, outputs;
    int activation;          /* dn_activation */
    int batch_normalize;     /* 0/1 */
    float learning_rate_scale;
    float *weights;          /* (outputs, inputs) */
    float *biases;           /* (outputs) */
    float *weight_updates;   /* (outputs, inputs) */
    float *bias_updates;     /* (outputs) */
    float *output;           /* (steps*batch, outputs) */
    float *delta;            /* (steps*batch, outputs) */
    /* batch_normalize only (NULL otherwise): */
    float *scales;           /* (outputs) */
    float *scale_updates;    /* (outputs) */
    float *rolling_mean;     /* (outputs) */
    float *rolling_variance; /* (outputs) */
    float *mean;             /* (steps, outputs) batch statistics per step */
    float *variance;         /* (steps, outputs) */
    float *x;                /* (steps*batch, outputs) pre-normalisation */
    float *x_norm;           /* (steps*batch, outputs) normalised */
    float *mean_delta;       /* (outputs) backward scratch */
    float *variance_delta;   /* (outputs) backward scratch */
    double *bn_factors;      /* (3, outputs) per-column factors scratch */
} dn_connected;

/* [rnn]: three connected sublayers with batch = streams, steps = time steps. */
typedef struct dn_rnn {
    int batch, steps, inputs, outputs;
    int shortcut;            /* 0/1 */
    int fixes;               /* dn_fix bit set, 0 = Darknet */
    dn_connected input_layer;   /* inputs -> outputs */
    dn_connected self_layer;    /* outputs -> outputs */
    dn_connected output_layer;  /* outputs -> outputs */
    float *state;            /* (steps+1, batch, outputs); block 0 is h_0 */
    float *scratch;          /* (batch, outputs) backward scratch */
    /* Stateful training (truncated BPTT): a training forward starts from
     * `carry` instead of zero and leaves its last state there. */
    int stateful;            /* 0/1 */
    float *carry;            /* (batch, outputs); NULL unless stateful */
    /* Optional: the backward writes the L2 norm (over streams and units) of
     * the delta reaching each step's state, -dL/dh_{t+1}, at index t. */
    float *grad_norms;       /* (steps) or NULL */
} dn_rnn;

/* [softmax] */
typedef struct dn_softmax {
    int batch, inputs, groups;
    float temperature;
    int noloss;
    int fixes;               /* DN_FIX_SOFTMAX_TEMPERATURE: delta / temperature */
    float *output;           /* (batch, inputs) */
    float *delta;            /* (batch, inputs) */
    float *loss;             /* (batch, inputs) per-element error */
} dn_softmax;

/* [cost] */
typedef struct dn_cost {
    int batch, inputs;
    int cost_type;           /* dn_cost_type */
    float scale;
    float *output;           /* (batch, inputs) per-element error */
    float *delta;            /* (batch, inputs) */
} dn_cost;

/* One parameter array and its update buffer (optimizer.c). The update
 * buffer holds the accumulated negative gradient (Darknet's *_updates);
 * SGD keeps its momentum in it. */
typedef struct dn_param {
    float *value;                /* (n) */
    float *grad;                 /* (n) */
    long n;
    float learning_rate_scale;   /* the owning layer's learning_rate key */
    int decay;                   /* 1: weight decay applies (SGD: weights only) */
    float *m, *v;                /* (n) Adam's moments; NULL for SGD */
} dn_param;

/* What an update needs besides the arrays (Darknet's update_args). */
typedef struct dn_update_args {
    float learning_rate;         /* current rate of the lr policy */
    float momentum;
    float decay;
    long batch;                  /* Darknet's divisor: batch * subdivisions */
    /* Adam only: */
    float B1, B2, eps;
    float correction1, correction2;  /* 1 - B1^t, 1 - B2^t for update count t */
} dn_update_args;

/* Darknet's SGD (momentum, decay, batch divisor) over `count` pairs. */
int dn_sgd_update(const dn_update_args *args, const dn_param *params, long count);
/* Adam as Darknet's GPU build defines it (every pair has m and v); clears
 * the gradients. */
int dn_adam_update(const dn_update_args *args, const dn_param *params, long count);

const char *dn_status_string(int status);
const char *dn_build_flags(void);    /* compiler and flags the core was built with */
const char *dn_activation_name(int activation);
int dn_kernels_available(void);   /* bit (1 << dn_kernel) per usable kernel */
int dn_kernel_auto(void);         /* the fastest kernel this CPU runs */
long dn_gemm_work_floats(int kernel, int threads);

/* BLAS-1 (Darknet's fill/copy/axpy/scal, float arithmetic). */
void dn_fill(long n, float alpha, float *x, int incx);
void dn_copy(long n, const float *x, int incx, float *y, int incy);
void dn_axpy(long n, float alpha, const float *x, int incx, float *y, int incy);
void dn_scal(long n, float alpha, float *x, int incx);

/* C = alpha*op(A)*op(B) + beta*C, op = transpose when TA/TB != 0.
 * A: (M,K) or (K,M) with leading dimension lda, B: (K,N) or (N,K), C: (M,N). */
int dn_gemm(const dn_ctx *ctx, int TA, int TB, int M, int N, int K, float alpha,
            const float *A, int lda, const float *B, int ldb, float beta,
            float *C, int ldc);

/* Activations: x/y have n elements. */
int dn_activate(float *x, long n, int activation);
int dn_gradient(const float *y, long n, int activation, float *delta);

int dn_connected_forward(const dn_ctx *ctx, const dn_connected *l, int step,
                         const float *input, int train);
int dn_connected_backward(const dn_ctx *ctx, const dn_connected *l, int step,
                          int stats_step, int fixes, const float *input,
                          float *prev_delta);

int dn_rnn_forward(const dn_ctx *ctx, const dn_rnn *l, const float *input, int train);
int dn_rnn_backward(const dn_ctx *ctx, const dn_rnn *l, const float *input,
                    float *prev_delta);

int dn_softmax_forward(const dn_softmax *l, const float *input, const float *truth,
                       float *cost);
int dn_softmax_backward(const dn_softmax *l, float *prev_delta);

int dn_cost_forward(const dn_cost *l, float *input, const float *truth, float *cost);
int dn_cost_backward(const dn_cost *l, float *prev_delta);

/* [dropout] (dropout.c). rand holds the n draws of the last training
 * forward. rng_state: the caller's glibc rand() state (34 raw values, oldest
 * first), advanced by n draws. input == output and delta == prev_delta give
 * Darknet's in-place semantics (the previous layer's buffers). */
typedef struct dn_dropout {
    long n;                  /* batch * inputs */
    float probability;       /* in [0, 1) */
    float scale;             /* float(1 / (1 - probability)) */
    float *rand;             /* (n) */
} dn_dropout;

int dn_dropout_forward(const dn_dropout *l, unsigned int *rng_state, const float *input,
                       float *output, int train);
int dn_dropout_backward(const dn_dropout *l, const float *delta, float *prev_delta);

/* ---- [gru] and [lstm] (gru.c, lstm.c; fast paths gru_fast.c, lstm_fast.c) ----
 * Linear connected sublayers with batch = streams and steps = time steps,
 * like the [rnn]'s. The recurrent state is carried between calls (Darknet
 * does not reset it, in training either); `states` keeps the state each step
 * starts from, so the layer output is its blocks 1..steps. */

/* [gru]: z = logistic(uz x + wz s), r = logistic(ur x + wr s),
 * h = act(uh x + wh (r*s)) with act logistic (tanh = 0) or tanh,
 * s' = z*s + (1-z)*h. */
typedef struct dn_gru {
    int batch, steps, inputs, outputs;
    int tanh;                /* 0/1: candidate activation tanh instead of logistic */
    int fixes;               /* dn_fix bit set; DN_FIX_GRU_BACKWARD enables backward */
    dn_connected uz, wz, ur, wr, uh, wh;   /* u*: inputs -> outputs, w*: outputs -> outputs */
    float *state;            /* (batch, outputs) carried between calls */
    float *states;           /* (steps+1, batch, outputs) block t: state step t starts from */
    float *z, *r, *h;        /* (steps*batch, outputs) gates and candidate, per step */
    float *forgot_state;     /* (steps*batch, outputs) r*s, the input of wh */
    float *delta;            /* (steps*batch, outputs) */
    float *scratch;          /* (3, batch, outputs) backward scratch */
} dn_gru;

/* [lstm]: f = logistic(wf h + uf x), i = logistic(wi h + ui x),
 * g = tanh(wg h + ug x), o = logistic(wo h + uo x), c' = f*c + i*g,
 * h' = o*tanh(c'). */
typedef struct dn_lstm {
    int batch, steps, inputs, outputs;
    int fixes;               /* dn_fix bit set, 0 = Darknet's CPU backward */
    dn_connected wf, wi, wg, wo, uf, ui, ug, uo;
    float *state;            /* (batch, outputs) hidden state carried between calls */
    float *cell_state;       /* (batch, outputs) cell carried between calls */
    float *dc;               /* (batch, outputs) cell-gradient carry (kept between calls) */
    float *states;           /* (steps+1, batch, outputs) hidden state before step t */
    float *cells;            /* (steps+1, batch, outputs) cell before step t */
    float *f, *i, *g, *o;    /* (steps*batch, outputs) gate activations per step */
    float *delta;            /* (steps*batch, outputs) */
    float *scratch;          /* (3, batch, outputs) backward scratch */
} dn_lstm;

int dn_gru_forward(const dn_ctx *ctx, const dn_gru *l, const float *input, int train);
int dn_gru_backward(const dn_ctx *ctx, const dn_gru *l, const float *input,
                    float *prev_delta);
int dn_lstm_forward(const dn_ctx *ctx, const dn_lstm *l, const float *input, int train);
int dn_lstm_backward(const dn_ctx *ctx, const dn_lstm *l, const float *input,
                     float *prev_delta);

/* ---- Sequence tasks (extensions: mask.c, birnn.c) --------------------- */

/* Per-row loss mask of a loss layer (softmax / cost) after its forward:
 * every row r with keep[r] == 0 gets a zero delta and, when loss is not
 * NULL, a zero per-element loss; then, when cost is not NULL, *cost is the
 * float sum of the whole (rows, width) loss buffer in memory order
 * (Darknet's sum_array), so masked rows add exactly 0. */
int dn_mask_rows(int rows, int width, const unsigned char *keep, float *delta,
                 float *loss, float *cost);

/* Bidirectional [rnn]: two independent [rnn] blocks of one shape (batch,
 * steps, inputs, outputs = units per direction). `fwd` runs over
 * t = 0..steps-1 on the input; `bwd` runs over the time-reversed input, so
 * its step k is time steps-1-k. Row t*batch + s of `output` is fwd's row
 * then bwd's row of the same time (2*outputs values). Every call is a whole
 * sequence: an inference forward starts both blocks from a zero state. */
typedef struct dn_birnn {
    int batch, steps, inputs, outputs;  /* outputs per direction */
    dn_rnn *fwd;
    dn_rnn *bwd;
    float *reversed_input;   /* (steps*batch, inputs): the input bwd saw */
    float *reversed_delta;   /* (steps*batch, inputs): backward scratch */
    float *output;           /* (steps*batch, 2*outputs) */
    float *delta;            /* (steps*batch, 2*outputs); forward zeroes it */
    struct dn_wpack *fwd_pack, *bwd_pack;  /* W_self buffers of the fast kernels' training
                                              (as dn_rnn_forward_wp's train_self), or NULL */
    const struct dn_wpack *fwd_infer, *bwd_infer;  /* each direction's inference packs (as
                                              dn_rnn_forward_wp's infer), or NULL */
} dn_birnn;

int dn_birnn_forward(const dn_ctx *ctx, const dn_birnn *l, const float *input, int train);
/* After a training forward; delta holds what the next layer added.
 * prev_delta (steps*batch, inputs) or NULL accumulates fwd's input delta,
 * then bwd's (re-reversed). */
int dn_birnn_backward(const dn_ctx *ctx, const dn_birnn *l, const float *input,
                      float *prev_delta);

/* Limits, as an enum so that cffi sees them: the most threads a context
 * (and its pool) may have. */
enum { DN_MAX_THREADS = 1024 };

/* Index of the first NaN or infinity among x[0..n), -1 if every value is
 * finite, -2 for a NULL x with n > 0 (finite.c; the training guard). */
long dn_first_nonfinite(const float *x, long n);
/* ---- Packed weights (wpack.c, rnn_wp.c) -------------------------------
 * A weight matrix W (n, k) packed once for many products C = A W^T:
 * DN_WPACK_F32 in the fast GEMM's layout for one kernel (not REFERENCE),
 * DN_WPACK_BF16 rounded to bfloat16 (inference only; AVX512_BF16 where the
 * CPU has it, dn_wpack_bf16_native(), portable C elsewhere). The caller
 * owns the buffer (dn_wpack_floats floats) and refills it when W changes. */
typedef enum { DN_WPACK_F32 = 0, DN_WPACK_BF16 = 1 } dn_wpack_kind;

struct dn_wpack {
    int kind;        /* dn_wpack_kind */
    int kernel;      /* DN_WPACK_F32: the dn_kernel whose layout it holds */
    int n, k;        /* W is (n, k) */
    long floats;     /* capacity of data */
    float *data;     /* the packed weights */
};
typedef struct dn_wpack dn_wpack;

long dn_wpack_floats(int kernel, int kind, int n, int k);
int dn_wpack_bf16_native(void);
int dn_wpack_fill(const dn_wpack *p, const float *W, long ldw);
/* C (m, n) = A (m, k) W^T + beta C */
int dn_gemm_wpack(const dn_ctx *ctx, int m, const float *A, long lda, const dn_wpack *p,
                  float beta, float *C, long ldc);
/* Inference forward (train = 0, a fast kernel) with packed weights p (NULL
 * or p->data NULL: the weights themselves); anything else is
 * dn_connected_forward. */
int dn_connected_forward_wp(const dn_ctx *ctx, const dn_connected *l, int step,
                            const float *input, int train, const dn_wpack *p);
/* dn_rnn_forward with packs: inference reads infer[0..2] (input, self,
 * output sublayer; NULL or data NULL: unpacked); a fast-kernel training
 * forward packs W_self into train_self (DN_WPACK_F32, or NULL: not
 * packed) once and runs every step's self product on it. */
int dn_rnn_forward_wp(const dn_ctx *ctx, const dn_rnn *l, const float *input, int train,
                      const dn_wpack *infer, dn_wpack *train_self);
/* dn_rnn_backward whose per-step products read W_self packed into
 * train_self (the forward's buffer, refilled here; NULL: unpacked). */
int dn_rnn_backward_wp(const dn_ctx *ctx, const dn_rnn *l, const float *input,
                       float *prev_delta, dn_wpack *train_self);
/* [gru] / [lstm] inference (train = 0, a fast kernel) whose products read
 * packs (gated_wp.c): infer holds 6 ([gru]: uz wz ur wr uh wh) or 8
 * ([lstm]: uf ui ug uo wf wi wg wo) packs, one with data NULL is read in
 * place; infer NULL, training or the REFERENCE kernel: the plain forward. */
int dn_gru_forward_wp(const dn_ctx *ctx, const dn_gru *l, const float *input, int train,
                      const dn_wpack *infer);
int dn_lstm_forward_wp(const dn_ctx *ctx, const dn_lstm *l, const float *input, int train,
                       const dn_wpack *infer);

#endif
