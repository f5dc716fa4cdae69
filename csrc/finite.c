/* finite.c - the finite guard's scan: where is the first NaN or infinity?
 *
 * One pass over the array without allocation. A float is non-finite when
 * its exponent bits are all ones; the test is done on the bits (no float
 * comparison, so it does not depend on FP flags) in blocks, and only a
 * block that holds a non-finite value is searched again for its index.
 */
#include <stdint.h>
#include <string.h>

#include "internal.h"

#define BLOCK 1024L

static inline uint32_t nonfinite_bits(const float *x)
{
    uint32_t u;
    memcpy(&u, x, sizeof u);
    return (u & 0x7f800000u) == 0x7f800000u;
}

DN_CLONES long dn_first_nonfinite(const float *x, long n)
{
    if (n <= 0) return -1;
    if (!x) return -2;
    for (long i0 = 0; i0 < n; i0 += BLOCK) {
        const long i1 = n - i0 < BLOCK ? n : i0 + BLOCK;
        uint32_t bad = 0;
        for (long i = i0; i < i1; ++i) bad |= nonfinite_bits(x + i);
        if (bad)
            for (long i = i0; i < i1; ++i)
                if (nonfinite_bits(x + i)) return i;
    }
    return -1;
}
