/* gemm_tune.c - which micro-kernel and cache blocking the GEMM driver uses on this CPU.
 *
 * The choice depends on the microarchitecture (how many FMA pipes of which width, how
 * many loads a cycle) and on the cache sizes:
 *   - kc: a tile's x rows (MR x KC floats) should sit in L1 beside the panel lines in
 *     flight, so KC ~ L1 / (2 x 4 x MR);
 *   - nc: a task's panels for one chunk (KC x NC floats) should sit in L2 while the row
 *     tiles pass over them, so NC ~ L2 / (2 x 4 x KC);
 *   - mc: the rows of x per block, a multiple of MR whose block (MC x KC) shares L2.
 * Known CPUs get the tile measured (Zen 4, here) or reasoned from published port counts;
 * an unknown CPU with AVX-512 gets the candidates timed on an in-cache product at first
 * use (~2 ms) and the fastest taken. Cache sizes come from sysfs (Linux), else defaults.
 * CLIP_GEMM_TILE=<kernel name> (or "measure": time the candidates as for an unknown CPU),
 * CLIP_GEMM_KC, CLIP_GEMM_MC, CLIP_GEMM_NC, CLIP_GEMM_PREFETCH=0 override, for measurements. gemm_tuning.why says what was chosen and why (clip_run info / bench).
 *
 * The types beyond f32 have one tile per ISA (gemm.c kernel_for takes the table's row).
 * bf16 on AVX-512 BF16 is 10 x 32 (bf16_avx512.c): on Zen 4 a 512-bit vdpbf16ps issues as
 * two 256-bit halves, one a cycle, so 20 accumulators cover its latency many times over;
 * 12, 13 and 14 rows measured the same within noise (a 50-row image runs 5 tiles of 10 or
 * 4 of 12-13). Zen 5's full 512-bit pipes issue two a cycle: that needs ~12 independent
 * accumulators (latency x 2) and about 1.2 loads a cycle for 10 x 32 (2 panel lines + 10
 * broadcasts per 20 instructions), both within reach, so the same tile should hold there;
 * not measured (no Zen 5 here).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gemm.h"

#if defined(CLIP_KERNELS_X86)
#include <cpuid.h>
#endif

typedef struct {
    char vendor[13];
    int family, model;
    long l1d, l2;              /* bytes per core */
} cpu_info;

static long sysfs_cache(int level, const char *type) {
    for (int index = 0; index < 8; index++) {
        char path[96], buf[32];
        long lvl = 0;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", index);
        FILE *f = fopen(path, "r");
        if (!f) return 0;
        if (fgets(buf, sizeof buf, f)) lvl = strtol(buf, NULL, 10);
        fclose(f);
        if (lvl != level) continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", index);
        f = fopen(path, "r");
        if (!f) continue;
        int match = fgets(buf, sizeof buf, f) && strncmp(buf, type, strlen(type)) == 0;
        fclose(f);
        if (!match) continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", index);
        f = fopen(path, "r");
        if (!f) continue;
        long size = 0;
        char unit = 0;
        if (fgets(buf, sizeof buf, f) && sscanf(buf, "%ld%c", &size, &unit) >= 1) {
            if (unit == 'K') size <<= 10;
            else if (unit == 'M') size <<= 20;
        }
        fclose(f);
        return size;
    }
    return 0;
}

static cpu_info cpu_identify(void) {
    cpu_info c = {"unknown", 0, 0, 0, 0};
#if defined(CLIP_KERNELS_X86)
    unsigned a, b, cx, d;
    if (__get_cpuid(0, &a, &b, &cx, &d)) {
        memcpy(c.vendor, &b, 4), memcpy(c.vendor + 4, &d, 4), memcpy(c.vendor + 8, &cx, 4);
        c.vendor[12] = 0;
    }
    if (__get_cpuid(1, &a, &b, &cx, &d)) {
        const int base = (a >> 8) & 0xF, ext = (a >> 20) & 0xFF;
        c.family = base == 0xF ? base + ext : base;
        c.model = ((a >> 4) & 0xF) | (base == 0x6 || base == 0xF ? ((a >> 16) & 0xF) << 4 : 0);
    }
#elif defined(CLIP_KERNELS_ARM)
    /* MIDR_EL1 as Linux exposes it: implementer [31:24] (0x41 Arm), part number [15:4]
     * (0xd08 Cortex-A72, 0xd0b Cortex-A76, 0xd40 Neoverse V1, 0xd4f Neoverse V2) */
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/regs/identification/midr_el1", "r");
    unsigned long midr = 0;
    if (f) {
        if (fscanf(f, "%lx", &midr) != 1) midr = 0;
        fclose(f);
    }
    if (midr) {
        snprintf(c.vendor, sizeof c.vendor, (midr >> 24 & 0xFF) == 0x41 ? "ARM" : "impl %#lx", midr >> 24 & 0xFF);
        c.family = (int)(midr >> 24 & 0xFF);
        c.model = (int)(midr >> 4 & 0xFFF);
    }
#endif
    c.l1d = sysfs_cache(1, "Data");
    c.l2 = sysfs_cache(2, "Unified");
    if (c.l1d <= 0) c.l1d = 32 << 10;
    if (c.l2 <= 0) c.l2 = 1 << 20;
    return c;
}

static const gemm_ukernel *find_kernel(const char *name, cpu_level level) {
    int n;
    const gemm_ukernel *k = gemm_ukernels(&n);
    for (int i = 0; i < n; i++)
        if ((k[i].isa == CPU_SCALAR || k[i].isa == level || (k[i].isa <= level && level <= CPU_AVX512)) &&
            k[i].type == GEMM_F32 && strcmp(k[i].name, name) == 0)
            return &k[i];
    return NULL;
}

static int env_int(const char *name, int fallback, int lo, int hi) {
    const char *v = getenv(name);
    if (!v || !*v) return fallback;
    long x = strtol(v, NULL, 10);
    return x < lo ? lo : x > hi ? hi : (int)x;
}

/* Seconds of one in-cache product through kernel k (x 96 x 512, W 512 x 256 packed). */
static double time_kernel(const gemm_ukernel *uk, float *x, float *w, float *y) {
    enum { M = 96, N = 256, K = 512 };
    struct timespec t0, t1;
    double best = 1e9;
    for (int rep = 0; rep < 4; rep++) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (int i = 0; i < M; i += uk->mr)
            for (int j = 0; j < N; j += uk->nr) {
                gemm_tile t = {.x = x + (size_t)i * K, .ldx = K, .w = w + (size_t)j * K,
                               .panel_bytes = (size_t)K * 16 * 4, .y = y + (size_t)i * N + j, .ldy = N,
                               .m = M - i < uk->mr ? M - i : uk->mr, .n = uk->nr, .k = K};
                uk->run(&t);
            }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        if (s < best) best = s;
    }
    return best;
}

static const gemm_ukernel *measure_best(cpu_level level) {
    float *x = aligned_alloc(64, 96 * 512 * 4), *w = aligned_alloc(64, 256 * 512 * 4), *y = aligned_alloc(64, 96 * 256 * 4);
    const gemm_ukernel *best = NULL;
    if (x && w && y) {
        for (int i = 0; i < 96 * 512; i++) x[i] = (float)(i % 7) * 0.25f;
        for (int i = 0; i < 256 * 512; i++) w[i] = (float)(i % 5) * 0.125f;
        int n;
        const gemm_ukernel *k = gemm_ukernels(&n);
        double best_s = 1e9;
        for (int i = 0; i < n; i++) {
            if (k[i].isa != level || k[i].type != GEMM_F32) continue;
            double s = time_kernel(&k[i], x, w, y);
            if (s < best_s) best_s = s, best = &k[i];
        }
    }
    free(x), free(w), free(y);
    return best;
}

static gemm_tuning tunings[CPU_LEVEL_COUNT];
static pthread_once_t once[CPU_LEVEL_COUNT] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT,
                                               PTHREAD_ONCE_INIT};

static void choose(cpu_level level) {
    gemm_tuning *t = &tunings[level];
    const cpu_info c = cpu_identify();
    const int amd = strcmp(c.vendor, "AuthenticAMD") == 0, intel = strcmp(c.vendor, "GenuineIntel") == 0;
    const char *name = "scalar f32 4x16", *reason = "portable reference";
    if (level == CPU_AVX2) {
        /* One tile for every AVX2 core: 16 ymm registers leave room for 12 accumulators,
         * enough for two 256-bit FMA pipes of latency 4-5 (Haswell on, Zen 2 on: 8-10
         * chains keep both busy). The loads, 2 panel vectors + 6 broadcasts per 12 FMAs,
         * are 1.3 a cycle at full rate: within the 2 load ports of Haswell..Ice Lake and
         * Zen 2/3 and the 3 of Golden Cove (Alder and Raptor Lake P-cores, where AVX-512
         * is fused off). Cores that split a 256-bit FMA in two 128-bit halves (Gracemont
         * E-cores, Zen 1) run it at half rate with the same tile. Published port counts,
         * not measured here. Tasks are handed out one at a time (threadpool.c), so a
         * hybrid CPU's slower E-cores take fewer of them. */
        name = "avx2 f32 6x16";
        if (intel)
            reason = "Intel AVX2 (Haswell on, Alder/Raptor Lake P-cores: 2 x 256-bit FMA ports, latency 4-5, "
                     "2-3 loads/cycle; E-cores half rate): 12 accumulators (published, not measured)";
        else if (amd)
            reason = "AMD AVX2 (Zen 2 on: 2 x 256-bit FMA pipes, latency 4-5, 2-3 loads/cycle; Zen 1 half "
                     "rate): 12 accumulators, 8 loads per 12 FMAs (published, not measured)";
        else
            reason = "16 ymm: 12 accumulators + 2 panel vectors + 1 broadcast";
    } else if (level == CPU_AVX512) {
        if (amd && c.family == 0x19) {
            name = "avx512 f32 8x32";
            reason = "Zen 4: one 512-bit FMA/cycle (2x256); 8x32 2-8% above 12x32, 14x16; KC/NC/MC best of "
                     "KC 256-768, NC 96-256, MC 32-400 at batch 8 (measured)";
        } else if (amd && c.family == 0x1A) {
            name = "avx512 f32 12x32";
            reason = "Zen 5: two 512-bit FMA pipes need >= 8 chains; 14 loads per 24 FMAs fit 4 load "
                     "ports; L1d 48 KB gives KC 768 (published, not measured)";
        } else if (intel && (c.model == 0x8F || c.model == 0xCF || c.model == 0x55 || c.model == 0x6A)) {
            name = "avx512 f32 12x32";
            reason = "Xeon SKX..SPR/EMR: two 512-bit FMA ports (ports 0+1, 5), 2 loads/cycle (published)";
        } else {
            const gemm_ukernel *m = measure_best(level);
            name = m ? m->name : "avx512 f32 12x32";
            reason = "unknown CPU: fastest candidate on an in-cache product at start";
        }
    } else if (level == CPU_NEON) {
        name = "neon f32 5x16";
        reason = "32 q registers: 20 accumulators + 4 panel vectors + 5 x vectors, fmla by lane";
    }
    const char *want = getenv("CLIP_GEMM_TILE");
    if (want && strcmp(want, "measure") == 0 && level == CPU_AVX512) {   /* as for an unknown CPU */
        const gemm_ukernel *m = measure_best(level);
        if (m) name = m->name, reason = "CLIP_GEMM_TILE=measure: fastest candidate on an in-cache product";
    } else if (want && *want && find_kernel(want, level)) {
        name = want;
        reason = "CLIP_GEMM_TILE";
    }
    t->kernel = find_kernel(name, level);
    if (!t->kernel) t->kernel = find_kernel("scalar f32 4x16", CPU_SCALAR);
    const int mr = t->kernel->mr;
    /* x tile (MR x KC) in 3/4 of L1 (the panels stream through the rest); multiples of 16 */
    int kc = (int)(c.l1d * 3 / 4 / (4 * mr)) / 16 * 16;
    if (kc < 128) kc = 128;
    /* a task's panels for one chunk in half of L2 */
    int nc = (int)(c.l2 / 2 / (4 * kc)) / t->kernel->nr * t->kernel->nr;
    if (nc < t->kernel->nr) nc = t->kernel->nr;
    t->kc = env_int("CLIP_GEMM_KC", kc, 16, 1 << 20);
    t->nc = env_int("CLIP_GEMM_NC", nc, 16, 1 << 20);
    t->mc = env_int("CLIP_GEMM_MC", (64 + mr - 1) / mr * mr, 1, 1 << 20);
    t->prefetch = env_int("CLIP_GEMM_PREFETCH", 1, 0, 1);
    snprintf(t->why, sizeof t->why, "%s family %#x model %#x, L1d %ld KB, L2 %ld KB: %s, KC %d NC %d MC %d (%s)",
             c.vendor, c.family, c.model, c.l1d >> 10, c.l2 >> 10, t->kernel->name, t->kc, t->nc, t->mc,
             reason);
}

static void choose_scalar(void) { choose(CPU_SCALAR); }
static void choose_avx2(void) { choose(CPU_AVX2); }
static void choose_avx512(void) { choose(CPU_AVX512); }
static void choose_neon(void) { choose(CPU_NEON); }

const gemm_tuning *gemm_tuning_get(cpu_level level) {
    static void (*const fns[CPU_LEVEL_COUNT])(void) = {choose_scalar, choose_avx2, choose_avx512, choose_neon};
    if ((int)level < 0 || (int)level >= CPU_LEVEL_COUNT) level = CPU_SCALAR;
    pthread_once(&once[level], fns[level]);
    return &tunings[level];
}
