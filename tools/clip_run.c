/* clip_run.c - the command-line tool: thin glue over the public API (model/clip.h).
 *
 *   clip_run info MODEL
 *   clip_run tokenize MODEL TEXT...                 context-length ids per text
 *   clip_run preprocess MODEL IMAGE -o OUT.npy      float32 [3, S, S]
 *   clip_run embed-image MODEL IMAGE... -o OUT.npy  float32 [N, D]
 *   clip_run embed-text MODEL TEXT... -o OUT.npy    float32 [N, D]
 *   clip_run classify MODEL IMAGE... -l LABEL...    zero-shot labels, best first
 *   clip_run score MODEL IMAGE TEXT                 cosine similarity and logit
 *   clip_run bench MODEL [IMAGE]                    in-process timings per stage, GFLOP/s
 *
 * The commands live in cmd_*.c, what they share in cli.h / cli_common.c; this file holds the
 * command table, the help and main().
 *
 * Errors go to stderr as one line "clip_run: error: ..."; the exit code is 0 only on
 * success (1: the work failed, 2: the command line was wrong).
 */
#include <stdio.h>
#include <string.h>

#include "../io/atomic.h"
#include "../model/clip.h"
#include "cli.h"

/* ---- Help and dispatch ------------------------------------------------------------------- */
typedef struct {
    const char *name, *accepts, *usage;
    int (*run)(args *);
} command;

static const command commands[] = {
    {"info", "tg", "info MODEL [-t N] [--gemm native|openblas]\n"
     "  Print the model's config, the kernels this CPU uses and the matmul backend.\n", cmd_info},
    {"tokenize", "fj0",
     "tokenize MODEL TEXT... [-f FILE] [-0] [--json]\n"
     "  Print each text's token ids (context length, zero padded), one line per text.\n"
     "  -f FILE   also read texts from FILE, one per line ('-' = stdin)\n"
     "  -0        texts in FILE are separated by NUL bytes instead of newlines\n"
     "  --json    one JSON object per text: {\"text\": ..., \"ids\": [...]}\n", cmd_tokenize},
    {"preprocess", "o",
     "preprocess MODEL IMAGE -o OUT.npy\n"
     "  Decode, resize, crop and normalize IMAGE as the reference does: float32 [3, S, S].\n", cmd_preprocess},
    {"embed-image", "ortbg",
     "embed-image MODEL IMAGE... -o OUT.npy [--raw] [-t N] [--batch N] [--gemm native|openblas]\n"
     "  Image embeddings, float32 [N, D], L2-normalized unless --raw.\n"
     "  An IMAGE ending in .npy is a preprocessed float32 [3, S, S] tensor.\n"
     "  -t N      threads (default: one per core)\n"
     "  --batch N read N images, then encode them together (default 1)\n"
     "  --gemm B  matmul backend: native (default) or openblas\n", cmd_embed_image},
    {"embed-text", "ortf0ibg",
     "embed-text MODEL TEXT... -o OUT.npy [--raw] [-f FILE] [-0] [--ids] [-t N] [--batch N] [--gemm B]\n"
     "  Text embeddings, float32 [N, D], L2-normalized unless --raw; --batch N encodes N at once.\n"
     "  -f FILE   also read texts from FILE, one per line ('-' = stdin); -0: NUL-separated\n"
     "  --ids     each TEXT is already token ids (\"49406 320 49407\"), zero padded to the context\n", cmd_embed_text},
    {"classify", "ltTkjg",
     "classify MODEL IMAGE... -l LABEL [-l LABEL...] [--template T] [--top K] [--json] [-t N]\n"
     "  Zero-shot classification: softmax over exp(logit_scale) * cosine(image, prompt),\n"
     "  prompt = the template with {} replaced by the label (default \"a photo of a {}.\").\n"
     "  --top K   print only the K best labels\n"
     "  --json    one JSON object per image: {\"image\", \"results\": [{\"label\", \"prob\", \"cosine\"}]}\n", cmd_classify},
    {"score", "jtg",
     "score MODEL IMAGE TEXT [--json] [-t N]\n"
     "  Cosine similarity of the image and the text, and the logit (exp(logit_scale) * cosine).\n", cmd_score},
    {"bench", "tbng",
     "bench MODEL [IMAGE] [-t N] [--batch N] [--iters K] [--gemm native|openblas]\n"
     "  In-process benchmark: the matmul peak (native and OpenBLAS), then warm latency of an\n"
     "  image (random pixels; IMAGE, e.g. a JPEG, adds decode + preprocess), a short and a\n"
     "  77-token text, and a batch of N (default 8) of each; milliseconds per stage and\n"
     "  GFLOP/s against the measured peak. Median of K runs (default 10).\n", cmd_bench},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static void print_help(FILE *out) {
    fprintf(out, "clip_run %s - CLIP image and text embeddings in C\n\nusage: clip_run COMMAND ARGS...\n\n",
            CLIP_VERSION);
    for (int i = 0; i < N_COMMANDS; i++) fprintf(out, "clip_run %s\n", commands[i].usage);
    fprintf(out, "Options end at '--' (so a text may start with '-'). 'clip_run COMMAND --help' for one command.\n"
                 "-o OUT: '-' writes to standard output; a device or FIFO is written in place; a regular\n"
                 "file is replaced only when complete; -o naming an input of the command is refused.\n");
}

int main(int argc, char **argv) {
    /* Ctrl-C or a kill while an output file is written removes its temp file: a previous
     * output stays as it was and no half-written file remains. */
    atomic_cleanup_on_signals();
    if (argc < 2) {
        print_help(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        print_help(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("clip_run %s\n", CLIP_VERSION);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        char cmd[64];
        snprintf(cmd, sizeof cmd, "%s ", commands[i].name);
        args a;
        int rc = parse(argc - 2, argv + 2, cmd, commands[i].accepts, &a);
        if (!rc && a.help) printf("usage: clip_run %s", commands[i].usage);
        else if (!rc) rc = commands[i].run(&a);
        free_args(&a);
        return rc;
    }
    return usage_error(NULL, "unknown command '%s'", argv[1]);
}
