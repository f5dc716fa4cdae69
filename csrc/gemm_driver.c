/* gemm_driver.c - dn_gemm_fast: the loops around the fast GEMM's kernels.
 *
 * Owns: argument checks, the choice of path for the whole problem, the
 * packed blocking loops, the small-M drivers and the split of C over
 * threads (the context's pool, or pthreads made for the call). The kernels
 * and packers it calls come from the ISA table (gemm_dispatch.c); their
 * contracts are in gemm_internal.h.
 *
 * Large problems (the BLIS/Goto scheme), gemm_packed:
 *   for jc in N step NC:
 *     for pc in K step KC:    pack B block KC x NC -> NR-wide slivers
 *       for ic in M step MC:  pack A block MC x KC -> MR-high slivers (L2)
 *         for jr in NC step NR:                B sliver KC x NR stays in L1
 *           for ir in MC step MR: micro-kernel MR x NR over kc
 *   Packing handles the four transpose cases: a "copy" pack when the
 *   sliver's rows are contiguous in memory (A with TA = 1, B with TB = 0),
 *   a register-transpose pack otherwise (A with TA = 0, B with TB = 1).
 *   Edge slivers are zero-padded, so there is one micro-kernel per ISA and
 *   edge tiles only store their valid part. beta is applied by the first
 *   k-block, alpha when a tile is stored. Two variations: with TB = 0 and
 *   moderate M the AVX-512 kernel reads B in place (direct_b(): each sliver
 *   is used only M/MR times, so packing costs more than it saves), and when
 *   M fits one A block each B sliver is packed just before its tiles run.
 *
 * Small M (M <= the ISA's small_m; e.g. generation with M = 1): nothing of B
 * is packed, B is read once per group of rows of C by the ISA's rows
 * (TB = 0) or dots (TB = 1) kernels; dots with TA = 1 first copies op(A)'s
 * rows to the workspace. TA = 0, TB = 1 with moderate M and a big B
 * (batched generation) uses the blocked dots kernel (dotsb).
 *
 * Threads: when ctx->threads > 1 and the estimated work is large enough
 * (PARALLEL_MIN), C is cut into ctx->threads blocks, along N when N >= M,
 * else along M, at micro-tile boundaries; each block is computed by the
 * serial code with its own slice of the workspace, on the context's pool
 * (ctx->pool) or, without one, on pthreads created and joined in this call
 * (the caller's thread takes block 0). The blocks do not depend on how they
 * are run: the bits are the same for any thread count, pool or not.
 * No allocation: the per-thread argument blocks live on this call's stack.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "gemm_internal.h"

#define KC DN_GEMM_KC
#define ALIGN_FLOATS DN_GEMM_ALIGN_FLOATS
#define MAX_THREADS DN_GEMM_MAX_THREADS
/* TA = 0, TB = 1 with 4 < M <= DOTSB_M, K >= 512 and a B of DOTSB_B floats
 * or more (beyond L2: batched generation's weights) uses dotsb. */
#define DOTSB_M 48
#define DOTSB_B 524288.0
#define DOTSB_A 65536            /* floats of A per k-chunk of dotsb (L2) */
#define PARALLEL_MIN 16e6        /* work_estimate() needed for 2+ threads */
#define PARALLEL_MIN_POOL 2e6    /* the same with the context's pool */

/* Packed buffers start on a 64-byte line (DN_GEMM_ALIGN_FLOATS of slack per
 * thread slice pays for it), so a sliver's vectors do not straddle lines. */
static float *align_ptr(float *p)
{
    uintptr_t u = (uintptr_t)p;
    u = (u + 63u) & ~(uintptr_t)63u;
    return (float *)u;
}

typedef struct gemm_args {
    const dn_gemm_isa *isa;
    int TA, TB, M, N, K;
    float alpha;
    const float *A;
    long lda;
    const float *B;
    long ldb;
    float beta;
    float *C;
    long ldc;
    int path;               /* PATH_* chosen for the whole problem */
    float *work;            /* this thread's slice, dn_gemm_thread_floats */
    /* B packed beforehand (dn_gemm_prepacked): sliver (pc, j) of op(B) at
     * Bpre + pc * bpre_n + (bcol0 + j) * kc; NULL: B as given */
    const float *Bpre;
    long bpre_n;
    int bcol0;
} gemm_args;

enum { PATH_PACKED = 0, PATH_ROWS = 1, PATH_DOTS = 2, PATH_DOTSB = 3 };

/* C = beta * C (beta == 0 writes zeros). */
static void scale_c(int M, int N, float beta, float *C, long ldc)
{
    for (int i = 0; i < M; i++) {
        float *ci = C + (long)i * ldc;
        if (beta == 0.0f)
            memset(ci, 0, sizeof(float) * (size_t)N);
        else if (beta != 1.0f)
            for (int j = 0; j < N; j++) ci[j] *= beta;
    }
}

/* Read B in place (TB = 0, kernels with direct_b) instead of packing it?
 * For moderate M each B sliver is used only M/MR times, and re-reading it
 * from L1/L2 costs less than the packing pass over B. A row stride that is
 * a multiple of 4 KB maps all rows of a sliver to the same L1 sets, so
 * beyond 32 rows such B is packed. The result is the same either way. */
static int direct_b(const gemm_args *g)
{
    if (g->TB || g->M > g->isa->direct_b) return 0;
    return g->M <= 32 || g->ldb % 1024 != 0;
}

/* Pack op(B)(pc.., jc + jr..) as one NR-wide sliver. */
static void pack_b_sliver(const gemm_args *g, int pc, int kc, int j, int nr,
                          float *dst)
{
    const dn_gemm_isa *d = g->isa;
    if (!g->TB)         /* B (K, N): the sliver's rows are contiguous */
        d->pack_copy(d->nr, nr, kc, g->B + (long)pc * g->ldb + j, g->ldb, dst);
    else                /* B (N, K) */
        d->pack_trans(d->nr, nr, kc, g->B + (long)j * g->ldb + pc, g->ldb, dst);
}

/* Pack op(A)(ic.., pc..), mc x kc, as MR-high slivers. */
static void pack_a_block(const gemm_args *g, int ic, int mc, int pc, int kc,
                         float *Ap)
{
    const dn_gemm_isa *d = g->isa;
    const int MR = d->mr;
    if (g->TA && d->pack_copy_block) {      /* A (K, M), whole block */
        d->pack_copy(MR, mc, kc, g->A + (long)pc * g->lda + ic, g->lda, Ap);
        return;
    }
    for (int ir = 0; ir < mc; ir += MR) {
        int mr = dn_imin(MR, mc - ir);
        float *dst = Ap + (long)ir * kc;
        if (!g->TA)     /* A (M, K) */
            d->pack_trans(MR, mr, kc, g->A + (long)(ic + ir) * g->lda + pc,
                          g->lda, dst);
        else            /* A (K, M) */
            d->pack_copy(MR, mr, kc, g->A + (long)pc * g->lda + ic + ir,
                         g->lda, dst);
    }
}

static void gemm_packed(const gemm_args *g)
{
    const dn_gemm_isa *d = g->isa;
    const int MR = d->mr, NR = d->nr;
    float *Ap = align_ptr(g->work);
    float *Bp = Ap + dn_round_up((long)d->mc * KC, ALIGN_FLOATS);
    const int direct = !g->Bpre && direct_b(g);
    /* When all of M is one A block, each B sliver is packed right before
     * its tiles are computed, so it is still in L1 when they read it. */
    const int interleave = !g->Bpre && !direct && g->M <= d->mc;

    for (int jc = 0; jc < g->N; jc += d->nc) {
        int nc = dn_imin(d->nc, g->N - jc);
        for (int pc = 0; pc < g->K; pc += KC) {
            int kc = dn_imin(KC, g->K - pc);
            float beta = pc == 0 ? g->beta : 1.0f;
            long ldbk = direct ? g->ldb : NR;
            const float *Bd = g->B + (long)pc * g->ldb + jc;
            const float *Bq = g->Bpre ? g->Bpre + (long)pc * g->bpre_n
                                             + (long)(g->bcol0 + jc) * kc : NULL;
            if (!g->Bpre && !direct && !interleave)
                for (int jr = 0; jr < nc; jr += NR)
                    pack_b_sliver(g, pc, kc, jc + jr, dn_imin(NR, nc - jr),
                                  Bp + (long)jr * kc);
            for (int ic = 0; ic < g->M; ic += d->mc) {
                int mc = dn_imin(d->mc, g->M - ic);
                pack_a_block(g, ic, mc, pc, kc, Ap);
                for (int jr = 0; jr < nc; jr += NR) {
                    int nr = dn_imin(NR, nc - jr);
                    const float *b = direct ? Bd + jr
                                   : Bq ? Bq + (long)jr * kc : Bp + (long)jr * kc;
                    if (interleave)
                        pack_b_sliver(g, pc, kc, jc + jr, nr, Bp + (long)jr * kc);
                    for (int ir = 0; ir < mc; ir += MR) {
                        /* a prepacked sliver's first tile reads it from memory */
                        dn_ukernel_fn kern = Bq && ir == 0 && ic == 0 && d->kernel_pf
                                                 ? d->kernel_pf : d->kernel;
                        kern(kc, Ap + (long)ir * kc, b, ldbk,
                             g->C + (long)(ic + ir) * g->ldc + jc + jr,
                             g->ldc, dn_imin(MR, mc - ir), nr, g->alpha, beta);
                    }
                }
            }
        }
    }
}

/* Small M, TB = 0: the rows kernels on groups of rows of C. */
static void gemm_rows(const gemm_args *g)
{
    const dn_gemm_isa *d = g->isa;
    long a_rs = g->TA ? 1 : g->lda, a_ks = g->TA ? g->lda : 1;
    for (int i0 = 0; i0 < g->M; i0 += d->rows_group) {
        int mr = dn_imin(d->rows_group, g->M - i0);
        d->rows[mr - 1](g->N, g->K, g->alpha, g->A + i0 * a_rs, a_rs, a_ks,
                        g->B, g->ldb, g->beta, g->C + (long)i0 * g->ldc, g->ldc);
    }
}

/* Small M, TB = 1: the dots kernels on groups of rows of C. With TA = 1
 * op(A)'s rows are strided in A, so they are first copied to the workspace,
 * in chunks of k when K is huge (each chunk after the first accumulates
 * with beta = 1). */
static void gemm_dots(const gemm_args *g)
{
    const dn_gemm_isa *d = g->isa;
    for (int i0 = 0; i0 < g->M; i0 += d->dots_group) {
        int mr = dn_imin(d->dots_group, g->M - i0);
        float *c = g->C + (long)i0 * g->ldc;
        if (!g->TA) {
            d->dots[mr - 1](g->N, g->K, g->alpha, g->A + (long)i0 * g->lda,
                            g->lda, g->B, g->ldb, g->beta, c, g->ldc);
            continue;
        }
        float *w = align_ptr(g->work);
        long cap = dn_gemm_thread_floats(d) - ALIGN_FLOATS;
        int kch = (int)((cap / d->dots_group) & ~15L);  /* same for every group */
        if (kch > g->K) kch = g->K;
        for (int k0 = 0; k0 < g->K; k0 += kch) {
            int kn = dn_imin(kch, g->K - k0);
            for (int i = 0; i < mr; i++) {
                const float *src = g->A + (long)k0 * g->lda + i0 + i;
                float *dst = w + (long)i * kch;
                for (int k = 0; k < kn; k++) dst[k] = src[(long)k * g->lda];
            }
            d->dots[mr - 1](g->N, kn, g->alpha, w, kch, g->B + k0, g->ldb,
                            k0 == 0 ? g->beta : 1.0f, c, g->ldc);
        }
    }
}

/* Moderate M, TA = 0, TB = 1: the ISA's dotsb over k-chunks small enough
 * for A's M rows to stay in L2 (the chunks depend on M and K only, so any
 * split of N among threads gives the same bits). */
static void gemm_dotsb(const gemm_args *g)
{
    int kch = (int)(DOTSB_A / g->M) & ~15;
    if (kch < 256) kch = 256;
    for (int k0 = 0; k0 < g->K; k0 += kch)
        g->isa->dotsb(g->M, g->N, dn_imin(kch, g->K - k0), g->alpha, g->A + k0, g->lda,
                      g->B + k0, g->ldb, k0 == 0 ? g->beta : 1.0f, g->C, g->ldc);
}

static void gemm_serial(const gemm_args *g)
{
    if (g->M <= 0 || g->N <= 0) return;
    if (g->K == 0 || g->alpha == 0.0f) {
        scale_c(g->M, g->N, g->beta, g->C, g->ldc);
        return;
    }
    if (g->path == PATH_ROWS) { gemm_rows(g); return; }
    if (g->path == PATH_DOTS) { gemm_dots(g); return; }
    if (g->path == PATH_DOTSB) { gemm_dotsb(g); return; }
    gemm_packed(g);
}

/* Work of a call in multiply-adds, plus B's streaming for the memory-bound
 * small-M paths (a float of B from L3 costs about 4 FMAs' time). Creating
 * and joining a thread costs ~10-25 us, a 16e6 work about 70 us on one
 * core: below PARALLEL_MIN one thread is used. M = 1 with B of 1024 x 1024
 * (5e6) stays on one core; 2048 x 2048 (2e7) is split. A context's pool
 * (pool.c) hands work to waiting threads in a few us, so with it calls from
 * PARALLEL_MIN_POOL (~10 us of work) up are split. */
static double work_estimate(const gemm_args *g)
{
    double w = (double)g->M * g->N * g->K;
    if (g->path != PATH_PACKED) w += 4.0 * g->N * g->K;
    return w;
}

static void *gemm_thread(void *p)
{
    gemm_serial((const gemm_args *)p);
    return NULL;
}

static void gemm_part(void *parts, int part)
{
    gemm_serial((const gemm_args *)parts + part);
}

/* Run g on `threads` threads (fewer when the work is small): C cut into
 * blocks along N (NR units) when N >= M, else along M (MR units). */
static int run_parts(const dn_ctx *ctx, const gemm_args *gp, int threads)
{
    const gemm_args g = *gp;
    const dn_gemm_isa *d = g.isa;
    const int M = g.M, N = g.N, TA = g.TA, TB = g.TB;
    const long lda = g.lda, ldb = g.ldb, ldc = g.ldc;
    const float *A = g.A, *B = g.B;
    float *C = g.C;
    if (threads > 1 &&
        work_estimate(&g) < (ctx->pool ? PARALLEL_MIN_POOL : PARALLEL_MIN))
        threads = 1;
    /* split along N (in NR units) when N >= M, else along M (MR units) */
    int split_n = N >= M;
    int unit = split_n ? d->nr : d->mr;
    int units = ((split_n ? N : M) + unit - 1) / unit;
    if (threads > units) threads = units;

    if (threads <= 1) {
        gemm_args one = g;
        one.work = ctx->work;
        gemm_serial(&one);
        return DN_OK;
    }

    gemm_args part[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS];
    long wt = dn_gemm_thread_floats(d);
    for (int t = 0; t < threads; t++) {
        int u0 = (int)((long)units * t / threads);
        int u1 = (int)((long)units * (t + 1) / threads);
        part[t] = g;
        part[t].work = ctx->work + wt * t;
        if (split_n) {
            int j0 = u0 * unit, j1 = dn_imin(u1 * unit, N);
            part[t].N = j1 - j0;
            part[t].C = C + j0;
            part[t].B = TB ? B + (long)j0 * ldb : B + j0;
            part[t].bcol0 = g.bcol0 + j0;
        } else {
            int i0 = u0 * unit, i1 = dn_imin(u1 * unit, M);
            part[t].M = i1 - i0;
            part[t].C = C + (long)i0 * ldc;
            part[t].A = TA ? A + i0 : A + (long)i0 * lda;
        }
    }
    if (ctx->pool && dn_pool_run(ctx->pool, threads, gemm_part, part) == 0)
        return DN_OK;
    for (int t = 1; t < threads; t++)
        started[t] = pthread_create(&tid[t], NULL, gemm_thread, &part[t]) == 0;
    gemm_serial(&part[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t]) pthread_join(tid[t], NULL);
        else gemm_serial(&part[t]);       /* no thread: do its block here */
    }
    return DN_OK;
}

/* The context's checks shared by the entry points: a fast kernel this CPU
 * runs (its table in *d), a thread count (capped at MAX_THREADS, in
 * *threads) and a workspace large enough for it. */
static int context_isa(const dn_ctx *ctx, const dn_gemm_isa **d, int *threads)
{
    if (!ctx) return DN_ERR_ARG;
    *d = dn_gemm_isa_for(ctx->kernel);
    if (!*d || !(dn_kernels_available() & (1 << ctx->kernel)))
        return DN_ERR_KERNEL;
    if (ctx->threads < 1) return DN_ERR_ARG;
    *threads = ctx->threads > MAX_THREADS ? MAX_THREADS : ctx->threads;
    if (!ctx->work || ctx->work_floats < dn_gemm_work_floats(ctx->kernel, *threads))
        return DN_ERR_ARG;
    return DN_OK;
}

int dn_gemm_fast(const dn_ctx *ctx, int TA, int TB, int M, int N, int K,
                 float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc)
{
    if (M < 0 || N < 0 || K < 0) return DN_ERR_ARG;
    const dn_gemm_isa *d;
    int threads, st = context_isa(ctx, &d, &threads);
    if (st) return st;
    if (M == 0 || N == 0) return DN_OK;
    if (!C || (K > 0 && (!A || !B))) return DN_ERR_ARG;
    if (lda < (TA ? M : K) || ldb < (TB ? K : N) || ldc < N || lda < 1 || ldb < 1)
        return DN_ERR_ARG;

    gemm_args g = {
        d, TA != 0, TB != 0, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
        PATH_PACKED, NULL, NULL, 0, 0
    };
    if (g.TB && !g.TA && M > 4 && M <= DOTSB_M && K >= 512 &&
        (double)N * K >= DOTSB_B && d->dotsb)
        g.path = PATH_DOTSB;
    else if (M <= d->small_m)
        g.path = g.TB ? PATH_DOTS : PATH_ROWS;

    return run_parts(ctx, &g, threads);
}

/* op(B) (K x N) in the packed path's layout, for a B used by many GEMMs
 * (gemm_internal.h: dn_gemm_pack_b): k-block pc (KC rows) starts at
 * pc * round_up(N, NR); within it, NR-wide slivers of kc x NR floats. */
long dn_gemm_packed_b_floats(const dn_gemm_isa *d, int N, int K)
{
    return dn_round_up(N, d->nr) * (long)K;
}

void dn_gemm_pack_b(const dn_gemm_isa *d, int TB, int N, int K, const float *B,
                    long ldb, float *Bp)
{
    const long npad = dn_round_up(N, d->nr);
    for (int pc = 0; pc < K; pc += KC) {
        int kc = dn_imin(KC, K - pc);
        for (int j = 0; j < N; j += d->nr) {
            float *dst = Bp + (long)pc * npad + (long)j * kc;
            if (TB)
                d->pack_trans(d->nr, dn_imin(d->nr, N - j), kc, B + (long)j * ldb + pc,
                              ldb, dst);
            else
                d->pack_copy(d->nr, dn_imin(d->nr, N - j), kc, B + (long)pc * ldb + j,
                             ldb, dst);
        }
    }
}

int dn_gemm_prepacked(const dn_ctx *ctx, int TA, int M, int N, int K, float alpha,
                      const float *A, long lda, const float *Bp, float beta, float *C,
                      long ldc)
{
    if (M < 0 || N < 0 || K < 0) return DN_ERR_ARG;
    const dn_gemm_isa *d;
    int threads, st = context_isa(ctx, &d, &threads);
    if (st) return st;
    if (M == 0 || N == 0) return DN_OK;
    if (!C || (K > 0 && (!A || !Bp)) || lda < (TA ? M : K) || lda < 1 || ldc < N)
        return DN_ERR_ARG;
    /* B is only a non-NULL stand-in here: the kernels read Bpre */
    gemm_args g = {
        d, TA != 0, 0, M, N, K, alpha, A, lda, Bp, N, beta, C, ldc,
        PATH_PACKED, NULL, Bp, dn_round_up(N, d->nr), 0
    };
    return run_parts(ctx, &g, threads);
}
