/* cpu.c - which SIMD level this machine can run, and the dispatch of every kernel to it.
 *
 * cpu_detect() asks the CPU (cpuid) for the instruction sets and the OS (xgetbv) whether
 * it saves the wider registers on a context switch; a CPU with AVX-512 under an OS that
 * does not save ZMM state must not use it. kernels_init() picks one table of function
 * pointers, once; the environment variable CLIP_CPU=scalar|avx2|avx512 can lower the
 * choice. The public kernel names (layernorm, add_inplace, attention) call through the active table.
 *
 * Only x86-64 has SIMD versions so far; elsewhere every kernel is the scalar reference
 * (a NEON table would slot in the same way).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#if defined(CLIP_KERNELS_X86)
#include <cpuid.h>
#endif

typedef struct {
    void (*layernorm)(float *, const float *, const float *, const float *, int, int, float);
    void (*quick_gelu)(float *, size_t);
    void (*gelu)(float *, size_t);
    void (*softmax)(float *, int);
    void (*add_inplace)(float *, const float *, size_t);
    void (*attention)(float *, const float *, int, int, int, int, int, float *);
} kernel_table;

static const kernel_table tables[] = {
    [CPU_SCALAR] = {layernorm_scalar, quick_gelu_scalar, gelu_scalar, softmax_scalar,
                    add_inplace_scalar, attention_scalar},
#if defined(CLIP_KERNELS_X86)
    [CPU_AVX2] = {layernorm_avx2, quick_gelu_avx2, gelu_avx2, softmax_avx2,
                  add_inplace_avx2, attention_avx2},
    [CPU_AVX512] = {layernorm_avx512, quick_gelu_avx512, gelu_avx512, softmax_avx512,
                    add_inplace_avx512, attention_avx512},
#endif
};

static _Atomic(const kernel_table *) active_table;   /* NULL until kernels_init() */
static atomic_int active_level;

/* ---- detection ------------------------------------------------------------------- */

#if defined(CLIP_KERNELS_X86)
/* XCR0: which register states the OS saves (bit 1 SSE, bit 2 AVX upper halves,
 * bits 5-7 AVX-512 opmask, upper halves of ZMM0-15, ZMM16-31). */
static unsigned long long read_xcr0(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

cpu_level cpu_detect(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return CPU_SCALAR;
    const int osxsave = (ecx >> 27) & 1, avx = (ecx >> 28) & 1;
    const int fma = (ecx >> 12) & 1, f16c = (ecx >> 29) & 1;
    if (!osxsave || !avx || !fma || !f16c) return CPU_SCALAR;
    const unsigned long long xcr0 = read_xcr0();
    if ((xcr0 & 0x6) != 0x6) return CPU_SCALAR;                   /* YMM state not saved */

    if (__get_cpuid_max(0, NULL) < 7) return CPU_SCALAR;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    const int avx2 = (ebx >> 5) & 1;
    if (!avx2) return CPU_SCALAR;
    const int avx512 = ((ebx >> 16) & 1) /* F */ && ((ebx >> 17) & 1) /* DQ */ &&
                       ((ebx >> 30) & 1) /* BW */ && ((ebx >> 31) & 1) /* VL */;
    if (avx512 && (xcr0 & 0xE6) == 0xE6) return CPU_AVX512;
    return CPU_AVX2;
}
#else
cpu_level cpu_detect(void) { return CPU_SCALAR; }
#endif

const char *cpu_level_name(cpu_level level) {
    switch (level) {
    case CPU_SCALAR: return "scalar";
    case CPU_AVX2: return "avx2";
    case CPU_AVX512: return "avx512";
    }
    return "unknown";
}

/* ---- choice ---------------------------------------------------------------------- */

static void activate(cpu_level level) {
    atomic_store_explicit(&active_level, (int)level, memory_order_relaxed);
    atomic_store_explicit(&active_table, &tables[level], memory_order_release);
}

static void choose_once(void) {
    const cpu_level best = cpu_detect();
    cpu_level level = best;
    const char *want = getenv("CLIP_CPU");
    if (want && *want && strcmp(want, "auto") != 0) {
        int found = 0;
        for (int l = CPU_SCALAR; l <= CPU_AVX512; l++)
            if (strcmp(want, cpu_level_name((cpu_level)l)) == 0) {
                found = 1;
                level = (cpu_level)l;
            }
        if (!found) {
            fprintf(stderr, "clip: CLIP_CPU=%s is not one of auto, scalar, avx2, avx512; using %s\n",
                    want, cpu_level_name(best));
            level = best;
        } else if (level > best) {
            fprintf(stderr, "clip: CLIP_CPU=%s is not supported by this CPU; using %s\n",
                    want, cpu_level_name(best));
            level = best;
        }
    }
    activate(level);
}

void kernels_init(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, choose_once);
}

void kernels_force(cpu_level level) {
    kernels_init();                  /* so a later first kernels_init() cannot undo this */
    const cpu_level best = cpu_detect();
    if ((int)level < CPU_SCALAR) level = CPU_SCALAR;
    if (level > best) level = best;
    activate(level);
}

cpu_level kernels_level(void) {
    kernels_init();
    return (cpu_level)atomic_load_explicit(&active_level, memory_order_relaxed);
}

/* ---- the dispatched kernels ------------------------------------------------------- */

static inline const kernel_table *table(void) {
    const kernel_table *t = atomic_load_explicit(&active_table, memory_order_acquire);
    if (t) return t;
    kernels_init();
    return atomic_load_explicit(&active_table, memory_order_acquire);
}

void layernorm(float *out, const float *x, const float *gamma, const float *beta,
               int n_rows, int dim, float eps) {
    table()->layernorm(out, x, gamma, beta, n_rows, dim, eps);
}

void add_inplace(float *y, const float *x, size_t n) { table()->add_inplace(y, x, n); }

void attention(float *out, const float *qkv, int n_tokens, int n_queries, int d_model,
               int n_heads, int causal, float *scratch) {
    table()->attention(out, qkv, n_tokens, n_queries, d_model, n_heads, causal, scratch);
}
