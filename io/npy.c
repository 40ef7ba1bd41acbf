/* npy.c - NumPy .npy reader and writer (see npy.h).
 *
 * Layout: "\x93NUMPY", major, minor, header length (u16 for 1.0, u32 for 2.0/3.0), then an
 * ASCII Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (3, 64, 64), }
 * padded with spaces and a newline, then the raw little-endian C-order data.
 */
#include "npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "error.h"

#define NPY_MAX_FILE (1ull << 34) /* 16 GiB: far beyond any tensor this project reads */

static size_t dtype_size(npy_dtype t) {
    switch (t) {
    case NPY_U8: return 1;
    case NPY_F32: case NPY_I32: return 4;
    case NPY_F64: case NPY_I64: return 8;
    }
    return 0;
}

/* Find `'key':` in the header dict and return the text after it, or NULL. */
static const char *dict_value(const char *header, const char *key) {
    char pattern[32];
    snprintf(pattern, sizeof pattern, "'%s'", key);
    const char *p = strstr(header, pattern);
    if (!p) {
        snprintf(pattern, sizeof pattern, "\"%s\"", key);
        p = strstr(header, pattern);
    }
    if (!p) return NULL;
    p += strlen(pattern);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static int parse_header(const char *header, const char *label, npy_array *out) {
    const char *descr = dict_value(header, "descr");
    if (!descr || (*descr != '\'' && *descr != '"'))
        return clip_fail(CLIP_ERR_FORMAT, "%s: .npy header has no 'descr'", label);
    static const struct { const char *name; npy_dtype type; } known[] = {
        {"<f4", NPY_F32}, {"<f8", NPY_F64}, {"|u1", NPY_U8}, {"<u1", NPY_U8},
        {"<i4", NPY_I32}, {"<i8", NPY_I64},
    };
    int found = 0;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        size_t n = strlen(known[i].name);
        if (strncmp(descr + 1, known[i].name, n) == 0 && descr[1 + n] == descr[0]) {
            out->dtype = known[i].type;
            found = 1;
        }
    }
    if (!found) {
        char shown[9]; /* the descr as found, control and non-ASCII bytes shown as '?' */
        size_t n = 0;
        for (; n < 8 && descr[n]; n++)
            shown[n] = descr[n] >= 0x20 && descr[n] < 0x7f ? descr[n] : '?';
        shown[n] = 0;
        return clip_fail(CLIP_ERR_FORMAT,
                         "%s: unsupported .npy dtype %s (need float32, float64, uint8, int32 or int64, little-endian)",
                         label, shown);
    }
    const char *order = dict_value(header, "fortran_order");
    if (!order || strncmp(order, "False", 5) != 0)
        return clip_fail(CLIP_ERR_FORMAT, "%s: .npy array is not in C order", label);
    const char *shape = dict_value(header, "shape");
    if (!shape || *shape != '(')
        return clip_fail(CLIP_ERR_FORMAT, "%s: .npy header has no 'shape'", label);
    shape++;
    out->n_dims = 0;
    size_t n_elems = 1;
    for (;;) {
        while (*shape == ' ' || *shape == ',') shape++;
        if (*shape == ')') break;
        if (*shape < '0' || *shape > '9' || out->n_dims == NPY_MAX_DIMS)
            return clip_fail(CLIP_ERR_FORMAT, "%s: bad .npy shape", label);
        char *end;
        errno = 0;
        unsigned long long dim = strtoull(shape, &end, 10);
        if (errno || dim > NPY_MAX_FILE || (dim && n_elems > NPY_MAX_FILE / dim))
            return clip_fail(CLIP_ERR_FORMAT, "%s: .npy shape too large", label);
        out->dims[out->n_dims++] = (int64_t)dim;
        n_elems *= dim;
        shape = end;
        while (*shape == ' ') shape++;
        if (*shape != ',' && *shape != ')')
            return clip_fail(CLIP_ERR_FORMAT, "%s: bad .npy shape", label);
    }
    out->n_elems = n_elems;
    return CLIP_OK;
}

int npy_read_memory(const void *bytes, size_t n_bytes, const char *label, npy_array *out) {
    const unsigned char *p = bytes;
    memset(out, 0, sizeof *out);
    if (n_bytes < 10 || memcmp(p, "\x93NUMPY", 6) != 0)
        return clip_fail(CLIP_ERR_FORMAT, "%s: not a .npy file", label);
    int major = p[6];
    size_t header_len, header_start;
    if (major == 1) {
        header_len = p[8] | (size_t)p[9] << 8;
        header_start = 10;
    } else if (major == 2 || major == 3) {
        if (n_bytes < 12) return clip_fail(CLIP_ERR_FORMAT, "%s: truncated .npy header", label);
        header_len = p[8] | (size_t)p[9] << 8 | (size_t)p[10] << 16 | (size_t)p[11] << 24;
        header_start = 12;
    } else {
        return clip_fail(CLIP_ERR_FORMAT, "%s: unsupported .npy version %d", label, major);
    }
    if (header_len > 65536 || header_start + header_len > n_bytes)
        return clip_fail(CLIP_ERR_FORMAT, "%s: truncated .npy header", label);
    char header[65537];
    memcpy(header, p + header_start, header_len);
    header[header_len] = 0;
    int rc = parse_header(header, label, out);
    if (rc) return rc;
    size_t data_bytes = out->n_elems * dtype_size(out->dtype);
    size_t data_start = header_start + header_len;
    if (n_bytes - data_start < data_bytes)
        return clip_fail(CLIP_ERR_FORMAT, "%s: .npy data truncated (%zu bytes, need %zu)", label,
                         n_bytes - data_start, data_bytes);
    out->data = malloc(data_bytes ? data_bytes : 1);
    if (!out->data) return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", label);
    memcpy(out->data, p + data_start, data_bytes);
    return CLIP_OK;
}

int npy_read(const char *path, npy_array *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return clip_fail(CLIP_ERR_IO, "%s: %s", path, strerror(errno));
    unsigned char *bytes = NULL;
    size_t n_bytes = 0;
    int rc = CLIP_OK;
    if (fseek(f, 0, SEEK_END) != 0) {
        rc = clip_fail(CLIP_ERR_IO, "%s: not a regular file", path);
    } else {
        long size = ftell(f);
        rewind(f);
        if (size < 0 || (unsigned long long)size > NPY_MAX_FILE) {
            rc = clip_fail(CLIP_ERR_IO, "%s: cannot read (size %ld)", path, size);
        } else {
            n_bytes = (size_t)size;
            bytes = malloc(n_bytes ? n_bytes : 1);
            if (!bytes) rc = clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", path);
            else if (fread(bytes, 1, n_bytes, f) != n_bytes)
                rc = clip_fail(CLIP_ERR_IO, "%s: read error", path);
        }
    }
    fclose(f);
    if (rc == CLIP_OK) rc = npy_read_memory(bytes, n_bytes, path, out);
    free(bytes);
    return rc;
}

void npy_free(npy_array *a) {
    free(a->data);
    a->data = NULL;
}

int npy_write_f32(const char *path, const float *data, int n_dims, const int64_t *dims) {
    char shape[256] = "";
    size_t n_elems = 1, used = 0;
    for (int i = 0; i < n_dims; i++) {
        used += snprintf(shape + used, sizeof shape - used, "%lld%s", (long long)dims[i],
                         n_dims == 1 ? "," : (i + 1 < n_dims ? ", " : ""));
        n_elems *= (size_t)dims[i];
    }
    char header[512];
    int len = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }",
                       shape);
    /* Pad with spaces so that magic + version + length + header + '\n' is a multiple of 64. */
    int total = 10 + len + 1;
    int pad = (64 - total % 64) % 64;
    memset(header + len, ' ', (size_t)pad);
    len += pad;
    header[len++] = '\n';

    atomic_file af;
    int rc = atomic_open(&af, path);
    if (rc) return rc;
    unsigned char preamble[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                  (unsigned char)(len & 0xff), (unsigned char)(len >> 8)};
    fwrite(preamble, 1, sizeof preamble, af.file);
    fwrite(header, 1, (size_t)len, af.file);
    fwrite(data, sizeof(float), n_elems, af.file); /* little-endian hosts only (x86, ARM) */
    return atomic_commit(&af);
}
