/* kernels.h - the numeric building blocks of a transformer, knowing nothing of CLIP.
 *
 * Every kernel works on row-major float32 arrays. Each exists as a portable scalar
 * reference (`*_scalar`) and, where it pays, as AVX2 and AVX-512 versions; the plain
 * name dispatches at run time to the best one this CPU supports (kernels_init() picks,
 * once). Tests compare every SIMD version against its scalar reference.
 */
#ifndef CLIP_KERNELS_H
#define CLIP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---- CPU dispatch ---------------------------------------------------------------- */
typedef enum { CPU_SCALAR = 0, CPU_AVX2 = 1, CPU_AVX512 = 2 } cpu_level;

/* The AVX2/AVX-512 versions exist on x86-64 only (elsewhere the Makefile leaves their
 * files out); building with -DCLIP_NO_SIMD leaves them unused on x86-64 too. */
#if defined(__x86_64__) && !defined(CLIP_NO_SIMD)
#define CLIP_KERNELS_X86 1
#endif

cpu_level cpu_detect(void);              /* what this CPU (and OS) supports */
void kernels_init(void);                 /* pick implementations; idempotent, thread-safe;
                                            the environment's CLIP_CPU=scalar|avx2|avx512
                                            can lower the choice */
/* Force a level (for tests and benchmarks); clamped to what the CPU supports. */
void kernels_force(cpu_level level);
cpu_level kernels_level(void);           /* the level in use */
const char *cpu_level_name(cpu_level level);

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

/* ---- Multi-head self-attention (after the qkv projection) ---------------------------
 * qkv:  [n_tokens, 3 * d_model]; row t holds q_t, then k_t, then v_t, each [d_model] with
 *       head h in columns [h * head_dim, (h + 1) * head_dim).
 * out:  [n_queries, d_model]: for each head, softmax(q k^T / sqrt(head_dim)) v, computed for
 *       the first n_queries tokens (n_queries <= n_tokens) against all n_tokens keys, or
 *       with `causal` only against keys 0..t for query t.
 * scratch: at least n_tokens floats.                                                    */
void attention(float *out, const float *qkv, int n_tokens, int n_queries, int d_model,
               int n_heads, int causal, float *scratch);

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

/* ---- Checksum: Adler-32 (zlib's definition; Python's zlib.adler32) ------------------
 * Continues from `adler` (1 for a fresh sum) over n bytes. Detects every single-bit and
 * burst error of a tensor; used to verify weight files, not as a defence against forgery. */
uint32_t adler32(uint32_t adler, const void *data, size_t n);

/* ---- The implementations behind the dispatch, for tests --------------------------- */
uint32_t adler32_scalar(uint32_t, const void *, size_t);
uint32_t adler32_avx2(uint32_t, const void *, size_t);
void layernorm_scalar(float *, const float *, const float *, const float *, int, int, float);
void layernorm_avx2(float *, const float *, const float *, const float *, int, int, float);
void layernorm_avx512(float *, const float *, const float *, const float *, int, int, float);
void quick_gelu_scalar(float *, size_t);
void quick_gelu_avx2(float *, size_t);
void quick_gelu_avx512(float *, size_t);
void gelu_scalar(float *, size_t);
void gelu_avx2(float *, size_t);
void gelu_avx512(float *, size_t);
void softmax_scalar(float *, int);
void softmax_avx2(float *, int);
void softmax_avx512(float *, int);
void add_inplace_scalar(float *, const float *, size_t);
void add_inplace_avx2(float *, const float *, size_t);
void add_inplace_avx512(float *, const float *, size_t);
void attention_scalar(float *, const float *, int, int, int, int, int, float *);
void attention_avx2(float *, const float *, int, int, int, int, int, float *);
void attention_avx512(float *, const float *, int, int, int, int, int, float *);

#endif
