/* thumbnail.c - square JPEG thumbnails in memory (thumbnail.h). */
#include "thumbnail.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image_write.h>

#include "error.h"
#include "image.h"

typedef struct {
    unsigned char *data;
    size_t n, cap;
    int failed;
} membuf;

static void append(void *context, void *data, int size) {
    membuf *b = context;
    if (b->failed || size <= 0) return;
    if (b->n + (size_t)size > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + (size_t)size) cap *= 2;
        unsigned char *grown = realloc(b->data, cap);
        if (!grown) { b->failed = 1; return; }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->n, data, (size_t)size);
    b->n += (size_t)size;
}

int image_thumbnail_jpeg(const char *path, int side, unsigned char **jpeg, size_t *n) {
    *jpeg = NULL;
    *n = 0;
    if (side < 16 || side > 1024) return clip_fail(CLIP_ERR_ARG, "thumbnail side %d out of range", side);
    uint8_t *rgb = malloc((size_t)side * side * 3);
    if (!rgb) return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", path);
    int rc = image_load_crop(path, side, rgb);
    membuf b = {0};
    if (rc == CLIP_OK && (!stbi_write_jpg_to_func(append, &b, side, side, 3, rgb, 85) || b.failed))
        rc = clip_fail(CLIP_ERR_NOMEM, "%s: cannot encode the thumbnail", path);
    free(rgb);
    if (rc) { free(b.data); return rc; }
    *jpeg = b.data;
    *n = b.n;
    return CLIP_OK;
}

char *base64_encode(const unsigned char *data, size_t n) {
    static const char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out) return NULL;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
        *o++ = table[v >> 18];
        *o++ = table[v >> 12 & 63];
        *o++ = table[v >> 6 & 63];
        *o++ = table[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)data[i] << 16 | (i + 1 < n ? (uint32_t)data[i + 1] << 8 : 0);
        *o++ = table[v >> 18];
        *o++ = table[v >> 12 & 63];
        *o++ = i + 1 < n ? table[v >> 6 & 63] : '=';
        *o++ = '=';
    }
    *o = 0;
    return out;
}
