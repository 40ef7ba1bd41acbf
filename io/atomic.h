/* atomic.h - write a file so that readers see either the old one or the complete new one.
 *
 * Data goes to a temporary file in the target's directory; only when everything was
 * written and flushed is it renamed over the target. A failure, a crash or Ctrl-C at any
 * point leaves a previous file of that name untouched.
 */
#ifndef CLIP_IO_ATOMIC_H
#define CLIP_IO_ATOMIC_H

#include <stdio.h>

typedef struct {
    FILE *file;            /* write here */
    char tmp_path[1100];
    char path[1024];
} atomic_file;

int atomic_open(atomic_file *af, const char *path);
/* Flushes, syncs and renames into place; on failure the temp file is removed. */
int atomic_commit(atomic_file *af);
/* Gives up: closes and removes the temp file. Safe to call after a failed commit. */
void atomic_abort(atomic_file *af);

/* Install handlers for SIGINT, SIGTERM and SIGHUP that remove the temp file of a write in
 * progress, then let the signal end the process as it would have. A program calls this
 * once at start (clip_run does). The handler only unlink()s a path recorded by
 * atomic_open(), so it is async-signal-safe. SIGKILL cannot be caught: then the hidden
 * temp file ".NAME.tmp.XXXXXX" may remain, but never a truncated NAME. */
void atomic_cleanup_on_signals(void);

#endif
