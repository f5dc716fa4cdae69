/* rnn_asan.c - drives the RNN layer through training forward, backward and
 * update with every buffer malloc'ed at exactly its documented size, so an
 * AddressSanitizer build reports any out-of-bounds access (Darknet's CPU
 * RNN writes `steps` state blocks past a one-block allocation, SPEC Q1).
 * Exit status 0 = no error; ASan aborts with a report otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include "darknet_rnn.h"

static float *buf(long n)
{
    float *p = malloc(sizeof(float) * (size_t)n);
    if (!p) { perror("malloc"); exit(3); }
    for (long i = 0; i < n; ++i) p[i] = (float)((i * 7919 % 2001) - 1000) / 4000.0f;
    return p;
}

static void make_connected(dn_connected *c, int batch, int steps, int inputs, int outputs,
                           int act, int bn)
{
    long rows = (long)batch * steps;
    c->batch = batch; c->steps = steps; c->inputs = inputs; c->outputs = outputs;
    c->activation = act; c->batch_normalize = bn; c->learning_rate_scale = 1;
    c->weights = buf((long)outputs * inputs);
    c->biases = buf(outputs);
    c->weight_updates = buf((long)outputs * inputs);
    c->bias_updates = buf(outputs);
    c->output = buf(rows * outputs);
    c->delta = buf(rows * outputs);
    c->scales = c->scale_updates = c->rolling_mean = c->rolling_variance = NULL;
    c->mean = c->variance = c->x = c->x_norm = c->mean_delta = c->variance_delta = NULL;
    c->bn_factors = NULL;
    if (bn) {
        c->scales = buf(outputs); c->scale_updates = buf(outputs);
        c->rolling_mean = buf(outputs); c->rolling_variance = buf(outputs);
        for (int i = 0; i < outputs; ++i) c->rolling_variance[i] = 1;
        c->mean = buf((long)steps * outputs); c->variance = buf((long)steps * outputs);
        c->x = buf(rows * outputs); c->x_norm = buf(rows * outputs);
        c->mean_delta = buf(outputs); c->variance_delta = buf(outputs);
        c->bn_factors = malloc(sizeof(double) * 3 * (size_t)outputs);
    }
}

/* The dn_param list of a connected block (biases, scales, weights). */
static long block_params(const dn_connected *c, dn_param *p)
{
    long n = 0, o = c->outputs;
    p[n++] = (dn_param){c->biases, c->bias_updates, o, c->learning_rate_scale, 0};
    if (c->batch_normalize)
        p[n++] = (dn_param){c->scales, c->scale_updates, o, c->learning_rate_scale, 0};
    p[n++] = (dn_param){c->weights, c->weight_updates, o * c->inputs, c->learning_rate_scale, 1};
    return n;
}

/* A dn_wpack of W (n, k) in an exact-size buffer (kind, kernel), filled. */
static dn_wpack make_pack(int kind, int kernel, int n, int k, const float *W)
{
    dn_wpack p = {kind, kernel, n, k, dn_wpack_floats(kernel, kind, n, k), NULL};
    p.data = p.floats > 0 ? buf(p.floats) : NULL;
    if (p.data && dn_wpack_fill(&p, W, k)) { fprintf(stderr, "pack fill failed\n"); exit(4); }
    return p;
}

/* stateful: training carries the state (exact-size carry buffer); the
 * gradient-norm record is switched on with it, so both paths are covered.
 * packed: 0 = dn_rnn_forward/backward; 1, 2 = the packed-weights entry
 * points (W_self packed for training; fp32-packed (1) or bf16 (2)
 * inference packs), every pack in an exact-size buffer. */
static int run(int kernel, int B, int T, int I, int H, int bn, int shortcut, int fixes,
               int stateful, int packed)
{
    dn_ctx ctx = {kernel, 1, NULL, 0};
    long wf = dn_gemm_work_floats(kernel, 1);
    if (wf > 0) { ctx.work = buf(wf); ctx.work_floats = wf; }
    dn_rnn l = {0};
    l.batch = B; l.steps = T; l.inputs = I; l.outputs = H;
    l.shortcut = shortcut; l.fixes = fixes;
    l.stateful = stateful;
    l.carry = stateful ? buf((long)B * H) : NULL;
    l.grad_norms = stateful ? buf(T) : NULL;
    make_connected(&l.input_layer, B, T, I, H, DN_LEAKY, bn);
    make_connected(&l.self_layer, B, T, H, H, DN_LEAKY, bn);
    make_connected(&l.output_layer, B, T, H, H, DN_LEAKY, bn);
    l.state = buf((long)(T + 1) * B * H);
    l.scratch = buf((long)B * H);
    float *x = buf((long)T * B * I), *dx = buf((long)T * B * I);
    dn_param params[9];
    long np = block_params(&l.input_layer, params);
    np += block_params(&l.self_layer, params + np);
    np += block_params(&l.output_layer, params + np);
    dn_update_args args = {0.01f, 0.9f, 0.0005f, (long)B * T};
    int st = 0;
    const int fast = kernel != DN_KERNEL_REFERENCE && packed;
    dn_wpack tp = {0}, ip[3] = {{0}, {0}, {0}};
    if (fast) tp = make_pack(DN_WPACK_F32, kernel, H, H, l.self_layer.weights);
    for (int it = 0; it < 3 && !st; ++it) {
        st = fast ? dn_rnn_forward_wp(&ctx, &l, x, 1, NULL, &tp) : dn_rnn_forward(&ctx, &l, x, 1);
        if (!st) st = fast ? dn_rnn_backward_wp(&ctx, &l, x, dx, &tp)
                           : dn_rnn_backward(&ctx, &l, x, dx);
        if (!st) st = dn_sgd_update(&args, params, np);
    }
    if (fast) {
        int kind = packed == 2 ? DN_WPACK_BF16 : DN_WPACK_F32;
        ip[0] = make_pack(kind, kernel, H, I, l.input_layer.weights);
        ip[1] = make_pack(kind, kernel, H, H, l.self_layer.weights);
        ip[2] = make_pack(kind, kernel, H, H, l.output_layer.weights);
        if (!st) st = dn_rnn_forward_wp(&ctx, &l, x, 0, ip, NULL);   /* packed inference */
    } else if (!st) {
        st = dn_rnn_forward(&ctx, &l, x, 0);   /* inference path */
    }
    free(tp.data);
    for (int i = 0; i < 3; ++i) free(ip[i].data);
    dn_connected *s[3] = {&l.input_layer, &l.self_layer, &l.output_layer};
    for (int i = 0; i < 3; ++i) {
        free(s[i]->weights); free(s[i]->biases); free(s[i]->weight_updates);
        free(s[i]->bias_updates); free(s[i]->output); free(s[i]->delta);
        if (bn) {
            free(s[i]->scales); free(s[i]->scale_updates); free(s[i]->rolling_mean);
            free(s[i]->rolling_variance); free(s[i]->mean); free(s[i]->variance);
            free(s[i]->x); free(s[i]->x_norm); free(s[i]->mean_delta); free(s[i]->variance_delta);
            free(s[i]->bn_factors);
        }
    }
    free(l.state); free(l.scratch); free(l.carry); free(l.grad_norms); free(x); free(dx); free(ctx.work);
    if (st) fprintf(stderr, "kernel %d B=%d T=%d: status %d (%s)\n", kernel, B, T, st,
                    dn_status_string(st));
    return st;
}

int main(void)
{
    int kernels = dn_kernels_available();
    int fail = 0, runs = 0;
    for (int k = 0; k <= DN_KERNEL_AVX512; ++k) {
        if (!(kernels & (1 << k))) continue;
        for (int bn = 0; bn <= 1; ++bn)
            for (int sc = 0; sc <= 1; ++sc)
                for (int fx = 0; fx <= DN_FIX_ALL; fx += DN_FIX_ALL) {
                    fail |= run(k, 3, 8, 5, 7, bn, sc, fx, 0, 0);
                    fail |= run(k, 2, 9, 33, 17, bn, sc, fx, 0, 0);
                    fail |= run(k, 2, 5, 4, 6, bn, sc, fx, 1, 0);
                    fail |= run(k, 3, 8, 5, 7, bn, sc, fx, 0, 1);
                    fail |= run(k, 2, 9, 33, 17, bn, sc, fx, 1, 2);
                    runs += 5;
                }
    }
    printf("%d runs, %s\n", runs, fail ? "FAILED" : "ok");
    return fail ? 1 : 0;
}
