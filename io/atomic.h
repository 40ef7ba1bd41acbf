/* atomic.h - write an output file so that nothing a user had is lost or half-written.
 *
 * Where the output goes decides how it is written:
 *   - a regular file, or a path that does not exist yet: the data goes to a hidden
 *     temporary file in the target's directory, renamed over the target only when
 *     everything was written and synced. A failure, a crash or Ctrl-C at any point leaves
 *     a previous file of that name untouched. The new file keeps the old one's permissions.
 *   - a symbolic link is followed (to its end, even when that file does not exist yet): the
 *     file it points to is replaced as above, and the link stays a link.
 *   - a character or block device or a FIFO (/dev/null, a named pipe with a reader): written
 *     in place, as a shell's `>` would. Renaming over it would replace the device node
 *     itself, which as root breaks every program that uses it.
 *   - "-": standard output (refused when that is a terminal: the data is binary).
 * Directories and sockets are refused with a message.
 */
#ifndef CLIP_IO_ATOMIC_H
#define CLIP_IO_ATOMIC_H

#include <stdio.h>

typedef enum {
    ATOMIC_RENAME = 0,     /* temp file + rename (regular file or new path) */
    ATOMIC_IN_PLACE = 1,   /* device or FIFO, opened and written directly */
    ATOMIC_STDOUT = 2      /* "-" */
} atomic_kind;

typedef struct {
    FILE *file;            /* write here */
    atomic_kind kind;
    char tmp_path[4200];
    char path[4096];       /* the target: the path given, with symbolic links followed */
    char shown[1024];      /* the path as given, for messages */
} atomic_file;

int atomic_open(atomic_file *af, const char *path);
/* Flushes and closes; a renamed output is synced and renamed into place. On failure a
 * temp file is removed and the target is as it was. */
int atomic_commit(atomic_file *af);
/* Gives up: closes and removes the temp file. Safe to call after a failed commit. */
void atomic_abort(atomic_file *af);

/* Install handlers for SIGINT, SIGTERM and SIGHUP that remove the temp file of a write in
 * progress, then let the signal end the process as it would have. A program calls this
 * once at start (clip_run does). The handler only unlink()s a path recorded by
 * atomic_open(), so it is async-signal-safe. SIGKILL cannot be caught: then the hidden
 * temp file ".NAME.tmp.XXXXXX" may remain, but never a truncated NAME. */
void atomic_cleanup_on_signals(void);

/* 1 when `a` and `b` name the same existing file (through links, hard links or other
 * paths: same device and inode), else 0. Lets a program refuse an output that would
 * overwrite one of its own inputs before doing any work. */
int atomic_same_file(const char *a, const char *b);

#endif
