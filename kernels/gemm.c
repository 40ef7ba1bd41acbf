/* gemm.c - the one GEMM driver: y = act(x W^T + b) over packed weights, for every ISA and
 * weight type; plus packing, the scalar reference micro-kernel and the OpenBLAS backend.
 *
 * Shapes as gemm.h: x [m, k] row-major, W [n, k] packed in panels of 16 features,
 * y [m, n]. The product is cut three ways (sizes from the per-CPU tuning, gemm_tune.c):
 *   - columns: thread tasks of about NC output columns (whole column tiles of NR, dealt
 *     evenly; consecutive panels, one contiguous range of the packed weight); a task owns
 *     its columns of y for all rows, so no two threads ever touch one output;
 *   - rows: blocks of MC rows of x (an x block of MC x KC floats stays in L2);
 *   - k: chunks of at most KC, so a tile's MR x KC floats of x stay in L1 while the task's
 *     panels (KC x NC floats, in L2) pass under it. A chunk stores its partial sums in y
 *     and the next chunk starts from them (gemm_tile.load_y).
 * Inside a (row block, k chunk) the micro-kernel walks row tiles (outer) and the task's
 * column tiles (inner). When a row block's last chunk is done, its y rows are still in
 * cache and the activation (fc1 + GELU) runs over them there; a residual add is the
 * accumulating form (x += W^T h + b straight into x). No epilogue costs a pass over memory.
 *
 * Every output is summed in one fixed order whatever the blocking (gemm.h, "Exact
 * order"), so thread counts and batch sizes give bit-identical results.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "quant.h"

/* ---- Weight types ------------------------------------------------------------------------ */
static const gemm_type_info type_infos[] = {
    {GEMM_F32, "f32", 1, 1},
    {GEMM_F16, "f16", 1, 1},
    {GEMM_BF16, "bf16", 2, 1},           /* k in pairs (vdpbf16ps) */
    {GEMM_Q8_0, "q8_0", QK, 1},
    {GEMM_Q4_0, "q4_0", QK, 1},
};

const gemm_type_info *gemm_type_get(gemm_type type) {
    for (size_t i = 0; i < sizeof type_infos / sizeof type_infos[0]; i++)
        if (type_infos[i].type == type) return &type_infos[i];
    return NULL;
}

size_t gemm_panel_bytes(gemm_type type, int k) {
    switch (type) {
    case GEMM_F32: return (size_t)k * GEMM_PANEL * sizeof(float);   /* k x 64 bytes */
    default: return quant_panel_bytes(type, k);                       /* quant.h */
    }
}

size_t gemm_packed_bytes(gemm_type type, int n, int k) {
    return (size_t)((n + GEMM_PANEL - 1) / GEMM_PANEL) * gemm_panel_bytes(type, k);
}

gemm_weight gemm_weight_packed(gemm_type type, const void *panels, int n, int k) {
    return (gemm_weight){type, n, k, panels, gemm_panel_bytes(type, k)};
}

/* Bytes from a panel's start to its k step k0 (k0 a multiple of the type's block_k). */
static size_t k_offset_bytes(gemm_type type, int k0) {
    switch (type) {
    case GEMM_F32: return (size_t)k0 * GEMM_PANEL * sizeof(float);
    case GEMM_F16: case GEMM_BF16: return (size_t)k0 * GEMM_PANEL * 2;
    default: return quant_panel_bytes(type, k0);       /* whole blocks */
    }
}

size_t gemm_work_bytes(gemm_type type, int m, int k) {
    if (type == GEMM_BF16) return bf16_act_bytes(m, k);
    return type == GEMM_Q8_0 || type == GEMM_Q4_0 ? q8_act_bytes(m, k) : 0;
}

int gemm_pack(gemm_weight *out, void *dst, gemm_type type, const float *w, int n, int k) {
    if (!gemm_type_get(type)) return -1;
    *out = gemm_weight_packed(type, dst, n, k);
    if (type != GEMM_F32) {
        quant_pack(dst, type, w, n, k);
        return 0;
    }
    float *panel = dst;
    for (int j0 = 0; j0 < n; j0 += GEMM_PANEL, panel += (size_t)k * GEMM_PANEL)
        for (int p = 0; p < k; p++)
            for (int c = 0; c < GEMM_PANEL; c++)
                panel[(size_t)p * GEMM_PANEL + c] = j0 + c < n ? w[(size_t)(j0 + c) * k + p] : 0.0f;
    return 0;
}

float gemm_weight_at(const gemm_weight *w, int j, int p) {
    const char *panel = (const char *)w->panels + (size_t)(j / GEMM_PANEL) * w->panel_bytes;
    if (w->type == GEMM_F32) return ((const float *)panel)[(size_t)p * GEMM_PANEL + j % GEMM_PANEL];
    float row[w->k];       /* tests and slow paths only */
    quant_row(w, j, row);
    return row[p];
}

/* ---- The scalar reference micro-kernel ---------------------------------------------------
 * Any m, any n: one accumulator per output, fmaf in ascending k (the order of gemm.h). It
 * defines the results every other micro-kernel must reproduce bit for bit. */
void gemm_f32_scalar_4x16(const gemm_tile *t) {
    for (int j0 = 0; j0 < t->n; j0 += GEMM_PANEL) {
        const float *panel = (const float *)((const char *)t->w + (size_t)(j0 / GEMM_PANEL) * t->panel_bytes);
        const int cols = t->n - j0 < GEMM_PANEL ? t->n - j0 : GEMM_PANEL;
        for (int i = 0; i < t->m; i++) {
            const float *x = t->x + (size_t)i * t->ldx;
            float *y = t->y + (size_t)i * t->ldy + j0;
            float acc[GEMM_PANEL];
            for (int c = 0; c < cols; c++) {
                acc[c] = t->load_y ? y[c] : 0.0f;
                if (t->bias) acc[c] = t->load_y ? acc[c] + t->bias[j0 + c] : t->bias[j0 + c];
            }
            for (int p = 0; p < t->k; p++)
                for (int c = 0; c < cols; c++) acc[c] = fmaf(x[p], panel[(size_t)p * GEMM_PANEL + c], acc[c]);
            for (int c = 0; c < cols; c++) y[c] = acc[c];
        }
    }
}

/* ---- The micro-kernel table: (ISA x weight type x tile) ----------------------------------
 * A new ISA adds its file's kernels here under its own #if (as aarch64's NEON row below,
 * with CPU_NEON in kernels.h's cpu_level and a line in gemm_tune.c's choice); a new weight
 * type adds rows with its gemm_type, its panel size in gemm_panel_bytes() and its packing
 * in gemm_pack(). tests/test_gemm.c checks every row against the scalar reference. */
static const gemm_ukernel ukernels[] = {
    {"scalar f32 4x16", CPU_SCALAR, GEMM_F32, 4, 16, gemm_f32_scalar_4x16, 0},
    {"scalar f16 4x16", CPU_SCALAR, GEMM_F16, 4, 16, gemm_f16_scalar_4x16, 0},
    {"scalar bf16 4x16", CPU_SCALAR, GEMM_BF16, 4, 16, gemm_bf16_scalar_4x16, 0},
    {"scalar q8_0 4x16", CPU_SCALAR, GEMM_Q8_0, 4, 16, gemm_q8_0_scalar_4x16, 0},
    {"scalar q4_0 4x16", CPU_SCALAR, GEMM_Q4_0, 4, 16, gemm_q4_0_scalar_4x16, 0},
#if defined(CLIP_KERNELS_X86)
    {"avx2 f32 6x16", CPU_AVX2, GEMM_F32, 6, 16, gemm_f32_avx2_6x16, 0},
    {"avx2 f16 6x16", CPU_AVX2, GEMM_F16, 6, 16, gemm_f16_avx2_6x16, 0},
    {"avx2 bf16 4x16", CPU_AVX2, GEMM_BF16, 4, 16, gemm_bf16_avx2_4x16, 0},
    {"avx2 q8_0 4x16", CPU_AVX2, GEMM_Q8_0, 4, 16, gemm_q8_0_avx2_4x16, 0},
    {"avx2 q4_0 4x16", CPU_AVX2, GEMM_Q4_0, 4, 16, gemm_q4_0_avx2_4x16, 0},
    {"avx512 f32 12x32", CPU_AVX512, GEMM_F32, 12, 32, gemm_f32_avx512_12x32, 0},
    {"avx512 f32 8x32", CPU_AVX512, GEMM_F32, 8, 32, gemm_f32_avx512_8x32, 0},
    {"avx512 f32 14x16", CPU_AVX512, GEMM_F32, 14, 16, gemm_f32_avx512_14x16, 0},
    {"avx512 f16 8x32", CPU_AVX512, GEMM_F16, 8, 32, gemm_f16_avx512_8x32, 0},
    {"avx512-bf16 bf16 10x32", CPU_AVX512, GEMM_BF16, 10, 32, gemm_bf16_avx512bf16_10x32, GEMM_NEEDS_BF16},
    {"avx512-vnni q8_0 8x32", CPU_AVX512, GEMM_Q8_0, 8, 32, gemm_q8_0_avx512vnni_8x32, GEMM_NEEDS_VNNI},
    {"avx512-vnni q4_0 8x32", CPU_AVX512, GEMM_Q4_0, 8, 32, gemm_q4_0_avx512vnni_8x32, GEMM_NEEDS_VNNI},
#endif
#if defined(CLIP_KERNELS_ARM)
    {"neon f32 5x16", CPU_NEON, GEMM_F32, 5, 16, gemm_f32_neon_5x16, 0},
    {"neon f16 5x16", CPU_NEON, GEMM_F16, 5, 16, gemm_f16_neon_5x16, 0},
    /* per type the fastest first: kernel_for() takes the first usable row of an ISA */
    {"neon-i8mm q8_0 4x16", CPU_NEON, GEMM_Q8_0, 4, 16, gemm_q8_0_neon_smmla_4x16, GEMM_NEEDS_I8MM},
    {"neon-i8mm q4_0 4x16", CPU_NEON, GEMM_Q4_0, 4, 16, gemm_q4_0_neon_smmla_4x16, GEMM_NEEDS_I8MM},
    {"neon-dotprod q8_0 3x16", CPU_NEON, GEMM_Q8_0, 3, 16, gemm_q8_0_neon_sdot_3x16, GEMM_NEEDS_DOTPROD},
    {"neon-dotprod q4_0 3x16", CPU_NEON, GEMM_Q4_0, 3, 16, gemm_q4_0_neon_sdot_3x16, GEMM_NEEDS_DOTPROD},
    {"neon q8_0 3x16", CPU_NEON, GEMM_Q8_0, 3, 16, gemm_q8_0_neon_3x16, 0},
    {"neon q4_0 3x16", CPU_NEON, GEMM_Q4_0, 3, 16, gemm_q4_0_neon_3x16, 0},
    {"neon bf16 4x16", CPU_NEON, GEMM_BF16, 4, 16, gemm_bf16_neon_4x16, 0},
#endif
};

const gemm_ukernel *gemm_ukernels(int *n_out) {
    *n_out = (int)(sizeof ukernels / sizeof ukernels[0]);
    return ukernels;
}

/* ---- Dispatch ------------------------------------------------------------------------------ */
typedef void activation_fn(float *, size_t);

static cpu_level usable(cpu_level level) {
    return cpu_level_usable(level) ? level : CPU_SCALAR;
}

static activation_fn *act_fn(gemm_activation act, cpu_level level) {
    if (act == GEMM_ACT_NONE) return NULL;
    switch (usable(level)) {
#if defined(CLIP_KERNELS_X86)
    case CPU_AVX512: return act == GEMM_ACT_GELU ? gelu_avx512 : quick_gelu_avx512;
    case CPU_AVX2: return act == GEMM_ACT_GELU ? gelu_avx2 : quick_gelu_avx2;
#endif
#if defined(CLIP_KERNELS_ARM)
    case CPU_NEON: return act == GEMM_ACT_GELU ? gelu_neon : quick_gelu_neon;
#endif
    default: return act == GEMM_ACT_GELU ? gelu_scalar : quick_gelu_scalar;
    }
}

const char *gemm_backend_name(gemm_backend backend) {
    return backend == GEMM_OPENBLAS ? "openblas" : "native";
}

int gemm_backend_parse(const char *name) {
    if (!name) return -1;
    if (strcmp(name, "native") == 0) return GEMM_NATIVE;
    if (strcmp(name, "openblas") == 0) return GEMM_OPENBLAS;
    return -1;
}

const char *gemm_kernel_name(cpu_level level) { return gemm_tuning_get(usable(level))->kernel->name; }

/* ---- Native backend: the driver ----------------------------------------------------------- */
typedef struct {
    const gemm_op *op;
    const gemm_ukernel *uk;
    activation_fn *act;
    int n_tiles, n_tasks;      /* column tiles of NR, and the thread tasks they are dealt to */
    int kc, mc, prefetch;
    q8_act xq;                 /* the q8_0/q4_0 types: x quantized per row and block */
    uint16_t *xb;              /* bf16: x rounded to bf16, rows of ldxb values */
    size_t ldxb;
} native_job;

/* The micro-kernel for a weight type: the tuned one for f32; for another type the first
 * table entry of the best ISA up to `level` (the scalar reference at least). */
int gemm_ukernel_usable(const gemm_ukernel *uk) {
#if defined(CLIP_KERNELS_X86)
    return (!(uk->needs & GEMM_NEEDS_VNNI) || __builtin_cpu_supports("avx512vnni")) &&
           (!(uk->needs & GEMM_NEEDS_BF16) || (cpu_features() & CPU_FEAT_AVX512_BF16)) &&
           !(uk->needs & (GEMM_NEEDS_DOTPROD | GEMM_NEEDS_I8MM));
#elif defined(CLIP_KERNELS_ARM)
    const unsigned have = cpu_features();    /* from the hwcaps (kernels/cpu.c) */
    return (!(uk->needs & GEMM_NEEDS_DOTPROD) || (have & CPU_FEAT_DOTPROD)) &&
           (!(uk->needs & GEMM_NEEDS_I8MM) || (have & CPU_FEAT_I8MM)) &&
           !(uk->needs & (GEMM_NEEDS_VNNI | GEMM_NEEDS_BF16));
#else
    return uk->needs == 0;
#endif
}

/* CLIP_GEMM_TILE may also name a micro-kernel of a type beyond f32 ("neon-dotprod q8_0
 * 3x16"): that type then runs it, if this CPU can at the level (to measure one variant
 * against another, e.g. sdot against smmla on a board). Read once. */
static const char *tile_env;
static void read_tile_env(void) { tile_env = getenv("CLIP_GEMM_TILE"); }

static const gemm_ukernel *kernel_for(gemm_type type, cpu_level level, const gemm_tuning *tune) {
    if (type == GEMM_F32) return tune->kernel;
    static pthread_once_t env_once = PTHREAD_ONCE_INIT;
    pthread_once(&env_once, read_tile_env);
    for (size_t i = 0; tile_env && i < sizeof ukernels / sizeof ukernels[0]; i++)
        if (ukernels[i].type == type && strcmp(ukernels[i].name, tile_env) == 0 && ukernels[i].isa <= level &&
            gemm_ukernel_usable(&ukernels[i]))
            return &ukernels[i];
    const gemm_ukernel *best = NULL;
    for (size_t i = 0; i < sizeof ukernels / sizeof ukernels[0]; i++)
        if (ukernels[i].type == type && ukernels[i].isa <= level && gemm_ukernel_usable(&ukernels[i]) &&
            (!best || ukernels[i].isa > best->isa))
            best = &ukernels[i];
    return best;
}

const gemm_ukernel *gemm_ukernel_for(gemm_type type, cpu_level level) {
    return kernel_for(type, usable(level), gemm_tuning_get(usable(level)));
}

static void native_task(void *arg, int task, int thread) {
    (void)thread;
    const native_job *job = arg;
    const gemm_op *op = job->op;
    const gemm_weight *w = op->w;
    const int n = w->n, k = w->k, mr = job->uk->mr, nr = job->uk->nr;
    /* a task owns n_tiles / n_tasks consecutive column tiles, the first n_tiles % n_tasks
     * tasks one more: the threads take tasks in turn, so each gets as many large ones */
    const int tiles = job->n_tiles / job->n_tasks, bigger = job->n_tiles % job->n_tasks;
    const int tile0 = task * tiles + (task < bigger ? task : bigger), tile1 = tile0 + tiles + (task < bigger);
    const int n0 = tile0 * nr, n_cols = (tile1 * nr < n ? tile1 * nr : n) - n0;
    /* int8 types: k padded to whole blocks; bf16: to whole pairs */
    const int k_steps = job->xq.q ? job->xq.n_blocks * QK : job->xb ? (int)job->ldxb : k;
    gemm_tile t = {.ldx = (size_t)k, .panel_bytes = w->panel_bytes, .ldy = (size_t)n, .type = w->type,
                   .ldxq = (size_t)job->xq.n_blocks * QK, .ldxd = (size_t)job->xq.n_blocks, .ldxb = job->ldxb};
    for (int m0 = 0; m0 < op->m; m0 += job->mc) {
        const int n_rows = op->m - m0 < job->mc ? op->m - m0 : job->mc;
        for (int k0 = 0; k0 < k_steps; k0 += job->kc) {
            t.k = k_steps - k0 < job->kc ? k_steps - k0 : job->kc;
            t.load_y = k0 > 0 || op->accumulate;
            const size_t k_bytes = k_offset_bytes(w->type, k0);
            /* row tiles of nearly equal height (50 rows: 5 x 10, not 4 x 12 + 2): a thin
             * last tile would load its panels for very few FMAs */
            const int n_tiles = (n_rows + mr - 1) / mr, base = n_rows / n_tiles, extra = n_rows % n_tiles;
            for (int ti = 0, i = 0; ti < n_tiles; i += t.m, ti++) {
                t.m = base + (ti < extra);
                t.x = op->x + (size_t)(m0 + i) * k + k0;
                if (job->xq.q) {
                    t.xq = job->xq.q + (size_t)(m0 + i) * t.ldxq + k0;
                    t.xd = job->xq.d + (size_t)(m0 + i) * t.ldxd + k0 / QK;
                    t.xs = job->xq.s + (size_t)(m0 + i) * t.ldxd + k0 / QK;
                }
                if (job->xb) t.xb = job->xb + (size_t)(m0 + i) * t.ldxb + k0;
                for (int j = 0; j < n_cols; j += nr) {
                    t.n = n_cols - j < nr ? n_cols - j : nr;
                    t.w = (const char *)w->panels + (size_t)((n0 + j) / GEMM_PANEL) * w->panel_bytes + k_bytes;
                    /* the first row tile meets each panel chunk first (from memory): it
                     * prefetches the next tile's while it computes; later ones find them in L2 */
                    t.next_w = NULL;
                    if (job->prefetch && ti == 0) {
                        if (j + nr < n_cols)          /* the next column tile */
                            t.next_w = (const char *)t.w + (size_t)(nr / GEMM_PANEL) * w->panel_bytes;
                        else if (k0 + job->kc < k_steps)    /* the task's first tile in the next chunk */
                            t.next_w = (const char *)w->panels + (size_t)(n0 / GEMM_PANEL) * w->panel_bytes +
                                       k_offset_bytes(w->type, k0 + job->kc);
                        else if (n0 + n_cols < n)     /* the next task's first tile */
                            t.next_w = (const char *)w->panels + (size_t)((n0 + n_cols) / GEMM_PANEL) * w->panel_bytes;
                    }
                    t.y = op->y + (size_t)(m0 + i) * n + n0 + j;
                    t.bias = k0 == 0 && op->bias ? op->bias + n0 + j : NULL;
                    job->uk->run(&t);
                }
            }
        }
        if (job->act)
            for (int r = 0; r < n_rows; r++) job->act(op->y + (size_t)(m0 + r) * n + n0, (size_t)n_cols);
    }
}

static void native_gemm(threadpool *pool, const gemm_op *op, cpu_level level) {
    const gemm_tuning *tune = gemm_tuning_get(usable(level));
    const gemm_ukernel *uk = kernel_for(op->w->type, usable(level), tune);
    const int n = op->w->n, k = op->w->k, nr = uk->nr;
    const int block_k = gemm_type_get(op->w->type)->block_k;
    native_job job = {op, uk, act_fn(op->act, level), 0, 0, k, tune->mc, tune->prefetch, {0}, NULL, 0};
    if (op->w->type == GEMM_BF16) {                          /* bf16 products: round x once */
        job.xb = (uint16_t *)(((uintptr_t)op->work + 63) & ~(uintptr_t)63);
        job.ldxb = bf16_act_stride(k);
#if defined(CLIP_KERNELS_X86)
        if (usable(level) == CPU_AVX512) bf16_round_rows_avx512(job.xb, op->x, (size_t)k, 0, op->m, k);
        else
#endif
            bf16_round_rows(job.xb, op->x, (size_t)k, 0, op->m, k);
        job.kc = (int)job.ldxb;                              /* the padded k */
    } else if (gemm_work_bytes(op->w->type, op->m, k)) {    /* int8 products: quantize x once */
        q8_act_init(&job.xq, op->work, op->m, k);
        void (*quantize)(q8_act *, const float *, size_t, int, int, int) = q8_act_quantize;
#if defined(CLIP_KERNELS_X86)
        if (usable(level) == CPU_AVX512) quantize = q8_act_quantize_avx512;
        else if (usable(level) == CPU_AVX2) quantize = q8_act_quantize_avx2;
#endif
#if defined(CLIP_KERNELS_ARM)
        if (usable(level) == CPU_NEON) quantize = q8_act_quantize_neon;
#endif
        quantize(&job.xq, op->x, (size_t)k, 0, op->m, k);
        job.kc = job.xq.n_blocks * QK;                       /* the padded k */
    }
    /* k chunks of equal size (a multiple of 16 where possible); a product of at most one
     * row tile reads each weight once anyway, and is never cut along k */
    const int n_chunks = op->m <= uk->mr ? 1 : (k + tune->kc - 1) / tune->kc;
    const int step = block_k > 16 ? block_k : 16;           /* whole vectors and blocks */
    if (n_chunks > 1) job.kc = ((k + n_chunks - 1) / n_chunks + step - 1) / step * step;
    /* Thread tasks: NC columns each (the W chunk in L2), at least 4 per thread so that
     * the threads finish together, and a multiple of the thread count with tile counts
     * differing by at most one, so that no thread is left with a last task alone: with 2
     * threads, fc1 of a batch of 8 (3072 columns) as 19 tasks of 160 + one of 32 kept one
     * thread 4% longer (measured: 106 -> 103.5 ms as 20 tasks of 4-5 tiles, Zen 4). */
    const int n_threads = threadpool_size(pool), per_task = tune->nc / nr > 0 ? tune->nc / nr : 1;
    job.n_tiles = (n + nr - 1) / nr;
    int n_tasks = (job.n_tiles + per_task - 1) / per_task;
    if (n_threads > 1) {
        if (n_tasks < 4 * n_threads) n_tasks = 4 * n_threads;
        n_tasks = (n_tasks + n_threads - 1) / n_threads * n_threads;
    }
    job.n_tasks = n_tasks < job.n_tiles ? n_tasks : job.n_tiles;
    threadpool_run(pool, job.n_tasks, native_task, &job);
}

/* ---- OpenBLAS backend ----------------------------------------------------------------------
 * An f32 panel is a row-major [k][16] matrix, i.e. 16 columns of W^T: one sgemm per panel,
 * y[:, panel] = x . panel, after the bias has been written (or added) into y. */
static void openblas_gemm(const gemm_op *op, cpu_level level) {
    const gemm_weight *w = op->w;
    float beta = op->accumulate ? 1.0f : 0.0f;
    if (op->bias) {
        for (int r = 0; r < op->m; r++) {
            float *y = op->y + (size_t)r * w->n;
            if (op->accumulate) add_inplace(y, op->bias, (size_t)w->n);
            else memcpy(y, op->bias, sizeof(float) * (size_t)w->n);
        }
        beta = 1.0f;
    }
    for (int j0 = 0; j0 < w->n; j0 += GEMM_PANEL) {
        const float *panel = (const float *)((const char *)w->panels + (size_t)(j0 / GEMM_PANEL) * w->panel_bytes);
        const int cols = w->n - j0 < GEMM_PANEL ? w->n - j0 : GEMM_PANEL;
        blas_sgemm_nn(op->y + j0, w->n, op->x, w->k, panel, GEMM_PANEL, op->m, cols, w->k, beta);
    }
    activation_fn *act = act_fn(op->act, level);
    if (act) act(op->y, (size_t)op->m * w->n);
}

/* ---- Entry point ---------------------------------------------------------------------------- */
void gemm_run(threadpool *pool, const gemm_op *op, gemm_backend backend, cpu_level level) {
    const int n = op->w->n, k = op->w->k;
    if (op->m <= 0 || n <= 0) return;
    if (k <= 0) {                           /* an empty sum: y is the bias (or unchanged) */
        for (int r = 0; r < op->m; r++)
            for (int j = 0; j < n; j++) {
                float *y = op->y + (size_t)r * n + j;
                const float b = op->bias ? op->bias[j] : 0.0f;
                *y = op->accumulate ? *y + b : b;
            }
        activation_fn *act = act_fn(op->act, level);
        if (act) act(op->y, (size_t)op->m * n);
        return;
    }
    if (backend == GEMM_OPENBLAS && op->w->type == GEMM_F32) openblas_gemm(op, level);
    else native_gemm(pool, op, level);
}
