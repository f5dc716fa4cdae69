/* birnn_asan.c - the bidirectional [rnn] (birnn.c) and the loss masks
 * (mask.c) with every buffer malloc'ed at exactly its documented size, for
 * an AddressSanitizer build (tests/test_memory.py). The helpers for one
 * connected block come from rnn_asan.c. Exit status 0 = no error. */
#define main rnn_asan_main
#include "rnn_asan.c"
#undef main

static void make_rnn(dn_rnn *l, int B, int T, int I, int H, int bn, int shortcut, int fixes)
{
    *l = (dn_rnn){0};
    l->batch = B; l->steps = T; l->inputs = I; l->outputs = H;
    l->shortcut = shortcut; l->fixes = fixes;
    l->grad_norms = buf(T);
    make_connected(&l->input_layer, B, T, I, H, DN_TANH, bn);
    make_connected(&l->self_layer, B, T, H, H, DN_TANH, bn);
    make_connected(&l->output_layer, B, T, H, H, DN_TANH, bn);
    l->state = buf((long)(T + 1) * B * H);
    l->scratch = buf((long)B * H);
}

static void free_rnn(dn_rnn *l, int bn)
{
    dn_connected *s[3] = {&l->input_layer, &l->self_layer, &l->output_layer};
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
    free(l->state); free(l->scratch); free(l->grad_norms);
}

/* packed: the fast kernels' training reads each direction's W_self from an
 * exact-size pack (the buffers RNNLayer-style callers hand in). */
static int run_birnn(int kernel, int B, int T, int I, int H, int bn, int shortcut, int fixes,
                     int packed)
{
    dn_ctx ctx = {kernel, 1, NULL, 0};
    long wf = dn_gemm_work_floats(kernel, 1);
    if (wf > 0) { ctx.work = buf(wf); ctx.work_floats = wf; }
    dn_rnn fwd, bwd;
    make_rnn(&fwd, B, T, I, H, bn, shortcut, fixes);
    make_rnn(&bwd, B, T, I, H, bn, shortcut, fixes);
    long rows = (long)T * B;
    dn_birnn l = {B, T, I, H, &fwd, &bwd, buf(rows * I), buf(rows * I), buf(rows * 2 * H),
                  buf(rows * 2 * H), NULL, NULL};
    dn_wpack pf = {0}, pb = {0};
    if (packed && kernel != DN_KERNEL_REFERENCE) {
        pf = make_pack(DN_WPACK_F32, kernel, H, H, fwd.self_layer.weights);
        pb = make_pack(DN_WPACK_F32, kernel, H, H, bwd.self_layer.weights);
        l.fwd_pack = &pf; l.bwd_pack = &pb;
    }
    float *x = buf(rows * I), *dx = buf(rows * I);
    int st = 0;
    for (int it = 0; it < 2 && !st; ++it) {
        st = dn_birnn_forward(&ctx, &l, x, 1);
        for (long i = 0; i < rows * 2 * H && !st; ++i) l.delta[i] = 0.01f * (float)(i % 7);
        if (!st) st = dn_birnn_backward(&ctx, &l, x, it ? NULL : dx);
    }
    if (!st) st = dn_birnn_forward(&ctx, &l, x, 0);     /* inference */
    /* inference on each direction's fp32 and bf16 packs (exact-size buffers) */
    for (int kind = DN_WPACK_F32; !st && kernel != DN_KERNEL_REFERENCE && kind <= DN_WPACK_BF16;
         ++kind) {
        dn_rnn *d[2] = {&fwd, &bwd};
        dn_wpack ip[2][3];
        for (int j = 0; j < 2; ++j) {
            dn_connected *s3[3] = {&d[j]->input_layer, &d[j]->self_layer, &d[j]->output_layer};
            for (int q = 0; q < 3; ++q)
                ip[j][q] = make_pack(kind, kernel, H, s3[q]->inputs, s3[q]->weights);
        }
        l.fwd_infer = ip[0];
        l.bwd_infer = ip[1];
        st = dn_birnn_forward(&ctx, &l, x, 0);
        for (int j = 0; j < 2; ++j)
            for (int q = 0; q < 3; ++q) free(ip[j][q].data);
        l.fwd_infer = l.bwd_infer = NULL;
    }
    free_rnn(&fwd, bn); free_rnn(&bwd, bn);
    free(l.reversed_input); free(l.reversed_delta); free(l.output); free(l.delta);
    free(x); free(dx); free(ctx.work); free(pf.data); free(pb.data);
    if (st) fprintf(stderr, "birnn kernel %d B=%d T=%d packed=%d: status %d (%s)\n", kernel, B, T, packed, st,
                    dn_status_string(st));
    return st;
}

static int run_mask(int rows, int width)
{
    float *delta = buf((long)rows * width), *loss = buf((long)rows * width), cost = 0;
    unsigned char *keep = malloc((size_t)rows);
    for (int r = 0; r < rows; ++r) keep[r] = (unsigned char)(r % 3 != 1);
    int st = dn_mask_rows(rows, width, keep, delta, loss, &cost);
    if (!st) st = dn_mask_rows(rows, width, keep, delta, NULL, NULL);
    for (int r = 0; r < rows && !st; ++r)
        for (int i = 0; i < width; ++i)
            if (!keep[r] && (delta[(long)r * width + i] != 0 || loss[(long)r * width + i] != 0))
                st = -1;
    free(delta); free(loss); free(keep);
    return st;
}

int main(void)
{
    int kernels = dn_kernels_available();
    int fail = 0, runs = 0;
    for (int k = 0; k <= DN_KERNEL_AVX512; ++k) {
        if (!(kernels & (1 << k))) continue;
        for (int bn = 0; bn <= 1; ++bn)
            for (int fx = 0; fx <= DN_FIX_ALL; fx += DN_FIX_ALL) {
                for (int pk = 0; pk <= 1; ++pk) {
                    fail |= run_birnn(k, 3, 8, 5, 7, bn, bn, fx, pk);
                    fail |= run_birnn(k, 2, 1, 33, 17, bn, 0, fx, pk);
                    runs += 2;
                }
            }
    }
    fail |= run_mask(7, 5) | run_mask(1, 1);
    printf("%d runs, %s\n", runs + 2, fail ? "FAILED" : "ok");
    return fail ? 1 : 0;
}
