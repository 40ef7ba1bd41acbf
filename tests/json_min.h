/* json_min.h - just enough JSON reading for the tests: skip values, find an object's
 * member, decode a string to UTF-8, read an array of integers.
 *
 * Works on a NUL-terminated buffer holding trusted reference files; every function takes
 * a pointer to the start of a value (leading white space allowed) and returns NULL on
 * malformed input.
 */
#ifndef CLIP_TESTS_JSON_MIN_H
#define CLIP_TESTS_JSON_MIN_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline const char *json_ws(const char *p) {
    while (p && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static inline int json_hex4(const char *p, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return 0;
        *v = *v << 4 | (unsigned)d;
    }
    return 1;
}

/* Decodes the string at p into out (UTF-8, not NUL-terminated; cap bytes). Returns the
 * position after the closing quote; *len gets the byte count. */
static inline const char *json_string(const char *p, char *out, size_t cap, size_t *len) {
    p = json_ws(p);
    if (!p || *p != '"') return NULL;
    p++;
    size_t n = 0;
    while (*p && *p != '"') {
        unsigned cp;
        if (*p != '\\') {
            if (n < cap) out[n] = *p;
            n++, p++;
            continue;
        }
        p++;
        switch (*p) {
        case 'n': cp = '\n'; break;
        case 't': cp = '\t'; break;
        case 'r': cp = '\r'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'u':
            if (!json_hex4(p + 1, &cp)) return NULL;
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && p[1] == '\\' && p[2] == 'u') {
                unsigned lo;
                if (json_hex4(p + 3, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            break;
        default: cp = (unsigned char)*p; break; /* \" \\ \/ */
        }
        p++;
        unsigned char u[4];
        int k;
        if (cp < 0x80) u[0] = (unsigned char)cp, k = 1;
        else if (cp < 0x800) u[0] = (unsigned char)(0xC0 | cp >> 6), u[1] = (unsigned char)(0x80 | (cp & 63)), k = 2;
        else if (cp < 0x10000)
            u[0] = (unsigned char)(0xE0 | cp >> 12), u[1] = (unsigned char)(0x80 | ((cp >> 6) & 63)),
            u[2] = (unsigned char)(0x80 | (cp & 63)), k = 3;
        else
            u[0] = (unsigned char)(0xF0 | cp >> 18), u[1] = (unsigned char)(0x80 | ((cp >> 12) & 63)),
            u[2] = (unsigned char)(0x80 | ((cp >> 6) & 63)), u[3] = (unsigned char)(0x80 | (cp & 63)), k = 4;
        for (int i = 0; i < k; i++, n++)
            if (n < cap) out[n] = (char)u[i];
    }
    if (*p != '"') return NULL;
    *len = n;
    return p + 1;
}

/* Skips any value. */
static inline const char *json_skip(const char *p) {
    p = json_ws(p);
    if (!p || !*p) return NULL;
    if (*p == '"') {
        for (p++; *p && *p != '"'; p++)
            if (*p == '\\' && p[1]) p++;
        return *p ? p + 1 : NULL;
    }
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = json_ws(p + 1);
        if (*p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                p = json_skip(p); /* key */
                p = json_ws(p);
                if (!p || *p != ':') return NULL;
                p++;
            }
            p = json_ws(json_skip(p));
            if (!p) return NULL;
            if (*p == close) return p + 1;
            if (*p != ',') return NULL;
            p++;
        }
    }
    while (*p && !strchr(",]} \t\r\n", *p)) p++; /* number, true, false, null */
    return p;
}

/* The value of member `key` of the object at p, or NULL. */
static inline const char *json_get(const char *p, const char *key) {
    p = json_ws(p);
    if (!p || *p != '{') return NULL;
    p = json_ws(p + 1);
    char name[64];
    while (p && *p == '"') {
        size_t len;
        p = json_string(p, name, sizeof name, &len);
        p = json_ws(p);
        if (!p || *p != ':') return NULL;
        p = json_ws(p + 1);
        if (len == strlen(key) && len < sizeof name && memcmp(name, key, len) == 0) return p;
        p = json_ws(json_skip(p));
        if (p && *p == ',') p = json_ws(p + 1);
    }
    return NULL;
}

/* Reads an array of integers into out (at most cap); returns the count or -1. */
static inline int json_int_array(const char *p, int32_t *out, int cap) {
    p = json_ws(p);
    if (!p || *p != '[') return -1;
    p = json_ws(p + 1);
    int n = 0;
    while (*p && *p != ']') {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) return -1;
        if (n < cap) out[n] = (int32_t)v;
        n++;
        p = json_ws(end);
        if (*p == ',') p = json_ws(p + 1);
    }
    return *p == ']' ? n : -1;
}

/* Reads a whole file into a NUL-terminated buffer (free it), or NULL. */
static inline char *json_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    if (buf && size) *size = (size_t)n;
    return buf;
}

#endif
