/* html.c - decoding HTML character references in code-point text.
 *
 * Two decoders with different rules over one generated table (html_entities.c):
 *   ftfy's unescape_html   regex &#?[0-9A-Za-z]{1,24};  -> ftfy's entity table, or a
 *                          numeric reference that html.unescape decodes completely;
 *   Python's html.unescape regex &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
 *                          -> exact name, else the longest known name that is a prefix.
 * Neither can make text longer (every reference is longer than its value), so output
 * space equal to the input length always suffices.
 */
#include "html.h"

#include <string.h>

static int is_digit(uint32_t c) { return c - '0' < 10; }
static int is_alnum(uint32_t c) { return is_digit(c) || (c | 32) - 'a' < 26; }
static int hex_value(uint32_t c) {
    if (is_digit(c)) return (int)(c - '0');
    if ((c | 32) - 'a' < 6) return (int)((c | 32) - 'a' + 10);
    return -1;
}

/* Binary search of the table sorted bytewise; `flag` selects the consumer. */
static const html_entity *lookup(const char *name, size_t len, unsigned flag) {
    size_t lo = 0, hi = html_entity_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const html_entity *e = &html_entities[mid];
        size_t m = len < e->len ? len : e->len;
        int cmp = memcmp(e->name, name, m);
        if (cmp == 0) cmp = (e->len > len) - (e->len < len);
        if (cmp == 0) return (e->flags & flag) ? e : NULL;
        if (cmp < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static int in_sorted(const uint32_t *table, size_t count, uint32_t key, size_t *at) {
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (table[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    *at = lo;
    return lo < count && table[lo] == key;
}

/* html.unescape's value of "&#<num>": writes 0 or 1 code points, returns the count.
 * `num` saturates above U+10FFFF, which decodes like any too-large number. */
static int numeric_value(uint32_t num, uint32_t *out) {
    size_t at;
    if (in_sorted(html_invalid_charref_from, html_invalid_charref_count, num, &at)) {
        *out = html_invalid_charref_to[at];
        return 1;
    }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
        *out = 0xFFFD;
        return 1;
    }
    if (in_sorted(html_invalid_codepoints, html_invalid_codepoint_count, num, &at)) return 0;
    *out = num;
    return 1;
}

static uint32_t accumulate(uint32_t num, int digit, int base) {
    uint64_t v = (uint64_t)num * (uint64_t)base + (uint64_t)digit;
    return v > 0x110000 ? 0x110000 : (uint32_t)v;
}

int html_unescape_ftfy(const uint32_t *in, size_t n, cpbuf *out, int *changed) {
    int rc = cpbuf_reserve(out, out->len + n);
    if (rc) return rc;
    uint32_t *o = out->cp + out->len;
    size_t i = 0;
    while (i < n) {
        if (in[i] != '&') {
            *o++ = in[i++];
            continue;
        }
        size_t j = i + 1;
        int numeric = j < n && in[j] == '#';
        if (numeric) j++;
        size_t k = j;
        while (k < n && k - j <= 24 && is_alnum(in[k])) k++;
        size_t run = k - j;
        if (run < 1 || run > 24 || k >= n || in[k] != ';') {
            *o++ = in[i++];
            continue;
        }
        /* A match "&[#]name;" spanning in[i..k]. */
        if (!numeric) {
            char name[26];
            for (size_t t = 0; t <= run; t++) name[t] = (char)in[j + t]; /* name and ';' */
            const html_entity *e = lookup(name, run + 1, HTML_FLAG_FTFY);
            if (e) {
                for (unsigned t = 0; t < e->n; t++) *o++ = e->value[t];
                *changed = 1;
                i = k + 1;
                continue;
            }
        } else {
            /* Kept only if html.unescape consumes everything up to the ';'. */
            uint32_t num = 0;
            int ok = 1;
            if (is_digit(in[j])) {
                for (size_t t = j; t < k && ok; t++)
                    if (is_digit(in[t])) num = accumulate(num, (int)(in[t] - '0'), 10);
                    else ok = 0;
            } else if ((in[j] | 32) == 'x' && run >= 2) {
                for (size_t t = j + 1; t < k && ok; t++)
                    if (hex_value(in[t]) >= 0) num = accumulate(num, hex_value(in[t]), 16);
                    else ok = 0;
            } else {
                ok = 0;
            }
            uint32_t value;
            if (ok && !(numeric_value(num, &value) == 1 && value == ';')) {
                if (numeric_value(num, &value) == 1) *o++ = value;
                *changed = 1;
                i = k + 1;
                continue;
            }
        }
        while (i <= k) *o++ = in[i++]; /* left as it was */
    }
    out->len = (size_t)(o - out->cp);
    return 0;
}

static int name_char(uint32_t c) {
    return !(c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' ||
             c == '#' || c == ';');
}

int html_unescape(const uint32_t *in, size_t n, cpbuf *out) {
    int rc = cpbuf_reserve(out, out->len + n);
    if (rc) return rc;
    uint32_t *o = out->cp + out->len;
    size_t i = 0;
    while (i < n) {
        if (in[i] != '&') {
            *o++ = in[i++];
            continue;
        }
        size_t j = i + 1;
        if (j < n && in[j] == '#') {
            size_t k = j + 1;
            uint32_t num = 0, value;
            if (k < n && is_digit(in[k])) {
                while (k < n && is_digit(in[k])) num = accumulate(num, (int)(in[k++] - '0'), 10);
            } else if (k + 1 < n && (in[k] | 32) == 'x' && hex_value(in[k + 1]) >= 0) {
                k++;
                while (k < n && hex_value(in[k]) >= 0) num = accumulate(num, hex_value(in[k++]), 16);
            } else {
                *o++ = in[i++]; /* '#' cannot start a name either */
                continue;
            }
            if (k < n && in[k] == ';') k++;
            if (numeric_value(num, &value)) *o++ = value;
            i = k;
            continue;
        }
        size_t k = j;
        while (k < n && k - j < 32 && name_char(in[k])) k++;
        if (k == j) {
            *o++ = in[i++];
            continue;
        }
        size_t end = k < n && in[k] == ';' ? k + 1 : k;
        size_t len = end - j;
        /* Names are ASCII; any other character stops a name matching past it. */
        char name[34];
        size_t ascii = 0;
        while (ascii < len && in[j + ascii] < 0x80) {
            name[ascii] = (char)in[j + ascii];
            ascii++;
        }
        const html_entity *e = ascii == len ? lookup(name, len, HTML_FLAG_HTML5) : NULL;
        size_t used = len;
        for (size_t x = len - 1; !e && x >= 2; x--)
            if (x <= ascii) {
                e = lookup(name, x, HTML_FLAG_HTML5);
                used = x;
            }
        if (e) {
            for (unsigned t = 0; t < e->n; t++) *o++ = e->value[t];
            i = j + used;
        } else {
            *o++ = in[i++];
        }
        /* Whatever follows the decoded name is plain text again, as in Python; it holds
         * no '&', so copying it through the loop above is the same. */
    }
    out->len = (size_t)(o - out->cp);
    return 0;
}
