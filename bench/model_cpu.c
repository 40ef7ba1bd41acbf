/* model_cpu.c - CPU milliseconds of one forward pass per case, the fastest of N, through
 * the public API: a measurement for a machine shared with other work, where wall-clock
 * times vary by 2x. With one thread the process's CPU time is the forward pass (the
 * checksum thread runs during the untimed first pass only); other processes on the core
 * still cost cache misses, so these are upper bounds of the idle-machine time.
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -pthread bench/model_cpu.c build/libclip.a -ldl -lm -o build/model_cpu
 *   build/model_cpu MODEL [iterations]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../model/clip.h"

static double cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const int iters = argc > 2 ? atoi(argv[2]) : 10;
    clip_model *model;
    clip_context *ctx;
    if (clip_model_load(argv[1], &model) || clip_context_new(model, 1, 8, &ctx)) {
        fprintf(stderr, "%s\n", clip_last_error());
        return 1;
    }
    const clip_config *c = clip_model_config(model);
    const size_t image_len = (size_t)3 * c->image_size * c->image_size;
    float *pixels = malloc(sizeof(float) * image_len * 8), *out = malloc(sizeof(float) * 8 * c->embed_dim);
    int32_t *ids = calloc((size_t)8 * c->text_context, sizeof *ids);
    for (size_t i = 0; i < image_len * 8; i++) pixels[i] = (float)((i * 2654435761u) >> 20 & 0xFF) / 128.0f - 1.0f;
    char long_text[1024] = "";
    while (strlen(long_text) + 20 < sizeof long_text) strcat(long_text, "a photo of a big dog ");
    int32_t *short_ids = ids + c->text_context;
    clip_tokenize(model, long_text, strlen(long_text), ids);
    clip_tokenize(model, "a photo of a dog.", 17, short_ids);
    const struct { const char *name; int image, n; const int32_t *ids; } cases[] = {
        {"image", 1, 1, NULL}, {"text_short", 0, 1, NULL}, {"text_long", 0, 1, NULL}, {"image_batch8", 1, 8, NULL},
    };
    for (int ci = 0; ci < 4; ci++) {
        double best = 1e30;
        for (int it = -1; it < iters; it++) {
            const double t0 = cpu_ms();
            int rc = cases[ci].image ? clip_encode_images(ctx, pixels, cases[ci].n, out)
                                     : clip_encode_texts(ctx, ci == 1 ? short_ids : ids, 1, out);
            const double t = cpu_ms() - t0;
            if (rc) { fprintf(stderr, "%s\n", clip_last_error()); return 1; }
            if (it >= 0 && t < best) best = t;
        }
        printf("%-13s %8.2f ms CPU (fastest of %d)\n", cases[ci].name, best, iters);
    }
    clip_context_free(ctx);
    clip_model_free(model);
    free(pixels), free(out), free(ids);
    return 0;
}
