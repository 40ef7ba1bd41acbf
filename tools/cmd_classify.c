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

/* The prompt for one label: the template with every {} replaced by the label. */
static char *fill_template(const char *tmpl, const char *label) {
    size_t holes = 0, n_label = strlen(label);
    for (const char *p = strstr(tmpl, "{}"); p; p = strstr(p + 2, "{}")) holes++;
    char *out = malloc(strlen(tmpl) - 2 * holes + holes * n_label + 1), *o = out;
    if (!out) return NULL;
    for (const char *p = tmpl; *p;) {
        if (p[0] == '{' && p[1] == '}') { memcpy(o, label, n_label); o += n_label; p += 2; }
        else *o++ = *p++;
    }
    *o = 0;
    return out;
}

int cmd_classify(args *a) {
    if (a->n_pos < 1 || (a->n_pos < 2 && !a->file))
        return usage_error(a->cmd, "classify needs MODEL and IMAGE... (files, directories or -f LIST)");
    if (a->n_labels < 1 && !a->labels_file) return usage_error(a->cmd, "classify needs -l LABEL... or --labels FILE");
    const char *tmpl = a->template_ ? a->template_ : "a photo of a {}.";
    if (!strstr(tmpl, "{}")) return usage_error(a->cmd, "--template must contain {} where the label goes");
    /* Labels: -l in order, then the lines of --labels FILE. An empty label would be
     * embedded as the bare template: refused, as is a blank line. */
    char *label_buf = NULL;
    size_t label_len = 0;
    int rc = 0;
    if (a->labels_file && (rc = read_all(a->labels_file, &label_buf, &label_len))) return rc;
    const char **labels = malloc(sizeof(char *) * ((size_t)a->n_labels + label_len + 1));
    int n_labels = 0;
    if (!labels) rc = fail("out of memory");
    for (int l = 0; !rc && l < a->n_labels; l++) {
        if (!a->labels[l][0]) rc = usage_error(a->cmd, "label %d is empty", l + 1);
        else labels[n_labels++] = a->labels[l];
    }
    for (size_t start = 0, i = 0, line = 1; !rc && label_buf && i <= label_len; i++) {
        if (i < label_len && label_buf[i] != '\n') continue;
        size_t n = i - start;
        if (n && label_buf[start + n - 1] == '\r') n--;
        label_buf[start + n] = 0;
        if (!(i == label_len && n == 0)) {
            size_t k = 0;
            while (k < n && strchr(" \t\v\f", label_buf[start + k])) k++;
            if (k == n) rc = usage_error(a->cmd, "%s: line %zu is blank (an empty label)", a->labels_file, line);
            else if (strlen(label_buf + start) != n) rc = usage_error(a->cmd, "%s: line %zu contains a NUL byte", a->labels_file, line);
            else labels[n_labels++] = label_buf + start;
        }
        start = i + 1;
        line++;
    }
    if (!rc && n_labels == 0) rc = usage_error(a->cmd, "%s holds no label", a->labels_file);
    file_list files = {0};
    if (!rc) rc = gather_files(a, 1, 0, 0, &files);
    if (rc) { free(labels); free(label_buf); return rc; }

    /* Label prompts are encoded in batches (--batch N, default up to 16 at once). */
    args run_args = *a;
    if (run_args.batch <= 0) run_args.batch = n_labels < 16 ? n_labels : 16;
    const int batch = run_args.batch;
    session s;
    if ((rc = open_session(a->pos[0], &run_args, 1, &s))) {
        free(labels); free(label_buf); free_files(&files);
        return rc;
    }
    const int dim = s.cfg->embed_dim, size = s.cfg->image_size, context = s.cfg->text_context;
    const int top = a->top > 0 && a->top < n_labels ? a->top : n_labels;
    float *label_embeds = malloc(sizeof(float) * (size_t)n_labels * dim);
    float *image_embed = malloc(sizeof(float) * dim);
    float *pixels = malloc(sizeof(float) * 3 * size * size);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)context * batch);
    ranked *rank = malloc(sizeof(ranked) * (size_t)n_labels);
    if (!label_embeds || !image_embed || !pixels || !ids || !rank) rc = fail("out of memory");

    /* The labels' text embeddings, once for all images. */
    for (int first = 0; !rc && first < n_labels; first += batch) {
        const int count = n_labels - first < batch ? n_labels - first : batch;
        for (int l = 0; !rc && l < count; l++) {
            char *prompt = fill_template(tmpl, labels[first + l]);
            if (!prompt) { rc = fail("out of memory"); break; }
            rc = text_ids(&s, prompt, strlen(prompt), ids + (size_t)l * context);
            free(prompt);
        }
        if (!rc && clip_encode_texts(s.ctx, ids, count, label_embeds + (size_t)first * dim) != CLIP_OK)
            rc = api_fail();
    }
    const float scale = expf(s.cfg->logit_scale);
    int skipped = 0;
    char msg[1024];
    for (int i = 0; !rc && i < files.n; i++) {
        const char *path = files.items[i].path;
        if (load_pixels_msg(&s, path, pixels, msg, sizeof msg)) {
            if (!a->keep_going) { rc = fail("%s", msg); break; }
            warn("%s (skipped)", msg);   /* --keep-going: the other images are still classified */
            skipped++;
            continue;
        }
        if (clip_encode_images(s.ctx, pixels, 1, image_embed) != CLIP_OK) { rc = api_fail(); break; }
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
                json_string(stdout, labels[rank[k].label], strlen(labels[rank[k].label]));
                printf(", \"prob\": %.6f, \"cosine\": %.6f}", rank[k].prob, rank[k].cosine);
            }
            fputs("]}\n", stdout);
        } else {
            if (files.n > 1) printf("%s\n", path);
            for (int k = 0; k < top; k++)
                printf("%7.2f%%  %s  (cosine %.4f)\n", 100.0f * rank[k].prob,
                       labels[rank[k].label], rank[k].cosine);
        }
    }
    if (!rc && skipped == files.n) rc = fail("no image could be read (%d skipped)", skipped);
    else if (!rc && skipped) warn("%d of %d images skipped", skipped, files.n);
    free(labels);
    free(label_buf);
    free_files(&files);
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

