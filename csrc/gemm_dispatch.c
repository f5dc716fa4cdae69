/* gemm_dispatch.c - which fast GEMM kernels this CPU runs, and their tables.
 *
 * Owns: CPU-feature detection (dn_kernels_available, dn_kernel_auto), the
 * const per-ISA tables that bind each kernel id to its micro-kernel,
 * packers, blocking sizes and small-M kernels (dn_gemm_isa_for), and the
 * workspace size (dn_gemm_work_floats).
 *   DN_KERNEL_PORTABLE  plain C, any CPU            micro-tile  4 x 16
 *   DN_KERNEL_AVX2      AVX2 + FMA (ymm)            micro-tile  6 x 16
 *   DN_KERNEL_AVX512    AVX-512F/VL + FMA (zmm)     micro-tile  8 x 32
 * Features are queried on every call (__builtin_cpu_supports reads a table
 * libgcc fills once), so nothing here is mutable state of ours. A table is
 * only a description: dn_gemm_fast checks dn_kernels_available() before it
 * runs any of its code.
 */
#include "gemm_internal.h"

/* M up to which AVX2/AVX-512 use the small-M (rows/dots) kernels. */
#define SMALL_M 16

static const dn_gemm_isa isa_portable = {
    DN_PORTABLE_MR, DN_PORTABLE_NR, 128, 2048, dn_gemm_ukernel_c,
    dn_gemm_pack_copy_c, dn_gemm_pack_trans_c, 0, 0,
    0, 0, 0, {0}, {0}, NULL
};

#if DN_X86
static const dn_gemm_isa isa_avx2 = {
    DN_AVX2_MR, DN_AVX2_NR, 192, 2048, dn_gemm_ukernel_avx2,
    dn_gemm_pack_copy_avx2, dn_gemm_pack_trans_avx2, 0, 0,
    SMALL_M, 4, 2,
    {dn_gemm_rows1_avx2, dn_gemm_rows2_avx2, dn_gemm_rows3_avx2, dn_gemm_rows4_avx2},
    {dn_gemm_dots1_avx2, dn_gemm_dots2_avx2, 0, 0}, NULL
};

/* The AVX-512 copy pack packs whole A blocks (pack_copy_block) and its
 * kernel masks B's columns, so TB = 0 with M <= 256 reads B in place. */
static const dn_gemm_isa isa_avx512 = {
    DN_AVX512_MR, DN_AVX512_NR, 192, 2048, dn_gemm_ukernel_avx512,
    dn_gemm_pack_copy_avx512, dn_gemm_pack_trans_avx512, 1, 256,
    SMALL_M, 4, 4,
    {dn_gemm_rows1_avx512, dn_gemm_rows2_avx512, dn_gemm_rows3_avx512,
     dn_gemm_rrows4_avx512},
    {dn_gemm_dots1_avx512, dn_gemm_dots2_avx512, dn_gemm_dots3_avx512,
     dn_gemm_dots4_avx512},
    dn_gemm_dotsb_avx512, dn_gemm_ukernel_pf_avx512
};
#endif

const dn_gemm_isa *dn_gemm_isa_for(int kernel)
{
    switch (kernel) {
    case DN_KERNEL_PORTABLE: return &isa_portable;
#if DN_X86
    case DN_KERNEL_AVX2: return &isa_avx2;
    case DN_KERNEL_AVX512: return &isa_avx512;
#endif
    default: return NULL;
    }
}

int dn_kernels_available(void)
{
    int mask = (1 << DN_KERNEL_REFERENCE) | (1 << DN_KERNEL_PORTABLE);
#if DN_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        mask |= 1 << DN_KERNEL_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        mask |= 1 << DN_KERNEL_AVX512;
#endif
    return mask;
}

int dn_kernel_auto(void)
{
    int mask = dn_kernels_available();
    if (mask & (1 << DN_KERNEL_AVX512)) return DN_KERNEL_AVX512;
    if (mask & (1 << DN_KERNEL_AVX2)) return DN_KERNEL_AVX2;
    return DN_KERNEL_PORTABLE;
}

/* Each thread gets its own slice (dn_gemm_thread_floats), for at most
 * DN_GEMM_MAX_THREADS threads; 0 for REFERENCE, which needs none. */
long dn_gemm_work_floats(int kernel, int threads)
{
    const dn_gemm_isa *d = dn_gemm_isa_for(kernel);
    if (!d || threads < 1) return 0;
    if (threads > DN_GEMM_MAX_THREADS) threads = DN_GEMM_MAX_THREADS;
    return dn_gemm_thread_floats(d) * threads;
}
