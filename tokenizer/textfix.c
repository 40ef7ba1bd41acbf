/* textfix.c - ftfy.fix_text(text) as CLIP calls it (ftfy 6.3.1, default settings).
 *
 * The text is cut into segments that end after each '\n' (or after 1,000,000 code
 * points). Each segment is fixed on its own by this sequence, repeated until a round
 * changes nothing:
 *   1. HTML entities (ftfy's table, see html.c), unless this or an earlier segment
 *      contains '<';
 *   (2. the heuristic mojibake repair is not reproduced);
 *   3. C1 controls -> Windows-1252, Latin ligatures spelled out, fullwidth/halfwidth forms
 *      -> NFKC, curly quotes -> ASCII, line breaks -> '\n' (one pass, in that order);
 *   4. terminal escapes ESC [ (\d|;)* [A-Za-z] removed;
 *   5. control characters removed;
 *   6. NFC.
 * Most text needs none of it, so a segment is first scanned for any character a step
 * could touch (and NFC's quick check) and copied as it is when there is none.
 */
#include "textfix.h"

#include <string.h>

#include "html.h"

#define SEGMENT_MAX 1000000
/* Rounds of fixing a segment stop after this many code points of work. Only nested
 * references such as "&amp;amp;amp;..." need more than a few rounds (one per level), and
 * at this size Python's ftfy itself would run for hours, so no reference exists there. */
#define WORK_LIMIT ((size_t)1 << 28)

/* Windows-1252 for U+0080..U+009F (ftfy's "sloppy" codec: the five holes map to
 * themselves, i.e. stay C1 controls). */
static const uint16_t cp1252_c1[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
    0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

/* ftfy's LIGATURES: Latin ligatures and the legacy digraphs. */
static const struct {
    uint32_t from;
    uint32_t to[3];
} ligatures[] = {
    {0x0132, {'I', 'J'}}, {0x0133, {'i', 'j'}}, {0x0149, {0x02BC, 'n'}},
    {0x01C4, {'D', 0x017D}}, {0x01C5, {'D', 0x017E}}, {0x01C6, {'d', 0x017E}},
    {0x01C7, {'L', 'J'}}, {0x01C8, {'L', 'j'}}, {0x01C9, {'l', 'j'}},
    {0x01CA, {'N', 'J'}}, {0x01CB, {'N', 'j'}}, {0x01CC, {'n', 'j'}},
    {0x01F1, {'D', 'Z'}}, {0x01F2, {'D', 'z'}}, {0x01F3, {'d', 'z'}},
    {0xFB00, {'f', 'f'}}, {0xFB01, {'f', 'i'}}, {0xFB02, {'f', 'l'}},
    {0xFB03, {'f', 'f', 'i'}}, {0xFB04, {'f', 'f', 'l'}}, {0xFB05, {0x017F, 't'}},
    {0xFB06, {'s', 't'}},
};

static int is_ligature(uint32_t c) {
    return c == 0x132 || c == 0x133 || c == 0x149 || (c >= 0x1C4 && c <= 0x1CC) ||
           (c >= 0x1F1 && c <= 0x1F3) || (c >= 0xFB00 && c <= 0xFB06);
}
static int is_removed_control(uint32_t c) {
    return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
           (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

/* Could steps 3-5 change this character? (Entities and NFC are checked separately.)
 * Ordered so that common scripts leave after one or two comparisons. */
static int touchable(uint32_t c) {
    if (c < 0x80) return (c < 0x20 && c != '\t' && c != '\n' && c != '\f') || c == 0x7F;
    if (c < 0x2018) return c <= 0x9F || (c >= 0x132 && c <= 0x1F3 && is_ligature(c)) || c == 0x2BC;
    if (c <= 0x206F) return c <= 0x201F || c == 0x2028 || c == 0x2029 || c >= 0x206A;
    if (c < 0xFB00) return c == 0x3000;
    return c <= 0xFB06 || c == 0xFEFF || (c >= 0xFF01 && c <= 0xFFEF) || (c >= 0xFFF9 && c <= 0xFFFC);
}

/* Step 3 for one character, before line breaks: c1 -> ligatures -> width -> quotes. */
static unsigned map_char(uint32_t c, uint32_t out[3]) {
    unsigned n = 1;
    out[0] = c;
    if (c >= 0x80 && c <= 0x9F) out[0] = cp1252_c1[c - 0x80];
    if (is_ligature(out[0])) {
        for (size_t k = 0; k < sizeof ligatures / sizeof ligatures[0]; k++)
            if (ligatures[k].from == out[0]) {
                n = ligatures[k].to[2] ? 3 : 2;
                memcpy(out, ligatures[k].to, n * sizeof out[0]);
                break;
            }
    }
    for (unsigned i = 0; i < n; i++) {
        uint32_t x = out[i];
        if (x == 0x3000) {
            out[i] = ' ';
        } else if (x >= 0xFF01 && x <= 0xFFEF && uni_width_ff01[(x - 0xFF01) * 2]) {
            const uint32_t *w = &uni_width_ff01[(x - 0xFF01) * 2];
            out[i] = w[0];
            if (w[1]) { /* two code points: shift the rest right */
                memmove(&out[i + 2], &out[i + 1], (n - i - 1) * sizeof out[0]);
                out[++i] = w[1];
                n++;
            }
        }
    }
    for (unsigned i = 0; i < n; i++) {
        if (out[i] == 0x02BC || (out[i] >= 0x2018 && out[i] <= 0x201B)) out[i] = '\'';
        else if (out[i] >= 0x201C && out[i] <= 0x201F) out[i] = '"';
    }
    return n;
}

/* Step 3: mapping and line breaks. */
static int pass_map(const cpbuf *in, cpbuf *out, int *changed) {
    int rc = cpbuf_reserve(out, in->len * 3 + 1);
    if (rc) return rc;
    const uint32_t *s = in->cp;
    uint32_t *o = out->cp;
    size_t n = in->len;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c == '\r') {
            if (i + 1 < n && s[i + 1] == '\n') i++;
            *o++ = '\n';
            *changed = 1;
        } else if (c == 0x2028 || c == 0x2029) {
            *o++ = '\n';
            *changed = 1;
        } else if (c < 0x80 || !touchable(c)) {
            *o++ = c;
        } else {
            uint32_t m[4];
            unsigned k = map_char(c, m);
            if (k != 1 || m[0] != c) *changed = 1;
            for (unsigned t = 0; t < k; t++) *o++ = m[t];
        }
    }
    out->len = (size_t)(o - out->cp);
    return 0;
}

/* Step 4: ESC [ (\d|;)* [A-Za-z], \d being any Unicode decimal digit as in Python's re. */
static int pass_terminal_escapes(const cpbuf *in, cpbuf *out, int *changed) {
    int rc = cpbuf_reserve(out, in->len + 1);
    if (rc) return rc;
    const uint32_t *s = in->cp;
    size_t n = in->len, o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == 0x1B && i + 1 < n && s[i + 1] == '[') {
            size_t j = i + 2;
            while (j < n && (s[j] == ';' || (uni_flags(s[j]) & UNI_DECIMAL))) j++;
            if (j < n && (s[j] | 32) - 'a' < 26) {
                i = j;
                *changed = 1;
                continue;
            }
        }
        out->cp[o++] = s[i];
    }
    out->len = o;
    return 0;
}

/* Step 5. */
static int pass_controls(const cpbuf *in, cpbuf *out, int *changed) {
    int rc = cpbuf_reserve(out, in->len + 1);
    if (rc) return rc;
    size_t o = 0;
    for (size_t i = 0; i < in->len; i++) {
        if (is_removed_control(in->cp[i])) *changed = 1;
        else out->cp[o++] = in->cp[i];
    }
    out->len = o;
    return 0;
}

/* Fixes one segment (copied into s->a) until it stops changing; appends it to out. */
static int fix_segment(textfix_scratch *s, int unescape, cpbuf *out) {
    cpbuf *cur = &s->a, *next = &s->b, *tmp;
    int rc = 0;
    for (size_t work = 0; work < WORK_LIMIT; work += cur->len + 1) {
        int changed = 0, has_amp = 0, has_esc = 0;
        for (size_t i = 0; i < cur->len; i++) {
            has_amp |= cur->cp[i] == '&';
            has_esc |= cur->cp[i] == 0x1B;
        }
        if (unescape && has_amp) {
            next->len = 0;
            if ((rc = html_unescape_ftfy(cur->cp, cur->len, next, &changed))) return rc;
            tmp = cur, cur = next, next = tmp;
        }
        if ((rc = pass_map(cur, next, &changed))) return rc;
        tmp = cur, cur = next, next = tmp;
        if (has_esc) {
            if ((rc = pass_terminal_escapes(cur, next, &changed))) return rc;
            tmp = cur, cur = next, next = tmp;
        }
        if ((rc = pass_controls(cur, next, &changed))) return rc;
        tmp = cur, cur = next, next = tmp;
        if (!uni_nfc_quick_yes(cur->cp, cur->len)) {
            next->len = 0;
            if ((rc = uni_nfc(cur->cp, cur->len, next, &s->nfc))) return rc;
            if (next->len != cur->len || memcmp(next->cp, cur->cp, cur->len * sizeof *cur->cp))
                changed = 1;
            tmp = cur, cur = next, next = tmp;
        }
        if (!changed) break;
    }
    if (cur->len == 0) return 0; /* all removed (e.g. only control characters); out->cp may be NULL */
    if ((rc = cpbuf_reserve(out, out->len + cur->len))) return rc;
    memcpy(out->cp + out->len, cur->cp, cur->len * sizeof *cur->cp);
    out->len += cur->len;
    return 0;
}

int textfix_fix_text(const uint32_t *in, size_t n, cpbuf *out, textfix_scratch *s) {
    int unescape = 1, rc;
    size_t pos = 0;
    while (pos < n) {
        size_t end = pos;
        int has_lt = 0, has_amp = 0, touched = 0, nfc_maybe = 0;
        unsigned last_ccc = 0; /* NFC quick check, as uni_nfc_quick_yes */
        while (end < n && end - pos < SEGMENT_MAX) {
            uint32_t c = in[end++];
            has_lt |= c == '<';
            has_amp |= c == '&';
            touched |= touchable(c);
            if (c < 0x300) {
                last_ccc = 0;
            } else {
                const uni_record *r = uni_record_of(c);
                nfc_maybe |= (r->flags & UNI_NFC_QC_NOT_YES) || (r->ccc && r->ccc < last_ccc);
                last_ccc = r->ccc;
            }
            if (c == '\n') break;
        }
        if (has_lt) unescape = 0; /* for this segment and every later one */
        size_t len = end - pos;
        if (!touched && !(unescape && has_amp) && !nfc_maybe) {
            if ((rc = cpbuf_reserve(out, out->len + len))) return rc;
            memcpy(out->cp + out->len, in + pos, len * sizeof *in);
            out->len += len;
        } else {
            if ((rc = cpbuf_reserve(&s->a, len))) return rc;
            memcpy(s->a.cp, in + pos, len * sizeof *in);
            s->a.len = len;
            if ((rc = fix_segment(s, unescape, out))) return rc;
        }
        pos = end;
    }
    return 0;
}

void textfix_scratch_free(textfix_scratch *s) {
    cpbuf_free(&s->a);
    cpbuf_free(&s->b);
    cpbuf_free(&s->nfc);
}
