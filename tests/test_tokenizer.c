/* test_tokenizer.c - the tokenizer against OpenAI CLIP's own outputs.
 *
 * The vocabulary is built from ../shared/clip/golden-tiny/merges.txt the way
 * SimpleTokenizer.__init__ does (byte symbols in bytes_to_unicode order, the same with
 * "</w>", one token per merge, then the two specials), so these tests need neither the
 * converter nor the weight-file loader. References: golden-tiny/tokens.json (61 strings)
 * and tokenizer-sample.jsonl (every line whose mojibake_fix is false).
 */
#include <stdint.h>

#include "testutil.h"
#include "json_min.h"
#include "tok_vocab.h"
#include "../io/error.h"
#include "../tokenizer/bpe.h"
#include "../tokenizer/tokenizer.h"

#define CTX 77
#define N_MERGES 48894

static tok_vocab vocab;
static clip_tokenizer *tok;

static void setup(void) {
    if (!tok) {
        ck_assert(tok_vocab_load(&vocab, shared_file("golden-tiny/merges.txt"), N_MERGES) == 0);
        ck_assert_int_eq(vocab.v.n_vocab, 49408);
        int rc = tokenizer_new(&vocab.v, &tok);
        ck_assert_msg(rc == 0, "tokenizer_new: %s", clip_last_error());
    }
}

/* ---- reference data ---------------------------------------------------------------- */

static void format_ids(char *out, size_t cap, const int32_t *ids, int n) {
    size_t o = 0;
    for (int i = 0; i < n && o + 12 < cap; i++) o += (size_t)snprintf(out + o, cap - o, "%d ", ids[i]);
}

/* Encodes one reference string; returns 1 if all 77 ids match. */
static int check_one(const char *text, size_t len, const int32_t *want, const char *where) {
    int32_t got[CTX];
    int n = tokenizer_encode(tok, text, len, got, CTX);
    int want_n = CTX; /* up to the last eot: id 0 ('!') can be a real token */
    while (want_n > 0 && want[want_n - 1] != (int32_t)vocab.v.eot_id) want_n--;
    if (n == want_n && memcmp(got, want, sizeof got) == 0) return 1;
    char a[1024], b[1024];
    format_ids(a, sizeof a, got, n > 0 ? n : 0);
    format_ids(b, sizeof b, want, want_n);
    fprintf(stderr, "%s: %.*s\n  got  (%d) %s\n  want (%d) %s\n", where, (int)(len < 200 ? len : 200), text, n, a,
            want_n, b);
    return 0;
}

START_TEST(golden_tokens_json) {
    char *json = json_read_file(shared_file("golden-tiny/tokens.json"), NULL);
    ck_assert(json != NULL);
    const char *p = json_get(json, "texts");
    ck_assert(p && *p == '[');
    p = json_ws(p + 1);
    size_t cap = 1 << 20;
    char *text = malloc(cap);
    int count = 0, ok = 0;
    while (p && *p == '{') {
        size_t len;
        int32_t want[CTX];
        ck_assert(json_string(json_get(p, "text"), text, cap, &len) != NULL);
        ck_assert_int_eq(json_int_array(json_get(p, "tokens"), want, CTX), CTX);
        char where[32];
        snprintf(where, sizeof where, "tokens.json[%d]", count);
        ok += check_one(text, len, want, where);
        count++;
        p = json_ws(json_skip(p));
        if (p && *p == ',') p = json_ws(p + 1);
    }
    ck_assert_int_eq(count, 61);
    ck_assert_msg(ok == count, "%d of %d golden strings differ", count - ok, count);
    free(text);
    free(json);
}
END_TEST

START_TEST(sample_jsonl) {
    char *data = json_read_file(shared_file("tokenizer-sample.jsonl"), NULL);
    ck_assert(data != NULL);
    size_t cap = 1 << 22;
    char *text = malloc(cap);
    int count = 0, checked = 0, ok = 0;
    for (char *line = data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        count++;
        const char *moji = json_get(line, "mojibake_fix");
        ck_assert(moji != NULL);
        if (strncmp(moji, "true", 4) == 0) continue;
        size_t len;
        int32_t want[CTX];
        ck_assert(json_string(json_get(line, "text"), text, cap, &len) != NULL);
        ck_assert(len <= cap);
        ck_assert_int_eq(json_int_array(json_get(line, "ids"), want, CTX), CTX);
        char where[48];
        snprintf(where, sizeof where, "tokenizer-sample.jsonl:%d", count);
        ok += check_one(text, len, want, where);
        checked++;
    }
    ck_assert_int_eq(count, 300);
    ck_assert_msg(ok == checked, "%d of %d sample lines differ", checked - ok, checked);
    free(text);
    free(data);
}
END_TEST

/* ---- edge cases -------------------------------------------------------------------- */

static int encode(const char *s, int32_t *ids) { return tokenizer_encode(tok, s, strlen(s), ids, CTX); }

START_TEST(odd_inputs) {
    int32_t ids[CTX];
    const int32_t sot = (int32_t)vocab.v.sot_id, eot = (int32_t)vocab.v.eot_id;
    const char *empty_like[] = {"", " ", "   \t\n  ", "\xE3\x80\x80", "\r\n\r\n", "\x01\x02\x1b", "\xCD\x85"};
    for (size_t k = 0; k < sizeof empty_like / sizeof *empty_like; k++) {
        ck_assert_int_eq(encode(empty_like[k], ids), 2);
        ck_assert_int_eq(ids[0], sot);
        ck_assert_int_eq(ids[1], eot);
        for (int i = 2; i < CTX; i++) ck_assert_int_eq(ids[i], 0);
    }
    ck_assert_int_eq(tokenizer_encode(tok, NULL, 0, ids, CTX), 2);
    ck_assert_int_eq(encode("<|endoftext|>", ids), 3);
    ck_assert_int_eq(ids[1], eot);
    ck_assert_int_eq(encode("<|startoftext|><|startoftext|>", ids), 4);
    ck_assert_int_eq(ids[1], sot);
    ck_assert_int_eq(ids[2], sot);
    /* A short context keeps sot and eot. */
    ck_assert_int_eq(tokenizer_encode(tok, "a photo of a cat", 16, ids, 4), 4);
    ck_assert_int_eq(ids[0], sot);
    ck_assert_int_eq(ids[3], eot);
    ck_assert_int_eq(tokenizer_encode(tok, "a photo", 7, ids, 2), 2);
    ck_assert_int_eq(ids[1], eot);
    ck_assert_int_eq(tokenizer_encode(tok, "x", 1, ids, 1), CLIP_ERR_ARG);
    ck_assert_int_eq(tokenizer_encode(tok, NULL, 3, ids, CTX), CLIP_ERR_ARG);
}
END_TEST

/* Random bytes: invalid UTF-8, controls, entities, long lines; never a crash, always a
 * well-formed result. */
START_TEST(fuzz_random_bytes) {
    unsigned state = 12345;
    const char *pieces[] = {"&amp;", "&#x", "&#1234567890;", "<", "\r", "\n", "\xC3", "\xED\xA0\x80", "'s",
                            "<|endoftext|>", "\xF0\x9F\x98", "\xCE\xA3", " ", "\x1b[31m", "&EACUTE;", "\xEF\xAC\x83"};
    size_t cap = (1 << 20) + 64;
    char *buf = malloc(cap);
    int32_t ids[CTX], again[CTX];
    for (int round = 0; round < 400; round++) {
        size_t len = round < 395 ? (size_t)((test_rand(&state) * 0.5f + 0.5f) * 300.0f) : cap - 64;
        size_t n = 0;
        while (n < len) {
            state = state * 1664525u + 1013904223u;
            unsigned r = state >> 8;
            if (r % 4 == 0) {
                const char *p = pieces[(r >> 4) % (sizeof pieces / sizeof *pieces)];
                size_t k = strlen(p);
                if (n + k > len) break;
                memcpy(buf + n, p, k);
                n += k;
            } else {
                buf[n++] = (char)(round % 3 == 0 ? (r >> 12) : round % 3 == 1 ? 'a' + (r >> 12) % 26 : (r >> 12) | 0x80);
            }
        }
        int count = tokenizer_encode(tok, buf, n, ids, CTX);
        ck_assert_msg(count >= 2 && count <= CTX, "round %d: %d (%s)", round, count, clip_last_error());
        ck_assert_int_eq(ids[0], (int32_t)vocab.v.sot_id);
        ck_assert_int_eq(ids[count - 1], (int32_t)vocab.v.eot_id);
        for (int i = 0; i < CTX; i++) {
            ck_assert(ids[i] >= 0 && (uint32_t)ids[i] < vocab.v.n_vocab);
            if (i >= count) ck_assert_int_eq(ids[i], 0);
        }
        ck_assert_int_eq(tokenizer_encode(tok, buf, n, again, CTX), count);
        ck_assert(memcmp(ids, again, sizeof ids) == 0);
    }
    free(buf);
}
END_TEST

/* One megabyte-long word of letters, one of digits-and-punctuation, one of emoji. */
START_TEST(very_long_words) {
    size_t len = 1 << 20;
    char *buf = malloc(len);
    int32_t ids[CTX];
    const char *fills[] = {"abcdefghij", "!?#$%-+=~^", "\xF0\x9F\x98\x80", "\xE4\xB8\xAD"};
    for (size_t k = 0; k < sizeof fills / sizeof *fills; k++) {
        size_t f = strlen(fills[k]);
        for (size_t i = 0; i < len; i++) buf[i] = fills[k][i % f];
        size_t n = len - len % f;
        ck_assert_int_eq(tokenizer_encode(tok, buf, n, ids, CTX), CTX);
        ck_assert_int_eq(ids[CTX - 1], (int32_t)vocab.v.eot_id);
        for (int i = 0; i < CTX; i++) ck_assert((uint32_t)ids[i] < vocab.v.n_vocab);
    }
    free(buf);
}
END_TEST

/* Inputs that are quadratic for the reference (deeply nested entities, a megabyte of
 * combining marks out of canonical order) must still finish promptly here. */
START_TEST(adversarial_inputs_finish) {
    size_t cap = 5 * 250000 + 16;
    char *buf = malloc(cap);
    int32_t ids[CTX];
    size_t n = 0;
    buf[n++] = '&';
    while (n + 4 < cap) memcpy(buf + n, "amp;", 4), n += 4;
    ck_assert_int_eq(tokenizer_encode(tok, buf, n, ids, CTX), CTX);
    n = 0;
    buf[n++] = 'a';
    while (n + 4 < cap) memcpy(buf + n, "\xCC\x81\xCC\xA3", 4), n += 4; /* U+0301 U+0323 */
    ck_assert_int_eq(tokenizer_encode(tok, buf, n, ids, CTX), CTX);
    n = 0;
    while (n + 2 < cap) memcpy(buf + n, "\xCD\x85", 2), n += 2; /* U+0345 only: no token */
    ck_assert_int_eq(tokenizer_encode(tok, buf, n, ids, CTX), 2);
    free(buf);
}
END_TEST

/* The heap algorithm for long words against the reference loop, on random words. */
START_TEST(bpe_long_algorithm_matches) {
    bpe_model m = {0};
    ck_assert_int_eq(bpe_init(&m, vocab.merges, N_MERGES), 0);
    for (unsigned b = 0; b < 256; b++) { /* the byte's symbol, found by its string */
        unsigned c = b;
        if (!tok_vocab_printable(b)) {
            c = 256;
            for (unsigned x = 0; x < b; x++) c += !tok_vocab_printable(x);
        }
        char s[8] = {0};
        size_t n = c < 0x80 ? (s[0] = (char)c, 1) : (s[0] = (char)(0xC0 | c >> 6), s[1] = (char)(0x80 | (c & 63)), 2);
        m.byte_id[b] = tok_vocab_get(&vocab, s, n);
        memcpy(s + n, "</w>", 4);
        m.byte_end_id[b] = tok_vocab_get(&vocab, s, n + 4);
        ck_assert(m.byte_id[b] != UINT32_MAX && m.byte_end_id[b] != UINT32_MAX);
    }
    unsigned state = 7;
    unsigned char word[48];
    uint32_t direct[48];
    const char *alphabet = "aeiouthnsrlcdmwy";
    for (int round = 0; round < 3000; round++) {
        state = state * 1664525u + 1013904223u;
        size_t len = 1 + (state >> 8) % 48;
        for (size_t i = 0; i < len; i++) {
            state = state * 1664525u + 1013904223u;
            word[i] = round % 2 ? (unsigned char)alphabet[(state >> 8) % 16] : (unsigned char)(state >> 8);
        }
        const uint32_t *ids;
        size_t n1, n2;
        ck_assert_int_eq(bpe_word(&m, word, len, &ids, &n1, 0), 0);
        memcpy(direct, ids, n1 * sizeof *ids);
        ck_assert_int_eq(bpe_word(&m, word, len, &ids, &n2, 1), 0);
        ck_assert_int_eq(n1, n2);
        ck_assert(memcmp(direct, ids, n1 * sizeof *ids) == 0);
    }
    bpe_free(&m);
}
END_TEST

START_TEST(bad_vocabulary) {
    clip_tokenizer *t = NULL;
    tokenizer_vocab v = vocab.v;
    uint32_t saved = vocab.merges[5];
    vocab.merges[5] = 49408; /* merged id past the vocabulary */
    ck_assert_int_eq(tokenizer_new(&v, &t), CLIP_ERR_FORMAT);
    ck_assert(t == NULL);
    ck_assert(strstr(clip_last_error(), "merge 1") != NULL);
    vocab.merges[5] = vocab.merges[2]; /* merged id spelling another string */
    ck_assert_int_eq(tokenizer_new(&v, &t), CLIP_ERR_FORMAT);
    vocab.merges[5] = saved;
    v.sot_id = 50000;
    ck_assert_int_eq(tokenizer_new(&v, &t), CLIP_ERR_FORMAT);
    ck_assert_int_eq(tokenizer_new(NULL, &t), CLIP_ERR_ARG);
}
END_TEST

/* A vocabulary that spells one string three times: the reference's encoder is
 * dict(zip(vocab, range(len(vocab)))), so the last id wins, whichever merge made it. The
 * first 512 tokens are the golden vocabulary's byte symbols; merge 0 makes "ab</w>" (id
 * 512), ids 513 and 514 spell it again, then the two specials. */
START_TEST(duplicate_token_strings) {
    enum { N = 517 };
    const char *tokens[N];
    uint32_t lens[N];
    for (int i = 0; i < 512; i++) tokens[i] = vocab.v.tokens[i], lens[i] = vocab.v.token_lens[i];
    for (int i = 512; i < 515; i++) tokens[i] = "ab</w>", lens[i] = 6;
    tokens[515] = "<|startoftext|>", lens[515] = 15;
    tokens[516] = "<|endoftext|>", lens[516] = 13;
    /* 'a' is byte symbol 'a' - '!' (printable ASCII come first); 'b</w>' 256 places on */
    const uint32_t merges[3] = {'a' - '!', 256 + 'b' - '!', 512};
    ck_assert_str_eq(tokens[merges[0]], "a");
    ck_assert_str_eq(tokens[merges[1]], "b</w>");
    tokenizer_vocab v = {N, tokens, lens, 1, merges, 515, 516};
    clip_tokenizer *t = NULL;
    ck_assert_msg(tokenizer_new(&v, &t) == 0, "tokenizer_new: %s", clip_last_error());
    int32_t got[CTX];
    ck_assert_int_eq(tokenizer_encode(t, "ab ab", 5, got, CTX), 4);
    ck_assert_int_eq(got[0], 515);
    ck_assert_int_eq(got[1], 514);
    ck_assert_int_eq(got[2], 514);
    ck_assert_int_eq(got[3], 516);
    tokenizer_free(t);
}
END_TEST

Suite *suite(void) {
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("tokenizer");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_test(tc, golden_tokens_json);
    tcase_add_test(tc, sample_jsonl);
    tcase_add_test(tc, odd_inputs);
    tcase_add_test(tc, fuzz_random_bytes);
    tcase_add_test(tc, very_long_words);
    tcase_add_test(tc, adversarial_inputs_finish);
    tcase_add_test(tc, bpe_long_algorithm_matches);
    tcase_add_test(tc, bad_vocabulary);
    tcase_add_test(tc, duplicate_token_strings);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN()
