/* notifier_text.c: the growable string of notifier_text.h. */
#include "notifier_text.h"

#include <stdlib.h>
#include <string.h>

void tp_text_add(tp_text_t *t, const char *s, size_t len) {
    if (t->n + len + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->n + len + 1) cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) abort();
        t->p = p;
        t->cap = cap;
    }
    memcpy(t->p + t->n, s, len);
    t->n += len;
    t->p[t->n] = '\0';
}

void tp_text_adds(tp_text_t *t, const char *s) { tp_text_add(t, s, strlen(s)); }
