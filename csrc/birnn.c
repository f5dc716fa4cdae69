/* birnn.c - the bidirectional [rnn] (an extension; no Darknet has one).
 *
 * Two ordinary [rnn] blocks (rnn.c, either kernel path); the backward block
 * sees the input with its step blocks in reverse order. Time reversal of
 * time-major (steps*batch, width) rows is a reversal of the step blocks;
 * only copies and one float add per input element are done here, so the
 * layer is as bitwise as its blocks. Nothing is allocated.
 */
#include <string.h>

#include "internal.h"

static int check_birnn(const dn_birnn *l)
{
    if (!l || l->batch < 1 || l->steps < 1 || l->inputs < 1 || l->outputs < 1)
        return DN_ERR_ARG;
    if (!l->fwd || !l->bwd || !l->reversed_input || !l->reversed_delta || !l->output ||
        !l->delta)
        return DN_ERR_ARG;
    const dn_rnn *d[2] = {l->fwd, l->bwd};
    for (int i = 0; i < 2; ++i)
        if (d[i]->batch != l->batch || d[i]->steps != l->steps ||
            d[i]->inputs != l->inputs || d[i]->outputs != l->outputs || d[i]->stateful)
            return DN_ERR_ARG;
    return DN_OK;
}

/* dst step block k = src step block steps-1-k (rows of `width` floats). */
static void reverse_steps(int steps, int batch, int width, const float *src, float *dst)
{
    const long block = (long)batch * width;
    for (int k = 0; k < steps; ++k)
        memcpy(dst + k * block, src + (long)(steps - 1 - k) * block,
               (size_t)block * sizeof(float));
}

int dn_birnn_forward(const dn_ctx *ctx, const dn_birnn *l, const float *input, int train)
{
    int st = check_birnn(l);
    if (st) return st;
    if (!ctx || !input) return DN_ERR_ARG;
    const int B = l->batch, H = l->outputs, T = l->steps;
    const long bh = (long)B * H;

    if (!train) {        /* a whole sequence per call: no state carried in */
        dn_fill((int)bh, 0, l->fwd->state, 1);
        dn_fill((int)bh, 0, l->bwd->state, 1);
    }
    reverse_steps(T, B, l->inputs, input, l->reversed_input);
    if ((st = dn_rnn_forward_wp(ctx, l->fwd, input, train, train ? NULL : l->fwd_infer,
                                 l->fwd_pack))) return st;
    if ((st = dn_rnn_forward_wp(ctx, l->bwd, l->reversed_input, train,
                                 train ? NULL : l->bwd_infer, l->bwd_pack))) return st;

    const float *yf = l->fwd->output_layer.output, *yb = l->bwd->output_layer.output;
    for (int t = 0; t < T; ++t)
        for (int s = 0; s < B; ++s) {
            float *row = l->output + ((long)t * B + s) * 2 * H;
            memcpy(row, yf + ((long)t * B + s) * H, (size_t)H * sizeof(float));
            memcpy(row + H, yb + ((long)(T - 1 - t) * B + s) * H, (size_t)H * sizeof(float));
        }
    dn_fill((int)(T * 2 * bh), 0, l->delta, 1);
    return DN_OK;
}

int dn_birnn_backward(const dn_ctx *ctx, const dn_birnn *l, const float *input,
                      float *prev_delta)
{
    int st = check_birnn(l);
    if (st) return st;
    if (!ctx || !input) return DN_ERR_ARG;
    const int B = l->batch, H = l->outputs, T = l->steps, I = l->inputs;

    /* The halves of the delta go to the blocks' output deltas, which their
     * forward zeroed: copying is adding to zero. */
    float *df = l->fwd->output_layer.delta, *db = l->bwd->output_layer.delta;
    for (int t = 0; t < T; ++t)
        for (int s = 0; s < B; ++s) {
            const float *row = l->delta + ((long)t * B + s) * 2 * H;
            memcpy(df + ((long)t * B + s) * H, row, (size_t)H * sizeof(float));
            memcpy(db + ((long)(T - 1 - t) * B + s) * H, row + H, (size_t)H * sizeof(float));
        }
    if ((st = dn_rnn_backward_wp(ctx, l->fwd, input, prev_delta, l->fwd_pack))) return st;
    if (!prev_delta) return dn_rnn_backward_wp(ctx, l->bwd, l->reversed_input, NULL, l->bwd_pack);

    const long n = (long)T * B * I, block = (long)B * I;
    dn_fill((int)n, 0, l->reversed_delta, 1);
    if ((st = dn_rnn_backward_wp(ctx, l->bwd, l->reversed_input, l->reversed_delta, l->bwd_pack))) return st;
    for (int t = 0; t < T; ++t) {
        float *dst = prev_delta + t * block;
        const float *src = l->reversed_delta + (long)(T - 1 - t) * block;
        for (long i = 0; i < block; ++i) dst[i] += src[i];
    }
    return DN_OK;
}
