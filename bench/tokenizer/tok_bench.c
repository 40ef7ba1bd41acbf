/* tok_bench.c - runs the C tokenizer over a file of texts.
 *
 *   tok_bench MERGES CORPUS          time the corpus (one text per line), print a summary
 *   tok_bench MERGES CORPUS --hex    each line is a hex-encoded text; print its ids
 *                                    (space separated, up to the final eot), one per line
 *
 * MERGES is a CLIP merges file (golden-tiny/merges.txt). Links the tokenizer sources and
 * io/error.c only. The summary line is "lines N tokens N seconds S tokens_per_s R".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../io/error.h"
#include "../../tests/tok_vocab.h"
#include "../../tokenizer/tokenizer.h"

#define CTX 77

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int hexval(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MERGES CORPUS [--hex]\n", argv[0]);
        return 2;
    }
    int hex = argc > 3 && strcmp(argv[3], "--hex") == 0;
    tok_vocab tv;
    if (tok_vocab_load(&tv, argv[1], 48894)) return 1;
    clip_tokenizer *tok;
    if (tokenizer_new(&tv.v, &tok)) {
        fprintf(stderr, "tokenizer_new: %s\n", clip_last_error());
        return 1;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", argv[2]);
        return 1;
    }
    /* Whole corpus in memory first, so only tokenizing is timed. */
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc((size_t)size + 1);
    if (!data || fread(data, 1, (size_t)size, f) != (size_t)size) return 1;
    fclose(f);
    data[size] = 0;
    size_t n_lines = 0, cap = 1024;
    char **line = malloc(cap * sizeof *line);
    size_t *len = malloc(cap * sizeof *len);
    for (char *p = data, *end; p < data + size; p = end + 1) {
        end = memchr(p, '\n', (size_t)(data + size - p));
        if (!end) end = data + size;
        if (n_lines == cap) {
            cap *= 2;
            line = realloc(line, cap * sizeof *line);
            len = realloc(len, cap * sizeof *len);
        }
        size_t n = (size_t)(end - p);
        if (hex) { /* decode in place */
            size_t o = 0;
            for (size_t i = 0; i + 1 < n; i += 2) p[o++] = (char)(hexval(p[i]) << 4 | hexval(p[i + 1]));
            n = o;
        }
        line[n_lines] = p;
        len[n_lines++] = n;
    }
    int32_t ids[CTX];
    size_t tokens = 0;
    double t0 = now();
    for (size_t i = 0; i < n_lines; i++) {
        int n = tokenizer_encode(tok, line[i], len[i], ids, CTX);
        if (n < 0) {
            fprintf(stderr, "line %zu: %s\n", i + 1, clip_last_error());
            return 1;
        }
        tokens += (size_t)n - 2;
        if (hex) {
            for (int k = 0; k < n; k++) printf(k ? " %d" : "%d", ids[k]);
            putchar('\n');
        }
    }
    double seconds = now() - t0;
    if (!hex)
        printf("lines %zu tokens %zu seconds %.6f tokens_per_s %.0f\n", n_lines, tokens, seconds,
               tokens / (seconds > 0 ? seconds : 1e-9));
    tokenizer_free(tok);
    tok_vocab_free(&tv);
    free(line);
    free(len);
    free(data);
    return 0;
}
