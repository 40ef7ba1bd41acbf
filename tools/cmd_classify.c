/* cmd_classify.c - the commands that compare images with texts: classify (zero-shot labels,
 * softmax over the scaled cosines, best first) and score (one image against one text).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/clip.h"
#include "cli.h"

typedef struct {
    int label;
    float prob, cosine;
} ranked;

static int by_prob(const void *x, const void *y) {
    const ranked *a = x, *b = y;
    if (a->prob != b->prob) return a->prob < b->prob ? 1 : -1;
    return a->label - b->label; /* ties keep the order the labels were given in */
}

int cmd_classify(args *a) {
    if (a->n_pos < 2) return usage_error(a->cmd, "classify needs MODEL and IMAGE...");
    if (a->n_labels < 1) return usage_error(a->cmd, "classify needs at least one -l LABEL");
    const char *tmpl = a->template_ ? a->template_ : "a photo of a {}.";
    const char *hole = strstr(tmpl, "{}");
    if (!hole) return usage_error(a->cmd, "--template must contain {} where the label goes");
    session s;
    int rc = open_session(a->pos[0], a, 1, &s);
    if (rc) return rc;
    const int dim = s.cfg->embed_dim, size = s.cfg->image_size, n_labels = a->n_labels;
    const int top = a->top > 0 && a->top < n_labels ? a->top : n_labels;
    float *label_embeds = malloc(sizeof(float) * (size_t)n_labels * dim);
    float *image_embed = malloc(sizeof(float) * dim);
    float *pixels = malloc(sizeof(float) * 3 * size * size);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)s.cfg->text_context);
    ranked *rank = malloc(sizeof(ranked) * (size_t)n_labels);
    char *prompt = NULL;
    if (!label_embeds || !image_embed || !pixels || !ids || !rank) rc = fail("out of memory");

    /* The labels' text embeddings, once for all images. */
    for (int l = 0; !rc && l < n_labels; l++) {
        size_t n = strlen(tmpl) - 2 + strlen(a->labels[l]);
        char *grown = realloc(prompt, n + 1);
        if (!grown) { rc = fail("out of memory"); break; }
        prompt = grown;
        snprintf(prompt, n + 1, "%.*s%s%s", (int)(hole - tmpl), tmpl, a->labels[l], hole + 2);
        rc = embed_text(&s, prompt, n, ids, label_embeds + (size_t)l * dim);
    }
    const float scale = expf(s.cfg->logit_scale);
    for (int i = 1; !rc && i < a->n_pos; i++) {
        const char *path = a->pos[i];
        if ((rc = embed_image(&s, path, pixels, image_embed))) break;
        /* Softmax over logit_scale * cosine, as the reference's logits_per_image. */
        float max_logit = -INFINITY;
        for (int l = 0; l < n_labels; l++) {
            rank[l].label = l;
            rank[l].cosine = clip_cosine(image_embed, label_embeds + (size_t)l * dim, dim);
            if (scale * rank[l].cosine > max_logit) max_logit = scale * rank[l].cosine;
        }
        double sum = 0;
        for (int l = 0; l < n_labels; l++) sum += exp(scale * rank[l].cosine - max_logit);
        for (int l = 0; l < n_labels; l++)
            rank[l].prob = (float)(exp(scale * rank[l].cosine - max_logit) / sum);
        qsort(rank, (size_t)n_labels, sizeof *rank, by_prob);
        if (a->json) {
            fputs("{\"image\": ", stdout);
            json_string(stdout, path, strlen(path));
            fputs(", \"results\": [", stdout);
            for (int k = 0; k < top; k++) {
                fputs(k ? ", {\"label\": " : "{\"label\": ", stdout);
                json_string(stdout, a->labels[rank[k].label], strlen(a->labels[rank[k].label]));
                printf(", \"prob\": %.6f, \"cosine\": %.6f}", rank[k].prob, rank[k].cosine);
            }
            fputs("]}\n", stdout);
        } else {
            if (a->n_pos > 2) printf("%s\n", path);
            for (int k = 0; k < top; k++)
                printf("%7.2f%%  %s  (cosine %.4f)\n", 100.0f * rank[k].prob,
                       a->labels[rank[k].label], rank[k].cosine);
        }
    }
    free(prompt);
    free(label_embeds);
    free(image_embed);
    free(pixels);
    free(ids);
    free(rank);
    close_session(&s);
    return rc;
}

int cmd_score(args *a) {
    if (a->n_pos != 3) return usage_error(a->cmd, "score takes MODEL, IMAGE and TEXT");
    session s;
    int rc = open_session(a->pos[0], a, 1, &s);
    if (rc) return rc;
    const int dim = s.cfg->embed_dim, size = s.cfg->image_size;
    float *pixels = malloc(sizeof(float) * 3 * size * size);
    float *image_embed = malloc(sizeof(float) * dim), *text_embed = malloc(sizeof(float) * dim);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)s.cfg->text_context);
    if (!pixels || !image_embed || !text_embed || !ids) rc = fail("out of memory");
    if (!rc && strlen(a->pos[2]) > MAX_TEXT_BYTES) rc = fail("text longer than %d bytes", MAX_TEXT_BYTES);
    if (!rc) rc = embed_image(&s, a->pos[1], pixels, image_embed);
    if (!rc) rc = embed_text(&s, a->pos[2], strlen(a->pos[2]), ids, text_embed);
    if (!rc) {
        float cosine = clip_cosine(image_embed, text_embed, dim);
        float logit = expf(s.cfg->logit_scale) * cosine;
        if (a->json) {
            fputs("{\"image\": ", stdout);
            json_string(stdout, a->pos[1], strlen(a->pos[1]));
            fputs(", \"text\": ", stdout);
            json_string(stdout, a->pos[2], strlen(a->pos[2]));
            printf(", \"cosine\": %.6f, \"logit\": %.6f}\n", cosine, logit);
        } else {
            printf("cosine %.6f  logit %.4f\n", cosine, logit);
        }
    }
    free(pixels);
    free(image_embed);
    free(text_embed);
    free(ids);
    close_session(&s);
    return rc;
}

