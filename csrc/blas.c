/* blas.c - Darknet's BLAS-1 kernels (fill, copy, axpy, scal) and the status
 * strings. Float arithmetic exactly as written: y += alpha*x rounds the
 * product and the sum separately (built with -ffp-contract=off). */
#include "internal.h"

void dn_fill(long n, float alpha, float *x, int incx)
{
    for (long i = 0; i < n; ++i) x[i * incx] = alpha;
}

void dn_copy(long n, const float *x, int incx, float *y, int incy)
{
    for (long i = 0; i < n; ++i) y[i * incy] = x[i * incx];
}

void dn_axpy(long n, float alpha, const float *x, int incx, float *y, int incy)
{
    for (long i = 0; i < n; ++i) y[i * incy] += alpha * x[i * incx];
}

void dn_scal(long n, float alpha, float *x, int incx)
{
    for (long i = 0; i < n; ++i) x[i * incx] *= alpha;
}

const char *dn_status_string(int status)
{
    switch (status) {
    case DN_OK: return "ok";
    case DN_ERR_ARG: return "invalid argument (size, pointer or flag)";
    case DN_ERR_ACTIVATION: return "unknown activation";
    case DN_ERR_KERNEL: return "kernel unknown or not supported by this CPU";
    case DN_ERR_COST_TYPE: return "unknown cost type";
    case DN_ERR_MEMORY: return "out of memory";
    default: return "unknown status";
    }
}

#ifndef DN_CFLAGS
#define DN_CFLAGS "unknown"
#endif

const char *dn_build_flags(void)
{
#ifdef __VERSION__
    return "cc " __VERSION__ "; " DN_CFLAGS;
#else
    return DN_CFLAGS;
#endif
}
