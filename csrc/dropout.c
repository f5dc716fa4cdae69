/* dropout.c - Darknet's [dropout] (CPU) and the glibc rand() stream it draws
 * from.
 *
 * Training forward: for every element i, in order, r = rand_uniform(0, 1)
 * from the network's rand() stream (the one that initialised the weights);
 * rand[i] = r; the element becomes 0 where r < probability, else it is
 * multiplied by scale = float(1 / (1 - probability)). Inference forward
 * draws nothing and passes the input through. Backward applies the same mask
 * and scale to the delta.
 *
 * Darknet's layer has no buffers of its own: its output and delta ARE the
 * previous layer's, so forward rewrites that layer's output and backward its
 * delta, in place. Here that is the case input == output (forward) and
 * delta == prev_delta (backward). With distinct buffers the layer is the
 * usual out-of-place dropout: output = mask(input), prev_delta +=
 * mask(delta).
 *
 * The rand() stream: glibc's TYPE_3 additive generator, r[k] = r[k-3] +
 * r[k-31] (mod 2^32), rand() = r[k] >> 1. The caller owns its state, the 34
 * most recent raw values, oldest first, and gets it back advanced (no global
 * state here). rand_uniform(0, 1) is (float)rand() / RAND_MAX in float,
 * RAND_MAX rounding to 2^31 as a float, as in Darknet's utils.c. */
#include "internal.h"

#define DN_RAND_STATE 34

static int check_dropout(const dn_dropout *l)
{
    if (!l || l->n < 1 || !l->rand) return DN_ERR_ARG;
    if (!(l->probability >= 0.0f && l->probability < 1.0f)) return DN_ERR_ARG;
    return DN_OK;
}

int dn_dropout_forward(const dn_dropout *l, unsigned int *rng_state, const float *input,
                       float *output, int train)
{
    int st = check_dropout(l);
    if (st) return st;
    if (!input || !output) return DN_ERR_ARG;
    const long n = l->n;
    if (!train) {
        if (input != output)
            for (long i = 0; i < n; ++i) output[i] = input[i];
        return DN_OK;
    }
    if (!rng_state) return DN_ERR_ARG;
    unsigned int ring[DN_RAND_STATE];
    for (int j = 0; j < DN_RAND_STATE; ++j) ring[j] = rng_state[j];
    int oldest = 0;                       /* ring[oldest] is the oldest value */
    const float rand_max = (float)2147483647;   /* 2^31 as a float */
    for (long i = 0; i < n; ++i) {
        int k3 = oldest + 3, k31 = oldest + 31;
        if (k3 >= DN_RAND_STATE) k3 -= DN_RAND_STATE;
        if (k31 >= DN_RAND_STATE) k31 -= DN_RAND_STATE;
        unsigned int v = ring[k3] + ring[k31];   /* r[k-31] + r[k-3] */
        ring[oldest] = v;                 /* the newest replaces the oldest */
        if (++oldest == DN_RAND_STATE) oldest = 0;
        float r = (float)(v >> 1) / rand_max;
        l->rand[i] = r;
        output[i] = r < l->probability ? 0.0f : input[i] * l->scale;
    }
    for (int j = 0; j < DN_RAND_STATE; ++j) {
        int k = oldest + j;
        if (k >= DN_RAND_STATE) k -= DN_RAND_STATE;
        rng_state[j] = ring[k];
    }
    return DN_OK;
}

int dn_dropout_backward(const dn_dropout *l, const float *delta, float *prev_delta)
{
    int st = check_dropout(l);
    if (st) return st;
    if (!prev_delta) return DN_OK;        /* a first layer: nothing to pass on */
    if (!delta) return DN_ERR_ARG;
    const long n = l->n;
    if (delta == prev_delta) {            /* Darknet: the previous layer's delta, in place */
        for (long i = 0; i < n; ++i)
            prev_delta[i] = l->rand[i] < l->probability ? 0.0f : prev_delta[i] * l->scale;
    } else {
        for (long i = 0; i < n; ++i)
            if (!(l->rand[i] < l->probability)) prev_delta[i] += delta[i] * l->scale;
    }
    return DN_OK;
}
