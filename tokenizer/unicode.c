/* unicode.c - code-point buffers, UTF-8 decoding, NFC and lower() over code-point arrays.
 *
 * Works on the tables of unicode_tables.c (see unicode.h). NFC is the textbook algorithm
 * (full canonical decomposition, canonical ordering, canonical composition with Hangul
 * done arithmetically) and matches Python 3.11's unicodedata.normalize('NFC').
 * lower() is Python's str.lower(): full lowercase mappings plus the final-sigma rule.
 */
#include "unicode.h"

#include <stdlib.h>
#include <string.h>

#include "../io/error.h"

int cpbuf_reserve(cpbuf *buf, size_t n) {
    if (n <= buf->cap) return 0;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < n) cap *= 2;
    uint32_t *p = realloc(buf->cp, cap * sizeof *p);
    if (!p) return clip_fail(CLIP_ERR_NOMEM, "tokenizer: out of memory for %zu code points", n);
    buf->cp = p;
    buf->cap = cap;
    return 0;
}

void cpbuf_free(cpbuf *buf) {
    free(buf->cp);
    buf->cp = NULL;
    buf->len = buf->cap = 0;
}

/* ---- UTF-8 ---------------------------------------------------------------------------- */

/* Python's decoder replaces the longest prefix of a valid sequence that cannot be
 * completed ("maximal subpart") by one U+FFFD, then resumes at the offending byte. The
 * valid range of the second byte depends on the lead byte (no overlongs, no surrogates,
 * nothing above U+10FFFF). */
int utf8_decode(const char *text, size_t len, cpbuf *out) {
    int rc = cpbuf_reserve(out, len + 1);
    if (rc) return rc;
    const unsigned char *s = (const unsigned char *)text;
    uint32_t *dst = out->cp;
    size_t i = 0, o = 0;
    while (i < len) {
        unsigned b = s[i];
        if (b < 0x80) {
            dst[o++] = b;
            i++;
            continue;
        }
        unsigned need, lo = 0x80, hi = 0xBF;
        uint32_t cp;
        if (b >= 0xC2 && b <= 0xDF) { need = 1; cp = b & 0x1F; }
        else if (b >= 0xE0 && b <= 0xEF) {
            need = 2; cp = b & 0x0F;
            if (b == 0xE0) lo = 0xA0;
            if (b == 0xED) hi = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            need = 3; cp = b & 0x07;
            if (b == 0xF0) lo = 0x90;
            if (b == 0xF4) hi = 0x8F;
        } else {
            dst[o++] = 0xFFFD;
            i++;
            continue;
        }
        size_t j = i + 1;
        unsigned k;
        for (k = 0; k < need; k++, j++) {
            if (j >= len) break;
            unsigned c = s[j];
            if (k == 0 ? (c < lo || c > hi) : (c < 0x80 || c > 0xBF)) break;
            cp = cp << 6 | (c & 0x3F);
        }
        dst[o++] = k == need ? cp : 0xFFFD;
        i = j;
    }
    out->len = o;
    return 0;
}

/* ---- NFC ------------------------------------------------------------------------------ */

enum {
    HANGUL_S = 0xAC00, HANGUL_L = 0x1100, HANGUL_V = 0x1161, HANGUL_T = 0x11A7,
    HANGUL_LCOUNT = 19, HANGUL_VCOUNT = 21, HANGUL_TCOUNT = 28,
    HANGUL_NCOUNT = HANGUL_VCOUNT * HANGUL_TCOUNT, HANGUL_SCOUNT = HANGUL_LCOUNT * HANGUL_NCOUNT,
};

int uni_nfc_quick_yes(const uint32_t *in, size_t n) {
    unsigned last_ccc = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] < 0x300) { /* nothing below U+0300 combines or is combined with */
            last_ccc = 0;
            continue;
        }
        const uni_record *r = uni_record_of(in[i]);
        if ((r->flags & UNI_NFC_QC_NOT_YES) || (r->ccc && r->ccc < last_ccc)) return 0;
        last_ccc = r->ccc;
    }
    return 1;
}

static const uint32_t *decomposition(uint32_t cp, unsigned *len) {
    size_t lo = 0, hi = uni_decomp_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (uni_decomp_cp[mid] < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo == uni_decomp_count || uni_decomp_cp[lo] != cp) return NULL;
    *len = uni_decomp_off[lo] & 7;
    return uni_decomp_pool + (uni_decomp_off[lo] >> 3);
}

/* The primary composite of (first, second), or 0. */
static uint32_t compose_pair(uint32_t first, uint32_t second) {
    if (first - HANGUL_L < HANGUL_LCOUNT && second - HANGUL_V < HANGUL_VCOUNT)
        return HANGUL_S + ((first - HANGUL_L) * HANGUL_VCOUNT + (second - HANGUL_V)) * HANGUL_TCOUNT;
    if (first - HANGUL_S < HANGUL_SCOUNT && (first - HANGUL_S) % HANGUL_TCOUNT == 0 &&
        second > HANGUL_T && second < HANGUL_T + HANGUL_TCOUNT)
        return first + (second - HANGUL_T);
    uint64_t key = (uint64_t)first << 21 | second;
    size_t lo = 0, hi = uni_comp_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (uni_comp_key[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    return lo < uni_comp_count && uni_comp_key[lo] == key ? uni_comp_val[lo] : 0;
}

static inline unsigned ccc_of(uint32_t c) { return c < 0x300 ? 0 : uni_ccc(c); }

/* Canonical ordering: each run of non-starters stably sorted by combining class. Short
 * runs (the normal case) by insertion; long ones by counting sort into `tmp`, so that a
 * megabyte of combining marks stays linear. */
static void canonical_order(uint32_t *d, size_t n, uint32_t *tmp) {
    size_t i = 0;
    while (i < n) {
        if (ccc_of(d[i]) == 0) {
            i++;
            continue;
        }
        size_t start = i;
        while (i < n && ccc_of(d[i]) != 0) i++;
        size_t len = i - start;
        uint32_t *run = d + start;
        if (len <= 16) {
            for (size_t k = 1; k < len; k++) {
                uint32_t c = run[k];
                unsigned cc = ccc_of(c);
                size_t at = k;
                while (at > 0 && ccc_of(run[at - 1]) > cc) {
                    run[at] = run[at - 1];
                    at--;
                }
                run[at] = c;
            }
        } else {
            size_t count[257] = {0};
            for (size_t k = 0; k < len; k++) count[ccc_of(run[k]) + 1]++;
            for (int c = 1; c < 257; c++) count[c] += count[c - 1];
            for (size_t k = 0; k < len; k++) tmp[count[ccc_of(run[k])]++] = run[k];
            memcpy(run, tmp, len * sizeof *run);
        }
    }
}

int uni_nfc(const uint32_t *in, size_t n, cpbuf *out, cpbuf *scratch) {
    int rc = cpbuf_reserve(scratch, n * UNI_MAX_DECOMP + 1);
    if (rc) return rc;
    rc = cpbuf_reserve(out, out->len + n * UNI_MAX_DECOMP + 1);
    if (rc) return rc;
    /* 1. Full canonical decomposition (Hangul syllables arithmetically). */
    uint32_t *d = scratch->cp;
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        if (c - HANGUL_S < HANGUL_SCOUNT) {
            uint32_t s = c - HANGUL_S;
            d[nd++] = HANGUL_L + s / HANGUL_NCOUNT;
            d[nd++] = HANGUL_V + (s % HANGUL_NCOUNT) / HANGUL_TCOUNT;
            if (s % HANGUL_TCOUNT) d[nd++] = HANGUL_T + s % HANGUL_TCOUNT;
        } else if (c >= 0xC0 && (uni_flags(c) & UNI_HAS_DECOMP)) {
            unsigned np = 0;
            const uint32_t *dec = decomposition(c, &np);
            if (!dec) d[nd++] = c; /* cannot happen with consistent tables */
            for (unsigned k = 0; dec && k < np; k++) d[nd++] = dec[k];
        } else {
            d[nd++] = c;
        }
    }
    /* 2. Canonical ordering, using the not yet written part of `out` as working space. */
    canonical_order(d, nd, out->cp + out->len);
    /* 3. Canonical composition: a character joins the last starter unless blocked by an
     *    uncomposed character in between of class 0 or of a class not below its own. */
    uint32_t *o = out->cp;
    size_t len = out->len;
    size_t starter = SIZE_MAX;
    unsigned last_ccc = 0;
    for (size_t i = 0; i < nd; i++) {
        uint32_t c = d[i];
        unsigned cc = ccc_of(c);
        if (starter != SIZE_MAX && (starter == len - 1 || (last_ccc && last_ccc < cc))) {
            uint32_t comp = compose_pair(o[starter], c);
            if (comp) {
                o[starter] = comp;
                continue;
            }
        }
        if (cc == 0) starter = len;
        last_ccc = cc;
        o[len++] = c;
    }
    out->len = len;
    return 0;
}

/* ---- lower() -------------------------------------------------------------------------- */

/* Python's handle_capital_sigma: U+03A3 becomes final sigma when a cased letter precedes
 * it and none follows, looking through case-ignorable characters on both sides. */
static uint32_t lower_sigma(const uint32_t *in, size_t n, size_t i) {
    size_t j = i;
    uint32_t c = 0;
    int found = 0;
    while (j > 0) {
        c = in[--j];
        if (!(uni_flags(c) & UNI_CASE_IGNORABLE)) { found = 1; break; }
    }
    int final = found && (uni_flags(c) & UNI_CASED);
    if (final) {
        for (j = i + 1; j < n; j++) {
            c = in[j];
            if (!(uni_flags(c) & UNI_CASE_IGNORABLE)) break;
        }
        final = j == n || !(uni_flags(c) & UNI_CASED);
    }
    return final ? 0x3C2 : 0x3C3;
}

int uni_lower(const uint32_t *in, size_t n, cpbuf *out) {
    if (n == 0) return 0; /* out->cp may still be NULL, and NULL + 0 is undefined */
    int rc = cpbuf_reserve(out, out->len + n * UNI_MAX_LOWER);
    if (rc) return rc;
    uint32_t *o = out->cp + out->len;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        if (c < 0x80) {
            *o++ = c - 'A' < 26 ? c + 32 : c;
            continue;
        }
        if (!(uni_flags(c) & UNI_HAS_LOWER)) {
            *o++ = c;
        } else if (c == 0x3A3) {
            *o++ = lower_sigma(in, n, i);
        } else {
            size_t lo = 0, hi = uni_lower_count;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (uni_lower_from[mid] < c) lo = mid + 1;
                else hi = mid;
            }
            if (lo < uni_lower_count && uni_lower_from[lo] == c) {
                *o++ = uni_lower_to[lo];
            } else {
                uint32_t mapped = c;
                for (size_t k = 0; k < uni_lower_multi_count; k++) {
                    if (uni_lower_multi[k].cp != c) continue;
                    for (uint32_t m = 0; m + 1 < uni_lower_multi[k].n; m++) *o++ = uni_lower_multi[k].to[m];
                    mapped = uni_lower_multi[k].to[uni_lower_multi[k].n - 1];
                }
                *o++ = mapped;
            }
        }
    }
    out->len = (size_t)(o - out->cp);
    return 0;
}
