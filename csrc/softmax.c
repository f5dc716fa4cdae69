/* softmax.c - Darknet's [softmax] (CPU, no tree) with its cross-entropy loss.
 * Each row of `inputs` values is split into `groups` contiguous chunks, each
 * normalised independently (SPEC section 6). */
#include <float.h>
#include <math.h>
#include "internal.h"

static void softmax_chunk(const float *x, int n, float temp, float *out)
{
    float largest = -FLT_MAX;           /* NaN never compares greater */
    for (int i = 0; i < n; ++i)
        if (x[i] > largest) largest = x[i];
    float sum = 0;
    for (int i = 0; i < n; ++i) {
        float e = (float)exp((double)(x[i] / temp - largest / temp));
        sum += e;
        out[i] = e;
    }
    for (int i = 0; i < n; ++i) out[i] /= sum;
}

static int check_softmax(const dn_softmax *l)
{
    if (!l || l->batch < 1 || l->inputs < 1 || l->groups < 1 || l->inputs % l->groups)
        return DN_ERR_ARG;
    if (!l->output || !l->delta || !l->loss) return DN_ERR_ARG;
    return DN_OK;
}

int dn_softmax_forward(const dn_softmax *l, const float *input, const float *truth,
                       float *cost)
{
    int st = check_softmax(l);
    if (st) return st;
    if (!input) return DN_ERR_ARG;
    const int size = l->inputs / l->groups;
    for (int b = 0; b < l->batch; ++b)
        for (int g = 0; g < l->groups; ++g) {
            long off = (long)b * l->inputs + (long)g * size;
            softmax_chunk(input + off, size, l->temperature, l->output + off);
        }
    if (truth && !l->noloss) {
        const long n = (long)l->batch * l->inputs;
        for (long i = 0; i < n; ++i) {
            float t = truth[i], p = l->output[i];
            l->loss[i] = t != 0 ? (float)-log((double)p) : 0;
            l->delta[i] = t - p;
        }
        float sum = 0;
        for (long i = 0; i < n; ++i) sum += l->loss[i];
        if (cost) *cost = sum;
    }
    return DN_OK;
}

int dn_softmax_backward(const dn_softmax *l, float *prev_delta)
{
    int st = check_softmax(l);
    if (st) return st;
    if (!prev_delta) return DN_OK;
    const long n = (long)l->batch * l->inputs;
    if (l->fixes & DN_FIX_SOFTMAX_TEMPERATURE) {
        for (long i = 0; i < n; ++i) prev_delta[i] += l->delta[i] / l->temperature;
    } else {
        dn_axpy((int)n, 1, l->delta, 1, prev_delta, 1);
    }
    return DN_OK;
}
