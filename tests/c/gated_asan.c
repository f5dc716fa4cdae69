/* gated_asan.c - drives [gru] and [lstm] through training forward, backward
 * (Darknet's and exact) and update, then inference (also on fp32 and bf16
 * packs), on every kernel this CPU runs, with every buffer malloc'ed at
 * exactly the size darknet_rnn.h documents, so an AddressSanitizer/UBSan build reports any out-of-bounds
 * access. Exit status 0 = no error. */
#include <stdio.h>
#include <stdlib.h>
#include "darknet_rnn.h"

#define MAX_BUFS 256

typedef struct { void *p[MAX_BUFS]; int n; } pool_t;   /* what to free */

static float *buf(pool_t *pool, long n)
{
    float *p = malloc(sizeof(float) * (size_t)n);
    if (!p || pool->n == MAX_BUFS) { fprintf(stderr, "malloc\n"); exit(3); }
    for (long i = 0; i < n; ++i) p[i] = (float)((i * 7919 % 2001) - 1000) / 4000.0f;
    pool->p[pool->n++] = p;
    return p;
}

static void make_connected(pool_t *pool, dn_connected *c, int batch, int steps, int inputs,
                           int outputs, int bn)
{
    long rows = (long)batch * steps;
    c->batch = batch; c->steps = steps; c->inputs = inputs; c->outputs = outputs;
    c->activation = DN_LINEAR; c->batch_normalize = bn; c->learning_rate_scale = 1;
    c->weights = buf(pool, (long)outputs * inputs);
    c->biases = buf(pool, outputs);
    c->weight_updates = buf(pool, (long)outputs * inputs);
    c->bias_updates = buf(pool, outputs);
    c->output = buf(pool, rows * outputs);
    c->delta = buf(pool, rows * outputs);
    c->scales = c->scale_updates = c->rolling_mean = c->rolling_variance = NULL;
    c->mean = c->variance = c->x = c->x_norm = c->mean_delta = c->variance_delta = NULL;
    c->bn_factors = NULL;
    if (bn) {
        c->scales = buf(pool, outputs); c->scale_updates = buf(pool, outputs);
        c->rolling_mean = buf(pool, outputs); c->rolling_variance = buf(pool, outputs);
        for (int i = 0; i < outputs; ++i) c->rolling_variance[i] = 1;
        c->mean = buf(pool, (long)steps * outputs); c->variance = buf(pool, (long)steps * outputs);
        c->x = buf(pool, rows * outputs); c->x_norm = buf(pool, rows * outputs);
        c->mean_delta = buf(pool, outputs); c->variance_delta = buf(pool, outputs);
        c->bn_factors = malloc(sizeof(double) * 3 * (size_t)outputs);
        pool->p[pool->n++] = c->bn_factors;
    }
}

static long block_params(const dn_connected *c, dn_param *p)
{
    long n = 0, o = c->outputs;
    p[n++] = (dn_param){c->biases, c->bias_updates, o, 1, 0, NULL, NULL};
    if (c->batch_normalize) p[n++] = (dn_param){c->scales, c->scale_updates, o, 1, 0, NULL, NULL};
    p[n++] = (dn_param){c->weights, c->weight_updates, o * c->inputs, 1, 1, NULL, NULL};
    return n;
}

/* Inference on packed weights (gated_wp.c): each sublayer's weights in an
 * exact-size fp32 and then bf16 pack, in the order the entry points take
 * them (gru: the struct order; lstm: uf ui ug uo wf wi wg wo); the fp32
 * round leaves the last pack empty (read in place). */
static int infer_packed(const dn_ctx *ctx, int is_gru, void *layer, dn_connected **subs,
                        int nsub, const float *x)
{
    if (ctx->kernel == DN_KERNEL_REFERENCE) return 0;
    dn_wpack p[8];
    int st = 0;
    for (int kind = DN_WPACK_F32; kind <= DN_WPACK_BF16 && !st; ++kind) {
        for (int i = 0; i < nsub; ++i) {
            const dn_connected *c = subs[is_gru ? i : (i + 4) % 8];
            long fl = dn_wpack_floats(ctx->kernel, kind, c->outputs, c->inputs);
            int empty = kind == DN_WPACK_F32 && i == nsub - 1;
            p[i] = (dn_wpack){kind, ctx->kernel, c->outputs, c->inputs, fl, NULL};
            if (!empty) {
                p[i].data = malloc(sizeof(float) * (size_t)fl);
                if (!p[i].data) { fprintf(stderr, "malloc\n"); exit(3); }
                st |= dn_wpack_fill(&p[i], c->weights, c->inputs);
            }
        }
        if (!st)
            st = is_gru ? dn_gru_forward_wp(ctx, layer, x, 0, p)
                        : dn_lstm_forward_wp(ctx, layer, x, 0, p);
        for (int i = 0; i < nsub; ++i) free(p[i].data);
    }
    return st;
}

static int train_and_infer(const dn_ctx *ctx, int is_gru, void *layer, dn_connected **subs,
                           int nsub, float *x, float *dx, long batch)
{
    dn_param params[24];
    long np = 0;
    for (int i = 0; i < nsub; ++i) np += block_params(subs[i], params + np);
    dn_update_args args = {0.01f, 0.9f, 0.0005f, batch, 0, 0, 0, 0, 0};
    int st = 0;
    for (int it = 0; it < 3 && !st; ++it) {
        st = is_gru ? dn_gru_forward(ctx, layer, x, 1) : dn_lstm_forward(ctx, layer, x, 1);
        if (!st) st = is_gru ? dn_gru_backward(ctx, layer, x, dx)
                             : dn_lstm_backward(ctx, layer, x, dx);
        if (!st) st = dn_sgd_update(&args, params, np);
    }
    if (!st) st = is_gru ? dn_gru_forward(ctx, layer, x, 0) : dn_lstm_forward(ctx, layer, x, 0);
    if (!st) st = infer_packed(ctx, is_gru, layer, subs, nsub, x);
    return st;
}

static int run(int kernel, int is_gru, int B, int T, int I, int H, int bn, int fixes)
{
    pool_t pool = {{0}, 0};
    dn_ctx ctx = {kernel, 1, NULL, 0, NULL};
    long wf = dn_gemm_work_floats(kernel, 1);
    if (wf > 0) { ctx.work = buf(&pool, wf); ctx.work_floats = wf; }
    const long bh = (long)B * H, tbh = (long)T * bh;
    float *x = buf(&pool, (long)T * B * I), *dx = buf(&pool, (long)T * B * I);
    int st;
    if (is_gru) {
        dn_gru l;
        l.batch = B; l.steps = T; l.inputs = I; l.outputs = H; l.tanh = fixes & 1; l.fixes = fixes;
        dn_connected *s[6] = {&l.uz, &l.wz, &l.ur, &l.wr, &l.uh, &l.wh};
        for (int i = 0; i < 6; ++i) make_connected(&pool, s[i], B, T, i % 2 ? H : I, H, bn);
        l.state = buf(&pool, bh); l.states = buf(&pool, tbh + bh);
        l.z = buf(&pool, tbh); l.r = buf(&pool, tbh); l.h = buf(&pool, tbh);
        l.forgot_state = buf(&pool, tbh); l.delta = buf(&pool, tbh);
        l.scratch = buf(&pool, 3 * bh);
        st = train_and_infer(&ctx, 1, &l, s, 6, x, dx, (long)B * T);
    } else {
        dn_lstm l;
        l.batch = B; l.steps = T; l.inputs = I; l.outputs = H; l.fixes = fixes;
        dn_connected *s[8] = {&l.wf, &l.wi, &l.wg, &l.wo, &l.uf, &l.ui, &l.ug, &l.uo};
        for (int i = 0; i < 8; ++i) make_connected(&pool, s[i], B, T, i < 4 ? H : I, H, bn);
        l.state = buf(&pool, bh); l.cell_state = buf(&pool, bh); l.dc = buf(&pool, bh);
        l.states = buf(&pool, tbh + bh); l.cells = buf(&pool, tbh + bh);
        l.f = buf(&pool, tbh); l.i = buf(&pool, tbh); l.g = buf(&pool, tbh);
        l.o = buf(&pool, tbh); l.delta = buf(&pool, tbh); l.scratch = buf(&pool, 3 * bh);
        st = train_and_infer(&ctx, 0, &l, s, 8, x, dx, (long)B * T);
    }
    for (int i = 0; i < pool.n; ++i) free(pool.p[i]);
    if (st) fprintf(stderr, "kernel %d %s B=%d T=%d bn=%d fixes=%d: status %d (%s)\n", kernel,
                    is_gru ? "gru" : "lstm", B, T, bn, fixes, st, dn_status_string(st));
    return st;
}

int main(void)
{
    int kernels = dn_kernels_available();
    int fail = 0, runs = 0;
    const int fix_sets[3] = {0, DN_FIX_ALL & ~DN_FIX_LSTM_PREV_STATE, DN_FIX_ALL};
    for (int k = 0; k <= DN_KERNEL_AVX512; ++k) {
        if (!(kernels & (1 << k))) continue;
        for (int gru = 0; gru <= 1; ++gru)
            for (int bn = 0; bn <= 1; ++bn)
                for (int f = 0; f < 3; ++f) {
                    fail |= run(k, gru, 3, 8, 5, 7, bn, fix_sets[f]);
                    fail |= run(k, gru, 2, 1, 33, 17, bn, fix_sets[f]);
                    fail |= run(k, gru, 4, 9, 6, 40, bn, fix_sets[f]);
                    runs += 3;
                }
    }
    printf("%d runs, %s\n", runs, fail ? "FAILED" : "ok");
    return fail ? 1 : 0;
}
