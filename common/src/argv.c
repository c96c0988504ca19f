/* argv.c: argument lists for Redis calls. */
#include "tp/argv.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tp_argv_init(tp_argv_t *a) { memset(a, 0, sizeof *a); }

void tp_argv_clear(tp_argv_t *a) {
    for (size_t i = 0; i < a->nowned; i++) free(a->owned[i]);
    free(a->owned);
    free(a->v);
    free(a->len);
    memset(a, 0, sizeof *a);
}

void tp_argv_add(tp_argv_t *a, const char *s, size_t len) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        a->len = realloc(a->len, a->cap * sizeof *a->len);
        if (!a->v || !a->len) abort();
    }
    a->v[a->n] = s ? s : "";
    a->len[a->n] = len == (size_t)-1 ? strlen(a->v[a->n]) : len;
    a->n++;
}

static void own(tp_argv_t *a, char *s) {
    if (a->nowned == a->capowned) {
        a->capowned = a->capowned ? a->capowned * 2 : 8;
        a->owned = realloc(a->owned, a->capowned * sizeof *a->owned);
        if (!a->owned) abort();
    }
    a->owned[a->nowned++] = s;
}

static void add_owned(tp_argv_t *a, char *s) {
    own(a, s);
    tp_argv_add(a, s, (size_t)-1);
}

/* A NUL-terminated copy of `len` bytes of `s`, owned by `a`. */
static char *copy_owned(tp_argv_t *a, const char *s, size_t len) {
    char *copy = malloc(len + 1);
    if (!copy) abort();
    if (len) memcpy(copy, s, len);
    copy[len] = '\0';
    own(a, copy);
    return copy;
}

void tp_argv_add_copy(tp_argv_t *a, const char *s, size_t len) {
    tp_argv_add(a, copy_owned(a, s, len), len);
}

void tp_argv_set_copy(tp_argv_t *a, size_t i, const char *s, size_t len) {
    a->v[i] = copy_owned(a, s, len);
    a->len[i] = len;
}

void tp_argv_setf(tp_argv_t *a, size_t i, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) abort();
    va_end(ap);
    own(a, s);
    a->v[i] = s;
    a->len[i] = strlen(s);
}

void tp_argv_addf(tp_argv_t *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) abort();
    va_end(ap);
    add_owned(a, s);
}

void tp_argv_add_int(tp_argv_t *a, int64_t v) { tp_argv_addf(a, "%" PRId64, v); }
