/* cpu.c - which SIMD level this machine can run, and the dispatch of every kernel to it.
 *
 * x86-64: cpu_detect() asks the CPU (cpuid) for the instruction sets and the OS (xgetbv)
 * whether it saves the wider registers on a context switch; a CPU with AVX-512 under an
 * OS that does not save ZMM state must not use it.
 * aarch64: the kernel tells what the CPU has and it enables in the hwcaps of the auxiliary
 * vector (getauxval AT_HWCAP, AT_HWCAP2); ASIMD (NEON) is the level, the rest (fp16,
 * dotprod, i8mm, bf16) are features for kernels of other weight types.
 * kernels_init() picks one table of function pointers, once; the environment variable
 * CLIP_CPU=scalar|avx2|avx512|neon can lower the choice. The public kernel names
 * (layernorm, add_inplace, attention) call through the active table.
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
#if defined(CLIP_KERNELS_ARM) && defined(__linux__)
#include <sys/auxv.h>
#endif

typedef struct {
    void (*layernorm)(float *, const float *, const float *, const float *, int, int, float);
    void (*quick_gelu)(float *, size_t);
    void (*gelu)(float *, size_t);
    void (*softmax)(float *, int);
    void (*add_inplace)(float *, const float *, size_t);
    void (*attention)(float *, const float *, int, int, int, int, float *);
    uint32_t (*adler32)(uint32_t, const void *, size_t);
} kernel_table;

static const kernel_table tables[] = {
    [CPU_SCALAR] = {layernorm_scalar, quick_gelu_scalar, gelu_scalar, softmax_scalar,
                    add_inplace_scalar, attention_scalar, adler32_scalar},
#if defined(CLIP_KERNELS_X86)
    /* Adler-32 has one x86 version: AVX2 runs at memory speed already */
    [CPU_AVX2] = {layernorm_avx2, quick_gelu_avx2, gelu_avx2, softmax_avx2,
                  add_inplace_avx2, attention_avx2, adler32_avx2},
    [CPU_AVX512] = {layernorm_avx512, quick_gelu_avx512, gelu_avx512, softmax_avx512,
                    add_inplace_avx512, attention_avx512, adler32_avx2},
#endif
#if defined(CLIP_KERNELS_ARM)
    [CPU_NEON] = {layernorm_neon, quick_gelu_neon, gelu_neon, softmax_neon,
                  add_inplace_neon, attention_neon, adler32_neon},
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

static unsigned detect_features(void) {
    unsigned eax, ebx, ecx, edx, features = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    const int osxsave = (ecx >> 27) & 1, avx = (ecx >> 28) & 1;
    const int fma = (ecx >> 12) & 1, f16c = (ecx >> 29) & 1;
    if (!osxsave || !avx || !fma || !f16c) return 0;
    const unsigned long long xcr0 = read_xcr0();
    if ((xcr0 & 0x6) != 0x6) return 0;                            /* YMM state not saved */

    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    if (!((ebx >> 5) & 1)) return 0;                              /* no AVX2 */
    features |= CPU_FEAT_AVX2;
    const int avx512_vnni = (ecx >> 11) & 1;
    const unsigned max_subleaf = eax;
    unsigned eax1 = 0;
    if (max_subleaf >= 1) {
        unsigned ebx1, ecx1, edx1;
        __cpuid_count(7, 1, eax1, ebx1, ecx1, edx1);
    }
    if ((eax1 >> 4) & 1) features |= CPU_FEAT_AVX_VNNI;
    const int avx512 = ((ebx >> 16) & 1) /* F */ && ((ebx >> 17) & 1) /* DQ */ &&
                       ((ebx >> 30) & 1) /* BW */ && ((ebx >> 31) & 1) /* VL */;
    if (avx512 && (xcr0 & 0xE6) == 0xE6) {
        features |= CPU_FEAT_AVX512;
        if (avx512_vnni) features |= CPU_FEAT_AVX512_VNNI;
        if ((eax1 >> 5) & 1) features |= CPU_FEAT_AVX512_BF16;
    }
    return features;
}

#elif defined(CLIP_KERNELS_ARM)
/* Bits of AT_HWCAP / AT_HWCAP2 (Linux arch/arm64/include/uapi/asm/hwcap.h), spelled out
 * so that an older libc's headers still build. */
#define ARM_HWCAP_ASIMD (1ul << 1)
#define ARM_HWCAP_FPHP (1ul << 9)
#define ARM_HWCAP_ASIMDHP (1ul << 10)
#define ARM_HWCAP_ASIMDDP (1ul << 20)
#define ARM_HWCAP2_I8MM (1ul << 13)
#define ARM_HWCAP2_BF16 (1ul << 14)

static unsigned detect_features(void) {
#if defined(__linux__)
    const unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
    unsigned features = 0;
    if (hwcap & ARM_HWCAP_ASIMD) features |= CPU_FEAT_ASIMD;
    if ((hwcap & ARM_HWCAP_FPHP) && (hwcap & ARM_HWCAP_ASIMDHP)) features |= CPU_FEAT_FP16;
    if (hwcap & ARM_HWCAP_ASIMDDP) features |= CPU_FEAT_DOTPROD;
    if (hwcap2 & ARM_HWCAP2_I8MM) features |= CPU_FEAT_I8MM;
    if (hwcap2 & ARM_HWCAP2_BF16) features |= CPU_FEAT_BF16;
    return features;
#else
    return CPU_FEAT_ASIMD;          /* part of every aarch64 profile that runs an OS */
#endif
}

#else
static unsigned detect_features(void) { return 0; }
#endif

unsigned cpu_features(void) {
    static atomic_uint cached;      /* features + 1 << 31 once known */
    unsigned f = atomic_load_explicit(&cached, memory_order_relaxed);
    if (!f) {
        f = detect_features() | 1u << 31;
        atomic_store_explicit(&cached, f, memory_order_relaxed);
    }
    return f & ~(1u << 31);
}

cpu_level cpu_detect(void) {
    const unsigned f = cpu_features();
    if (f & CPU_FEAT_AVX512) return CPU_AVX512;
    if (f & CPU_FEAT_AVX2) return CPU_AVX2;
    if (f & CPU_FEAT_ASIMD) return CPU_NEON;
    return CPU_SCALAR;
}

int cpu_level_usable(cpu_level level) {
    const cpu_level best = cpu_detect();
    switch (level) {
    case CPU_SCALAR: return 1;
    case CPU_AVX2:
    case CPU_AVX512: return (best == CPU_AVX2 || best == CPU_AVX512) && level <= best;
    case CPU_NEON: return best == CPU_NEON;
    }
    return 0;
}

const char *cpu_features_string(unsigned features, char *buf, size_t size) {
    static const struct { unsigned bit; const char *name; } names[] = {
        {CPU_FEAT_AVX2, "avx2"},       {CPU_FEAT_AVX512, "avx512"},
        {CPU_FEAT_AVX512_VNNI, "avx512_vnni"}, {CPU_FEAT_AVX_VNNI, "avx_vnni"},
        {CPU_FEAT_AVX512_BF16, "avx512_bf16"}, {CPU_FEAT_ASIMD, "asimd"},
        {CPU_FEAT_FP16, "fp16"},       {CPU_FEAT_DOTPROD, "dotprod"},
        {CPU_FEAT_I8MM, "i8mm"},       {CPU_FEAT_BF16, "bf16"},
    };
    size_t used = 0;
    if (size) buf[0] = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (features & names[i].bit) {
            const int w = snprintf(buf + used, size > used ? size - used : 0, "%s%s",
                                   used ? " " : "", names[i].name);
            if (w > 0) used += (size_t)w;
        }
    if (used == 0) snprintf(buf, size, "none");
    return buf;
}

const char *cpu_level_name(cpu_level level) {
    switch (level) {
    case CPU_SCALAR: return "scalar";
    case CPU_AVX2: return "avx2";
    case CPU_AVX512: return "avx512";
    case CPU_NEON: return "neon";
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
        for (int l = CPU_SCALAR; l < CPU_LEVEL_COUNT; l++)
            if (strcmp(want, cpu_level_name((cpu_level)l)) == 0) {
                found = 1;
                level = (cpu_level)l;
            }
        if (!found) {
            fprintf(stderr, "clip: CLIP_CPU=%s is not one of auto, scalar, avx2, avx512, neon; using %s\n",
                    want, cpu_level_name(best));
            level = best;
        } else if (!cpu_level_usable(level)) {
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
    if ((int)level < CPU_SCALAR) level = CPU_SCALAR;
    if (!cpu_level_usable(level)) level = cpu_detect();
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

void attention(float *out, const float *qkv, int n_tokens, int n_queries, int head_dim,
               int causal, float *scratch) {
    table()->attention(out, qkv, n_tokens, n_queries, head_dim, causal, scratch);
}

uint32_t adler32(uint32_t adler, const void *data, size_t n) { return table()->adler32(adler, data, n); }
