/* cmd_embed.c - the commands that turn inputs into arrays: preprocess (an image to the
 * normalized float32 [3, S, S] pixels), embed-image and embed-text (float32 [N, D]).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/atomic.h"
#include "../io/npy.h"
#include "../model/clip.h"
#include "cli.h"

int cmd_preprocess(args *a) {
    if (a->n_pos != 2) return usage_error(a->cmd, "preprocess takes MODEL and one IMAGE");
    if (!a->output) return usage_error(a->cmd, "preprocess needs -o OUT.npy");
    session s;
    int rc = refuse_output_over_inputs(a, a->n_pos);
    if (rc) return rc;
    rc = open_session(a->pos[0], a, 0, &s);
    if (rc) return rc;
    const int size = s.cfg->image_size;
    float *pixels = malloc(sizeof(float) * 3 * size * size);
    int64_t dims[3] = {3, size, size};
    if (!pixels) rc = fail("out of memory");
    else if (clip_image_load(s.model, a->pos[1], pixels) != CLIP_OK) rc = api_fail();
    else if (npy_write_f32(a->output, pixels, 3, dims) != CLIP_OK) rc = api_fail();
    free(pixels);
    close_session(&s);
    return rc;
}

/* Writes the paths list of --paths-out: line i names row i of the .npy. */
static int write_paths(const char *path, const file_list *files, const char *ok) {
    atomic_file af;
    if (atomic_open(&af, path) != CLIP_OK) return api_fail();
    for (int i = 0; i < files->n; i++) {
        if (!ok[i]) continue;
        if (strchr(files->items[i].path, '\n')) {
            atomic_abort(&af);
            return fail("%s: the image path '%.40s...' contains a newline", path, files->items[i].path);
        }
        fprintf(af.file, "%s\n", files->items[i].path);
    }
    if (ferror(af.file)) {
        atomic_abort(&af);
        return fail("%s: write error", path);
    }
    return atomic_commit(&af) == CLIP_OK ? 0 : api_fail();
}

int cmd_embed_image(args *a) {
    if (a->n_pos < 1 || (a->n_pos < 2 && !a->file))
        return usage_error(a->cmd, "embed-image needs MODEL and IMAGE... (files, directories or -f LIST)");
    if (!a->output) return usage_error(a->cmd, "embed-image needs -o OUT.npy");
    if (a->keep_going && !a->paths_out)
        return usage_error(a->cmd, "--keep-going needs --paths-out FILE (its lines name the rows of OUT.npy)");
    int rc = refuse_output_over_inputs(a, a->n_pos);
    if (rc) return rc;
    if (a->paths_out && (atomic_same_file(a->paths_out, a->output) || atomic_same_file(a->paths_out, a->pos[0])))
        return usage_error(a->cmd, "--paths-out %s is the model or the output", a->paths_out);
    file_list files;
    rc = gather_files(a, 1, 0, 0, &files);
    if (rc) return rc;
    /* An image found in a directory or a list may be the output too. */
    for (int i = 0; i < files.n && !rc; i++)
        if (atomic_same_file(a->output, files.items[i].path) ||
            (a->paths_out && atomic_same_file(a->paths_out, files.items[i].path)))
            rc = usage_error(a->cmd, "output %s is the input image %s; it would be overwritten",
                             atomic_same_file(a->output, files.items[i].path) ? a->output : a->paths_out,
                             files.items[i].path);
    if (rc) { free_files(&files); return rc; }
    session s;
    if ((rc = open_session(a->pos[0], a, 1, &s))) { free_files(&files); return rc; }
    const int n = files.n, size = s.cfg->image_size, dim = s.cfg->embed_dim;
    const int batch = a->batch > 0 ? a->batch : 1;
    const size_t image_len = (size_t)3 * size * size;
    float *pixels = malloc(sizeof(float) * image_len * (size_t)batch);
    float *embeds = malloc(sizeof(float) * (size_t)n * dim);
    char *ok = calloc((size_t)n, 1);
    if (!pixels || !embeds || !ok) rc = fail("out of memory");
    /* Read up to `batch` images, then encode them together; with --keep-going an image that
     * cannot be read is left out (a warning names it) and the rows close up. */
    int rows = 0, skipped = 0;
    char msg[1024];
    for (int first = 0; !rc && first < n; first += batch) {
        const int count = n - first < batch ? n - first : batch;
        int loaded = 0;
        for (int i = 0; !rc && i < count; i++) {
            if (!load_pixels_msg(&s, files.items[first + i].path, pixels + (size_t)loaded * image_len, msg, sizeof msg)) {
                ok[first + i] = 1;
                loaded++;
            } else if (a->keep_going) {
                warn("%s (skipped)", msg);
                skipped++;
            } else {
                rc = fail("%s", msg);
            }
        }
        if (!rc && loaded && clip_encode_images(s.ctx, pixels, loaded, embeds + (size_t)rows * dim) != CLIP_OK)
            rc = api_fail();
        rows += loaded;
    }
    if (!rc && rows == 0) rc = fail("no image could be read (%d skipped)", skipped);
    for (int i = 0; !rc && !a->raw && i < rows; i++) clip_normalize(embeds + (size_t)i * dim, dim);
    if (!rc && a->paths_out) rc = write_paths(a->paths_out, &files, ok);
    if (!rc) rc = write_embeddings(a->output, embeds, rows, dim);
    if (!rc && skipped)
        warn("%d of %d images skipped; %s lists the %d rows of %s", skipped, n, a->paths_out, rows, a->output);
    free(pixels);
    free(embeds);
    free(ok);
    free_files(&files);
    close_session(&s);
    return rc;
}

int cmd_embed_text(args *a) {
    if (a->n_pos < 1) return usage_error(a->cmd, "embed-text needs MODEL and TEXT...");
    if (!a->output) return usage_error(a->cmd, "embed-text needs -o OUT.npy");
    text_list t;
    session s;
    int rc = refuse_output_over_inputs(a, 1);
    if (rc) return rc;
    rc = gather_texts(a, 1, &t);
    if (!rc) rc = open_session(a->pos[0], a, 1, &s);
    if (rc) { free_texts(&t); return rc; }
    s.ids_input = a->ids;
    const int dim = s.cfg->embed_dim, context = s.cfg->text_context;
    const int batch = a->batch > 0 ? a->batch : 1;
    float *embeds = malloc(sizeof(float) * (size_t)t.n * dim);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)context * batch);
    if (!embeds || !ids) rc = fail("out of memory");
    for (int first = 0; !rc && first < t.n; first += batch) {
        const int count = t.n - first < batch ? t.n - first : batch;
        for (int i = 0; !rc && i < count; i++)
            rc = text_ids(&s, t.text[first + i], t.len[first + i], ids + (size_t)i * context);
        if (!rc && clip_encode_texts(s.ctx, ids, count, embeds + (size_t)first * dim) != CLIP_OK)
            rc = api_fail();
    }
    for (int i = 0; !rc && !a->raw && i < t.n; i++) clip_normalize(embeds + (size_t)i * dim, dim);
    if (!rc) rc = write_embeddings(a->output, embeds, t.n, dim);
    free(embeds);
    free(ids);
    free_texts(&t);
    close_session(&s);
    return rc;
}

