/* cli.h - what the clip_run commands share (internal to tools/, not a public API):
 * the parsed command line, error reporting, text lists, JSON strings, and the steps every
 * command takes (open a model and context, load pixels, embed an image or a text, write
 * embeddings). Implemented in cli_common.c; each cmd_*.c holds one family of commands and
 * clip_run.c the command table and main().
 */
#ifndef CLIP_RUN_CLI_H
#define CLIP_RUN_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../model/clip.h"

#define MAX_TEXT_BYTES (1 << 20)     /* one text (a line of -f FILE) */
#define MAX_INPUT_BYTES (64 << 20)   /* all of -f FILE */

/* ---- Errors: one line "clip_run: error: ..."; return the exit code (2 usage, 1 failure) ---- */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int api_fail(void);

/* ---- Command-line parsing ---------------------------------------------------------------- */
typedef struct {
    const char *cmd;             /* "classify ", for messages */
    const char **pos;            /* positional arguments */
    int n_pos;
    const char *output;          /* -o */
    const char **labels;         /* -l, repeatable */
    int n_labels;
    const char *template_;       /* --template */
    const char *file;            /* -f */
    const char *gemm;            /* --gemm */
    int top, threads, batch, iters, raw, json, null_sep, ids, help;
    const char **excludes;       /* --exclude GLOB, repeatable */
    int n_excludes;
    const char *image;           /* --image (search) */
    const char *html;            /* --html (search) */
    const char *npy, *paths, *jsonl;  /* export */
    const char *paths_out;       /* --paths-out (embed-image) */
    const char *labels_file;     /* --labels FILE (classify) */
    int shard_i, shard_n;        /* --shard I/N; shard_n 0 = no sharding */
    int keep_going, no_truncate;
    int plain;                   /* --plain (quantize): no policy exceptions */
    int no_calibrate;            /* --no-calibrate (quantize): round to nearest, no GPTQ */
    const char *text;            /* --text (trace) */
    const char *dump;            /* --dump DIR (trace) */
    const char *type;            /* --type (quantize) */
    const char **keeps;          /* --keep GLOB, repeatable (quantize) */
    int n_keeps;
} args;


/* Which options a command accepts: a string of letters, see parse() in cli_common.c. */
int parse(int argc, char **argv, const char *cmd, const char *accepts, args *a);
void free_args(args *a);

/* ---- Texts: from the command line and from -f FILE (one per line, or NUL-separated) ---- */
typedef struct {
    char **text;
    size_t *len;
    int n;
    char *buffer;                /* the file's contents, texts point into it */
} text_list;

int read_all(const char *path, char **out, size_t *n_out);
int gather_texts(const args *a, int first_pos, text_list *t);
void free_texts(text_list *t);

/* Writes s as a JSON string; bytes that are not valid UTF-8 become U+FFFD. */
void json_string(FILE *out, const char *s, size_t len);

/* ---- Shared steps ------------------------------------------------------------------------ */
typedef struct {
    clip_model *model;
    clip_context *ctx;
    const clip_config *cfg;
    int ids_input;               /* texts are token ids (--ids) */
    int no_truncate;             /* a text longer than the context is an error */
    int n_truncated;             /* texts cut to the context: one warning at the end */
    char first_truncated[48];
    int threads_asked;           /* -t beyond the cores: capped, one note at the end */
} session;

/* need_context: also a context for a (threads, batch, --gemm) of the command line. */
int open_session(const char *path, const args *a, int need_context, session *s);
void close_session(session *s);
int ends_with(const char *s, const char *suffix);
/* An image file, or a .npy already preprocessed to float32 [3, S, S]: pixels [3, S, S]. */
int load_pixels(const session *s, const char *path, float *pixels);
/* The same without printing: on failure returns 1 with the message in msg (--keep-going). */
int load_pixels_msg(const session *s, const char *path, float *pixels, char *msg, size_t msg_size);
int embed_image(session *s, const char *path, float *pixels, float *embed);
/* "49406 320 1125 49407": token ids given directly (--ids), zero padded to the context. */
int parse_ids(const session *s, const char *text, size_t len, int32_t *ids);
/* Token ids of one text: tokenized, or parsed with --ids. */
int text_ids(session *s, const char *text, size_t len, int32_t *ids);
int embed_text(session *s, const char *text, size_t len, int32_t *ids, float *embed);
int write_embeddings(const char *path, const float *data, int n, int dim);
/* -o must not name an input of the command (the first n_file_args positional arguments,
 * the -f file), also through a link or a hard link: refused (exit 2) before any work. */
int refuse_output_over_inputs(const args *a, int n_file_args);

/* A warning line "clip_run: warning: ..." (the work goes on). */
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The number of cores this process may run on. */
int cpu_count(void);

/* ---- Image lists: files, directories walked recursively, -f LIST (cli_files.c) ----------- */
typedef struct {
    char *path;
    int64_t size, mtime_ns;      /* from stat() */
} file_item;

typedef struct {
    file_item *items;
    int n, cap;
} file_list;

/* An image file name by its extension: .jpg .jpeg .png .bmp .gif .ppm .pgm, any case. */
int is_image_name(const char *name);
/* PATHs (a->pos[first_pos..]) and the lines of -f LIST: a file is taken as named, a
 * directory is walked recursively (sorted, image extensions only, symlinked directories
 * not followed), --exclude GLOBs dropped. absolute: store absolute paths. A missing PATH
 * is an error (exit 1); so is an empty result unless allow_empty. */
int gather_files(const args *a, int first_pos, int absolute, int allow_empty, file_list *out);
void free_files(file_list *l);

/* ---- Commands (cmd_*.c) ------------------------------------------------------------------ */
int cmd_info(args *a);         /* cmd_info.c */
int cmd_tokenize(args *a);
int cmd_bench(args *a);
int cmd_preprocess(args *a);   /* cmd_embed.c */
int cmd_embed_image(args *a);
int cmd_embed_text(args *a);
int cmd_classify(args *a);     /* cmd_classify.c */
int cmd_score(args *a);
int cmd_quantize(args *a);     /* cmd_quantize.c */
int cmd_index(args *a);        /* cmd_search.c */
int cmd_search(args *a);
int cmd_export(args *a);
int cmd_merge(args *a);
int cmd_trace(args *a);        /* cmd_trace.c */

#endif
