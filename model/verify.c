/* verify.c - check every tensor's checksum in the background.
 *
 * Reading all the weights once costs about as much as one forward pass of a big model, so
 * clip_model_load starts the check on its own thread and returns at once; the first
 * forward pass runs while it works (touching the same pages the forward pass needs
 * anyway), and no embedding is handed out before the check has passed.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/error.h"
#include "model.h"

struct model_verifier {
    pthread_t thread;
    pthread_mutex_t lock;
    int started, joined;
    atomic_int cancel;          /* set when the model is freed before the check ends */
    int status;                 /* CLIP_OK or the failure's code */
    char message[512];          /* the failure's message (errors are per thread) */
};

static void *verify_all(void *arg) {
    clip_model *m = arg;
    model_verifier *v = m->verifier;
    for (uint32_t i = 0; i < m->file.n_tensors && v->status == CLIP_OK && !atomic_load(&v->cancel); i++) {
        int rc = weightfile_verify_tensor(&m->file, &m->file.tensors[i]);
        if (rc) {
            snprintf(v->message, sizeof v->message, "%s", clip_last_error());
            v->status = rc;
        }
    }
    return NULL;
}

int model_verify_start(clip_model *m) {
    model_verifier *v = calloc(1, sizeof *v);
    if (!v) return clip_fail(CLIP_ERR_NOMEM, "%s: out of memory", m->file.path);
    pthread_mutex_init(&v->lock, NULL);
    m->verifier = v;
    if (WF_SKIP_CHECKSUMS) return CLIP_OK;
    /* Without a thread (resource limits), check now: slower, never skipped. */
    if (pthread_create(&v->thread, NULL, verify_all, m) == 0) v->started = 1;
    else verify_all(m);
    return CLIP_OK;
}

int model_verify_wait(const clip_model *m) {
    model_verifier *v = m->verifier;
    pthread_mutex_lock(&v->lock);
    if (v->started && !v->joined) {
        pthread_join(v->thread, NULL);
        v->joined = 1;
    }
    pthread_mutex_unlock(&v->lock);
    return v->status ? clip_fail(v->status, "%s", v->message) : CLIP_OK;
}

void model_verify_free(clip_model *m) {
    if (!m->verifier) return;
    /* The thread reads the mapping: stop it and let it finish before unmapping. */
    atomic_store(&m->verifier->cancel, 1);
    model_verify_wait(m);
    pthread_mutex_destroy(&m->verifier->lock);
    free(m->verifier);
    m->verifier = NULL;
}
