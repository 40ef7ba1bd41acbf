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
 *   clip_run trace MODEL IMAGE | --text TEXT        every stage of one forward pass [--dump DIR]
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
     "  Print the model's config, the kernels this CPU uses and the matmul backend.\n"
     "  -t N         threads of the context it reports (default: one per core)\n"
     "  --gemm B     matmul backend: native (default) or openblas\n", cmd_info},
    {"tokenize", "fj0",
     "tokenize MODEL TEXT... [-f FILE] [-0] [--json]\n"
     "  Print each text's token ids (context length, zero padded), one line per text.\n"
     "  -f FILE      also read texts from FILE, one per line ('-' = stdin); a blank line is refused\n"
     "  -0           texts in FILE are separated by NUL bytes instead of newlines\n"
     "  --json       one JSON object per text: {\"text\": ..., \"ids\": [...]}\n", cmd_tokenize},
    {"preprocess", "o",
     "preprocess MODEL IMAGE -o OUT.npy\n"
     "  Decode, resize, crop and normalize IMAGE as the reference does: float32 [3, S, S].\n"
     "  -o OUT.npy   the output file\n", cmd_preprocess},
    {"embed-image", "ortbgf0Kp",
     "embed-image MODEL IMAGE... -o OUT.npy [--raw] [-f LIST] [-0] [--keep-going --paths-out FILE]\n"
     "            [-t N] [--batch N] [--gemm native|openblas]\n"
     "  Image embeddings, float32 [N, D], L2-normalized unless --raw.\n"
     "  An IMAGE ending in .npy is a preprocessed float32 [3, S, S] tensor; a directory is walked\n"
     "  recursively for .jpg .jpeg .png .bmp .gif .ppm .pgm files (sorted by path).\n"
     "  -o OUT.npy   the output file\n"
     "  --raw        the projection output as is, not normalized\n"
     "  -f LIST      also the images (or directories) in LIST, one per line ('-' = stdin)\n"
     "  -0           LIST is NUL-separated (find -print0)\n"
     "  --keep-going skip an image that cannot be read (a warning names it) instead of failing\n"
     "  --paths-out FILE  write the path of each row of OUT.npy, one per line (needed with --keep-going)\n"
     "  -t N         threads (default: one per core, and never more)\n"
     "  --batch N    read N images, then encode them together (1 to 1024, default 1)\n"
     "  --gemm B     matmul backend: native (default) or openblas\n", cmd_embed_image},
    {"embed-text", "ortf0ibgU",
     "embed-text MODEL TEXT... -o OUT.npy [--raw] [-f FILE] [-0] [--ids] [--no-truncate] [-t N]\n"
     "           [--batch N] [--gemm B]\n"
     "  Text embeddings, float32 [N, D], L2-normalized unless --raw.\n"
     "  -o OUT.npy   the output file\n"
     "  --raw        the projection output as is, not normalized\n"
     "  -f FILE      also read texts from FILE, one per line ('-' = stdin); a blank line is refused\n"
     "  -0           texts in FILE are NUL-separated (an empty one is then kept)\n"
     "  --ids        each TEXT is already token ids (\"49406 320 49407\"), zero padded to the context\n"
     "  --no-truncate  a text longer than the model's context is an error (default: truncated,\n"
     "               with one warning)\n"
     "  -t N         threads (default: one per core, and never more)\n"
     "  --batch N    encode N texts at once (1 to 1024, default 1)\n"
     "  --gemm B     matmul backend: native (default) or openblas\n", cmd_embed_text},
    {"classify", "ltTkjgbLf0KU",
     "classify MODEL IMAGE... (-l LABEL... | --labels FILE) [--template T] [--top K] [--json]\n"
     "         [-f LIST] [-0] [--keep-going] [--no-truncate] [-t N] [--batch N] [--gemm B]\n"
     "  Zero-shot classification: softmax over exp(logit_scale) * cosine(image, prompt),\n"
     "  prompt = the template with every {} replaced by the label (default \"a photo of a {}.\").\n"
     "  IMAGE may be a directory (walked recursively) or a preprocessed .npy.\n"
     "  -l LABEL     a label (repeatable; an empty label is refused)\n"
     "  --labels FILE  labels, one per line (a blank line is refused)\n"
     "  --template T the prompt around each label, with {} where the label goes\n"
     "  --top K      print only the K best labels (also -k K)\n"
     "  --json       one JSON object per image: {\"image\", \"results\": [{\"label\", \"prob\", \"cosine\"}]}\n"
     "  -f LIST      also the images in LIST, one per line ('-' = stdin); -0: NUL-separated\n"
     "  --keep-going skip an image that cannot be read (a warning names it) instead of stopping\n"
     "  --no-truncate  a prompt longer than the model's context is an error, not truncated\n"
     "  -t N         threads (default: one per core, and never more)\n"
     "  --batch N    label prompts encoded together (1 to 1024, default up to 16)\n"
     "  --gemm B     matmul backend: native (default) or openblas\n", cmd_classify},
    {"score", "jtgU",
     "score MODEL IMAGE TEXT [--json] [--no-truncate] [-t N] [--gemm B]\n"
     "  Cosine similarity of the image and the text, and the logit (exp(logit_scale) * cosine).\n"
     "  --json       {\"image\", \"text\", \"cosine\", \"logit\"}\n"
     "  --no-truncate  a text longer than the model's context is an error, not truncated\n"
     "  -t N         threads (default: one per core, and never more)\n"
     "  --gemm B     matmul backend: native (default) or openblas\n", cmd_score},
    {"index", "otbgxSf0",
     "index MODEL PATH... -o INDEX [--batch N] [-t N] [--exclude GLOB] [--shard I/N] [-f LIST] [-0] [--gemm B]\n"
     "  Encode images into an SQLite index (docs/INDEX.md); PATH is an image or a directory,\n"
     "  walked recursively (.jpg .jpeg .png .bmp .gif .ppm .pgm, any case). An existing INDEX\n"
     "  is updated in place: new and changed files (path, size, mtime) are encoded, files gone\n"
     "  from under the PATHs dropped; a kill loses at most the batch being encoded.\n"
     "  -o INDEX       the index file (created, or updated if it exists)\n"
     "  --batch N      images encoded and committed together (default 8)\n"
     "  -t N           threads (default: one per core)\n"
     "  --exclude GLOB skip paths (or file names) matching GLOB, e.g. '*/.thumbnails/*' (repeatable)\n"
     "  --shard I/N    only the files of shard I of N (0 <= I < N), for merging later\n"
     "  -f LIST        also index the paths in LIST, one per line ('-' = stdin); -0: NUL-separated\n"
     "  --gemm B       matmul backend: native (default) or openblas\n"
     "  Last line on stderr: 'index: A added, C changed, R removed, S skipped, T total'.\n", cmd_index},
    {"search", "kIHjtgU",
     "search MODEL INDEX QUERY... [-k K] [--image IMG] [--json] [--html OUT.html] [-t N] [--gemm B] [--no-truncate]\n"
     "  The K best images of the index for each text QUERY (and for --image IMG), best first,\n"
     "  by cosine similarity: 'SCORE<TAB>PATH' lines ('# QUERY' before each when several).\n"
     "  -k K           results per query (default 10); also --top K\n"
     "  --image IMG    also search with an image\n"
     "  --json         one object per query: {\"query\": Q, \"results\": [{\"path\": P, \"score\": S}]}\n"
     "  --html FILE    also write one self-contained page with thumbnails and scores\n"
     "  -t N, --gemm B threads and matmul backend for encoding the queries\n"
     "  --no-truncate  a query longer than the model's context is an error, not truncated\n", cmd_search},
    {"export", "NPJ",
     "export INDEX [--npy EMB.npy] [--paths PATHS.txt] [--jsonl OUT.jsonl]\n"
     "  The index's vectors, sorted by path: --npy float32 [N, D] (row i = line i of --paths),\n"
     "  --paths one path per line, --jsonl one {\"path\", \"size\", \"mtime_ns\", \"vector\"} per line.\n", cmd_export},
    {"merge", "",
     "merge OUT IN...\n"
     "  Add every entry of the IN indexes (e.g. made with index --shard I/N) to OUT (created if\n"
     "  missing); all must come from the same model. A path in several INs: the last one wins.\n", cmd_merge},
    {"trace", "XDtg",
     "trace MODEL IMAGE [--dump DIR] [-t N] [--gemm B]   or   trace MODEL --text TEXT [--dump DIR]\n"
     "  Every stage of one forward pass, in order: pixels, patches, patch embeddings, class\n"
     "  token + positions (or tokens, end token and token + positions), each block's\n"
     "  LayerNorms, q/k/v, attention, MLP and outputs, the pooled token and the projection:\n"
     "  one line each with shape, mean, std and first values (model/clip.h lists the stages).\n"
     "  The last block computes the pooled token alone past attention (shapes [1, W]).\n"
     "  An IMAGE ending in .npy is a preprocessed float32 [3, S, S] tensor.\n"
     "  --text TEXT  trace the text tower on TEXT instead of an image\n"
     "  --dump DIR   also write each stage as DIR/STAGE.npy (float32; the names of\n"
     "               ../shared/clip/golden-tiny/debug/ where it has the stage)\n"
     "  -t N         threads (default: one per core, and never more)\n"
     "  --gemm B     matmul backend: native (default) or openblas\n", cmd_trace},
    {"quantize", "yetAR",
     "quantize IN.clip OUT.clip --type f16|bf16|q8_0|q4_0 [--keep GLOB]... [--plain] [--no-calibrate] [-t N]\n"
     "  Write IN (an f32 model) with its matrices (linear weights, token embedding) in a smaller\n"
     "  type; LayerNorm, biases and position embeddings stay f32 (README, \"Quantized models\").\n"
     "  --type T     f16, bf16, q8_0 (8.5 bits per weight) or q4_0 (4.5; the tensors whose\n"
     "               errors matter most in q8_0: 5.4 bits per weight in all)\n"
     "  --keep GLOB  keep the tensors whose names match (e.g. 'vision.blocks.0.*') as they are\n"
     "  --plain      no policy exceptions: every matrix in the --type (--keep still applies)\n"
     "  q8_0 and q4_0 round the blocks' linear layers with GPTQ: the f32 model first encodes\n"
     "  16 built-in synthetic images and 128 texts, and each layer's rounding errors are moved\n"
     "  where its inputs make them cost least (ViT-B/32: ~15 s at 2 threads; README)\n"
     "  --no-calibrate  round every weight to its nearest level instead (no calibration run)\n"
     "  -t N         threads (default: one per core)\n", cmd_quantize},
    {"bench", "tbng",
     "bench MODEL [IMAGE] [-t N] [--batch N] [--iters K] [--gemm native|openblas]\n"
     "  In-process benchmark: the matmul peak (native and OpenBLAS), then warm latency of an\n"
     "  image (random pixels; IMAGE, e.g. a JPEG, adds decode + preprocess), a short and a\n"
     "  77-token text, and a batch of N (default 8) of each; milliseconds per stage and\n"
     "  GFLOP/s against the measured peak. Median of K runs (default 10).\n"
     "  -t N         threads (default: one per core, and never more)\n"
     "  --batch N    the batch size of the batch timings (1 to 1024, default 8)\n"
     "  --iters K    runs per timing (default 10)\n"
     "  --gemm B     matmul backend: native (default) or openblas\n", cmd_bench},
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

static void print_command_help(const command *c) {
    printf("usage: clip_run %s", c->usage);
    printf("  -h, --help   this help; '--' ends the options (a TEXT may then start with '-')\n");
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
        if (strcmp(argv[1], "help") == 0 && argc > 2) { /* clip_run help CMD = clip_run CMD --help */
            for (int i = 0; i < N_COMMANDS; i++)
                if (strcmp(argv[2], commands[i].name) == 0) {
                    print_command_help(&commands[i]);
                    return 0;
                }
            return usage_error(NULL, "no command '%s' to help with", argv[2]);
        }
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
        if (!rc && a.help) print_command_help(&commands[i]);
        else if (!rc) rc = commands[i].run(&a);
        free_args(&a);
        return rc;
    }
    return usage_error(NULL, "unknown command '%s'", argv[1]);
}
