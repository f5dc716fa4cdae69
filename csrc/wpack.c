/* wpack.c - weights packed once and used by many products: C = A W^T + beta C
 * for a weight matrix W (n, k) (a connected layer's weights).
 *
 *   DN_WPACK_F32   op(B) = W^T in the fast GEMM's sliver layout for the
 *                  context's kernel (gemm_driver.c: dn_gemm_pack_b); the
 *                  product is the packed path without its B packing. Same
 *                  results as dn_gemm on W up to summation order.
 *   DN_WPACK_BF16  W rounded to bfloat16 (round to nearest even), each row
 *                  padded with zeros to a multiple of 32 values; the product
 *                  rounds A to bfloat16 the same way and accumulates the
 *                  products in float: with the AVX512 kernel on a CPU with
 *                  AVX512_BF16 (dn_wpack_bf16_native()) by vdpbf16ps, which
 *                  adds the products of pairs; with any other kernel or CPU
 *                  in portable C (results differ in the last bits of the
 *                  float sums).
 *
 * The pack lives in a buffer the caller owns (p->data, p->floats floats,
 * sized by dn_wpack_floats); dn_wpack_fill writes it; nothing here
 * allocates or keeps state. A pack made for one kernel is refused by a
 * context with another kernel (DN_ERR_KERNEL): the sliver width differs.
 */
#include <stdint.h>
#include <string.h>

#include "gemm_internal.h"

#define BF_KALIGN 32         /* bf16 values per 512-bit vector */
#define BF_A_FLOATS 65536    /* floats of workspace for A's bf16 copy per chunk */

static long bf_kp(int k) { return dn_round_up(k, BF_KALIGN); }

long dn_wpack_floats(int kernel, int kind, int n, int k)
{
    if (n < 1 || k < 1) return 0;
    if (kind == DN_WPACK_BF16) return (long)n * bf_kp(k) / 2;
    if (kind != DN_WPACK_F32) return 0;
    const dn_gemm_isa *d = dn_gemm_isa_for(kernel);
    return d ? dn_gemm_packed_b_floats(d, n, k) : 0;
}

int dn_wpack_bf16_native(void)
{
#if DN_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

/* float -> bfloat16, round to nearest even (NaN stays a quiet NaN). */
static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float from_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void rows_to_bf16(int m, int k, const float *A, long lda, uint16_t *dst, long kp)
{
    for (int i = 0; i < m; ++i) {
        const float *a = A + (long)i * lda;
        uint16_t *o = dst + (long)i * kp;
        for (int j = 0; j < k; ++j) o[j] = to_bf16(a[j]);
        for (long j = k; j < kp; ++j) o[j] = 0;
    }
}

static int check_pack(const dn_wpack *p)
{
    if (!p || !p->data || p->n < 1 || p->k < 1) return DN_ERR_ARG;
    long need = dn_wpack_floats(p->kernel, p->kind, p->n, p->k);
    if (need <= 0) return p->kind == DN_WPACK_F32 ? DN_ERR_KERNEL : DN_ERR_ARG;
    return p->floats < need ? DN_ERR_ARG : DN_OK;
}

int dn_wpack_fill(const dn_wpack *p, const float *W, long ldw)
{
    int st = check_pack(p);
    if (st) return st;
    if (!W || ldw < p->k) return DN_ERR_ARG;
    if (p->kind == DN_WPACK_BF16) {
        rows_to_bf16(p->n, p->k, W, ldw, (uint16_t *)p->data, bf_kp(p->k));
        return DN_OK;
    }
    if (!(dn_kernels_available() & (1 << p->kernel))) return DN_ERR_KERNEL;
    dn_gemm_pack_b(dn_gemm_isa_for(p->kernel), 1, p->n, p->k, W, ldw, p->data);
    return DN_OK;
}

/* ---- bf16 products: C(m, n) = A16 W16^T + beta C, A16 (m, kp), W16 (n, kp) */

static void bf16_dots_c(int m, int n, long kp, const uint16_t *A, const uint16_t *W,
                        float beta, float *C, long ldc)
{
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
            const uint16_t *a = A + (long)i * kp, *w = W + (long)j * kp;
            float acc[16] = {0};
            for (long k = 0; k < kp; k += 16)
                for (int q = 0; q < 16; ++q) acc[q] += from_bf16(a[k + q]) * from_bf16(w[k + q]);
            float s = 0;
            for (int q = 0; q < 16; ++q) s += acc[q];
            float *c = C + (long)i * ldc + j;
            *c = beta == 0.0f ? s : s + beta * *c;
        }
}

#if DN_X86
#define DN_TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define BF_MAX_NB 8

/* MRS rows of A (<= 4) x NBS rows of W (<= BF_MAX_NB): MRS*NBS zmm
 * accumulators of vdpbf16ps over kp, a horizontal sum at the end. A row
 * of W beyond n repeats row n-1 (its result is dropped). */
DN_TARGET_BF16 __attribute__((always_inline))
static inline void bf16_tile(int MRS, int NBS, long kp, const uint16_t *A,
                             const uint16_t *const *w, int nb, float beta, float *C,
                             long ldc)
{
    __m512 acc[4][BF_MAX_NB];
#pragma GCC unroll 8
    for (int i = 0; i < MRS; i++)
#pragma GCC unroll 8
        for (int j = 0; j < NBS; j++) acc[i][j] = _mm512_setzero_ps();
    for (long k = 0; k < kp; k += BF_KALIGN) {
        __m512bh av[4];
#pragma GCC unroll 4
        for (int i = 0; i < MRS; i++)
            av[i] = (__m512bh)_mm512_loadu_si512((const void *)(A + i * kp + k));
#pragma GCC unroll 8
        for (int j = 0; j < NBS; j++) {
            __m512bh wv = (__m512bh)_mm512_loadu_si512((const void *)(w[j] + k));
#pragma GCC unroll 4
            for (int i = 0; i < MRS; i++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av[i], wv);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < MRS; i++)
#pragma GCC unroll 8
        for (int j = 0; j < NBS; j++)
            if (j < nb) {
                float s = _mm512_reduce_add_ps(acc[i][j]);
                float *c = C + (long)i * ldc + j;
                *c = beta == 0.0f ? s : s + beta * *c;
            }
}

/* Blocks of rows of W shared by every group of rows of A, so W streams
 * from memory once per call; A (bf16) stays in L1/L2. */
DN_TARGET_BF16
static void bf16_dots_avx512(int m, int n, long kp, const uint16_t *A, const uint16_t *W,
                             float beta, float *C, long ldc)
{
    const int NB = m == 1 ? 8 : 6;
    const uint16_t *w[BF_MAX_NB];
    for (int j0 = 0; j0 < n; j0 += NB) {
        int nb = dn_imin(NB, n - j0);
        for (int j = 0; j < NB; j++) w[j] = W + (long)dn_imin(j0 + j, n - 1) * kp;
        if (m == 1) {
            bf16_tile(1, 8, kp, A, w, nb, beta, C + j0, ldc);
            continue;
        }
        for (int i0 = 0; i0 < m; i0 += 4) {
            const uint16_t *a = A + (long)i0 * kp;
            float *c = C + (long)i0 * ldc + j0;
            switch (dn_imin(4, m - i0)) {
            case 1: bf16_tile(1, 6, kp, a, w, nb, beta, c, ldc); break;
            case 2: bf16_tile(2, 6, kp, a, w, nb, beta, c, ldc); break;
            case 3: bf16_tile(3, 6, kp, a, w, nb, beta, c, ldc); break;
            default: bf16_tile(4, 6, kp, a, w, nb, beta, c, ldc); break;
            }
        }
    }
}

/* A's rows to bf16 with vcvtne2ps2bf16 (round to nearest even; as
 * to_bf16 except that denormal inputs count as zero). */
DN_TARGET_BF16
static void rows_to_bf16_avx512(int m, int k, const float *A, long lda, uint16_t *dst,
                                long kp)
{
    for (int i = 0; i < m; ++i) {
        const float *a = A + (long)i * lda;
        uint16_t *o = dst + (long)i * kp;
        for (long j = 0; j < kp; j += 32) {
            __m512 lo = _mm512_maskz_loadu_ps(dn_tail_mask((int)(k - j)), a + j);
            __m512 hi = _mm512_maskz_loadu_ps(dn_tail_mask((int)(k - j - 16)), a + j + 16);
            _mm512_storeu_si512((void *)(o + j), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
    }
}
#endif

/* One thread's share: columns [j0, j1) of C, all rows, A converted in
 * chunks of rows that fit the thread's workspace. */
typedef struct bf16_part {
    const dn_wpack *p;
    int m, j0, j1;
    const float *A;
    long lda;
    float beta;
    float *C;
    long ldc;
    float *work;
    long work_floats;
    int native;             /* AVX512_BF16 kernels, else portable C */
} bf16_part;

static void bf16_run(void *arg, int part)
{
    const bf16_part *b = (const bf16_part *)arg + part;
    const long kp = bf_kp(b->p->k);
    const uint16_t *W = (const uint16_t *)b->p->data + (long)b->j0 * kp;
    uint16_t *a16 = (uint16_t *)b->work;
    long rows = b->work_floats * 2 / kp;
    if (rows > BF_A_FLOATS * 2 / kp) rows = BF_A_FLOATS * 2 / kp;
    if (rows < 1) rows = 1;
    const int native = b->native;
    for (int i0 = 0; i0 < b->m; i0 += (int)rows) {
        int mi = dn_imin((int)rows, b->m - i0);
        const float *a = b->A + (long)i0 * b->lda;
        float *c = b->C + (long)i0 * b->ldc + b->j0;
#if DN_X86
        if (native) {
            rows_to_bf16_avx512(mi, b->p->k, a, b->lda, a16, kp);
            bf16_dots_avx512(mi, b->j1 - b->j0, kp, a16, W, b->beta, c, b->ldc);
            continue;
        }
#endif
        (void)native;
        rows_to_bf16(mi, b->p->k, a, b->lda, a16, kp);
        bf16_dots_c(mi, b->j1 - b->j0, kp, a16, W, b->beta, c, b->ldc);
    }
}

#define BF_MAX_PARTS 64

int dn_gemm_wpack(const dn_ctx *ctx, int m, const float *A, long lda, const dn_wpack *p,
                  float beta, float *C, long ldc)
{
    int st = check_pack(p);
    if (st) return st;
    if (!ctx || m < 0 || ctx->threads < 1) return DN_ERR_ARG;
    if (m == 0) return DN_OK;
    if (!A || !C || lda < p->k || ldc < p->n) return DN_ERR_ARG;
    if (p->kind == DN_WPACK_F32) {
        if (p->kernel != ctx->kernel) return DN_ERR_KERNEL;
        return dn_gemm_prepacked(ctx, 0, m, p->n, p->k, 1.0f, A, lda, p->data, beta, C, ldc);
    }
    /* bf16: columns split over the context's threads (in blocks of 8 rows
     * of W, so every element is computed the same way for any count) */
    int threads = ctx->threads > BF_MAX_PARTS ? BF_MAX_PARTS : ctx->threads;
    long wt = ctx->work_floats / threads;
    if (!ctx->work || wt < bf_kp(p->k) / 2) return DN_ERR_ARG;
    int units = (p->n + 7) / 8;
    if ((double)m * p->n * p->k < 2e5 || !ctx->pool) threads = 1;
    if (threads > units) threads = units;
    bf16_part part[BF_MAX_PARTS];
    for (int t = 0; t < threads; t++) {
        int u0 = (int)((long)units * t / threads), u1 = (int)((long)units * (t + 1) / threads);
        bf16_part b = {p, m, u0 * 8, dn_imin(u1 * 8, p->n), A, lda, beta, C, ldc,
                       ctx->work + wt * t, wt,
                       ctx->kernel == DN_KERNEL_AVX512 && dn_wpack_bf16_native()};
        part[t] = b;
    }
    if (threads > 1 && dn_pool_run(ctx->pool, threads, bf16_run, part) == 0) return DN_OK;
    for (int t = 0; t < threads; t++) bf16_run(part, t);
    return DN_OK;
}
