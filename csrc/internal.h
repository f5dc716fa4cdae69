/* internal.h - declarations shared by the C sources, not seen by cffi. */
#ifndef DN_INTERNAL_H
#define DN_INTERNAL_H
#include <stddef.h>
#include "darknet_rnn.h"

/* Darknet's naive GEMM loops, bit-exact (gemm.c). */
void dn_gemm_reference(int TA, int TB, int M, int N, int K, float alpha,
                       const float *A, int lda, const float *B, int ldb,
                       float beta, float *C, int ldc);

/* Fast GEMM for ctx->kernel != DN_KERNEL_REFERENCE (gemm_driver.c; the
 * kernels behind it are described in gemm_internal.h).
 * Same contract as dn_gemm; uses ctx->work and ctx->threads. */
int dn_gemm_fast(const dn_ctx *ctx, int TA, int TB, int M, int N, int K,
                 float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);



/* Run fn(arg, part) for part = 0..parts-1, part 0 on the caller, the
 * others on the pool's workers; returns when all are done. Nonzero (nothing
 * run) if the pool cannot take it now: too many parts, another dispatch in
 * progress, or a forked process (pool.c). */
typedef void (*dn_pool_fn)(void *arg, int part);
int dn_pool_run(dn_pool *pool, int parts, dn_pool_fn fn, void *arg);

int dn_valid_activation(int a);

/* Elementwise hot loops are compiled for several ISAs and picked at load
 * time (glibc ifunc); no -march flag. Contraction stays off (no FMA), so all
 * clones give identical results. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(DN_NO_CLONES)
#define DN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DN_CLONES
#endif

/* [rnn] pieces shared by rnn.c and rnn_fast.c: the training forward's h_0
 * (zero, or the carried state) and end (keep the last state), and the
 * gradient-norm record of one step's state delta. */
void dn_rnn_train_begin(const dn_rnn *l);
void dn_rnn_train_end(const dn_rnn *l);
void dn_rnn_record_norm(const dn_rnn *l, int t, const float *dS_t);

/* Row block `step` of a (steps*batch, width) buffer. */
static inline float *dn_rows(float *base, int step, int batch, int width)
{
    return base + (long)step * batch * width;
}

/* Batch norm of one step's rows of a connected layer (batchnorm.c). */
void dn_batchnorm_forward(const dn_connected *l, int step, int train);
void dn_batchnorm_backward(const dn_connected *l, int step, int stats_step, int fixes);

/* Halves of the connected layer around its GEMMs (connected.c), used by the
 * RNN fast path to batch GEMMs over all time steps. */
int dn_check_connected(const dn_connected *l, int step);
int dn_connected_forward_post(const dn_connected *l, int step, int train);
int dn_connected_backward_pre(const dn_connected *l, int step, int stats_step, int fixes);

/* The argument checks of dn_rnn_forward/backward (rnn.c). */
int dn_check_rnn(const dn_rnn *l);

/* The fast kernels' single-precision, fused versions of the two above
 * (bn_fast.c); same contracts, fast-path rounding. */
int dn_connected_post_fast(const dn_connected *l, int step, int train);
int dn_connected_pre_fast(const dn_connected *l, int step, int stats_step, int fixes);

/* The batched training path of the [rnn] layer (rnn_fast.c): same contract
 * as dn_rnn_forward with train = 1 and dn_rnn_backward, for a layer rnn.c
 * has checked and a kernel other than REFERENCE. self_pack: W_self packed
 * (DN_WPACK_F32, filled) for the forward's per-step products, or NULL;
 * self_packed: op(B) = W_self in dn_gemm_pack_b's layout for the
 * backward's, or NULL. */
int dn_rnn_forward_fast(const dn_ctx *ctx, const dn_rnn *l, const float *input,
                        const dn_wpack *self_pack);
int dn_rnn_backward_fast(const dn_ctx *ctx, const dn_rnn *l, const float *input,
                         float *prev_delta, const float *self_packed);
/* [gru] / [lstm] (gru.c, lstm.c): argument checks shared with the fast
 * paths, and the fast paths themselves (gru_fast.c, lstm_fast.c), which
 * batch the input-to-gate GEMMs and all weight gradients over the steps. */
/* A sublayer's products in the gated fast paths (gated_wp.c): rows of steps
 * [t, t + nsteps) = in . W^T (read from the pack p when p and p->data are
 * not NULL, else in place), then Darknet's bias / batch norm per step; and
 * after the backward's deltas, the weight gradient over all steps plus the
 * input delta (prev_delta, when not NULL). */
int dn_sublayer_rows_forward(const dn_ctx *ctx, const dn_connected *c, int t, int nsteps,
                             const float *in, int train, const dn_wpack *p);
int dn_sublayer_gradients(const dn_ctx *ctx, const dn_connected *c, const float *input,
                          float *prev_delta);
int dn_gru_check(const dn_gru *l);
int dn_lstm_check(const dn_lstm *l);
int dn_gru_forward_fast(const dn_ctx *ctx, const dn_gru *l, const float *input, int train,
                        const dn_wpack *packs);
int dn_gru_backward_fast(const dn_ctx *ctx, const dn_gru *l, const float *input,
                         float *prev_delta);
int dn_lstm_forward_fast(const dn_ctx *ctx, const dn_lstm *l, const float *input, int train,
                         const dn_wpack *packs);
int dn_lstm_backward_fast(const dn_ctx *ctx, const dn_lstm *l, const float *input,
                          float *prev_delta);
/* The elementwise step math both kernels share (gru.c, lstm.c). */
void dn_gru_begin(const dn_gru *l, int train);
int dn_gru_gates(const dn_gru *l, int t);
int dn_gru_output(const dn_gru *l, int t);
void dn_gru_end(const dn_gru *l);
int dn_gru_delta_h(const dn_gru *l, int t, float *gh);
int dn_gru_delta_z(const dn_gru *l, int t, float *gz);
int dn_gru_delta_r(const dn_gru *l, int t, const float *dfs, float *gr);
void dn_gru_carry(const dn_gru *l, int t, const float *dfs);
void dn_lstm_begin(const dn_lstm *l, int train);
int dn_lstm_cell(const dn_lstm *l, int t);
void dn_lstm_end(const dn_lstm *l);
void dn_lstm_backward_begin(const dn_lstm *l);
void dn_lstm_backward_end(const dn_lstm *l);
int dn_lstm_cell_delta(const dn_lstm *l, int t, float *tanh_c, float *dc_t);
int dn_lstm_gate_delta(const dn_lstm *l, int t, char which, const float *tanh_c,
                       const float *dc_t, float *out);
void dn_lstm_carry(const dn_lstm *l, int t, const float *dc_t);
#endif
