/* notifier_text.h: a growable NUL-terminated string, what the notifier
 * composes messages and renders templates into. The caller owns `p`
 * (free it when done); a zeroed tp_text_t is an empty one. */
#ifndef NOTIFIER_TEXT_H
#define NOTIFIER_TEXT_H

#include <stddef.h>

typedef struct tp_text {
    char *p;
    size_t n, cap;
} tp_text_t;

/* Appends `len` bytes of `s`; aborts when out of memory. */
void tp_text_add(tp_text_t *t, const char *s, size_t len);
/* Appends the NUL-terminated `s`. */
void tp_text_adds(tp_text_t *t, const char *s);

#endif
