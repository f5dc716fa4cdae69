/* mask.c - per-row loss masks of the loss layers (an extension for
 * sequence tasks; no Darknet counterpart).
 *
 * The loss layer ([softmax], [cost]) runs its Darknet forward unchanged;
 * dn_mask_rows then zeroes the delta (and per-element loss) of the rows that
 * carry no loss and recomputes the cost as Darknet's sum_array does, in
 * memory order, so a masked element adds exactly 0.0 and the cost is bit
 * for bit the sum over the unmasked rows. Doing it after the forward keeps
 * softmax.c and cost.c Darknet's code line for line.
 */
#include "internal.h"

int dn_mask_rows(int rows, int width, const unsigned char *keep, float *delta,
                 float *loss, float *cost)
{
    if (rows < 1 || width < 1 || !keep || !delta) return DN_ERR_ARG;
    if (cost && !loss) return DN_ERR_ARG;
    for (int r = 0; r < rows; ++r) {
        if (keep[r]) continue;
        dn_fill(width, 0, delta + (long)r * width, 1);
        if (loss) dn_fill(width, 0, loss + (long)r * width, 1);
    }
    if (cost) {
        const long n = (long)rows * width;
        float sum = 0;
        for (long i = 0; i < n; ++i) sum += loss[i];
        *cost = sum;
    }
    return DN_OK;
}
