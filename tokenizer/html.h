/* html.h - HTML character references, as ftfy and Python's html.unescape decode them.
 *
 * Both work on code-point arrays (unicode.h) and append to an output buffer. The entity
 * table is generated from Python's html.entities.html5 (tools/gen_html_entities.py).
 */
#ifndef CLIP_TOKENIZER_HTML_H
#define CLIP_TOKENIZER_HTML_H

#include <stddef.h>
#include <stdint.h>

#include "unicode.h"

enum {
    HTML_FLAG_HTML5 = 1, /* a key of html.entities.html5 (html.unescape decodes it) */
    HTML_FLAG_FTFY = 2,  /* a key of ftfy's HTML_ENTITIES (without the leading '&') */
};

typedef struct {
    const char *name; /* e.g. "amp;", "amp", "EACUTE;" */
    uint8_t len;
    uint8_t flags;
    uint8_t n;        /* code points in the value */
    uint32_t value[3];
} html_entity;

extern const html_entity html_entities[];
extern const size_t html_entity_count;
extern const uint32_t html_invalid_charref_from[], html_invalid_charref_to[];
extern const size_t html_invalid_charref_count;
extern const uint32_t html_invalid_codepoints[];
extern const size_t html_invalid_codepoint_count;

/* ftfy.fixes.unescape_html: "&name;" from ftfy's table and numeric "&#...;" references of
 * at most 24 characters. Appends to out; *changed is set when something was decoded. */
int html_unescape_ftfy(const uint32_t *in, size_t n, cpbuf *out, int *changed);

/* Python's html.unescape (HTML5 rules, names with or without ';', numeric references with
 * Python's replacements for invalid code points). Appends to out. */
int html_unescape(const uint32_t *in, size_t n, cpbuf *out);

#endif
