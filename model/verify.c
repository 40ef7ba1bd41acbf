/* verify.c - check the tensors' checksums in the background, one tower at a time.
 *
 * Reading all the weights once costs about as much as a forward pass, so the check of a
 * tower starts on its own thread when that tower is first used and runs alongside its
 * first forward pass (touching the pages that pass needs anyway); the results are handed
 * out only after the check has passed. A tower that is never used is never read.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/error.h"
#include "model.h"

typedef struct {
    clip_model *model;
    const char *prefix;         /* tensors whose names start with this belong to the tower */
    pthread_t thread;
    int started, joined;
    int status;                 /* CLIP_OK or the failure's code */
    char message[512];          /* the failure's message (errors are per thread) */
} tower_check;

struct model_verifier {
    pthread_mutex_t lock;
    atomic_int cancel;          /* set when the model is freed before a check ends */
    tower_check towers[2];      /* MODEL_VISION, MODEL_TEXT */
};

static void *verify_tower(void *arg) {
    tower_check *t = arg;
    const weightfile *wf = &t->model->file;
    size_t prefix_len = strlen(t->prefix);
    for (uint32_t i = 0; i < wf->n_tensors && t->status == CLIP_OK; i++) {
        if (atomic_load(&t->model->verifier->cancel)) break;
        if (strncmp(wf->tensors[i].name, t->prefix, prefix_len) != 0) continue;
        int rc = weightfile_verify_tensor(wf, &wf->tensors[i]);
        if (t->model->copied && t->model->copied[i]) weightfile_drop_pages(wf, &wf->tensors[i]);
        if (rc) {
            snprintf(t->message, sizeof t->message, "%s", clip_last_error());
            t->status = rc;
        }
    }
    return NULL;
}

int model_verify_init(clip_model *m) {
    model_verifier *v = calloc(1, sizeof *v);
    if (!v) return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", m->file.path);
    pthread_mutex_init(&v->lock, NULL);
    v->towers[MODEL_VISION] = (tower_check){.model = m, .prefix = "vision."};
    v->towers[MODEL_TEXT] = (tower_check){.model = m, .prefix = "text."};
    m->verifier = v;
    return CLIP_OK;
}

void model_verify_start(const clip_model *m, int tower) {
    model_verifier *v = m->verifier;
    tower_check *t = &v->towers[tower];
    pthread_mutex_lock(&v->lock);
    if (!t->started && !WF_SKIP_CHECKSUMS) {
        t->started = 1;
        /* Without a thread (resource limits), check now: slower, never skipped. */
        if (thread_start_quiet(&t->thread, verify_tower, t) != 0) {
            verify_tower(t);
            t->joined = 1;
        }
    }
    pthread_mutex_unlock(&v->lock);
}

int model_verify_wait(const clip_model *m, int tower) {
    model_verifier *v = m->verifier;
    tower_check *t = &v->towers[tower];
    model_verify_start(m, tower);
    pthread_mutex_lock(&v->lock);
    if (t->started && !t->joined) {
        pthread_join(t->thread, NULL);
        t->joined = 1;
    }
    pthread_mutex_unlock(&v->lock);
    return t->status ? clip_fail(t->status, "%s", t->message) : CLIP_OK;
}

void model_verify_free(clip_model *m) {
    model_verifier *v = m->verifier;
    if (!v) return;
    /* The threads read the mapping: stop them and let them finish before unmapping. */
    atomic_store(&v->cancel, 1);
    for (int tower = 0; tower < 2; tower++)
        if (v->towers[tower].started && !v->towers[tower].joined)
            pthread_join(v->towers[tower].thread, NULL);
    pthread_mutex_destroy(&v->lock);
    free(v);
    m->verifier = NULL;
}
