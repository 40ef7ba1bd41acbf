/* calibrate.h - calibration inputs of the block linear layers (calibrate.c), for clip_run
 * quantize's GPTQ. */
#ifndef CLIP_RUN_CALIBRATE_H
#define CLIP_RUN_CALIBRATE_H
#include "../model/clip.h"

typedef struct {
    char name[96];               /* the layer's weight: "vision.blocks.3.mlp.fc2.weight" */
    int k, rows, cap;
    float *x;                    /* [rows, k]: its inputs */
} calib_layer;

typedef struct {
    calib_layer *layers;
    int n;
    int failed;                  /* out of memory while collecting */
} calib_set;

/* Encodes the synthetic images and texts with ctx (a context of model, max_batch >= 1)
 * and collects every block linear layer's inputs. CLIP_OK, or an error code (out freed). */
int calibrate(clip_model *model, clip_context *ctx, calib_set *out);
/* The layer whose weight is `name`, or NULL. */
const calib_layer *calib_find(const calib_set *s, const char *name);
void calib_free(calib_set *s);

#endif
