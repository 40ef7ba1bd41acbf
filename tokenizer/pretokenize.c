/* pretokenize.c - splitting cleaned, lower-cased text into the words BPE sees.
 *
 * At each position the alternatives of the pattern are tried in order and the first that
 * matches wins; a character no alternative matches is skipped (findall semantics).
 * Character classes come from unicode.h (Unicode 15.0, as the regex module has them).
 *
 * IGNORECASE matters in three places only, all checked against the regex module:
 *   - 's' also matches U+017F LATIN SMALL LETTER LONG S (its case folding is 's'); lower()
 *     keeps U+017F, so "'ſ" is a contraction token and "<|ſtartoftext|>" matches the
 *     special pattern - but is not the special token, whose lookup is an exact string;
 *   - U+0345 folds to the letter iota: it is not a letter, and so is not matched by the
 *     negated class either (UNI_CLASS_NONE); it is dropped;
 *   - every other literal of the pattern only matches itself once the text is lower case.
 */
#include "pretokenize.h"

#include "unicode.h"

#define LONG_S 0x017F

/* Matches the literal `lit` at text[i..], letting 's' match U+017F; returns its length
 * or 0. *exact is cleared when a U+017F was used. */
static size_t match_literal(const uint32_t *text, size_t n, size_t i, const char *lit, int *exact) {
    size_t k = 0;
    for (; lit[k]; k++) {
        if (i + k >= n) return 0;
        uint32_t c = text[i + k];
        if (c == (unsigned char)lit[k]) continue;
        if (lit[k] == 's' && c == LONG_S) { *exact = 0; continue; }
        return 0;
    }
    return k;
}

static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};

int pretok_next(const uint32_t *text, size_t n, size_t *pos, size_t *start, size_t *end) {
    size_t i = *pos;
    while (i < n) {
        uint32_t c = text[i];
        size_t len;
        int exact = 1;
        if (c == '<') {
            if ((len = match_literal(text, n, i, "<|startoftext|>", &exact))) {
                *start = i, *end = *pos = i + len;
                return exact ? PRETOK_SOT : PRETOK_WORD;
            }
            if ((len = match_literal(text, n, i, "<|endoftext|>", &exact))) {
                *start = i, *end = *pos = i + len;
                return PRETOK_EOT;
            }
        } else if (c == '\'') {
            for (size_t k = 0; k < sizeof contractions / sizeof contractions[0]; k++) {
                if ((len = match_literal(text, n, i, contractions[k], &exact))) {
                    *start = i, *end = *pos = i + len;
                    return PRETOK_WORD;
                }
            }
        }
        unsigned cls = uni_class_fast(c);
        if (cls == UNI_CLASS_LETTER || cls == UNI_CLASS_OTHER) {
            size_t j = i + 1;
            if (cls == UNI_CLASS_LETTER)
                while (j < n && uni_class_fast(text[j]) == UNI_CLASS_LETTER) j++;
            else
                while (j < n && uni_class_fast(text[j]) == UNI_CLASS_OTHER) j++;
            *start = i, *end = *pos = j;
            return PRETOK_WORD;
        }
        if (cls == UNI_CLASS_NUMBER) {
            *start = i, *end = *pos = i + 1;
            return PRETOK_WORD;
        }
        i++; /* white space, or U+0345 */
    }
    *pos = n;
    return PRETOK_END;
}
