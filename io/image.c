/* image.c - decode an image file and crop it to [size, size, 3] exactly as CLIP's reference does.
 *
 * The reference, clip.clip._transform(size) on Pillow 9.4, resizes in the image's own PIL
 * mode, so before resizing we work out which mode Pillow would open the file in:
 *   L     gray JPEG, gray PNG (2..16 bit), gray-palette BMP, GIF with a gray identity palette
 *   LA    gray + alpha PNG
 *   RGB   colour JPEG, RGB PNG (tRNS ignored), 16/24/32-bit BMP, PPM
 *   RGBA  RGBA PNG, 32-bit BMP with an alpha bit mask
 *   P     palette PNG, palette BMP, GIF        (resized NEAREST; tRNS ignored by convert)
 *   1     1-bit gray PNG, black/white BMP       (resized NEAREST)
 * stb_image decodes to 8-bit samples; we ask it for the channel count of that mode, so
 * alpha that Pillow ignores (RGB + tRNS, 32-bit BI_RGB BMP) is dropped. Palette images are
 * expanded by stb; nearest resizing of the colours equals nearest resizing of the indices.
 * GIF transparency and PGM/PPM maxval scaling are completed here as Pillow does them.
 *
 * Then (golden-tiny/README.md, "Preprocessing rules"):
 *   resized size: short side -> size, long side int(size * long / short);
 *   nothing is resampled when that equals the image's size;
 *   RGBA/LA are premultiplied, resampled, un-premultiplied; crop offsets use Python's
 *   round-half-even; only the cropped window is ever resampled (resample.c);
 *   convert("RGB"): gray replicated, alpha dropped.
 *
 * Known differences: 16-bit gray PNG/PGM is Pillow mode "I" (its convert("RGB") clips the
 * 16-bit values at 255, mostly white); we use the 8-bit gray value instead. CMYK JPEGs use
 * stb's CMYK -> RGB. JPEG pixels come from stb's IDCT, not libjpeg-turbo's (a few levels
 * off). A GIF whose first frame reaches outside its screen is refused (Pillow grows the
 * canvas). PBM and plain-text PGM/PPM (P1-P4) are not supported.
 */
#include "image.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STBI_NO_STDIO
#include <stb/stb_image.h>

#include "error.h"
#include "resample.h"

#define IMAGE_MAX_FILE_BYTES ((size_t)256 << 20)

typedef enum { FMT_JPEG, FMT_PNG, FMT_BMP, FMT_GIF, FMT_PNM, FMT_UNKNOWN } image_format;
typedef enum { MODE_L, MODE_LA, MODE_RGB, MODE_RGBA, MODE_P, MODE_1 } pil_mode;

static const char *format_name[] = {"JPEG", "PNG", "BMP", "GIF", "PNM", "?"};

/* What Pillow would see, and what we need to undo or complete in stb's output. */
typedef struct {
    pil_mode mode;
    int channels; /* samples per pixel requested from stb */
    /* PNM: sample maximum (Pillow rescales v -> round(v / maxval * 255) unless it is 255)
     * and where the raster starts. */
    int pnm_maxval;
    size_t pnm_data_at;
    /* GIF, first frame: where it is drawn and which colours Pillow shows where stb leaves
     * pixels transparent (stb skips transparent pixels; Pillow keeps their palette index). */
    int gif_x0, gif_y0, gif_x1, gif_y1;
    uint8_t gif_fill_rgb[3]; /* colour of the transparency index, or of index 0 without one */
} image_kind;

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }

static image_format sniff_format(const uint8_t *d, size_t n) {
    if (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) return FMT_PNG;
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) return FMT_JPEG;
    if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0)) return FMT_GIF;
    if (n >= 2 && d[0] == 'B' && d[1] == 'M') return FMT_BMP;
    if (n >= 2 && d[0] == 'P' && (d[1] == '5' || d[1] == '6')) return FMT_PNM;
    return FMT_UNKNOWN;
}

static void set_mode(image_kind *k, pil_mode mode) {
    static const int channels[] = {1, 2, 3, 4, 3, 1};
    k->mode = mode;
    k->channels = channels[mode];
}

/* PNG: the IHDR colour type and bit depth decide the mode. */
static int png_kind(const uint8_t *d, size_t n, const char *label, image_kind *k) {
    if (n < 26 || memcmp(d + 12, "IHDR", 4) != 0)
        return clip_fail(CLIP_ERR_IMAGE, "%s: PNG without an IHDR chunk", label);
    int depth = d[24], color_type = d[25];
    switch (color_type) {
    case 0: set_mode(k, depth == 1 ? MODE_1 : MODE_L); break;
    case 2: set_mode(k, MODE_RGB); break;
    case 3: set_mode(k, MODE_P); break;
    case 4: set_mode(k, MODE_LA); break;
    case 6: set_mode(k, MODE_RGBA); break;
    default: return clip_fail(CLIP_ERR_IMAGE, "%s: PNG colour type %d is invalid", label, color_type);
    }
    /* stb 2.27 computes NULL + 0 (undefined behaviour) for an empty IDAT chunk that comes
     * before any image data; such files are rare enough to refuse rather than hand to it. */
    for (uint64_t at = 8; at + 8 <= n;) {
        uint64_t len = (uint64_t)d[at] << 24 | (uint64_t)d[at + 1] << 16 | (uint64_t)d[at + 2] << 8 | d[at + 3];
        if (memcmp(d + at + 4, "IDAT", 4) == 0) {
            if (len == 0)
                return clip_fail(CLIP_ERR_IMAGE, "%s: PNG with an empty IDAT chunk before its image data (not supported)",
                                 label);
            break;
        }
        if (memcmp(d + at + 4, "IEND", 4) == 0) break;
        at += 12 + len;
    }
    return CLIP_OK;
}

/* BMP, following Pillow's BmpImagePlugin: palette images whose palette is the identity
 * gray ramp are "L" (or "1" with two colours), 32-bit images are RGBA only with an alpha
 * bit mask, everything else with more than 8 bits is RGB. */
static int bmp_kind(const uint8_t *d, size_t n, const char *label, image_kind *k) {
    if (n < 30) return clip_fail(CLIP_ERR_IMAGE, "%s: truncated BMP header", label);
    uint32_t header_size = le32(d + 14);
    int bits, palette_entry;
    uint32_t compression = 0, n_colors = 0, masks[4] = {0, 0, 0, 0};
    if (header_size == 12) { /* OS/2 1.x */
        bits = (int)le16(d + 24);
        palette_entry = 3;
    } else {
        if (n < 54) return clip_fail(CLIP_ERR_IMAGE, "%s: truncated BMP header", label);
        bits = (int)le16(d + 28);
        compression = le32(d + 30);
        n_colors = le32(d + 46);
        palette_entry = 4;
        if (compression == 3 && header_size >= 56 && n >= 70)
            for (int i = 0; i < 4; i++) masks[i] = le32(d + 54 + 4 * i);
    }

    /* stb 2.27 reads past the end of a short raster as zeros and reports success; Pillow
     * calls such a file truncated. Refuse it too (stb decodes only uncompressed and
     * bit-field rasters, rows padded to 4 bytes), which also keeps a tiny file from
     * making us decode a huge image of nothing. */
    uint64_t w = header_size == 12 ? le16(d + 18) : (uint64_t)labs((long)(int32_t)le32(d + 18));
    uint64_t h = header_size == 12 ? le16(d + 20) : (uint64_t)labs((long)(int32_t)le32(d + 22));
    uint64_t data_at = le32(d + 10), row_bytes = (w * (uint64_t)bits + 31) / 32 * 4;
    int raw = compression == 0 || compression == 3; /* stb refuses RLE and embedded JPEG/PNG */
    if (raw && bits > 0 && bits <= 32 && row_bytes && (data_at > n || (n - data_at) / row_bytes < h))
        return clip_fail(CLIP_ERR_IMAGE, "%s: truncated BMP (%llu x %llu pixels need %llu bytes of pixel data, the file has %llu)",
                         label, (unsigned long long)w, (unsigned long long)h,
                         (unsigned long long)(row_bytes * h),
                         (unsigned long long)(data_at > n ? 0 : n - data_at));

    if (bits <= 8) {
        uint64_t colors = n_colors ? n_colors : (1u << bits);
        uint64_t palette_at = 14 + (uint64_t)header_size;
        int gray = colors <= 65536;
        for (uint64_t i = 0; gray && i < colors; i++) {
            uint64_t at = palette_at + i * palette_entry;
            unsigned expect = colors == 2 ? (unsigned)(i ? 255 : 0) : (unsigned)i;
            if (at + 3 > n || d[at] != expect || d[at + 1] != expect || d[at + 2] != expect)
                gray = 0;
        }
        set_mode(k, gray ? (colors == 2 ? MODE_1 : MODE_L) : MODE_P);
    } else if (bits == 32 && compression == 3 &&
               (masks[3] != 0 || (masks[0] | masks[1] | masks[2]) == 0)) {
        set_mode(k, MODE_RGBA);
    } else {
        set_mode(k, MODE_RGB);
    }
    return CLIP_OK;
}

/* GIF: walk to the first image descriptor to learn the frame's palette, transparency
 * index and rectangle. Pillow (GifImagePlugin) opens frame 0 as "P", or as "L" when the
 * frame's palette is absent or the identity gray ramp; it fills the canvas with the
 * transparency index (or 0) before drawing the frame, and draws transparent pixels too. */
static int gif_palette_is_gray_ramp(const uint8_t *pal, int n_entries) {
    for (int i = 0; i < n_entries; i++)
        if (pal[3 * i] != i || pal[3 * i + 1] != i || pal[3 * i + 2] != i) return 0;
    return 1;
}

static void gif_color(const uint8_t *pal, int n_entries, int index, uint8_t rgb[3]) {
    if (!pal) {
        rgb[0] = rgb[1] = rgb[2] = (uint8_t)index;
    } else if (index < n_entries) {
        memcpy(rgb, pal + 3 * index, 3);
    } else {
        rgb[0] = rgb[1] = rgb[2] = 0;
    }
}

static int gif_kind(const uint8_t *d, size_t n, const char *label, image_kind *k) {
    const char *truncated = "%s: truncated GIF before the first image";
    if (n < 13) return clip_fail(CLIP_ERR_IMAGE, truncated, label);
    int screen_w = (int)le16(d + 6), screen_h = (int)le16(d + 8);
    const uint8_t *global = NULL;
    int n_global = 0;
    size_t at = 13;
    if (d[10] & 0x80) {
        n_global = 2 << (d[10] & 7);
        if (at + 3 * (size_t)n_global > n) return clip_fail(CLIP_ERR_IMAGE, truncated, label);
        global = d + at;
        at += 3 * (size_t)n_global;
    }
    int transparent = -1;
    for (;;) {
        if (at >= n) return clip_fail(CLIP_ERR_IMAGE, truncated, label);
        uint8_t tag = d[at++];
        if (tag == 0x21) { /* extension: label, then sub-blocks */
            if (at >= n) return clip_fail(CLIP_ERR_IMAGE, truncated, label);
            uint8_t ext = d[at++];
            int first_block = 1;
            for (;;) {
                if (at >= n) return clip_fail(CLIP_ERR_IMAGE, truncated, label);
                size_t len = d[at++];
                if (len == 0) break;
                if (at + len > n) return clip_fail(CLIP_ERR_IMAGE, truncated, label);
                if (ext == 0xF9 && first_block && len >= 4) /* graphic control */
                    transparent = (d[at] & 1) ? d[at + 3] : -1;
                first_block = 0;
                at += len;
            }
        } else if (tag == 0x2C) { /* image descriptor */
            if (at + 9 > n) return clip_fail(CLIP_ERR_IMAGE, truncated, label);
            int x0 = (int)le16(d + at), y0 = (int)le16(d + at + 2);
            int w = (int)le16(d + at + 4), h = (int)le16(d + at + 6);
            uint8_t flags = d[at + 8];
            at += 9;
            const uint8_t *pal = global;
            int n_pal = n_global;
            if (flags & 0x80) {
                n_pal = 2 << (flags & 7);
                if (at + 3 * (size_t)n_pal > n) return clip_fail(CLIP_ERR_IMAGE, truncated, label);
                pal = d + at;
            }
            if (pal && gif_palette_is_gray_ramp(pal, n_pal)) pal = NULL;
            set_mode(k, pal ? MODE_P : MODE_L);
            k->gif_x0 = x0 < screen_w ? x0 : screen_w;
            k->gif_y0 = y0 < screen_h ? y0 : screen_h;
            k->gif_x1 = x0 + w < screen_w ? x0 + w : screen_w;
            k->gif_y1 = y0 + h < screen_h ? y0 + h : screen_h;
            gif_color(pal, n_pal, transparent >= 0 ? transparent : 0, k->gif_fill_rgb);
            k->channels = 4; /* keep stb's alpha to find the transparent pixels */
            return CLIP_OK;
        } else {
            return clip_fail(CLIP_ERR_IMAGE, "%s: GIF has no image", label);
        }
    }
}

/* PNM (binary P5/P6) header: width, height, maxval, separated by whitespace and # comments;
 * the raster starts one byte after maxval. Returns 0 if the header is malformed. */
static int pnm_header(const uint8_t *d, size_t n, long values[3], size_t *data_at) {
    size_t at = 2;
    for (int v = 0; v < 3; v++) {
        for (;;) {
            while (at < n && (d[at] == ' ' || (d[at] >= '\t' && d[at] <= '\r'))) at++;
            if (at < n && d[at] == '#') {
                while (at < n && d[at] != '\n' && d[at] != '\r') at++;
            } else {
                break;
            }
        }
        if (at >= n || d[at] < '0' || d[at] > '9') return 0;
        long value = 0;
        while (at < n && d[at] >= '0' && d[at] <= '9' && value < 100000000)
            value = value * 10 + (d[at++] - '0');
        if (at < n && d[at] >= '0' && d[at] <= '9') return 0; /* 10+ digits overflow stb's int */
        values[v] = value;
    }
    *data_at = at + 1;
    return 1;
}

static int pnm_kind(const uint8_t *d, size_t n, const char *label, image_kind *k) {
    long values[3];
    size_t data_at;
    if (!pnm_header(d, n, values, &data_at))
        return clip_fail(CLIP_ERR_IMAGE, "%s: bad PGM/PPM header", label);
    if (values[2] < 1 || values[2] > 65535)
        return clip_fail(CLIP_ERR_IMAGE, "%s: PGM/PPM maximum value %ld is out of range", label,
                         values[2]);
    k->pnm_maxval = (int)values[2];
    k->pnm_data_at = data_at;
    set_mode(k, d[1] == '5' ? MODE_L : MODE_RGB);
    /* stb 2.27 does not notice a short raster and hands back uninitialised memory. */
    uint64_t need = (uint64_t)values[0] * (uint64_t)values[1] * (uint64_t)k->channels *
                    (k->pnm_maxval > 255 ? 2 : 1);
    if (data_at > n || n - data_at < need)
        return clip_fail(CLIP_ERR_IMAGE, "%s: truncated PGM/PPM (%zu of %llu raster bytes)", label,
                         data_at > n ? (size_t)0 : n - data_at, (unsigned long long)need);
    return CLIP_OK;
}

/* The size a header claims, read without stb: stbi_info also fails for images too large
 * for stb itself, and then cannot say why. Returns 0 if the size is not found. */
static int header_dimensions(image_format fmt, const uint8_t *d, size_t n, long *w, long *h) {
    switch (fmt) {
    case FMT_PNG:
        if (n < 24) return 0;
        *w = (long)((uint32_t)d[16] << 24 | (uint32_t)d[17] << 16 | (uint32_t)d[18] << 8 | d[19]);
        *h = (long)((uint32_t)d[20] << 24 | (uint32_t)d[21] << 16 | (uint32_t)d[22] << 8 | d[23]);
        return 1;
    case FMT_GIF:
        if (n < 10) return 0;
        *w = (long)le16(d + 6), *h = (long)le16(d + 8);
        return 1;
    case FMT_BMP:
        if (n < 26) return 0;
        if (le32(d + 14) == 12) {
            *w = (long)le16(d + 18), *h = (long)le16(d + 20);
        } else {
            *w = labs((long)(int32_t)le32(d + 18)), *h = labs((long)(int32_t)le32(d + 22));
        }
        return 1;
    case FMT_PNM: {
        long values[3];
        size_t data_at;
        if (!pnm_header(d, n, values, &data_at)) return 0;
        *w = values[0], *h = values[1];
        return 1;
    }
    case FMT_JPEG: { /* walk the marker segments to the frame header (SOF0..SOF15) */
        size_t at = 2;
        while (at + 1 < n) {
            if (d[at] != 0xFF) return 0;
            while (at < n && d[at] == 0xFF) at++;
            if (at >= n) return 0;
            uint8_t marker = d[at++];
            if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) continue;
            if (at + 2 > n || marker == 0xDA || marker == 0xD9) return 0;
            int is_frame = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 &&
                           marker != 0xCC;
            if (is_frame) {
                if (at + 7 > n) return 0;
                *h = (long)((unsigned)d[at + 3] << 8 | d[at + 4]);
                *w = (long)((unsigned)d[at + 5] << 8 | d[at + 6]);
                return 1;
            }
            at += (size_t)d[at] << 8 | d[at + 1];
        }
        return 0;
    }
    default: return 0;
    }
}

/* GIF: give the pixels stb left transparent the colour Pillow shows, then keep 3 channels
 * (P) or 1 (L). pixels: [h, w, 4] in, [h, w, 3 or 1] out (in place). */
static void gif_complete(uint8_t *pixels, int w, int h, image_kind *k) {
    int out_channels = k->mode == MODE_P ? 3 : 1;
    size_t o = 0;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            const uint8_t *p = pixels + ((size_t)y * w + x) * 4;
            int inside = x >= k->gif_x0 && x < k->gif_x1 && y >= k->gif_y0 && y < k->gif_y1;
            uint8_t rgb[3] = {p[0], p[1], p[2]};
            if (!inside || p[3] == 0) memcpy(rgb, k->gif_fill_rgb, 3);
            for (int c = 0; c < out_channels; c++) pixels[o++] = rgb[c];
        }
    }
    k->channels = out_channels;
}

/* Pillow's PPM decoder maps v to round(v / maxval * 255) (half to even), clipped. */
static uint8_t pnm_rescale(unsigned v, int maxval) {
    double r = nearbyint((double)v / maxval * 255.0);
    return r > 255.0 ? 255 : (uint8_t)r;
}

/* stb_image 2.27 (the libstb-dev this builds against) trusts a JPEG's Huffman tables:
 * a table whose 16 code counts sum to more than 256 makes it write past its tables; counts
 * that do not form a prefix code (more codes of length k than the 2^k left by the shorter
 * ones), or a scan using a table no DHT defined (stb does not clear its tables), make it
 * read past them or read uninitialised memory while decoding. libjpeg refuses all three;
 * so do we, before stb sees the file. Every FF C4 (DHT) and FF DA (SOS) marker is checked:
 * being stricter than stb's own parse position can only reject a file that carries an
 * impossible table or scan somewhere, never let one through. */
static int jpeg_huffman_tables_safe(const uint8_t *d, size_t n) {
    /* Which tables (DC 0-3, AC 0-3) a DHT has defined so far: stb does not clear its
     * tables, so a scan that uses one never defined decodes with uninitialised memory. */
    int defined[2][4] = {{0}};
    for (size_t i = 0; i + 1 < n; i++) {
        if (d[i] == 0xFF && d[i + 1] == 0xDA) { /* SOS: Ns, Ns x (id, Td << 4 | Ta), Ss, Se, Ah|Al */
            size_t at = i + 4;
            unsigned n_comps = at < n ? d[at] : 0;
            size_t params = at + 1 + 2 * (size_t)n_comps;
            if (n_comps == 0 || n_comps > 4 || params + 3 > n) continue; /* stb refuses these */
            int ss = d[params], se = d[params + 1], ah = d[params + 2] >> 4;
            for (unsigned c = 0; c < n_comps; c++) {
                int tables = d[at + 2 + 2 * c];
                int uses_dc = ss == 0 && ah == 0, uses_ac = se > 0;
                if ((uses_dc && ((tables >> 4) > 3 || !defined[0][tables >> 4])) ||
                    (uses_ac && ((tables & 15) > 3 || !defined[1][tables & 15])))
                    return 0;
            }
            continue;
        }
        if (d[i] != 0xFF || d[i + 1] != 0xC4) continue;
        size_t at = i + 2;
        if (at + 2 > n) break;
        long remaining = (long)((unsigned)d[at] << 8 | d[at + 1]) - 2;
        at += 2;
        while (remaining > 0) {
            uint8_t table_class_id = at < n ? d[at] : 0; /* stb reads 0 past the end */
            at++;
            if ((table_class_id >> 4) > 1 || (table_class_id & 15) > 3) break; /* stb stops */
            unsigned n_codes = 0;
            unsigned long next_code = 0; /* canonical code after those of length k */
            for (int k = 1; k <= 16; k++, at++) {
                unsigned count = at < n ? d[at] : 0;
                n_codes += count;
                next_code += count;
                if (next_code > (1ul << k)) return 0;
                next_code <<= 1;
            }
            if (n_codes > 256) return 0;
            defined[table_class_id >> 4][table_class_id & 15] = 1;
            at += n_codes;
            remaining -= 17 + (long)n_codes;
        }
    }
    return 1;
}

/* Big-endian 16-bit PNM samples [n_samples], rescaled to 8 bits; malloc'ed, NULL if out
 * of memory (the length was checked by pnm_kind). */
static uint8_t *pnm16_load(const uint8_t *raster, size_t n_samples, int maxval) {
    uint8_t *out = malloc(n_samples ? n_samples : 1);
    if (!out) return NULL;
    for (size_t i = 0; i < n_samples; i++)
        out[i] = pnm_rescale((unsigned)raster[2 * i] << 8 | raster[2 * i + 1], maxval);
    return out;
}

/* Python's int(round(x / 2)) for an integer x >= 0: half to even. */
static int center_offset(int excess) {
    int half = excess / 2;
    if (excess % 2 == 1 && half % 2 == 1) half++;
    return half;
}

/* MULDIV255 of Pillow's RGBA -> RGBa conversion. */
static inline uint8_t premultiply(unsigned c, unsigned a) {
    unsigned t = c * a + 128;
    return (uint8_t)((t + (t >> 8)) >> 8);
}

/* pixels [h, w, k->channels] in Pillow mode k->mode -> rgb_out [size, size, 3]. */
static int resize_crop_convert(uint8_t *pixels, int w, int h, const image_kind *k, int size,
                               const char *label, uint8_t *rgb_out) {
    int channels = k->channels;
    int short_side = w <= h ? w : h, long_side = w <= h ? h : w;
    int resized_long = (int)((double)((int64_t)size * long_side) / short_side);
    int resized_w = w <= h ? size : resized_long;
    int resized_h = w <= h ? resized_long : size;
    int left = center_offset(resized_w - size), top = center_offset(resized_h - size);
    int has_alpha = k->mode == MODE_LA || k->mode == MODE_RGBA;

    uint8_t *crop = malloc((size_t)size * size * channels); /* [size, size, channels] */
    if (!crop) return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory for a %d x %d crop", label, size, size);

    int rc = CLIP_OK;
    if (resized_w == w && resized_h == h) {
        /* Already the target size: Pillow returns a copy, no premultiply round trip. */
        for (int y = 0; y < size; y++)
            memcpy(crop + (size_t)y * size * channels,
                   pixels + ((size_t)(top + y) * w + left) * channels, (size_t)size * channels);
    } else if (k->mode == MODE_P || k->mode == MODE_1) {
        rc = resample_nearest_crop(pixels, w, h, channels, resized_w, resized_h, left, top, size,
                                   size, crop);
    } else {
        if (has_alpha) {
            size_t n_pixels = (size_t)w * h;
            for (size_t i = 0; i < n_pixels; i++) {
                uint8_t *p = pixels + i * channels, a = p[channels - 1];
                for (int c = 0; c < channels - 1; c++) p[c] = premultiply(p[c], a);
            }
        }
        rc = resample_bicubic_crop(pixels, w, h, channels, resized_w, resized_h, left, top, size,
                                   size, crop);
        if (rc == CLIP_OK && has_alpha) {
            /* Pillow's RGBa -> RGBA: c = c' for alpha 0 or 255, else min(255, 255 c' / a). */
            for (size_t i = 0; i < (size_t)size * size; i++) {
                uint8_t *p = crop + i * channels, a = p[channels - 1];
                if (a == 0 || a == 255) continue;
                for (int c = 0; c < channels - 1; c++) {
                    unsigned v = 255u * p[c] / a;
                    p[c] = v > 255 ? 255 : (uint8_t)v;
                }
            }
        }
    }
    if (rc != CLIP_OK) {
        free(crop);
        clip_error_prefix(label);
        return rc;
    }

    /* convert("RGB"): gray is replicated, alpha dropped. */
    for (size_t i = 0; i < (size_t)size * size; i++) {
        const uint8_t *p = crop + i * channels;
        uint8_t *q = rgb_out + i * 3;
        if (channels <= 2) {
            q[0] = q[1] = q[2] = p[0];
        } else {
            q[0] = p[0], q[1] = p[1], q[2] = p[2];
        }
    }
    free(crop);
    return CLIP_OK;
}

/* stb's failure reason, fit for a one-line message: stb 2.27 builds "XXXX PNG chunk not
 * known" from the file's own bytes, so control bytes and non-ASCII become '?'. */
static const char *stb_reason(const char *why, char out[48]) {
    if (!why) why = "unknown error";
    size_t n = 0;
    for (; n < 47 && why[n]; n++) out[n] = why[n] >= 0x20 && why[n] < 0x7f ? why[n] : '?';
    out[n] = 0;
    return out;
}

/* Does the file end as its format says a complete file ends? JPEG: the EOI marker (some
 * encoders pad after it, so look at the last bytes); PNG: an IEND chunk; GIF: the trailer. */
static int has_proper_end(const uint8_t *d, size_t n, image_format fmt) {
    if (fmt == FMT_JPEG) {
        for (size_t i = n >= 2 ? n - 2 : 0, k = 0; k < 64 && i + 1 < n; i--, k++) {
            if (d[i] == 0xFF && d[i + 1] == 0xD9) return 1;
            if (i == 0) break;
        }
        return 0;
    }
    if (fmt == FMT_PNG) return n >= 12 && memcmp(d + n - 8, "IEND", 4) == 0;
    if (fmt == FMT_GIF) return n >= 1 && d[n - 1] == 0x3B;
    return 1;
}

/* stb's reasons are terse ("outofdata") and, when it tries one format after another, may
 * come from the wrong one: a JPEG it failed to decode was reported as "bad png sig". Say
 * what is wrong with the file instead, keeping stb's reason only when it is about it. */
static int decode_failure(const uint8_t *d, size_t n, const char *label, image_format fmt, const char *why) {
    static const char *const probes[] = {"bad png sig", "not BMP", "not GIF", "not PSD", "not PIC",
                                         "not HDR", "not PNM", "bad SOI", "no SOI", "unknown image type"};
    static const struct { const char *stb, *says; } known[] = {
        {"outofdata", "the data ends early"}, {"bad huffman code", "bad Huffman code"},
        {"bad codelengths", "bad Huffman code lengths"}, {"bad zlib header", "bad zlib header"},
        {"bad compression", "bad compression data"}, {"bad IDAT", "bad image data"},
        {"no IDAT", "no image data (IDAT)"}, {"bad DQT", "bad quantization table"},
        {"bad DHT header", "bad Huffman table"}, {"expected marker", "a marker is missing"},
        {"bad DNL height", "bad line count"}, {"bad SOF len", "bad frame header"},
    };
    char shown[48];
    const char *reason = why ? why : "";
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++)
        if (strcmp(reason, probes[i]) == 0) reason = "";
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(reason, known[i].stb) == 0) reason = known[i].says;
    if (reason != why || !why) shown[0] = 0;
    const char *text = reason[0] ? (reason == why ? stb_reason(why, shown) : reason) : "";
    if (!has_proper_end(d, n, fmt))
        return clip_fail(CLIP_ERR_IMAGE, "%s: truncated %s: the file ends before the image does%s%s%s", label,
                         format_name[fmt], text[0] ? " (" : "", text, text[0] ? ")" : "");
    return clip_fail(CLIP_ERR_IMAGE, "%s: corrupt %s data%s%s", label, format_name[fmt], text[0] ? ": " : "",
                     text[0] ? text : "the decoder rejects it");
}

static int too_large(const char *label, image_format fmt, long w, long h) {
    return clip_fail(CLIP_ERR_IMAGE,
                     "%s: %s image of %ld x %ld is too large (limit %d pixels per side, %u in all)",
                     label, format_name[fmt], w, h, IMAGE_MAX_SIDE, IMAGE_MAX_PIXELS);
}

/* Sniff, check the size, classify and decode: *pixels_out [*h_out, *w_out, k->channels],
 * malloc'ed, in the Pillow mode k->mode. */
static int decode_image(const uint8_t *d, size_t n_bytes, const char *label, image_kind *k,
                        uint8_t **pixels_out, int *w_out, int *h_out) {
    image_format fmt = sniff_format(d, n_bytes);
    if (fmt == FMT_UNKNOWN)
        return clip_fail(CLIP_ERR_IMAGE, "%s: not a JPEG, PNG, BMP, GIF or binary PGM/PPM image", label);
    if (fmt == FMT_JPEG && !jpeg_huffman_tables_safe(d, n_bytes))
        return clip_fail(CLIP_ERR_IMAGE, "%s: corrupt JPEG (invalid or missing Huffman table)", label);

    /* stb 2.27 parses PNM numbers into an int without an overflow check: only a header
     * we can read ourselves (every number below 10 digits) is handed to it. */
    long pnm_values[3];
    size_t pnm_data_at;
    if (fmt == FMT_PNM && !pnm_header(d, n_bytes, pnm_values, &pnm_data_at))
        return clip_fail(CLIP_ERR_IMAGE, "%s: bad PGM/PPM header", label);

    /* Dimensions first: nothing large is allocated for an image we will refuse. */
    long claimed_w, claimed_h;
    if (header_dimensions(fmt, d, n_bytes, &claimed_w, &claimed_h) &&
        (claimed_w > IMAGE_MAX_SIDE || claimed_h > IMAGE_MAX_SIDE ||
         (uint64_t)claimed_w * (uint64_t)claimed_h > IMAGE_MAX_PIXELS))
        return too_large(label, fmt, claimed_w, claimed_h);
    int w = 0, h = 0, comp = 0;
    if (!stbi_info_from_memory(d, (int)n_bytes, &w, &h, &comp))
        return decode_failure(d, n_bytes, label, fmt, stbi_failure_reason());
    if (w <= 0 || h <= 0)
        return clip_fail(CLIP_ERR_IMAGE, "%s: %s image is empty (%d x %d)", label, format_name[fmt], w, h);
    if (w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || (uint64_t)w * h > IMAGE_MAX_PIXELS)
        return too_large(label, fmt, w, h);
    /* Every 8 x 8 block of a JPEG's full-resolution component costs at least one bit (a
     * Huffman code is 1 to 16 bits), so a file smaller than that is truncated. stb would
     * decode its missing blocks as flat gray (Pillow refuses), and a tiny file claiming
     * 8000 x 8000 pixels would cost seconds of decoding. */
    if (fmt == FMT_JPEG && ((uint64_t)w + 7) / 8 * (((uint64_t)h + 7) / 8) > (uint64_t)n_bytes * 8)
        return clip_fail(CLIP_ERR_IMAGE, "%s: truncated JPEG (%zu bytes cannot hold %d x %d pixels)",
                         label, n_bytes, w, h);

    memset(k, 0, sizeof *k);
    int rc = CLIP_OK;
    switch (fmt) {
    case FMT_PNG: rc = png_kind(d, n_bytes, label, k); break;
    case FMT_BMP: rc = bmp_kind(d, n_bytes, label, k); break;
    case FMT_GIF: rc = gif_kind(d, n_bytes, label, k); break;
    case FMT_PNM: rc = pnm_kind(d, n_bytes, label, k); break;
    default: set_mode(k, comp == 1 ? MODE_L : MODE_RGB); break;
    }
    if (rc != CLIP_OK) return rc;

    /* 16-bit PNM is read here: stb 2.27 returns its samples byte-swapped. */
    int pnm16 = fmt == FMT_PNM && k->pnm_maxval > 255;
    int dw = w, dh = h, dcomp = 0;
    uint8_t *pixels = pnm16 ? pnm16_load(d + k->pnm_data_at, (size_t)w * h * k->channels, k->pnm_maxval)
                            : stbi_load_from_memory(d, (int)n_bytes, &dw, &dh, &dcomp, k->channels);
    if (!pixels) {
        const char *why = pnm16 ? "outofmem" : stbi_failure_reason();
        if (why && strcmp(why, "outofmem") == 0)
            return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory decoding a %d x %d image", label, w, h);
        return decode_failure(d, n_bytes, label, fmt, why);
    }
    if (dw != w || dh != h) {
        free(pixels); /* stb allocates with plain malloc (STBI_MALLOC is not overridden) */
        return clip_fail(CLIP_ERR_IMAGE, "%s: %s header says %d x %d but the image is %d x %d",
                         label, format_name[fmt], w, h, dw, dh);
    }

    size_t n_samples = (size_t)w * h * k->channels;
    if (fmt == FMT_PNM && !pnm16 && k->pnm_maxval != 255)
        for (size_t i = 0; i < n_samples; i++) pixels[i] = pnm_rescale(pixels[i], k->pnm_maxval);
    if (fmt == FMT_GIF) gif_complete(pixels, w, h, k);

    *pixels_out = pixels;
    *w_out = w;
    *h_out = h;
    return CLIP_OK;
}

int image_load_crop_memory(const void *data, size_t n_bytes, const char *label, int size,
                           uint8_t *rgb_out) {
    if (!label) label = "<image>";
    if (size <= 0 || size > IMAGE_MAX_SIDE || !rgb_out)
        return clip_fail(CLIP_ERR_ARG, "%s: invalid crop size %d", label, size);
    if (!data || n_bytes == 0) return clip_fail(CLIP_ERR_IMAGE, "%s: empty image file", label);
    if (n_bytes > IMAGE_MAX_FILE_BYTES || n_bytes > INT_MAX)
        return clip_fail(CLIP_ERR_IMAGE, "%s: image file is larger than %zu MiB", label,
                         IMAGE_MAX_FILE_BYTES >> 20);

    image_kind k;
    uint8_t *pixels = NULL;
    int w = 0, h = 0;
    int rc = decode_image(data, n_bytes, label, &k, &pixels, &w, &h);
    if (rc != CLIP_OK) return rc;
    rc = resize_crop_convert(pixels, w, h, &k, size, label, rgb_out);
    free(pixels);
    return rc;
}

/* The whole file, at most IMAGE_MAX_FILE_BYTES. Works for pipes too. */
static int read_file(const char *path, uint8_t **out, size_t *n_out) {
    FILE *f = fopen(path, "rb");
    if (!f) return clip_fail(CLIP_ERR_IO, "%s: cannot open image: %s", path, strerror(errno));
    struct stat st;
    size_t cap = 1 << 16;
    if (fstat(fileno(f), &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            fclose(f);
            return clip_fail(CLIP_ERR_IO, "%s: is a directory, not an image", path);
        }
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > IMAGE_MAX_FILE_BYTES) {
            fclose(f);
            return clip_fail(CLIP_ERR_IMAGE, "%s: image file is larger than %zu MiB", path,
                             IMAGE_MAX_FILE_BYTES >> 20);
        }
        if (S_ISREG(st.st_mode)) cap = (size_t)st.st_size + 1; /* +1 sees EOF in one read */
    }
    uint8_t *buf = malloc(cap);
    size_t n = 0;
    for (;;) {
        if (!buf) {
            fclose(f);
            return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory reading the image", path);
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        if (cap > IMAGE_MAX_FILE_BYTES) {
            free(buf);
            fclose(f);
            return clip_fail(CLIP_ERR_IMAGE, "%s: image file is larger than %zu MiB", path,
                             IMAGE_MAX_FILE_BYTES >> 20);
        }
        cap *= 2;
        uint8_t *grown = realloc(buf, cap);
        if (!grown) free(buf);
        buf = grown;
    }
    if (ferror(f)) {
        int err = errno;
        free(buf);
        fclose(f);
        return clip_fail(CLIP_ERR_IO, "%s: cannot read image: %s", path, strerror(err));
    }
    fclose(f);
    *out = buf;
    *n_out = n;
    return CLIP_OK;
}

int image_load_crop(const char *path, int size, uint8_t *rgb_out) {
    if (!path) return clip_fail(CLIP_ERR_ARG, "image path is NULL");
    uint8_t *data = NULL;
    size_t n = 0;
    int rc = read_file(path, &data, &n);
    if (rc != CLIP_OK) return rc;
    rc = image_load_crop_memory(data, n, path, size, rgb_out);
    free(data);
    return rc;
}

void image_normalize(const uint8_t *rgb, int size, const float mean[3], const float std[3],
                     float *chw_out) {
    /* ToTensor divides by 255 in float32, Normalize subtracts and divides in float32;
     * the same operations in the same order give the same bits. */
    size_t plane = (size_t)size * size;
    for (int c = 0; c < 3; c++) {
        float m = mean[c], s = std[c];
        float *out = chw_out + c * plane;
        for (size_t i = 0; i < plane; i++) out[i] = ((float)rgb[i * 3 + c] / 255.0f - m) / s;
    }
}
