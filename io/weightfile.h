/* weightfile.h - read and validate a .clip weight file (format: docs/FORMAT.md).
 *
 * The file is memory-mapped; tensors point straight into the mapping. Everything is
 * checked before use: magic, version, section bounds, every string length and count,
 * every tensor's dtype, shape, offset, size and alignment, and the config's values.
 */
#ifndef CLIP_IO_WEIGHTFILE_H
#define CLIP_IO_WEIGHTFILE_H

#include <stddef.h>
#include <stdint.h>

#include "../model/clip.h"

#define WF_MAGIC "CLIPC\0\0\1"
#define WF_VERSION 2           /* written by tools/convert.py; version 1 files still load */
#define WF_ALIGN 64
#define WF_MAX_DIMS 4

/* A tensor's dtype: the element type in the low byte (the codes of gemm_type,
 * kernels/gemm.h), the layout in the next one (docs/FORMAT.md). */
enum { WF_F32 = 0, WF_F16 = 1, WF_BF16 = 2, WF_Q8_0 = 8, WF_Q4_0 = 9 };
/* Layouts: row-major; panels of 16 rows with k steps one after another (f32, f16, q8_0,
 * q4_0); panels of 16 rows with k in pairs (bf16, for vdpbf16ps: kernels/quant.h). */
enum { WF_ROWS = 0, WF_PANELS16 = 1, WF_PANELS16_PAIRS = 2 };
#define WF_TYPE(dtype) ((dtype) & 0xFFu)
#define WF_LAYOUT(dtype) (((dtype) >> 8) & 0xFFu)
/* The one panel layout of each element type. */
#define WF_PANEL_LAYOUT(type) ((unsigned)(type) == WF_BF16 ? WF_PANELS16_PAIRS : WF_PANELS16)

/* Fuzzing builds skip checksums, so that mutated files reach the structural checks. */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define WF_SKIP_CHECKSUMS 1
#else
#define WF_SKIP_CHECKSUMS 0
#endif

typedef struct {
    char name[128];
    uint32_t dtype;         /* WF_TYPE | WF_LAYOUT << 8 */
    uint32_t n_dims;
    uint64_t dims[WF_MAX_DIMS];
    const void *data;       /* inside the mapping, WF_ALIGN-aligned */
    uint64_t size;          /* bytes */
    uint32_t checksum;      /* Adler-32 of the data */
} wf_tensor;

typedef struct {
    uint32_t n_vocab, n_merges, sot_id, eot_id;
    const char **tokens;    /* [n_vocab], pointers into the mapping (not NUL-terminated) */
    uint32_t *token_lens;   /* [n_vocab] */
    uint32_t *merges;       /* [n_merges * 3]: left id, right id, merged id */
} wf_tokenizer;

typedef struct {
    char path[512];
    uint32_t version;       /* 1: every tensor row-major; 2: linear weights in panels */
    const uint8_t *map;
    size_t map_size;
    clip_config config;
    wf_tokenizer tokenizer;
    uint32_t n_tensors;
    wf_tensor *tensors;
    uint64_t n_params;      /* elements of every tensor (the bound of check_work) */
} weightfile;

int weightfile_open(const char *path, weightfile *wf);
void weightfile_close(weightfile *wf);
/* Check one tensor's data against its stored checksum (reads all of it). */
int weightfile_verify_tensor(const weightfile *wf, const wf_tensor *t);
/* NULL when absent. */
const wf_tensor *weightfile_find(const weightfile *wf, const char *name);
/* Advice: the caller will not read t's values again (it copied them), so the pages wholly
 * inside t leave this process's memory; a later read would bring them back from the page
 * cache. The mapping is private and read-only, so nothing can be lost. */
void weightfile_drop_pages(const weightfile *wf, const wf_tensor *t);

/* ---- Writing (io/weightfile_write.c) -------------------------------------------------
 * A new version-2 file with `src`'s config and tokenizer sections (copied byte for byte)
 * and the given tensors, each 64-byte aligned with its Adler-32, the header checksum over
 * everything but the data. Written through io/atomic.c (temp file + rename, or in place for
 * a device or FIFO, "-" for stdout). */
typedef struct {
    const char *name;
    uint32_t dtype;         /* WF_TYPE | WF_LAYOUT << 8 */
    uint32_t n_dims;
    uint64_t dims[WF_MAX_DIMS];
    const void *data;
    uint64_t size;          /* bytes */
} wf_out_tensor;
int weightfile_write(const char *path, const weightfile *src, const wf_out_tensor *tensors, uint32_t n_tensors);

#endif
