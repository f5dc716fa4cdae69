/* activations.c - Darknet's 14 activations and their gradients.
 *
 * The forward functions take the pre-activation x; the gradients take the
 * activation output y (Darknet stores only outputs). The mix of float and
 * double arithmetic below is deliberate: it is the one Darknet's expressions
 * produce (SPEC section 2), and it decides the last bit. Literals like 0.1
 * are doubles; "2.0f * x" style sub-expressions are float on purpose.
 */
#include <math.h>
#include "internal.h"

static float act_stair(float x)
{
    int n = (int)floor(x);
    if (n % 2 == 0) return (float)floor(x / 2.0);
    return (float)((double)(x - (float)n) + floor(x / 2.0));
}

static float act_hardtan(float x)
{
    if (x < -1) return -1;
    if (x > 1) return 1;
    return x;
}

static float act_plse(float x)
{
    if (x < -4) return (float)(0.01 * (double)(x + 4.0f));
    if (x > 4) return (float)(0.01 * (double)(x - 4.0f) + 1.0);
    return (float)(0.125 * x + 0.5);
}

static float act_lhtan(float x)
{
    if (x < 0) return (float)(0.001 * x);
    if (x > 1) return (float)(0.001 * (double)(x - 1.0f) + 1.0);
    return x;
}

static float act_tanh(float x)
{
    double e = exp((double)(2.0f * x));   /* 2x rounded to float first */
    return (float)((e - 1.0) / (e + 1.0));
}

static inline float activate1(float x, int a)
{
    switch (a) {
    case DN_LINEAR:   return x;
    case DN_LOGISTIC: return (float)(1.0 / (1.0 + exp((double)-x)));
    case DN_LOGGY:    return (float)(2.0 / (1.0 + exp((double)-x)) - 1.0);
    case DN_RELU:     return x * (float)(x > 0);
    /* elu/selu: both branch terms are always evaluated, as in Darknet, so
     * exp overflow gives NaN (0*inf) for very large x. */
    case DN_ELU:      return (float)((double)((float)(x >= 0) * x)
                                     + (double)(x < 0) * (exp((double)x) - 1.0));
    case DN_SELU:     return (float)((double)(x >= 0) * 1.0507 * (double)x
                                     + (double)(x < 0) * 1.0507 * 1.6732 * (exp((double)x) - 1.0));
    case DN_RELIE: {  /* both sides computed: a select, not a branch */
        float neg = (float)(0.01 * (double)x);
        return x > 0 ? x : neg;
    }
    case DN_RAMP:     return (float)((double)(x * (float)(x > 0)) + 0.1 * (double)x);
    case DN_LEAKY: {
        float neg = (float)(0.1 * (double)x);
        return x > 0 ? x : neg;
    }
    case DN_TANH:     return act_tanh(x);
    case DN_PLSE:     return act_plse(x);
    case DN_STAIR:    return act_stair(x);
    case DN_HARDTAN:  return act_hardtan(x);
    case DN_LHTAN:    return act_lhtan(x);
    }
    return x;
}

static inline float gradient1(float y, int a)
{
    switch (a) {
    case DN_LINEAR:   return 1;
    case DN_LOGISTIC: return (1 - y) * y;
    case DN_LOGGY: {
        float u = (float)(((double)y + 1.0) / 2.0);
        return 2 * (1 - u) * u;
    }
    case DN_RELU:     return (float)(y > 0);
    case DN_ELU:      return (float)(y >= 0) + (float)(y < 0) * (y + 1);
    case DN_SELU:     return (float)((double)(y >= 0) * 1.0507
                                     + (double)(y < 0) * ((double)y + 1.0507 * 1.6732));
    case DN_RELIE:    return y > 0 ? 1.0f : (float)0.01;
    case DN_RAMP:     return (float)((double)(y > 0) + 0.1);
    case DN_LEAKY:    return y > 0 ? 1.0f : (float)0.1;
    case DN_TANH:     return 1 - y * y;
    case DN_PLSE:     return (y < 0 || y > 1) ? (float)0.01 : (float)0.125;
    case DN_STAIR:    return floor(y) == y ? 0.0f : 1.0f;
    case DN_HARDTAN:  return (y > -1 && y < 1) ? 1.0f : 0.0f;
    case DN_LHTAN:    return (y > 0 && y < 1) ? 1.0f : (float)0.001;
    }
    return 1;
}

int dn_valid_activation(int a) { return a >= DN_LOGISTIC && a <= DN_SELU; }

/* The switch is hoisted out of the element loop: each case is a loop over
 * activate1/gradient1 with a constant id, which the compiler specialises and
 * vectorises; the arithmetic per element is unchanged. */
#define DN_EACH_ACTIVATION(F) \
    F(DN_LOGISTIC) F(DN_RELU) F(DN_RELIE) F(DN_RAMP) F(DN_TANH) F(DN_PLSE) \
    F(DN_LEAKY) F(DN_ELU) F(DN_LOGGY) F(DN_STAIR) F(DN_HARDTAN) F(DN_LHTAN) F(DN_SELU)

DN_CLONES int dn_activate(float *x, long n, int activation)
{
    if (!dn_valid_activation(activation)) return DN_ERR_ACTIVATION;
    if (n < 0 || (n > 0 && !x)) return DN_ERR_ARG;
    switch (activation) {
#define CASE(A) case A: for (long i = 0; i < n; ++i) x[i] = activate1(x[i], A); break;
    DN_EACH_ACTIVATION(CASE)
#undef CASE
    default: break;   /* linear: identity */
    }
    return DN_OK;
}

DN_CLONES int dn_gradient(const float *y, long n, int activation, float *delta)
{
    if (!dn_valid_activation(activation)) return DN_ERR_ACTIVATION;
    if (n < 0 || (n > 0 && (!y || !delta))) return DN_ERR_ARG;
    switch (activation) {
#define CASE(A) case A: for (long i = 0; i < n; ++i) delta[i] *= gradient1(y[i], A); break;
    DN_EACH_ACTIVATION(CASE)
#undef CASE
    default: break;   /* linear: gradient 1 */
    }
    return DN_OK;
}

const char *dn_activation_name(int a)
{
    static const char *const names[] = {
        "logistic", "relu", "relie", "linear", "ramp", "tanh", "plse",
        "leaky", "elu", "loggy", "stair", "hardtan", "lhtan", "selu"};
    return dn_valid_activation(a) ? names[a] : "unknown";
}
