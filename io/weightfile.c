/* weightfile.c - map a .clip file and check every byte of its structure before use.
 *
 * The format is documented in docs/FORMAT.md. Reading goes through a bounds-checked
 * cursor over one section at a time, so a corrupt count, length or offset can never make
 * us read outside the mapping: each failure names the file, the section or tensor, and
 * what is wrong.
 */
#include "weightfile.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../kernels/gemm.h"
#include "../kernels/quant.h"
#include "../kernels/kernels.h"
#include "error.h"

#define HEADER_SIZE 80
#define MAX_NAME 127          /* tensor names fit wf_tensor.name */
#define MAX_TENSORS 65536
#define MAX_CONFIG_ENTRIES 4096
#define MAX_TOKEN_BYTES 4096
#define MAX_VOCAB (1u << 22)

/* ---- A cursor over one section --------------------------------------------------------- */
typedef struct {
    const uint8_t *p;
    size_t left;
    const char *path, *section;
    int failed;
} cursor;

static int cursor_fail(cursor *c, const char *what) {
    if (!c->failed)
        clip_fail(CLIP_ERR_FORMAT, "%s: %s section truncated while reading %s", c->path,
                  c->section, what);
    c->failed = 1;
    return CLIP_ERR_FORMAT;
}

static const uint8_t *take(cursor *c, size_t n, const char *what) {
    if (c->failed || c->left < n) {
        cursor_fail(c, what);
        return NULL;
    }
    const uint8_t *at = c->p;
    c->p += n;
    c->left -= n;
    return at;
}

static uint32_t read_u32(cursor *c, const char *what) {
    const uint8_t *b = take(c, 4, what);
    return b ? (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24 : 0;
}

static uint64_t read_u64_at(const uint8_t *b) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

static uint64_t read_u64(cursor *c, const char *what) {
    const uint8_t *b = take(c, 8, what);
    return b ? read_u64_at(b) : 0;
}

static float read_f32(cursor *c, const char *what) {
    uint32_t bits = read_u32(c, what);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* A length-prefixed string; returns a pointer into the mapping (not NUL-terminated). */
static const char *read_str(cursor *c, uint32_t *len, uint32_t max_len, const char *what) {
    *len = read_u32(c, what);
    if (c->failed) return NULL;
    if (*len > max_len) {
        clip_fail(CLIP_ERR_FORMAT, "%s: %s section: %s is %u bytes long (limit %u)", c->path,
                  c->section, what, *len, max_len);
        c->failed = 1;
        return NULL;
    }
    return (const char *)take(c, *len, what);
}

/* Up to 32 bytes of a string from the file, for an error message: control bytes and
 * non-ASCII become '?', so a message stays one printable line. */
static const char *printable(const char *s, uint32_t len, char out[33]) {
    uint32_t n = len < 32 ? len : 32;
    for (uint32_t i = 0; i < n; i++) out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[n] = 0;
    return out;
}

/* ---- Config ------------------------------------------------------------------------------ */
enum { KV_U32 = 1, KV_F32 = 2, KV_STR = 3, KV_F32_ARRAY = 4 };

typedef struct {
    const char *key;
    int type;
    size_t offset; /* into clip_config */
    double min, max;
    int count;     /* for KV_F32_ARRAY */
} config_field;

#define FIELD_U32(name, lo, hi) {#name, KV_U32, offsetof(clip_config, name), lo, hi, 1}
static const config_field config_fields[] = {
    FIELD_U32(image_size, 1, 8192),     FIELD_U32(patch_size, 1, 1024),
    FIELD_U32(vision_width, 1, 16384),  FIELD_U32(vision_layers, 1, 256),
    FIELD_U32(vision_heads, 1, 1024),   FIELD_U32(vision_mlp, 1, 131072),
    FIELD_U32(text_vocab, 1, MAX_VOCAB), FIELD_U32(text_context, 2, 8192),
    FIELD_U32(text_width, 1, 16384),    FIELD_U32(text_layers, 1, 256),
    FIELD_U32(text_heads, 1, 1024),     FIELD_U32(text_mlp, 1, 131072),
    FIELD_U32(embed_dim, 1, 16384),
    {"activation", KV_STR, offsetof(clip_config, activation), 0, 0, 1},
    {"ln_eps", KV_F32, offsetof(clip_config, ln_eps), 1e-12, 0.1, 1},
    {"image_mean", KV_F32_ARRAY, offsetof(clip_config, image_mean), -10, 10, 3},
    {"image_std", KV_F32_ARRAY, offsetof(clip_config, image_std), 1e-6, 100, 3},
    {"logit_scale", KV_F32, offsetof(clip_config, logit_scale), -100, 100, 1},
    {"name", KV_STR, offsetof(clip_config, name), 0, 0, 1},
};
#define N_CONFIG_FIELDS (sizeof config_fields / sizeof config_fields[0])

static int parse_config(cursor *c, clip_config *cfg) {
    char seen[N_CONFIG_FIELDS] = {0};
    uint32_t n_entries = read_u32(c, "entry count");
    if (c->failed) return CLIP_ERR_FORMAT;
    if (n_entries > MAX_CONFIG_ENTRIES)
        return clip_fail(CLIP_ERR_FORMAT, "%s: config has %u entries (limit %d)", c->path,
                         n_entries, MAX_CONFIG_ENTRIES);
    for (uint32_t e = 0; e < n_entries; e++) {
        uint32_t key_len;
        const char *key = read_str(c, &key_len, 256, "config key");
        uint32_t type = read_u32(c, "config value type");
        if (c->failed) return CLIP_ERR_FORMAT;
        const config_field *field = NULL;
        size_t index = 0;
        for (size_t i = 0; i < N_CONFIG_FIELDS; i++)
            if (strlen(config_fields[i].key) == key_len &&
                memcmp(config_fields[i].key, key, key_len) == 0) {
                field = &config_fields[i];
                index = i;
            }
        if (field && (int)type != field->type)
            return clip_fail(CLIP_ERR_FORMAT, "%s: config key '%s' has type %u, expected %d",
                             c->path, field->key, type, field->type);
        if (field && seen[index])
            return clip_fail(CLIP_ERR_FORMAT, "%s: config key '%s' appears twice", c->path,
                             field->key);
        if (field) seen[index] = 1;
        char *dst = field ? (char *)cfg + field->offset : NULL;
        const char *key_name = field ? field->key : "unknown config key";
        switch (type) {
        case KV_U32: {
            uint32_t v = read_u32(c, key_name);
            if (field && (v < field->min || v > field->max))
                return clip_fail(CLIP_ERR_FORMAT, "%s: config %s = %u is out of range [%g, %g]",
                                 c->path, field->key, v, field->min, field->max);
            if (field) *(int *)dst = (int)v;
            break;
        }
        case KV_F32: {
            float v = read_f32(c, key_name);
            if (field && !(v >= field->min && v <= field->max))
                return clip_fail(CLIP_ERR_FORMAT, "%s: config %s = %g is out of range [%g, %g]",
                                 c->path, field->key, v, field->min, field->max);
            if (field) *(float *)dst = v;
            break;
        }
        case KV_STR: {
            uint32_t len;
            const char *s = read_str(c, &len, 1 << 16, key_name);
            if (c->failed || !field) break;
            if (field->offset == offsetof(clip_config, activation)) {
                if (len == 10 && memcmp(s, "quick_gelu", 10) == 0) cfg->activation = CLIP_ACT_QUICK_GELU;
                else if (len == 4 && memcmp(s, "gelu", 4) == 0) cfg->activation = CLIP_ACT_GELU;
                else {
                    char shown[33];
                    return clip_fail(CLIP_ERR_FORMAT,
                                     "%s: config activation '%s' is not quick_gelu or gelu",
                                     c->path, printable(s, len, shown));
                }
            } else {
                size_t n = len < sizeof cfg->name - 1 ? len : sizeof cfg->name - 1;
                memcpy(cfg->name, s, n);
                cfg->name[n] = 0;
                for (size_t i = 0; i < n; i++) /* keep it printable */
                    if ((unsigned char)cfg->name[i] < 32) cfg->name[i] = '?';
            }
            break;
        }
        case KV_F32_ARRAY: {
            uint32_t count = read_u32(c, key_name);
            if (field && count != (uint32_t)field->count)
                return clip_fail(CLIP_ERR_FORMAT, "%s: config %s has %u values, expected %d",
                                 c->path, field->key, count, field->count);
            if (!field) {
                if (count > (1u << 20)) return cursor_fail(c, key_name);
                take(c, (size_t)count * 4, key_name);
                break;
            }
            for (uint32_t i = 0; i < count; i++) {
                float v = read_f32(c, key_name);
                if (!(v >= field->min && v <= field->max))
                    return clip_fail(CLIP_ERR_FORMAT, "%s: config %s[%u] = %g is out of range",
                                     c->path, field->key, i, v);
                ((float *)dst)[i] = v;
            }
            break;
        }
        default: {
            char shown[33];
            return clip_fail(CLIP_ERR_FORMAT, "%s: config key '%s' has unknown type %u",
                             c->path, printable(key, key_len, shown), type);
        }
        }
        if (c->failed) return CLIP_ERR_FORMAT;
    }
    for (size_t i = 0; i < N_CONFIG_FIELDS; i++)
        if (!seen[i])
            return clip_fail(CLIP_ERR_FORMAT, "%s: config key '%s' is missing", c->path,
                             config_fields[i].key);
    /* Relations between fields. */
    if (cfg->image_size % cfg->patch_size)
        return clip_fail(CLIP_ERR_FORMAT, "%s: image_size %d is not a multiple of patch_size %d",
                         c->path, cfg->image_size, cfg->patch_size);
    if (cfg->vision_width % cfg->vision_heads || cfg->text_width % cfg->text_heads)
        return clip_fail(CLIP_ERR_FORMAT, "%s: head count does not divide the width (vision %d/%d, text %d/%d)",
                         c->path, cfg->vision_width, cfg->vision_heads, cfg->text_width,
                         cfg->text_heads);
    int grid = cfg->image_size / cfg->patch_size;
    if ((long)grid * grid > 65536)
        return clip_fail(CLIP_ERR_FORMAT, "%s: %d x %d patches is too many", c->path, grid, grid);
    return CLIP_OK;
}

/* ---- What the config asks of a forward pass ------------------------------------------------ */
/* Every weight lies in the file, so a file pays for its matrix products in its own size; what
 * it does not pay for is the work that grows with the token count (attention is tokens² x width
 * per layer, every matrix product runs once per token) and the activation buffers. A small
 * hostile file could otherwise declare 65537 patch tokens of width 1 and ask for a forward pass
 * of hours, or gigabytes of scratch. So both are bounded by a fixed allowance plus a multiple of
 * the file's size; released CLIPs are far inside (ViT-L/14 at 336 px: attention 1.6e10 and
 * matrix products 1.7e11 multiply-adds for a 1.7 GB file, 25 MB of activations). The memory
 * estimate mirrors clip_context_new() (model/clip.c) and the image buffers of preprocessing. */
#define WORK_ALLOWANCE (1ull << 33)          /* multiply-adds per forward pass, any file */
#define WORK_PER_PARAM 2048ull              /* ... plus this many per parameter (per element,
                                                whatever its type: a quantized file may ask
                                                as much as its f32 original) */
#define MEMORY_ALLOWANCE (256ull << 20)      /* bytes of activations, any file (+ file size) */

static int check_work(const weightfile *wf) {
    const clip_config *c = &wf->config;
    /* the f32 size of the weights: a quantized file may ask what its original may */
    const uint64_t file_bytes = wf->n_params * 4, grid = (uint64_t)(c->image_size / c->patch_size);
    const uint64_t patch_len = 3ull * (uint64_t)c->patch_size * (uint64_t)c->patch_size;
    const struct {
        const char *name;
        uint64_t tokens, width, mlp, layers, input_len;
    } tower[2] = {
        {"vision", grid * grid + 1, (uint64_t)c->vision_width, (uint64_t)c->vision_mlp,
         (uint64_t)c->vision_layers, patch_len},
        {"text", (uint64_t)c->text_context, (uint64_t)c->text_width, (uint64_t)c->text_mlp,
         (uint64_t)c->text_layers, 0},
    };
    const uint64_t work_limit = WORK_ALLOWANCE + WORK_PER_PARAM * wf->n_params;
    uint64_t tokens_max = 0, width_max = 0, mlp_max = 0;
    for (int t = 0; t < 2; t++) {
        /* Per layer: q, k, v, out (4 W²) and the MLP (2 W M) per token, scores and their
         * weighted sum (2 tokens W) per token. The config's ranges keep these in 64 bits. */
        uint64_t n = tower[t].tokens, w = tower[t].width;
        uint64_t per_token = tower[t].layers * (4 * w * w + 2 * w * tower[t].mlp + 2 * n * w) +
                             w * tower[t].input_len;
        uint64_t work = n * per_token;
        if (work / n != per_token || work > work_limit)
            return clip_fail(CLIP_ERR_FORMAT,
                             "%s: the config asks for a %s forward pass of %.3g multiply-adds (%llu tokens, width %llu, %llu layers); a file of %llu parameters may ask for at most %.3g",
                             wf->path, tower[t].name, (double)n * (double)per_token,
                             (unsigned long long)n, (unsigned long long)w,
                             (unsigned long long)tower[t].layers, (unsigned long long)wf->n_params,
                             (double)work_limit);
        if (n > tokens_max) tokens_max = n;
        if (w > width_max) width_max = w;
        if (tower[t].mlp > mlp_max) mlp_max = tower[t].mlp;
    }
    /* Context arena: [tokens, W] x 2, [tokens, 3W], [tokens, M], [patches, 3P²], [tokens];
     * preprocessing: the [3, S, S] float pixels twice (image and caller) and the crop. */
    uint64_t image_floats = 3ull * (uint64_t)c->image_size * (uint64_t)c->image_size;
    uint64_t floats = tokens_max * (5 * width_max + mlp_max + 1) + grid * grid * patch_len +
                      3 * image_floats;
    if (floats * 4 > MEMORY_ALLOWANCE + file_bytes)
        return clip_fail(CLIP_ERR_FORMAT,
                         "%s: the config asks for %llu MB of activations; a file of %llu parameters may ask for at most %llu MB",
                         wf->path, (unsigned long long)(floats * 4 >> 20),
                         (unsigned long long)wf->n_params,
                         (unsigned long long)((MEMORY_ALLOWANCE + file_bytes) >> 20));
    return CLIP_OK;
}

/* ---- Tokenizer ---------------------------------------------------------------------------- */
static int parse_tokenizer(cursor *c, const clip_config *cfg, wf_tokenizer *tok) {
    tok->n_vocab = read_u32(c, "vocabulary size");
    tok->n_merges = read_u32(c, "merge count");
    tok->sot_id = read_u32(c, "start token id");
    tok->eot_id = read_u32(c, "end token id");
    if (c->failed) return CLIP_ERR_FORMAT;
    if (tok->n_vocab != (uint32_t)cfg->text_vocab)
        return clip_fail(CLIP_ERR_FORMAT, "%s: tokenizer has %u tokens but text_vocab is %d",
                         c->path, tok->n_vocab, cfg->text_vocab);
    if (tok->n_merges >= tok->n_vocab)
        return clip_fail(CLIP_ERR_FORMAT, "%s: tokenizer has %u merges for %u tokens", c->path,
                         tok->n_merges, tok->n_vocab);
    if (tok->sot_id >= tok->n_vocab || tok->eot_id >= tok->n_vocab || tok->sot_id == tok->eot_id)
        return clip_fail(CLIP_ERR_FORMAT, "%s: tokenizer special ids %u, %u are invalid", c->path,
                         tok->sot_id, tok->eot_id);
    /* Every token takes at least 4 bytes and every merge 12: check before allocating. */
    if ((uint64_t)tok->n_vocab * 4 + (uint64_t)tok->n_merges * 12 > c->left)
        return cursor_fail(c, "tokens");
    tok->tokens = malloc(sizeof(char *) * tok->n_vocab);
    tok->token_lens = malloc(sizeof(uint32_t) * tok->n_vocab);
    tok->merges = malloc(sizeof(uint32_t) * 3 * (tok->n_merges ? tok->n_merges : 1));
    if (!tok->tokens || !tok->token_lens || !tok->merges)
        return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory for the tokenizer", c->path);
    for (uint32_t i = 0; i < tok->n_vocab; i++) {
        tok->tokens[i] = read_str(c, &tok->token_lens[i], MAX_TOKEN_BYTES, "token string");
        if (c->failed) return CLIP_ERR_FORMAT;
    }
    for (uint32_t i = 0; i < tok->n_merges * 3; i++) {
        uint32_t id = read_u32(c, "merges");
        if (c->failed) return CLIP_ERR_FORMAT;
        if (id >= tok->n_vocab)
            return clip_fail(CLIP_ERR_FORMAT, "%s: merge %u refers to token %u (vocabulary has %u)",
                             c->path, i / 3, id, tok->n_vocab);
        tok->merges[i] = id;
    }
    return CLIP_OK;
}

/* ---- Tensor directory --------------------------------------------------------------------- */
static int compare_offsets(const void *a, const void *b) {
    const wf_tensor *x = *(wf_tensor *const *)a, *y = *(wf_tensor *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}

static int compare_names(const void *a, const void *b) {
    return strcmp((*(wf_tensor *const *)a)->name, (*(wf_tensor *const *)b)->name);
}

static int parse_directory(cursor *c, weightfile *wf, uint64_t data_off, uint64_t data_size) {
    wf->n_tensors = read_u32(c, "tensor count");
    if (c->failed) return CLIP_ERR_FORMAT;
    if (wf->n_tensors == 0 || wf->n_tensors > MAX_TENSORS)
        return clip_fail(CLIP_ERR_FORMAT, "%s: %u tensors (expected 1 to %d)", c->path,
                         wf->n_tensors, MAX_TENSORS);
    if ((uint64_t)wf->n_tensors * 32 > c->left) return cursor_fail(c, "tensor entries");
    wf->tensors = calloc(wf->n_tensors, sizeof(wf_tensor));
    if (!wf->tensors) return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", c->path);
    for (uint32_t i = 0; i < wf->n_tensors; i++) {
        wf_tensor *t = &wf->tensors[i];
        uint32_t name_len;
        const char *name = read_str(c, &name_len, MAX_NAME, "tensor name");
        if (c->failed) return CLIP_ERR_FORMAT;
        memcpy(t->name, name, name_len);
        t->name[name_len] = 0;
        for (uint32_t k = 0; k < name_len; k++) /* names appear in messages: printable only */
            if ((unsigned char)name[k] < 0x20 || name[k] == 0x7f)
                return clip_fail(CLIP_ERR_FORMAT, "%s: tensor %u has a control byte in its name",
                                 c->path, i);
        t->dtype = read_u32(c, "tensor dtype");
        t->n_dims = read_u32(c, "tensor rank");
        if (c->failed) return CLIP_ERR_FORMAT;
        /* f32 row-major; in version 2 also (matrices only) panels of 16 rows of f32, f16,
         * q8_0 or q4_0 (layout 1) or bf16 (layout 2) (docs/FORMAT.md). */
        const uint32_t type = WF_TYPE(t->dtype), layout = WF_LAYOUT(t->dtype);
        const gemm_type_info *info = gemm_type_get((gemm_type)type);
        if (info && type == WF_BF16 && layout == WF_PANELS16 && !(t->dtype >> 16))
            return clip_fail(CLIP_ERR_FORMAT,
                             "%s: tensor '%s' is bf16 in the panel layout of older clip.c versions ([k][16], dtype 0x102); "
                             "bf16 is now stored with k in pairs (dtype 0x202, for vdpbf16ps): quantize the f32 model again "
                             "(clip_run quantize IN.clip OUT.clip --type bf16)", c->path, t->name);
        if (!info || t->dtype >> 16 || layout > WF_PANELS16_PAIRS || (layout && wf->version < 2) ||
            (layout && layout != WF_PANEL_LAYOUT(type)) ||
            (type != WF_F32 && layout == WF_ROWS))
            return clip_fail(CLIP_ERR_FORMAT,
                             "%s: tensor '%s' has dtype %#x (%s%s%s); version %u files hold f32 (0)%s",
                             c->path, t->name, t->dtype, info ? "element type " : "unknown element type",
                             info ? info->name : "", layout == WF_PANELS16 ? " in panels" : layout == WF_PANELS16_PAIRS ? " in pair panels" : layout ? " in an unknown layout" : " row-major",
                             wf->version, wf->version >= 2 ? " and, in panels (0x100 + type), f32, f16 (1), q8_0 (8), q4_0 (9), in pair panels bf16 (0x202)" : "");
        if (t->n_dims < 1 || t->n_dims > WF_MAX_DIMS || (layout != WF_ROWS && t->n_dims != 2))
            return clip_fail(CLIP_ERR_FORMAT, "%s: tensor '%s' has %u dimensions%s", c->path,
                             t->name, t->n_dims, layout != WF_ROWS ? " (a packed tensor has 2)" : "");
        uint64_t n_elems = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            t->dims[d] = read_u64(c, "tensor shape");
            if (t->dims[d] == 0 || t->dims[d] > (1ull << 32) || n_elems > (1ull << 40) / t->dims[d])
                return clip_fail(CLIP_ERR_FORMAT, "%s: tensor '%s' has an invalid dimension %llu",
                                 c->path, t->name, (unsigned long long)t->dims[d]);
            n_elems *= t->dims[d];
        }
        uint64_t offset = read_u64(c, "tensor offset");
        t->size = read_u64(c, "tensor size");
        t->checksum = read_u32(c, "tensor checksum");
        if (c->failed) return CLIP_ERR_FORMAT;
        wf->n_params += n_elems;
        /* panels: the last one padded to 16 rows, quantized k to whole blocks (gemm.h) */
        const uint64_t want = layout != WF_ROWS
            ? gemm_packed_bytes((gemm_type)type, (int)t->dims[0], (int)t->dims[1]) : n_elems * 4;
        if (t->size != want)
            return clip_fail(CLIP_ERR_FORMAT, "%s: tensor '%s' size %llu does not match its shape and type %s (%llu bytes)",
                             c->path, t->name, (unsigned long long)t->size, info->name,
                             (unsigned long long)want);
        if (offset < data_off || offset > data_off + data_size || t->size > data_off + data_size - offset)
            return clip_fail(CLIP_ERR_FORMAT, "%s: tensor '%s' offset past end of file", c->path,
                             t->name);
        if (offset % WF_ALIGN)
            return clip_fail(CLIP_ERR_FORMAT, "%s: tensor '%s' data is not %d-byte aligned",
                             c->path, t->name, WF_ALIGN);
        t->data = wf->map + offset;
    }
    /* No two tensors share a name or a byte. */
    wf_tensor **order = malloc(sizeof(wf_tensor *) * wf->n_tensors);
    if (!order) return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", c->path);
    for (uint32_t i = 0; i < wf->n_tensors; i++) order[i] = &wf->tensors[i];
    int rc = CLIP_OK;
    qsort(order, wf->n_tensors, sizeof *order, compare_names);
    for (uint32_t i = 1; i < wf->n_tensors && !rc; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0)
            rc = clip_fail(CLIP_ERR_FORMAT, "%s: tensor '%s' appears twice", c->path, order[i]->name);
    qsort(order, wf->n_tensors, sizeof *order, compare_offsets);
    for (uint32_t i = 1; i < wf->n_tensors && !rc; i++)
        if ((const uint8_t *)order[i - 1]->data + order[i - 1]->size > (const uint8_t *)order[i]->data)
            rc = clip_fail(CLIP_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", c->path,
                           order[i - 1]->name, order[i]->name);
    free(order);
    return rc;
}

/* ---- Open / close ------------------------------------------------------------------------- */
static int map_file(const char *path, weightfile *wf) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return clip_fail(CLIP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return clip_fail(CLIP_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size < HEADER_SIZE) {
        close(fd);
        return clip_fail(CLIP_ERR_FORMAT, "%s: too small to be a .clip weight file (%lld bytes)",
                         path, (long long)st.st_size);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return clip_fail(CLIP_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    /* Advice only: a file read from disk through this mapping goes into the page cache in
     * 2 MB folios, which this and later mappings map with one entry per 2 MB; the first
     * forward pass then takes ~150 page faults for a ViT-B's weights instead of ~5000. */
    madvise(map, (size_t)st.st_size, MADV_HUGEPAGE);
    wf->map = map;
    wf->map_size = (size_t)st.st_size;
    return CLIP_OK;
}

/* Check that a section [off, off+size) lies inside the file and return a cursor over it. */
static int section(weightfile *wf, const uint8_t *header_field, const char *name, cursor *c) {
    uint64_t off = read_u64_at(header_field), size = read_u64_at(header_field + 8);
    if (off < HEADER_SIZE || off > wf->map_size || size > wf->map_size - off)
        return clip_fail(CLIP_ERR_FORMAT, "%s: %s section (offset %llu, %llu bytes) lies outside the file (%zu bytes; truncated?)",
                         wf->path, name, (unsigned long long)off, (unsigned long long)size,
                         wf->map_size);
    *c = (cursor){wf->map + off, (size_t)size, wf->path, name, 0};
    return CLIP_OK;
}

int weightfile_open(const char *path, weightfile *wf) {
    memset(wf, 0, sizeof *wf);
    snprintf(wf->path, sizeof wf->path, "%s", path);
    int rc = map_file(path, wf);
    if (rc) return rc;
    const uint8_t *h = wf->map;
    if (memcmp(h, WF_MAGIC, 8) != 0) {
        rc = clip_fail(CLIP_ERR_FORMAT, "%s: not a .clip weight file (bad magic; convert checkpoints with tools/convert.py)",
                       path);
        goto fail;
    }
    uint32_t version = h[8] | h[9] << 8 | h[10] << 16 | (uint32_t)h[11] << 24;
    if (version != 1 && version != WF_VERSION) {
        rc = clip_fail(CLIP_ERR_FORMAT, "%s: format version %u, this build reads versions 1 and %d",
                       path, version, WF_VERSION);
        goto fail;
    }
    wf->version = version;
    cursor config_c, tok_c, dir_c, data_c;
    if ((rc = section(wf, h + 16, "config", &config_c)) || (rc = section(wf, h + 32, "tokenizer", &tok_c)) ||
        (rc = section(wf, h + 48, "tensor directory", &dir_c)) || (rc = section(wf, h + 64, "data", &data_c)))
        goto fail;
    uint64_t data_off = (uint64_t)(data_c.p - wf->map);
    if (data_off % WF_ALIGN) {
        rc = clip_fail(CLIP_ERR_FORMAT, "%s: data section is not %d-byte aligned", path, WF_ALIGN);
        goto fail;
    }
    /* Everything between the header's checksum field and the data is covered by it, so a
     * damaged file is refused here, before any of it is interpreted. */
    uint32_t stored = h[12] | h[13] << 8 | h[14] << 16 | (uint32_t)h[15] << 24;
    uint32_t actual = adler32(1, h + 16, (size_t)data_off - 16);
    if (stored != actual && !WF_SKIP_CHECKSUMS) {
        rc = clip_fail(CLIP_ERR_FORMAT, "%s: header checksum mismatch (stored %08x, computed %08x): the file is damaged or was not written completely",
                       path, stored, actual);
        goto fail;
    }
    if ((rc = parse_config(&config_c, &wf->config)) ||
        (rc = parse_tokenizer(&tok_c, &wf->config, &wf->tokenizer)) ||
        (rc = parse_directory(&dir_c, wf, data_off, data_c.left)) || (rc = check_work(wf)))
        goto fail;
    wf->config.sot_id = (int)wf->tokenizer.sot_id;
    wf->config.eot_id = (int)wf->tokenizer.eot_id;
    return CLIP_OK;
fail:
    weightfile_close(wf);
    return rc;
}

void weightfile_close(weightfile *wf) {
    if (wf->map) munmap((void *)wf->map, wf->map_size);
    free(wf->tokenizer.tokens);
    free(wf->tokenizer.token_lens);
    free(wf->tokenizer.merges);
    free(wf->tensors);
    char path[sizeof wf->path];
    memcpy(path, wf->path, sizeof path);
    memset(wf, 0, sizeof *wf);
    memcpy(wf->path, path, sizeof path);
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif

/* Half-precision values and the quantized types' f16 scales must be finite: a file written
 * with an infinite or NaN one (checksums match what was written) would give NaN embeddings.
 * f32 tensors are taken as they are, as always. Runs with the checksum, on the same pages. */
static int check_values(const weightfile *wf, const wf_tensor *t) {
    const uint32_t type = WF_TYPE(t->dtype);
    if (type == WF_F32) return CLIP_OK;
    const uint16_t *halves = t->data;
    const uint16_t exp_mask = type == WF_BF16 ? 0x7f80 : 0x7c00;   /* all ones: inf or NaN */
    size_t count = (size_t)t->size / 2, block = 0;
    if (type == WF_Q8_0 || type == WF_Q4_0) {    /* only the 16 scales opening each block */
        block = type == WF_Q8_0 ? sizeof(q8_0_block) : sizeof(q4_0_block);
        count = (size_t)t->size / block;
    }
    for (size_t i = 0; i < count; i++) {
        const uint16_t *h = block ? (const uint16_t *)((const char *)t->data + i * block) : halves + i;
        for (int f = 0; f < (block ? GEMM_PANEL : 1); f++)
            if ((h[f] & exp_mask) == exp_mask)
                return clip_fail(CLIP_ERR_FORMAT, "%s: tensor '%s' has an infinite or NaN %s at byte %zu: the file is damaged",
                                 wf->path, t->name, block ? "scale" : "value",
                                 (size_t)((const char *)&h[f] - (const char *)t->data));
    }
    return CLIP_OK;
}

int weightfile_verify_tensor(const weightfile *wf, const wf_tensor *t) {
    /* Map the tensor's pages in one call before reading them: for a file in the page
     * cache this is 2-3x cheaper than taking a page fault per 4 KB (or per fault-around
     * window), and setting up the page tables is most of what a first read costs. Advice
     * only: an older kernel refuses it and the reads fault as usual. */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t first = (uintptr_t)t->data & ~(page - 1), end = (uintptr_t)t->data + (size_t)t->size;
    if (t->size) madvise((void *)first, end - first, MADV_POPULATE_READ);
    uint32_t actual = adler32(1, t->data, (size_t)t->size);
    if (actual != t->checksum && !WF_SKIP_CHECKSUMS)
        return clip_fail(CLIP_ERR_FORMAT, "%s: tensor '%s' checksum mismatch (stored %08x, computed %08x): the file is damaged",
                         wf->path, t->name, t->checksum, actual);
    return check_values(wf, t);
}

void weightfile_drop_pages(const weightfile *wf, const wf_tensor *t) {
    (void)wf;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t first = ((uintptr_t)t->data + page - 1) & ~(page - 1);
    const uintptr_t end = ((uintptr_t)t->data + (size_t)t->size) & ~(page - 1);
    if (end > first) madvise((void *)first, end - first, MADV_DONTNEED);
}

const wf_tensor *weightfile_find(const weightfile *wf, const char *name) {
    for (uint32_t i = 0; i < wf->n_tensors; i++)
        if (strcmp(wf->tensors[i].name, name) == 0) return &wf->tensors[i];
    return NULL;
}
