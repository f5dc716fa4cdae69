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
    DN_FIX_ALL = 63
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
void dn_fill(int n, float alpha, float *x, int incx);
void dn_copy(int n, const float *x, int incx, float *y, int incy);
void dn_axpy(int n, float alpha, const float *x, int incx, float *y, int incy);
void dn_scal(int n, float alpha, float *x, int incx);

/* C = alpha*op(A)*op(B) + beta*C, op = transpose when TA/TB != 0.
 * A: (M,K) or (K,M) with leading dimension lda, B: (K,N) or (N,K), C: (M,N). */
int dn_gemm(const dn_ctx *ctx, int TA, int TB, int M, int N, int K, float alpha,
            const float *A, int lda, const float *B, int ldb, float beta,
            float *C, int ldc);

/* Activations: x/y have n elements. */
int dn_activate(float *x, int n, int activation);
int dn_gradient(const float *y, int n, int activation, float *delta);

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

/* ---- Packed weights (wpack.c, rnn_wp.c) -------------------------------
 * A weight matrix W (n, k) packed once for many products C = A W^T:
 * DN_WPACK_F32 in the fast GEMM's layout for one kernel (not REFERENCE),
 * DN_WPACK_BF16 rounded to bfloat16 (inference only; AVX512_BF16 where the
 * CPU has it, dn_wpack_bf16_native(), portable C elsewhere). The caller
 * owns the buffer (dn_wpack_floats floats) and refills it when W changes. */
typedef enum { DN_WPACK_F32 = 0, DN_WPACK_BF16 = 1 } dn_wpack_kind;

typedef struct dn_wpack {
    int kind;        /* dn_wpack_kind */
    int kernel;      /* DN_WPACK_F32: the dn_kernel whose layout it holds */
    int n, k;        /* W is (n, k) */
    long floats;     /* capacity of data */
    float *data;     /* the packed weights */
} dn_wpack;

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

#endif
