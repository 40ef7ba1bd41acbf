/* cmd_quantize.c - clip_run quantize IN.clip OUT.clip --type f16|bf16|q8_0|q4_0 [--keep GLOB]...
 *
 * Rewrites an f32 .clip file with its matrices in a smaller type (docs/FORMAT.md, "Element
 * types in panels"). Which tensors, the policy, measured on ViT-B/32-shaped models
 * (README, "Quantized models"):
 *   - converted: every linear weight (patch embedding, projections, each block's qkv, out,
 *     fc1, fc2) and the token embedding (a table of 17% of a ViT-B/32's parameters, looked
 *     up one row at a time);
 *   - kept in f32: LayerNorm parameters, biases, class and position embeddings (0.2% of
 *     the parameters, and the values every token passes through);
 *   - q8_0 only: the two final projections stay f32 (0.4% of the weights: image embeddings
 *     at cosine 0.999906 -> 0.999939 to f32, for 0.3% of the file), and the fc2 of the first
 *     1/12 of the vision blocks is bf16 (q8_keeps_bf16 below);
 *   - q4_0 only: the tensors whose 4-bit errors cost the most cosine per byte are q8_0
 *     (q4_keeps_q8 below), measured one group at a time on ViT-B/32s (bench/quant/sensitivity.py):
 *     both final projections (the last product before the embedding: its error is not
 *     averaged by anything after it), the patch embedding, the text tower's attention
 *     (qkv and output projections), the MLPs of its first 5/12 of blocks (4-bit errors in
 *     early text blocks grow through the later ones) and the attention output projections
 *     of the first 2/3 of the vision blocks. 0.170x the f32 file of a ViT-B/32 (every
 *     weight q4_0: 0.144x).
 *   - --keep GLOB (repeatable, fnmatch on tensor names) keeps matching tensors as they are;
 *     --plain drops the q8_0 / q4_0 exceptions above (for measuring them).
 * How q8_0 / q4_0 values are chosen: the f32 model first encodes calibration images and
 * texts (calibrate.c), and the patch embedding and every block's qkv, out, fc1 and fc2 are
 * rounded by GPTQ (kernels/gptq.c) against their own inputs: rounding errors go where those
 * inputs make them cost least. On ViT-B/32s this cut the embeddings' error (1 - cosine)
 * 2-6x for q4_0 and ~2x for q8_0 (README). The token embedding (a lookup, no product),
 * the projections and layers with few calibration rows are rounded to nearest;
 * --no-calibrate rounds everything so (no calibration run).
 * Config and tokenizer are copied unchanged. Tensors are converted on -t threads; the file
 * does not depend on the thread count.
 */
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/atomic.h"
#include "../io/weightfile.h"
#include "../kernels/gemm.h"
#include "../kernels/gptq.h"
#include "../kernels/kernels.h"
#include "../kernels/quant.h"
#include "../kernels/threadpool.h"
#include "calibrate.h"
#include "cli.h"

static int is_linear_weight(const char *name) {
    static const char *const suffixes[] = {".attn.qkv.weight", ".attn.out.weight", ".mlp.fc1.weight",
                                           ".mlp.fc2.weight"};
    if (!strcmp(name, "vision.patch_embed.weight") || !strcmp(name, "vision.proj") || !strcmp(name, "text.proj"))
        return 1;
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t n = strlen(name), k = strlen(suffixes[i]);
        if (n > k && !strcmp(name + n - k, suffixes[i])) return 1;
    }
    return 0;
}

/* q4_0's policy: 1 if the tensor `name` stays q8_0. Of a ViT-B/32's 12 + 12 blocks: the
 * attention outputs of vision blocks 0-7 and the MLPs of text blocks 0-4 (as fractions of
 * the depth, for other shapes); moving bytes between the two traded image for text cosine
 * and this split left both the widest margin. */
static int q4_keeps_q8(const char *name, const clip_config *c) {
    static const char *const always[] = {"vision.proj", "text.proj", "vision.patch_embed.weight",
                                         "text.blocks.*.attn.out.weight", "text.blocks.*.attn.qkv.weight"};
    for (size_t i = 0; i < sizeof always / sizeof always[0]; i++)
        if (fnmatch(always[i], name, 0) == 0) return 1;
    int block;
    if (fnmatch("vision.blocks.*.attn.out.weight", name, 0) == 0 && sscanf(name, "vision.blocks.%d.", &block) == 1)
        return block < (2 * c->vision_layers + 2) / 3;
    if (fnmatch("text.blocks.*.mlp.*", name, 0) == 0 && sscanf(name, "text.blocks.%d.", &block) == 1)
        return block < (5 * c->text_layers + 11) / 12;
    return 0;
}

/* q8_0's policy: 1 if the tensor `name` is bf16 instead. What GPTQ leaves of q8_0's error
 * is mostly the int8 activations of the MLPs' second products (the GELU outputs: one-sided,
 * so a symmetric int8 block uses half its levels); with bf16 weights those activations are
 * rounded to bf16 instead (8 bits of mantissa per value, not per block of 32). The fc2 of the
 * first 1/12 of the vision blocks: image cosine 0.999930 -> 0.999942 (min over 5 photographs)
 * on the perturbed ViT-B/32, for 0.004x of the file (the first 2: 0.999944 for 0.007x; all
 * twelve: 0.99997 at 0.314x, over issue 13's 0.28x). */
static int q8_keeps_bf16(const char *name, const clip_config *c) {
    int block;
    if (fnmatch("vision.blocks.*.mlp.fc2.weight", name, 0) == 0 && sscanf(name, "vision.blocks.%d.", &block) == 1)
        return block < (c->vision_layers + 11) / 12;
    return 0;
}

/* The type a tensor gets: `want`, a policy exception, or -1 for "as it is". */
static int type_for(const wf_tensor *t, gemm_type want, const clip_config *c, const args *a) {
    for (int i = 0; i < a->n_keeps; i++)
        if (fnmatch(a->keeps[i], t->name, 0) == 0) return -1;
    if (!is_linear_weight(t->name) && strcmp(t->name, "text.token_embed") != 0) return -1;
    if (a->plain) return (int)want;
    if (want == GEMM_Q8_0 && (!strcmp(t->name, "vision.proj") || !strcmp(t->name, "text.proj")))
        return -1;
    if (want == GEMM_Q8_0 && q8_keeps_bf16(t->name, c)) return GEMM_BF16;
    if (want == GEMM_Q4_0 && q4_keeps_q8(t->name, c)) return GEMM_Q8_0;
    return (int)want;
}

typedef struct {
    const weightfile *in;
    wf_out_tensor *out;
    int *types;                  /* per tensor: gemm_type, or -1 to copy */
    char **errors;               /* per tensor: NULL, or a message */
    const calib_set *calib;      /* the block layers' inputs (GPTQ), or NULL: round to nearest */
} quantize_job;

/* The calibration inputs GPTQ rounds tensor `name` against, or NULL for plain rounding.
 * GPTQ trusts the rows' second moments: with far fewer rows than k (a tower's last block,
 * which only the kept token reaches: 16 rows for k = 768) they miss directions that other
 * inputs take, and errors moved there made short texts worse; such layers round plainly. */
static const calib_layer *calibration_for(const calib_set *calib, const char *name, gemm_type type, int k) {
    const calib_layer *inputs = calib ? calib_find(calib, name) : NULL;
    if (!inputs || inputs->k != k || inputs->rows * 4 < k || (type != GEMM_Q8_0 && type != GEMM_Q4_0)) return NULL;
    return inputs;
}

static void pack_plain(void *packed, gemm_type type, const float *src, int n, int k) {
    gemm_weight w;
    gemm_pack(&w, packed, type, src, n, k);
}

/* GPTQ's values and scales, packed: 0, -1 out of memory, -2 inputs not usable (gptq.h). */
static int pack_calibrated(void *packed, gemm_type type, const float *src, int n, int k, const calib_layer *inputs) {
    float *values = malloc(sizeof(float) * (size_t)n * k);      /* changed as rounding goes */
    uint16_t *scales = malloc(sizeof(uint16_t) * (size_t)n * (size_t)((k + QK - 1) / QK));
    int rc = -1;
    if (values && scales) {
        memcpy(values, src, sizeof(float) * (size_t)n * k);
        rc = gptq_quantize(type, values, n, k, inputs->x, inputs->rows, scales);
        if (rc == 0) quant_pack_scaled(packed, type, values, scales, n, k);
    }
    free(values), free(scales);
    return rc;
}

/* One tensor: its f32 rows (from the row-major data, or unpacked from f32 panels), checked
 * to be finite and within the range of the type's f16 values or scales, then packed. */
static void quantize_task(void *arg, int i, int thread) {
    (void)thread;
    quantize_job *job = arg;
    const wf_tensor *t = &job->in->tensors[i];
    wf_out_tensor *o = &job->out[i];
    *o = (wf_out_tensor){t->name, t->dtype, t->n_dims, {0}, t->data, t->size};
    memcpy(o->dims, t->dims, sizeof o->dims);
    if (job->types[i] < 0) return;
    const gemm_type type = (gemm_type)job->types[i];
    const int n = (int)t->dims[0], k = (int)t->dims[1];
    float *rows = NULL;
    const float *src = t->data;
    if (WF_LAYOUT(t->dtype) == WF_PANELS16) {
        rows = malloc(sizeof(float) * (size_t)n * k);
        if (!rows) goto nomem;
        const gemm_weight panels = gemm_weight_packed(GEMM_F32, t->data, n, k);
        for (int j = 0; j < n; j++) quant_row(&panels, j, rows + (size_t)j * k);
        src = rows;
    }
    /* f16 holds values up to 65504; q8_0/q4_0 scales amax / 127 (or / 7) likewise */
    const float limit = type == GEMM_F16 ? 65504.0f : type == GEMM_BF16 ? 3e38f : 65504.0f * 7;
    for (size_t e = 0; e < (size_t)n * k; e++)
        if (!isfinite(src[e]) || fabsf(src[e]) > limit) {
            char msg[256];
            snprintf(msg, sizeof msg, "tensor '%s' has the value %g at element %zu, which %s cannot hold",
                     t->name, src[e], e, gemm_type_get(type)->name);
            job->errors[i] = strdup(msg);
            free(rows);
            return;
        }
    const size_t bytes = gemm_packed_bytes(type, n, k);
    void *packed = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!packed) goto nomem;
    const calib_layer *inputs = calibration_for(job->calib, t->name, type, k);
    const int g = inputs ? pack_calibrated(packed, type, src, n, k, inputs) : (pack_plain(packed, type, src, n, k), 0);
    if (g != 0) {
        free(packed);
        if (g == -1) goto nomem;
        char msg[256];
        snprintf(msg, sizeof msg, "tensor '%s': its calibration inputs are not finite (--no-calibrate rounds "
                 "without them)", t->name);
        job->errors[i] = strdup(msg);
        free(rows);
        return;
    }
    o->dtype = (uint32_t)type | (uint32_t)WF_PANEL_LAYOUT(type) << 8;
    o->data = packed;
    o->size = bytes;
    free(rows);
    return;
nomem:
    free(rows);
    job->errors[i] = strdup("out of memory");
}

int cmd_quantize(args *a) {
    if (a->n_pos != 2) return usage_error(a->cmd, "quantize takes IN.clip and OUT.clip");
    if (!a->type) return usage_error(a->cmd, "quantize needs --type f16|bf16|q8_0|q4_0");
    static const struct { const char *name; gemm_type type; } types[] = {
        {"f16", GEMM_F16}, {"bf16", GEMM_BF16}, {"q8_0", GEMM_Q8_0}, {"q4_0", GEMM_Q4_0}};
    int want = -1;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(a->type, types[i].name)) want = (int)types[i].type;
    if (want < 0) return usage_error(a->cmd, "--type takes f16, bf16, q8_0 or q4_0, not '%s'", a->type);
    const char *in_path = a->pos[0], *out_path = a->pos[1];
    if (atomic_same_file(out_path, in_path))
        return usage_error(a->cmd, "OUT %s is the input %s; it would be overwritten", out_path, in_path);

    weightfile in;
    if (weightfile_open(in_path, &in) != CLIP_OK) return api_fail();
    const uint32_t n = in.n_tensors;
    quantize_job job = {&in, calloc(n, sizeof(wf_out_tensor)), calloc(n, sizeof(int)), calloc(n, sizeof(char *)), NULL};
    int rc = !job.out || !job.types || !job.errors ? fail("out of memory") : 0;
    for (uint32_t i = 0; !rc && i < n; i++) {
        const wf_tensor *t = &in.tensors[i];
        if (WF_TYPE(t->dtype) != WF_F32)
            rc = fail("%s: tensor '%s' is already %s; quantize from the f32 file", in_path, t->name,
                      gemm_type_get((gemm_type)WF_TYPE(t->dtype))->name);
        job.types[i] = type_for(t, (gemm_type)want, &in.config, a);
    }
    /* q8_0 / q4_0: the inputs of the blocks' layers on calibration data, for GPTQ */
    calib_set calib = {0};
    if (!rc && (want == GEMM_Q8_0 || want == GEMM_Q4_0) && !a->no_calibrate) {
        clip_model *model = NULL;
        clip_context *ctx = NULL;
        if (clip_model_load(in_path, &model) != CLIP_OK ||
            clip_context_new(model, a->threads > 0 ? a->threads : 1, 1, &ctx) != CLIP_OK ||
            calibrate(model, ctx, &calib) != CLIP_OK)
            rc = api_fail();
        else
            job.calib = &calib;
        clip_context_free(ctx);
        clip_model_free(model);
    }
    if (!rc) {
        blas_set_threads(1);          /* GPTQ's OpenBLAS calls: the pool below runs them side by side */
        threadpool *pool = a->threads > 1 ? threadpool_new(a->threads) : NULL;
        threadpool_run(pool, (int)n, quantize_task, &job);
        threadpool_free(pool);
        for (uint32_t i = 0; !rc && i < n; i++)
            if (job.errors[i]) rc = fail("%s: %s", in_path, job.errors[i]);
    }
    if (!rc && weightfile_write(out_path, &in, job.out, n) != CLIP_OK) rc = api_fail();
    if (!rc) {
        uint64_t in_bytes = 0, out_bytes = 0;
        for (uint32_t i = 0; i < n; i++) in_bytes += in.tensors[i].size, out_bytes += job.out[i].size;
        fprintf(stderr, "quantize: %s -> %s (%s): tensor data %.1f MB -> %.1f MB (%.3fx)\n", in_path,
                out_path, a->type, in_bytes / 1e6, out_bytes / 1e6, (double)out_bytes / (double)in_bytes);
    }
    for (uint32_t i = 0; job.out && i < n; i++) {
        if (job.out[i].data != in.tensors[i].data) free((void *)job.out[i].data);
        if (job.errors) free(job.errors[i]);
    }
    free(job.out), free(job.types), free(job.errors);
    calib_free(&calib);
    weightfile_close(&in);
    return rc;
}
