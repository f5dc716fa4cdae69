/* gemm_check.c - standalone check and benchmark of the fast GEMM
 * (dn_gemm_fast, csrc/gemm_*.c).
 *
 * Build (from the repo root) as tests/test_gemm.py does, with the
 * extension's flags and every one of its sources, both from csrc/flags.py:
 *   F=$(python3 -c 'import runpy; print(*runpy.run_path("csrc/flags.py")["CFLAGS"])')
 *   S=$(python3 -c 'import runpy; print(*runpy.run_path("csrc/flags.py")["sources"]())')
 *   gcc $F -pthread -Icsrc tests/c/gemm_check.c $S -lm -o /tmp/gemm_check
 * (the naive dn_gemm_reference below is weak and yields to csrc/gemm.c's,
 * so the harness also links with only the gemm_*.c and pool.c sources.)
 *
 *   gemm_check                   check every available fast kernel; exit 0
 *                                when all pass, 1 on any mismatch
 *   gemm_check bench [threads]   print GFLOP/s per kernel, shape and
 *                                transpose case (median of timed runs)
 *
 * The check compares dn_gemm_fast against a double-precision naive product
 * for every available kernel x 4 transpose cases x odd shapes (edges of
 * every micro-tile and cache block, the small-M paths, padded leading
 * dimensions) x alpha x beta in {0, 1, 0.5} (beta = 0 with NaN in C),
 * with threads 1 and 2. Tolerance: |C - C_exact| <= 1e-5 * (|alpha| *
 * sum_k |a||b| + |beta * C0|). It also checks that padding columns of C and
 * the floats after the workspace are untouched (the workspace starts at
 * varying alignments), that results with 1, 2 and 3 threads are bitwise
 * equal, and the error codes.
 */
#define _POSIX_C_SOURCE 200112L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* Naive stand-in so the harness links without csrc/gemm.c (the fast GEMM
 * does not call it; it is here to satisfy internal.h's contract). */
__attribute__((weak))
void dn_gemm_reference(int TA, int TB, int M, int N, int K, float alpha,
                       const float *A, int lda, const float *B, int ldb,
                       float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float s = 0;
            for (int k = 0; k < K; k++)
                s += (TA ? A[(long)k * lda + i] : A[(long)i * lda + k])
                   * (TB ? B[(long)j * ldb + k] : B[(long)k * ldb + j]);
            C[(long)i * ldc + j] = alpha * s + beta * C[(long)i * ldc + j];
        }
}

static const char *kernel_names[] = {"reference", "portable", "avx2", "avx512"};

/* xorshift PRNG, values in [-1, 1) */
static unsigned long long rng_state = 88172645463325252ULL;
static float frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static float *fill_new(long n)
{
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(2); }
    for (long i = 0; i < n; i++) p[i] = frand();
    return p;
}

#define GUARD 64
#define SENTINEL 12345.0f

/* pools[n]: a pool of n threads shared by the determinism checks */
static dn_pool *pools[4];

typedef struct {
    long failures, checks;
} tally;

/* One case: all kernels' workspace is allocated here with guard floats. */
static void check_case(tally *t, int kernel, int threads, int TA, int TB,
                       int M, int N, int K, int pad, float alpha, float beta)
{
    int lda = (TA ? M : K) + pad, ldb = (TB ? K : N) + pad, ldc = N + pad;
    if (lda < 1) lda = 1;
    if (ldb < 1) ldb = 1;
    long arows = TA ? K : M, brows = TB ? N : K;
    float *A = fill_new(arows * lda), *B = fill_new(brows * ldb);
    float *C0 = fill_new((long)M * ldc), *C = malloc(sizeof(float) * (size_t)((long)M * ldc + 1));
    float *C1 = malloc(sizeof(float) * (size_t)((long)M * ldc + 1));
    for (long i = 0; i < (long)M * ldc; i++) {
        if (i % ldc >= N) C0[i] = SENTINEL;           /* padding columns */
        else if (beta == 0.0f) C0[i] = NAN;           /* must not be read */
    }
    long wf = dn_gemm_work_floats(kernel, threads);
    /* the workspace starts at a varying offset from malloc's alignment */
    int off = (M + N + K) % 16;
    float *wbase = malloc(sizeof(float) * (size_t)(wf + off + GUARD));
    float *work = wbase + off;
    for (long i = 0; i < wf + GUARD; i++) work[i] = SENTINEL;
    dn_ctx ctx = {kernel, threads, work, wf};

    memcpy(C, C0, sizeof(float) * (size_t)((long)M * ldc));
    int st = dn_gemm_fast(&ctx, TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    t->checks++;
    int bad = 0;
    double worst = 0;
    int wi = -1, wj = -1;
    if (st != DN_OK) {
        printf("FAIL %s t=%d TA=%d TB=%d M=%d N=%d K=%d: status %d\n",
               kernel_names[kernel], threads, TA, TB, M, N, K, st);
        bad = 1;
    }
    for (int i = 0; i < M && !bad; i++)
        for (int j = 0; j < ldc; j++) {
            float got = C[(long)i * ldc + j];
            if (j >= N) {
                if (got != SENTINEL) { bad = 1; wi = i; wj = j; }
                continue;
            }
            double s = 0, sa = 0;
            for (int k = 0; k < K; k++) {
                double a = TA ? A[(long)k * lda + i] : A[(long)i * lda + k];
                double b = TB ? B[(long)j * ldb + k] : B[(long)k * ldb + j];
                s += a * b;
                sa += fabs(a * b);
            }
            double c0 = beta == 0.0f ? 0.0 : C0[(long)i * ldc + j];
            double want = alpha * s + beta * c0;
            double tol = 1e-5 * (fabs(alpha) * sa + fabs(beta * c0)) + 1e-30;
            double err = fabs((double)got - want);
            if (!(err <= tol)) {               /* also catches NaN */
                if (!bad || err / tol > worst) { worst = err / tol; wi = i; wj = j; }
                bad = 1;
            }
        }
    for (long i = wf; i < wf + GUARD; i++)
        if (work[i] != SENTINEL) { bad = 2; break; }
    if (bad && st == DN_OK) {
        printf("FAIL %s t=%d TA=%d TB=%d M=%d N=%d K=%d pad=%d alpha=%g beta=%g: ",
               kernel_names[kernel], threads, TA, TB, M, N, K, pad, alpha, beta);
        if (bad == 2) printf("wrote past the workspace\n");
        else if (wj >= N) printf("padding C[%d][%d] changed\n", wi, wj);
        else printf("C[%d][%d] = %.9g, error/tolerance %.3g\n", wi, wj,
                    C[(long)wi * ldc + wj], worst);
    }

    /* determinism: the other thread counts (1, 2, 3), with threads made per
     * call and with the context's pool (p), give the same bits */
    for (int other = 1; other <= 3 && !bad; other++) {
        for (int use_pool = 0; use_pool <= (pools[other] != NULL) && !bad; use_pool++) {
            if (other == threads && !use_pool) continue;
            long wf1 = dn_gemm_work_floats(kernel, other);
            float *w1 = malloc(sizeof(float) * (size_t)wf1);
            dn_ctx c1 = {kernel, other, w1, wf1, use_pool ? pools[other] : NULL};
            memcpy(C1, C0, sizeof(float) * (size_t)((long)M * ldc));
            int st1 = dn_gemm_fast(&c1, TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc);
            if (st1 != DN_OK || memcmp(C1, C, sizeof(float) * (size_t)((long)M * ldc)) != 0) {
                printf("FAIL %s TA=%d TB=%d M=%d N=%d K=%d: threads %d and %d%s differ\n",
                       kernel_names[kernel], TA, TB, M, N, K, threads, other,
                       use_pool ? "p" : "");
                bad = 1;
            }
            free(w1);
        }
    }
    if (bad) t->failures++;
    free(A); free(B); free(C0); free(C); free(C1); free(wbase);
}

static int expect(tally *t, const char *what, int got, int want)
{
    t->checks++;
    if (got != want) {
        printf("FAIL %s: status %d, expected %d\n", what, got, want);
        t->failures++;
        return 1;
    }
    return 0;
}

static void check_errors(tally *t, int kernel)
{
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 4}, c[4] = {0};
    long wf = dn_gemm_work_floats(kernel, 1);
    float *w = malloc(sizeof(float) * (size_t)(wf > 0 ? wf : 1));
    dn_ctx ctx = {kernel, 1, w, wf};
    expect(t, "ok 2x2", dn_gemm_fast(&ctx, 0, 0, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2), DN_OK);
    t->checks++;
    if (c[0] != 7 || c[1] != 10 || c[2] != 15 || c[3] != 22) {
        printf("FAIL %s 2x2 product wrong\n", kernel_names[kernel]);
        t->failures++;
    }
    expect(t, "negative M", dn_gemm_fast(&ctx, 0, 0, -1, 2, 2, 1, a, 2, b, 2, 0, c, 2), DN_ERR_ARG);
    expect(t, "negative K", dn_gemm_fast(&ctx, 0, 0, 2, 2, -1, 1, a, 2, b, 2, 0, c, 2), DN_ERR_ARG);
    expect(t, "NULL A", dn_gemm_fast(&ctx, 0, 0, 2, 2, 2, 1, NULL, 2, b, 2, 0, c, 2), DN_ERR_ARG);
    expect(t, "NULL C", dn_gemm_fast(&ctx, 0, 0, 2, 2, 2, 1, a, 2, b, 2, 0, NULL, 2), DN_ERR_ARG);
    expect(t, "lda < K", dn_gemm_fast(&ctx, 0, 0, 2, 2, 2, 1, a, 1, b, 2, 0, c, 2), DN_ERR_ARG);
    expect(t, "ldb < K (TB)", dn_gemm_fast(&ctx, 0, 1, 2, 2, 2, 1, a, 2, b, 1, 0, c, 2), DN_ERR_ARG);
    expect(t, "ldc < N", dn_gemm_fast(&ctx, 0, 0, 2, 2, 2, 1, a, 2, b, 2, 0, c, 1), DN_ERR_ARG);
    expect(t, "M = 0", dn_gemm_fast(&ctx, 0, 0, 0, 2, 2, 1, a, 2, b, 2, 0, c, 2), DN_OK);
    dn_ctx nowork = {kernel, 1, NULL, wf};
    expect(t, "NULL work", dn_gemm_fast(&nowork, 0, 0, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2), DN_ERR_ARG);
    dn_ctx small = {kernel, 1, w, wf - 1};
    expect(t, "small work", dn_gemm_fast(&small, 0, 0, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2), DN_ERR_ARG);
    dn_ctx twothreads = {kernel, 2, w, wf};
    expect(t, "work for 1 thread, 2 threads",
           dn_gemm_fast(&twothreads, 0, 0, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2), DN_ERR_ARG);
    dn_ctx nothreads = {kernel, 0, w, wf};
    expect(t, "threads 0", dn_gemm_fast(&nothreads, 0, 0, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2), DN_ERR_ARG);
    expect(t, "NULL ctx", dn_gemm_fast(NULL, 0, 0, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2), DN_ERR_ARG);
    free(w);
}

/* The pool alone: many back-to-back dispatches (each part must run exactly
 * once per dispatch), more parts than threads refused, argument errors. */
static void count_part(void *arg, int part)
{
    __atomic_add_fetch((long *)arg + part, 1, __ATOMIC_RELAXED);
}

static void check_pool(tally *t)
{
    dn_pool *p = NULL;
    expect(t, "pool of 0 threads", dn_pool_create(0, &p), DN_ERR_ARG);
    expect(t, "pool, NULL out", dn_pool_create(2, NULL), DN_ERR_ARG);
    expect(t, "pool of 3", dn_pool_create(3, &p), DN_OK);
    expect(t, "pool threads", dn_pool_threads(p), 3);
    long count[3] = {0, 0, 0};
    const int rounds = 20000;
    for (int r = 0; r < rounds; r++)
        if (dn_pool_run(p, 2 + (r & 1), count_part, count) != 0) {
            expect(t, "pool dispatch", 1, 0);
            break;
        }
    t->checks++;
    if (count[0] != rounds || count[1] != rounds || count[2] != rounds / 2) {
        printf("FAIL pool: parts ran %ld, %ld, %ld times (want %d, %d, %d)\n",
               count[0], count[1], count[2], rounds, rounds, rounds / 2);
        t->failures++;
    }
    t->checks++;
    if (dn_pool_run(p, 4, count_part, count) == 0) {
        printf("FAIL pool: ran 4 parts on 3 threads\n");
        t->failures++;
    }
    dn_pool_destroy(p);
    dn_pool_destroy(NULL);
}

static int run_checks(void)
{
    tally t = {0, 0};
    int avail = dn_kernels_available();
    check_pool(&t);
    dn_pool_create(2, &pools[2]);
    dn_pool_create(3, &pools[3]);
    printf("kernels available:");
    for (int k = 0; k < 4; k++) if (avail & (1 << k)) printf(" %s", kernel_names[k]);
    printf(" (auto: %s)\n", kernel_names[dn_kernel_auto()]);
    if (!(avail & (1 << DN_KERNEL_REFERENCE)) || !(avail & (1 << DN_KERNEL_PORTABLE))) {
        printf("FAIL reference/portable not reported available\n");
        t.failures++;
    }
    if (!(avail & (1 << dn_kernel_auto()))) {
        printf("FAIL auto kernel not available\n");
        t.failures++;
    }

    /* kernel ids that must be refused */
    {
        float w[1];
        float a = 1, b = 1, c = 0;
        dn_ctx ref = {DN_KERNEL_REFERENCE, 1, w, 1};
        expect(&t, "REFERENCE", dn_gemm_fast(&ref, 0, 0, 1, 1, 1, 1, &a, 1, &b, 1, 0, &c, 1), DN_ERR_KERNEL);
        dn_ctx bogus = {17, 1, w, 1};
        expect(&t, "kernel 17", dn_gemm_fast(&bogus, 0, 0, 1, 1, 1, 1, &a, 1, &b, 1, 0, &c, 1), DN_ERR_KERNEL);
        for (int k = DN_KERNEL_AVX2; k <= DN_KERNEL_AVX512; k++)
            if (!(avail & (1 << k))) {
                dn_ctx un = {k, 1, w, 1};
                expect(&t, "unavailable kernel",
                       dn_gemm_fast(&un, 0, 0, 1, 1, 1, 1, &a, 1, &b, 1, 0, &c, 1), DN_ERR_KERNEL);
            }
    }

    /* (M, N, K): micro-tile edges, small-M paths, KC/MC/NC block edges */
    static const int shapes[][3] = {
        {1, 1, 1}, {1, 7, 17}, {1, 33, 65}, {1, 130, 1}, {2, 17, 33},
        {3, 65, 7}, {4, 33, 130}, {5, 16, 16}, {6, 32, 32}, {7, 1, 5},
        {8, 32, 256}, {9, 47, 257}, {17, 7, 1}, {33, 65, 17}, {65, 130, 33},
        {130, 17, 65}, {16, 48, 513}, {31, 2100, 20}, {3, 2100, 40},
        {200, 70, 300}, {1, 1024, 1024}, {4, 600, 700}, {130, 130, 260},
        {64, 520, 130}, {32, 1024, 64}, {48, 1024, 40},
        /* big enough for 2 threads: split along M, along N, small-M paths */
        {600, 100, 300}, {40, 1000, 420}, {3, 2100, 3000},
        /* the blocked dots path (TA = 0, TB = 1, 4 < M <= 48, big B): row
         * group and B block tails, k tail, two k-chunks (M = 40, K = 2000) */
        {5, 1030, 520}, {47, 700, 777}, {40, 263, 2000}, {48, 1024, 512},
        /* K beyond the workspace chunk of the TA = 1, TB = 1 small-M path */
        {3, 3, 300000}, {4, 2, 300000}, {1, 2, 600000},
    };
    static const float alphas[] = {1.0f, -0.75f};
    static const float betas[] = {0.0f, 1.0f, 0.5f};
    int nshapes = (int)(sizeof shapes / sizeof shapes[0]);

    for (int kernel = DN_KERNEL_PORTABLE; kernel <= DN_KERNEL_AVX512; kernel++) {
        if (!(avail & (1 << kernel))) continue;
        long before = t.failures;
        check_errors(&t, kernel);
        for (int s = 0; s < nshapes; s++)
            for (int tr = 0; tr < 4; tr++)
                for (int ai = 0; ai < 2; ai++)
                    for (int bi = 0; bi < 3; bi++) {
                        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                        int pad = (s + tr + bi) % 3 == 0 ? 0 : 3;
                        int threads = (s + ai + bi) % 2 ? 2 : 1;
                        /* keep the O(MNK) double check affordable */
                        if ((double)M * N * K > 3e6 && (ai || bi != 1)) continue;
                        check_case(&t, kernel, threads, tr >> 1, tr & 1, M, N, K,
                                   pad, alphas[ai], betas[bi]);
                    }
        /* K = 0 and alpha = 0: C = beta * C */
        for (int tr = 0; tr < 4; tr++) {
            check_case(&t, kernel, 1, tr >> 1, tr & 1, 5, 9, 0, 1, 1.0f, 0.5f);
            check_case(&t, kernel, 1, tr >> 1, tr & 1, 5, 9, 0, 0, 1.0f, 0.0f);
            check_case(&t, kernel, 2, tr >> 1, tr & 1, 3, 40, 20, 2, 0.0f, 0.5f);
        }
        printf("%-9s %s\n", kernel_names[kernel], t.failures == before ? "ok" : "FAILED");
    }
    dn_pool_destroy(pools[2]);
    dn_pool_destroy(pools[3]);
    printf("%ld passed, %ld failed\n", t.checks - t.failures, t.failures);
    return t.failures ? 1 : 0;
}

/* ---- timing ------------------------------------------------------------- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double bench_one(int kernel, int threads, int TA, int TB, int M, int N, int K)
{
    int lda = TA ? M : K, ldb = TB ? K : N;
    float *A = fill_new((long)M * K), *B = fill_new((long)K * N), *C = fill_new((long)M * N);
    long wf = dn_gemm_work_floats(kernel, threads);
    float *w = malloc(sizeof(float) * (size_t)wf);
    dn_ctx ctx = {kernel, threads, w, wf};
    double flops = 2.0 * M * N * K;
    int reps = (int)(2e8 / flops) + 1;
    double ts[9];
    dn_gemm_fast(&ctx, TA, TB, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
    for (int r = 0; r < 9; r++) {
        double t0 = now();
        for (int i = 0; i < reps; i++)
            dn_gemm_fast(&ctx, TA, TB, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
        ts[r] = (now() - t0) / reps;
    }
    qsort(ts, 9, sizeof ts[0], cmp_double);
    free(A); free(B); free(C); free(w);
    return flops / ts[4] / 1e9;
}

static int run_bench(int threads)
{
    static const int shapes[][3] = {
        {32, 256, 256}, {32, 512, 512}, {2048, 256, 256}, {2048, 512, 512},
        {2048, 256, 512}, {1024, 1024, 1024}, {1, 1024, 1024}, {4, 1024, 1024},
        {16, 1024, 1024}, {1024, 1024, 1},
    };
    int avail = dn_kernels_available();
    printf("GFLOP/s, %d thread(s), median of 9; columns NN NT TN TT\n", threads);
    for (int kernel = DN_KERNEL_PORTABLE; kernel <= DN_KERNEL_AVX512; kernel++) {
        if (!(avail & (1 << kernel))) continue;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            if (kernel == DN_KERNEL_PORTABLE && (double)M * N * K > 3e8) continue;
            printf("%-8s M=%4d N=%4d K=%4d ", kernel_names[kernel], M, N, K);
            for (int tr = 0; tr < 4; tr++)
                printf(" %7.1f", bench_one(kernel, threads, tr >> 1, tr & 1, M, N, K));
            printf("\n");
            fflush(stdout);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "bench") == 0)
        return run_bench(argc > 2 ? atoi(argv[2]) : 1);
    return run_checks();
}
