/* weightfile_write.c - write a .clip file (docs/FORMAT.md, version 2) from tensors in memory,
 * keeping another file's config and tokenizer sections. `clip_run quantize` writes its
 * output with this; tools/convert.py is the other writer (tools/clipfile.py).
 *
 * Layout: header (80 bytes), config, tokenizer, directory, zero padding to 64, then each
 * tensor at the next multiple of 64. The header checksum covers bytes 16 .. data offset.
 */
#include "weightfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../kernels/kernels.h"
#include "atomic.h"
#include "error.h"

#define HEADER_SIZE 80

static uint64_t align64(uint64_t n) { return (n + WF_ALIGN - 1) / WF_ALIGN * WF_ALIGN; }

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
    return p + 4;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
    return p + 8;
}

/* The output reaches the file in whole 2 MiB blocks, each at a multiple of 2 MiB from where
 * the output starts (a new file: its start), the last excepted, as tools/clipfile.py's
 * BlockWriter hands them over and for the same reason: a file system with large folios
 * then caches the file in 2 MiB folios, which weightfile_open's mapping takes with one
 * page-table entry each instead of 512. */
#define OUT_BLOCK ((size_t)2 << 20)

typedef struct {
    int fd;
    uint8_t *block;         /* [OUT_BLOCK] */
    size_t used;
    int error;              /* errno of the first failed write, 0 while all went well */
} block_out;

static void out_flush(block_out *o) {
    for (size_t done = 0; !o->error && done < o->used;) {
        ssize_t n = write(o->fd, o->block + done, o->used - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) o->error = n < 0 ? errno : EIO;
        else done += (size_t)n;
    }
    o->used = 0;
}

/* data NULL: n zero bytes */
static void out_put(block_out *o, const void *data, uint64_t n) {
    const uint8_t *p = data;
    while (n > 0 && !o->error) {        /* after a failed write, nothing more to stage */
        size_t take = OUT_BLOCK - o->used < n ? OUT_BLOCK - o->used : (size_t)n;
        if (p) memcpy(o->block + o->used, p, take), p += take;
        else memset(o->block + o->used, 0, take);
        o->used += take;
        n -= take;
        if (o->used == OUT_BLOCK) out_flush(o);
    }
}

int weightfile_write(const char *path, const weightfile *src, const wf_out_tensor *tensors, uint32_t n_tensors) {
    /* The source's config and tokenizer sections, as its header places them (weightfile_open
     * checked that they lie inside the file). */
    const uint8_t *h = src->map;
    const uint64_t config_off = get_u64(h + 16), config_size = get_u64(h + 24);
    const uint64_t tok_off = get_u64(h + 32), tok_size = get_u64(h + 40);

    uint64_t dir_size = 4;
    for (uint32_t i = 0; i < n_tensors; i++)
        dir_size += 4 + strlen(tensors[i].name) + 8 + 8 * (uint64_t)tensors[i].n_dims + 20;
    const uint64_t new_config = HEADER_SIZE, new_tok = new_config + config_size;
    const uint64_t dir_off = new_tok + tok_size, data_off = align64(dir_off + dir_size);
    uint64_t cursor = data_off;
    uint64_t *offsets = malloc(sizeof(uint64_t) * (n_tensors ? n_tensors : 1));
    uint8_t *head = calloc(1, (size_t)data_off);          /* everything before the data */
    if (!offsets || !head) {
        free(offsets), free(head);
        return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", path);
    }
    for (uint32_t i = 0; i < n_tensors; i++) {
        cursor = align64(cursor);
        offsets[i] = cursor;
        cursor += tensors[i].size;
    }

    memcpy(head + new_config, src->map + config_off, (size_t)config_size);
    memcpy(head + new_tok, src->map + tok_off, (size_t)tok_size);
    uint8_t *p = put_u32(head + dir_off, n_tensors);
    for (uint32_t i = 0; i < n_tensors; i++) {
        const wf_out_tensor *t = &tensors[i];
        const uint32_t len = (uint32_t)strlen(t->name);
        p = put_u32(p, len);
        memcpy(p, t->name, len);
        p = put_u32(p + len, t->dtype);
        p = put_u32(p, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) p = put_u64(p, t->dims[d]);
        p = put_u64(p, offsets[i]);
        p = put_u64(p, t->size);
        p = put_u32(p, adler32(1, t->data, (size_t)t->size));
    }
    memcpy(head, WF_MAGIC, 8);
    put_u32(head + 8, WF_VERSION);
    uint8_t *q = head + 16;
    const uint64_t fields[8] = {new_config, config_size, new_tok, tok_size, dir_off, dir_size, data_off, cursor - data_off};
    for (int i = 0; i < 8; i++) q = put_u64(q, fields[i]);
    put_u32(head + 12, adler32(1, head + 16, (size_t)data_off - 16));

    block_out out = {.block = malloc(OUT_BLOCK)};
    if (!out.block) {
        free(offsets), free(head);
        return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", path);
    }
    atomic_file af;
    int rc = atomic_open(&af, path);
    if (rc == CLIP_OK) {
        /* nothing of ours is in the FILE's buffer; stdout's may hold others' output */
        out.error = fflush(af.file) == 0 ? 0 : (errno ? errno : EIO);
        out.fd = fileno(af.file);
        out_put(&out, head, data_off);
        uint64_t at = data_off;
        for (uint32_t i = 0; i < n_tensors; i++) {
            out_put(&out, NULL, offsets[i] - at);
            out_put(&out, tensors[i].data, tensors[i].size);
            at = offsets[i] + tensors[i].size;
        }
        out_flush(&out);
        if (out.error) {
            atomic_abort(&af);
            rc = clip_fail(CLIP_ERR_IO, "%s: write failed: %s", path, strerror(out.error));
        } else {
            rc = atomic_commit(&af);
        }
    }
    free(out.block), free(offsets), free(head);
    return rc;
}
