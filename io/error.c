/* error.c - the per-thread last error message (see error.h). */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_message[1024];

int clip_fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    return code;
}

void clip_error_prefix(const char *context) {
    char tmp[sizeof last_message];
    size_t n = strlen(context);
    if (n > 256) n = 256;
    memcpy(tmp, context, n);
    memcpy(tmp + n, ": ", 2);
    size_t m = strlen(last_message);
    if (m > sizeof tmp - n - 3) m = sizeof tmp - n - 3; /* cut, rather than overflow */
    memcpy(tmp + n + 2, last_message, m);
    tmp[n + 2 + m] = 0;
    memcpy(last_message, tmp, sizeof tmp);
}

const char *clip_last_error(void) { return last_message[0] ? last_message : "no error"; }
