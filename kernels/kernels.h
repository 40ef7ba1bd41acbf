/* kernels.h - the numeric building blocks of a transformer, knowing nothing of CLIP.
 *
 * Every kernel works on row-major float32 arrays. Each exists as a portable scalar
 * reference (`*_scalar`) and, where it pays, as AVX2, AVX-512 and NEON versions; the plain
 * name dispatches at run time to the best one this CPU supports (kernels_init() picks,
 * once). Tests compare every SIMD version against its scalar reference.
 */
#ifndef CLIP_KERNELS_H
#define CLIP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---- CPU dispatch ----------------------------------------------------------------
 * A level is one complete set of kernels. Levels of one architecture are ordered (a CPU
 * with AVX-512 runs AVX2 too); the other architecture's levels are never usable. */
typedef enum { CPU_SCALAR = 0, CPU_AVX2 = 1, CPU_AVX512 = 2, CPU_NEON = 3 } cpu_level;
#define CPU_LEVEL_COUNT 4

/* The AVX2/AVX-512 versions exist on x86-64 only, the NEON versions on aarch64 only
 * (elsewhere the Makefile leaves their files out); building with -DCLIP_NO_SIMD leaves
 * them unused there too. */
#if defined(__x86_64__) && !defined(CLIP_NO_SIMD)
#define CLIP_KERNELS_X86 1
#endif
#if defined(__aarch64__) && !defined(CLIP_NO_SIMD)
#define CLIP_KERNELS_ARM 1
#endif

cpu_level cpu_detect(void);              /* the best level this CPU (and OS) supports */
int cpu_level_usable(cpu_level level);   /* compiled in and supported by this CPU */
void kernels_init(void);                 /* pick implementations; idempotent, thread-safe;
                                            the environment's CLIP_CPU=scalar|avx2|avx512|neon
                                            can lower the choice */
/* Force a level (for tests and benchmarks); one this CPU cannot run gives cpu_detect(). */
void kernels_force(cpu_level level);
cpu_level kernels_level(void);           /* the level in use */
const char *cpu_level_name(cpu_level level);

/* Instruction-set features beyond the level, for kernels of other weight types (f16,
 * bf16, int8 dot products) to pick from: what the CPU has and the OS enables. x86 from
 * cpuid + xgetbv, aarch64 from the kernel's hwcaps (getauxval AT_HWCAP / AT_HWCAP2). */
enum {
    CPU_FEAT_AVX2 = 1u << 0,         /* AVX2 + FMA + F16C (the avx2 level) */
    CPU_FEAT_AVX512 = 1u << 1,       /* AVX-512 F, BW, DQ, VL (the avx512 level) */
    CPU_FEAT_AVX512_VNNI = 1u << 2,  /* vpdpbusd on 512-bit vectors */
    CPU_FEAT_AVX_VNNI = 1u << 3,     /* vpdpbusd on 256-bit vectors (VEX) */
    CPU_FEAT_AVX512_BF16 = 1u << 4,  /* vdpbf16ps */
    CPU_FEAT_ASIMD = 1u << 8,        /* Advanced SIMD (NEON): the neon level */
    CPU_FEAT_FP16 = 1u << 9,         /* half-precision arithmetic, scalar and vector (FPHP + ASIMDHP) */
    CPU_FEAT_DOTPROD = 1u << 10,     /* sdot/udot (ASIMDDP) */
    CPU_FEAT_I8MM = 1u << 11,        /* smmla/usdot int8 matrix multiply */
    CPU_FEAT_BF16 = 1u << 12,        /* bfdot/bfmmla */
};
unsigned cpu_features(void);
/* The names of the set bits of `features`, space-separated ("asimd fp16 dotprod"), in buf;
 * "none" if there are none. Returns buf. */
const char *cpu_features_string(unsigned features, char *buf, size_t size);

/* ---- LayerNorm: out[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta ------------- */
/* x, out: [n_rows, dim]; gamma, beta: [dim]. out may equal x. */
void layernorm(float *out, const float *x, const float *gamma, const float *beta,
               int n_rows, int dim, float eps);

/* ---- Activations and softmax ---------------------------------------------------------
 * The model reaches the activations through the matmul's epilogue (kernels/gemm.c) and
 * softmax inside attention, at the level it was given, so they have no dispatched names;
 * the per-level versions are below:
 *   quick_gelu_*(x, n)  x * sigmoid(1.702 x) in place over n floats         (OpenAI CLIP)
 *   gelu_*(x, n)        0.5 x (1 + erf(x / sqrt 2)) in place                (exact GELU)
 *   softmax_*(x, n)     softmax over one row of n floats, in place                       */

/* ---- Elementwise ---------------------------------------------------------------------- */
void add_inplace(float *y, const float *x, size_t n);   /* y += x (the residual) */

/* ---- Self-attention of one head (after the qkv projection) --------------------------
 * qkv:  [n_tokens, 3 * head_dim]; row t holds q_t, then k_t, then v_t, each [head_dim]
 *       (the model copies one head's columns together before calling, so the rows stream).
 * out:  [n_queries, head_dim]: softmax(q k^T / sqrt(head_dim)) v, computed for the first
 *       n_queries tokens (n_queries <= n_tokens) against all n_tokens keys, or with
 *       `causal` only against keys 0..t for query t.
 * scratch: at least n_tokens floats.                                                    */
void attention(float *out, const float *qkv, int n_tokens, int n_queries, int head_dim,
               int causal, float *scratch);

/* ---- OpenBLAS, for --gemm openblas (kernels/blas_loader.c) ------------------------ */
void blas_set_threads(int n_threads);
/* OpenBLAS is loaded (dlopen) on first use: 0 once it is, else a negative CLIP_ERR_*
 * with the reason (clip_fail). Products asked of a missing OpenBLAS run in plain loops. */
int blas_load(void);
/* y = x W^T + beta y: x [m, k], W [n, k], y [m, n], through OpenBLAS's sgemm. */
void blas_sgemm_nt(float *y, const float *x, const float *w, int m, int n, int k, float beta);
/* y = x w + beta y with leading dimensions: x [m, k], w [k, n], y [m, n] (one packed panel). */
void blas_sgemm_nn(float *y, int ldy, const float *x, int ldx, const float *w, int ldw, int m, int n,
                   int k, float beta);

/* Double precision, for offline work (clip_run quantize's GPTQ, kernels/gptq.c): OpenBLAS's
 * routines when the library loads, the same sums in plain loops when it does not. All
 * row-major; none is threaded by the caller's pool (OpenBLAS uses its own thread count). */
/* c [m, n] = alpha a^T b + beta c, a [k, m] (lda), b [k, n] (ldb) */
void blas_dgemm_tn(double *c, int ldc, const double *a, int lda, const double *b, int ldb, int m, int n, int k,
                   double alpha, double beta);
/* h [k, k] = x^T x, x [rows, k] (all of h written) */
void blas_dgram(double *h, const double *x, int rows, int k);
/* a [n, n] symmetric positive definite -> its Cholesky factor L (a = L L^T) in the lower
 * triangle, the upper left as it was. Returns 0, or -1 if a is not positive definite. */
int blas_cholesky_lower(double *a, int n);
/* a [n, n] upper triangular with a nonzero diagonal -> its inverse (upper), in place. */
void blas_invert_upper(double *a, int n);
/* on = 1: the four above run their plain loops even when OpenBLAS is there (for tests). */
void blas_double_loops(int on);

/* ---- Checksum: Adler-32 (zlib's definition; Python's zlib.adler32) ------------------
 * Continues from `adler` (1 for a fresh sum) over n bytes. Detects every single-bit and
 * burst error of a tensor; used to verify weight files, not as a defence against forgery. */
uint32_t adler32(uint32_t adler, const void *data, size_t n);

/* ---- The implementations behind the dispatch, for tests --------------------------- */
uint32_t adler32_scalar(uint32_t, const void *, size_t);
uint32_t adler32_avx2(uint32_t, const void *, size_t);
uint32_t adler32_neon(uint32_t, const void *, size_t);
void layernorm_scalar(float *, const float *, const float *, const float *, int, int, float);
void layernorm_avx2(float *, const float *, const float *, const float *, int, int, float);
void layernorm_avx512(float *, const float *, const float *, const float *, int, int, float);
void layernorm_neon(float *, const float *, const float *, const float *, int, int, float);
void quick_gelu_scalar(float *, size_t);
void quick_gelu_avx2(float *, size_t);
void quick_gelu_avx512(float *, size_t);
void quick_gelu_neon(float *, size_t);
void gelu_scalar(float *, size_t);
void gelu_avx2(float *, size_t);
void gelu_avx512(float *, size_t);
void gelu_neon(float *, size_t);
void softmax_scalar(float *, int);
void softmax_avx2(float *, int);
void softmax_avx512(float *, int);
void softmax_neon(float *, int);
void add_inplace_scalar(float *, const float *, size_t);
void add_inplace_avx2(float *, const float *, size_t);
void add_inplace_avx512(float *, const float *, size_t);
void add_inplace_neon(float *, const float *, size_t);
void attention_scalar(float *, const float *, int, int, int, int, float *);
void attention_avx2(float *, const float *, int, int, int, int, float *);
void attention_avx512(float *, const float *, int, int, int, int, float *);
void attention_neon(float *, const float *, int, int, int, int, float *);

#endif
