/* error.h - one error message per thread, set where a failure is detected.
 *
 * Every function that can fail returns a status code (0 on success, a negative
 * CLIP_ERR_* from clip.h otherwise) and, before returning it, records a message
 * that says what was wrong and where, e.g.
 *   "weights.clip: tensor 'vision.blocks.3.attn.qkv.weight' offset past end of file".
 * Callers that only pass the failure on do not touch the message; the CLI prints it.
 */
#ifndef CLIP_IO_ERROR_H
#define CLIP_IO_ERROR_H

#include "../model/clip.h"

/* Record a printf-style message and return `code`, so a failure reads
 *   return clip_fail(CLIP_ERR_FORMAT, "%s: bad magic", path);            */
int clip_fail(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Prefix the current message with "context: " (for a caller that knows the file name). */
void clip_error_prefix(const char *context);

#endif
