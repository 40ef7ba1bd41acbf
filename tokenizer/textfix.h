/* textfix.h - ftfy.fix_text with its default settings, without the mojibake heuristic.
 *
 * Works on code-point text (unicode.h). See textfix.c for the rules.
 */
#ifndef CLIP_TOKENIZER_TEXTFIX_H
#define CLIP_TOKENIZER_TEXTFIX_H

#include "unicode.h"

/* Working buffers, owned by the caller and reused across calls. */
typedef struct {
    cpbuf a, b, nfc;
} textfix_scratch;

/* Appends the fixed form of in[0..n) to out (out must not alias in). */
int textfix_fix_text(const uint32_t *in, size_t n, cpbuf *out, textfix_scratch *scratch);
void textfix_scratch_free(textfix_scratch *scratch);

#endif
