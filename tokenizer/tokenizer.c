/* tokenizer.c - CLIP's tokenizer: the vocabulary checks and the encode pipeline.
 *
 *   bytes --utf8_decode--> code points --textfix (ftfy)--> --html_unescape x2-->
 *   --strip, collapse white space, strip--> --lower()--> --pretok_next--> words
 *   --UTF-8, bpe_word--> ids --> [sot, ids..., eot, 0...]
 *
 * Text stages ping-pong between two code-point buffers owned by the tokenizer, so an
 * encode call allocates only when its text is longer than any before.
 */
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "../io/error.h"
#include "bpe.h"
#include "html.h"
#include "pretokenize.h"
#include "textfix.h"
#include "unicode.h"

/* Word positions are int32 in bpe.c and buffers hold up to 4 code points per byte. */
#define MAX_TEXT_BYTES (1u << 28)

struct clip_tokenizer {
    uint32_t n_vocab, sot_id, eot_id;
    bpe_model bpe;
    cpbuf buf[2];
    textfix_scratch fix;
    unsigned char *word;  /* UTF-8 of the current pre-token */
    size_t word_cap;
};

/* ---- construction --------------------------------------------------------------------- */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68
 * bytes map to U+0100.. in byte order. */
static uint32_t byte_symbol(unsigned b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE)) return b;
    unsigned k = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE))) k++;
    return 256 + k;
}

/* A string -> id table used while building: the last id of a string wins, as in the
 * reference's dict(zip(vocab, range(len(vocab)))). */
typedef struct {
    uint32_t *slot; /* id + 1, 0 = empty */
    size_t mask;
    const tokenizer_vocab *v;
} string_index;

static uint32_t hash_str(const char *s, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static uint32_t *index_find(string_index *ix, const char *s, size_t len) {
    size_t h = hash_str(s, len) & ix->mask;
    for (;; h = (h + 1) & ix->mask) {
        uint32_t e = ix->slot[h];
        if (!e) return &ix->slot[h];
        uint32_t id = e - 1;
        if (ix->v->token_lens[id] == len && (len == 0 || memcmp(ix->v->tokens[id], s, len) == 0))
            return &ix->slot[h];
    }
}

static int index_lookup(string_index *ix, const char *s, size_t len, uint32_t *id) {
    uint32_t e = *index_find(ix, s, len);
    if (!e) return 0;
    *id = e - 1;
    return 1;
}

/* merges: room for the merges over canonical ids; canonical: n_vocab ids (scratch). */
static int build(clip_tokenizer *tok, const tokenizer_vocab *v, string_index *ix, uint32_t *merges,
                 uint32_t *canonical) {
    size_t cap = 16;
    while (cap < (size_t)v->n_vocab * 2) cap *= 2;
    ix->slot = calloc(cap, sizeof *ix->slot);
    if (!ix->slot) return clip_fail(CLIP_ERR_NOMEM, "tokenizer: out of memory for the vocabulary");
    ix->mask = cap - 1;
    ix->v = v;
    /* canonical[id]: the id its string maps to, the last one spelling it. A process that
     * embeds one text spends much of its start-up here, so each string is looked up once:
     * a later id that finds its string taken points the earlier one at itself, and the
     * backward pass below follows such chains to their last id. */
    for (uint32_t id = 0; id < v->n_vocab; id++) {
        if (!v->tokens[id] && v->token_lens[id])
            return clip_fail(CLIP_ERR_FORMAT, "tokenizer: token %u has no string", id);
        uint32_t *slot = index_find(ix, v->tokens[id], v->token_lens[id]);
        if (*slot) canonical[*slot - 1] = id;
        *slot = id + 1;
        canonical[id] = id;
    }
    for (uint32_t id = v->n_vocab; id-- > 0;) canonical[id] = canonical[canonical[id]];  /* later ids final */
    for (unsigned b = 0; b < 256; b++) {
        char s[8];
        unsigned char u8[4];
        int n = utf8_put(byte_symbol(b), u8);
        memcpy(s, u8, (size_t)n);
        if (!index_lookup(ix, s, (size_t)n, &tok->bpe.byte_id[b]))
            return clip_fail(CLIP_ERR_FORMAT, "tokenizer: vocabulary lacks the symbol of byte 0x%02X", b);
        memcpy(s + n, "</w>", 4);
        if (!index_lookup(ix, s, (size_t)n + 4, &tok->bpe.byte_end_id[b]))
            return clip_fail(CLIP_ERR_FORMAT, "tokenizer: vocabulary lacks the word-end symbol of byte 0x%02X", b);
    }
    /* Merges over canonical ids, checked to spell left+right. */
    for (uint32_t r = 0; r < v->n_merges; r++) {
        uint32_t ids[3];
        for (int k = 0; k < 3; k++) {
            ids[k] = v->merges[3 * r + k];
            if (ids[k] >= v->n_vocab)
                return clip_fail(CLIP_ERR_FORMAT, "tokenizer: merge %u refers to id %u >= n_vocab %u", r, ids[k],
                                 v->n_vocab);
        }
        size_t ll = v->token_lens[ids[0]], rl = v->token_lens[ids[1]];
        if (ll == 0 || rl == 0 || v->token_lens[ids[2]] != ll + rl ||
            memcmp(v->tokens[ids[2]], v->tokens[ids[0]], ll) != 0 ||
            memcmp(v->tokens[ids[2]] + ll, v->tokens[ids[1]], rl) != 0)
            return clip_fail(CLIP_ERR_FORMAT, "tokenizer: merge %u: token %u is not tokens %u + %u", r, ids[2],
                             ids[0], ids[1]);
        for (int k = 0; k < 3; k++) merges[3 * r + k] = canonical[ids[k]];
    }
    return bpe_init(&tok->bpe, merges, v->n_merges);
}

int tokenizer_new(const tokenizer_vocab *v, clip_tokenizer **out) {
    if (!out) return clip_fail(CLIP_ERR_ARG, "tokenizer_new: no output pointer");
    *out = NULL;
    if (!v || !v->tokens || !v->token_lens || (v->n_merges && !v->merges))
        return clip_fail(CLIP_ERR_ARG, "tokenizer_new: incomplete vocabulary");
    if (v->n_vocab < 512 || v->n_vocab > INT32_MAX || v->sot_id >= v->n_vocab || v->eot_id >= v->n_vocab)
        return clip_fail(CLIP_ERR_FORMAT, "tokenizer: n_vocab %u, sot %u, eot %u out of range", v->n_vocab,
                         v->sot_id, v->eot_id);
    clip_tokenizer *tok = calloc(1, sizeof *tok);
    string_index ix = {0};
    uint32_t *merges = malloc(((size_t)v->n_merges * 3 + 1) * sizeof *merges);
    uint32_t *canonical = malloc((size_t)v->n_vocab * sizeof *canonical);
    int rc = (!tok || !merges || !canonical) ? clip_fail(CLIP_ERR_NOMEM, "tokenizer: out of memory") : 0;
    if (!rc) {
        tok->n_vocab = v->n_vocab;
        tok->sot_id = v->sot_id;
        tok->eot_id = v->eot_id;
        rc = build(tok, v, &ix, merges, canonical);
    }
    free(ix.slot);
    free(merges);
    free(canonical);
    if (rc) {
        tokenizer_free(tok);
        return rc;
    }
    *out = tok;
    return 0;
}

void tokenizer_free(clip_tokenizer *tok) {
    if (!tok) return;
    bpe_free(&tok->bpe);
    cpbuf_free(&tok->buf[0]);
    cpbuf_free(&tok->buf[1]);
    textfix_scratch_free(&tok->fix);
    free(tok->word);
    free(tok);
}

/* ---- encoding ------------------------------------------------------------------------- */

static int contains(const cpbuf *b, uint32_t c) {
    for (size_t i = 0; i < b->len; i++)
        if (b->cp[i] == c) return 1;
    return 0;
}

/* strip(), then every run of \s becomes one space (the runs inside are all that is left
 * after strip; the second strip() of the reference then has nothing to remove). */
static int clean_whitespace(const cpbuf *in, cpbuf *out) {
    int rc = cpbuf_reserve(out, in->len + 1);
    if (rc) return rc;
    size_t a = 0, b = in->len, o = 0;
    while (a < b && (uni_flags(in->cp[a]) & UNI_PY_SPACE)) a++;
    while (b > a && (uni_flags(in->cp[b - 1]) & UNI_PY_SPACE)) b--;
    for (size_t i = a; i < b; i++) {
        uint32_t c = in->cp[i];
        if (uni_class_fast(c) == UNI_CLASS_SPACE) {
            while (i + 1 < b && uni_class_fast(in->cp[i + 1]) == UNI_CLASS_SPACE) i++;
            c = ' ';
        }
        out->cp[o++] = c;
    }
    out->len = o;
    return 0;
}

/* Runs the text stages; returns the index of the buffer holding the lower-cased text. */
static int clean_text(clip_tokenizer *tok, const char *text, size_t len, int *which) {
    cpbuf *a = &tok->buf[0], *b = &tok->buf[1];
    int rc = utf8_decode(text, len, a);
    if (rc) return rc;
    b->len = 0;
    if ((rc = textfix_fix_text(a->cp, a->len, b, &tok->fix))) return rc;
    for (int k = 0; k < 2; k++) { /* basic_clean: html.unescape(html.unescape(text)) */
        if (!contains(b, '&')) break;
        a->len = 0;
        if ((rc = html_unescape(b->cp, b->len, a))) return rc;
        cpbuf *t = a;
        a = b, b = t;
    }
    if ((rc = clean_whitespace(b, a))) return rc;
    b->len = 0;
    if ((rc = uni_lower(a->cp, a->len, b))) return rc;
    *which = b == &tok->buf[0] ? 0 : 1;
    return 0;
}

int tokenizer_encode(clip_tokenizer *tok, const char *text, size_t len, int32_t *ids, int context_len) {
    return tokenizer_encode_check(tok, text, len, ids, context_len, NULL);
}

int tokenizer_encode_check(clip_tokenizer *tok, const char *text, size_t len, int32_t *ids, int context_len,
                           int *truncated) {
    if (truncated) *truncated = 0;
    if (!tok || !ids || (!text && len)) return clip_fail(CLIP_ERR_ARG, "tokenizer_encode: null argument");
    if (context_len < 2) return clip_fail(CLIP_ERR_ARG, "tokenizer_encode: context length %d < 2", context_len);
    if (len > MAX_TEXT_BYTES)
        return clip_fail(CLIP_ERR_ARG, "tokenizer_encode: text of %zu bytes is longer than %u", len, MAX_TEXT_BYTES);
    int which, rc = clean_text(tok, text ? text : "", len, &which);
    if (rc) return rc;
    const cpbuf *clean = &tok->buf[which];

    /* Only the first context_len - 2 tokens can appear in the output, so stop there. */
    size_t max_tokens = (size_t)context_len - 2, n_tokens = 0, pos = 0, start, end;
    int32_t *tokens = ids + 1;
    int kind;
    while (n_tokens < max_tokens && (kind = pretok_next(clean->cp, clean->len, &pos, &start, &end))) {
        if (kind != PRETOK_WORD) {
            tokens[n_tokens++] = (int32_t)(kind == PRETOK_SOT ? tok->sot_id : tok->eot_id);
            continue;
        }
        size_t need = (end - start) * 4;
        if (need > tok->word_cap) {
            size_t cap = tok->word_cap ? tok->word_cap : 256;
            while (cap < need) cap *= 2;
            unsigned char *w = realloc(tok->word, cap);
            if (!w) return clip_fail(CLIP_ERR_NOMEM, "tokenizer: out of memory for a %zu-character word", end - start);
            tok->word = w;
            tok->word_cap = cap;
        }
        size_t nb = 0;
        for (size_t i = start; i < end; i++) nb += (size_t)utf8_put(clean->cp[i], tok->word + nb);
        const uint32_t *word_ids;
        size_t n_word;
        if ((rc = bpe_word(&tok->bpe, tok->word, nb, &word_ids, &n_word, 0))) return rc;
        for (size_t k = 0; k < n_word; k++) {
            if (n_tokens == max_tokens) { if (truncated) *truncated = 1; break; }
            tokens[n_tokens++] = (int32_t)word_ids[k];
        }
    }
    /* Stopped because the context is full: was there anything left? */
    if (truncated && !*truncated && n_tokens == max_tokens && pretok_next(clean->cp, clean->len, &pos, &start, &end))
        *truncated = 1;
    ids[0] = (int32_t)tok->sot_id;
    ids[n_tokens + 1] = (int32_t)tok->eot_id;
    for (size_t k = n_tokens + 2; k < (size_t)context_len; k++) ids[k] = 0;
    return (int)n_tokens + 2;
}
