/* argv.h: a growing list of binary-safe command arguments for Redis calls.
 * Owns the arrays and the strings it formatted itself; strings added with
 * tp_argv_add are borrowed and must outlive the call they are sent with. */
#ifndef TP_ARGV_H
#define TP_ARGV_H

#include <stddef.h>
#include <stdint.h>

typedef struct tp_argv {
    const char **v;
    size_t *len;
    size_t n, cap;
    char **owned;
    size_t nowned, capowned;
} tp_argv_t;

void tp_argv_init(tp_argv_t *a);
/* Frees what the list owns; it can be reused after tp_argv_init. */
void tp_argv_clear(tp_argv_t *a);
/* Adds `s` (NUL-terminated when len is (size_t)-1), borrowed. */
void tp_argv_add(tp_argv_t *a, const char *s, size_t len);
/* Adds a formatted string, owned by the list. */
void tp_argv_addf(tp_argv_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void tp_argv_add_int(tp_argv_t *a, int64_t v);
/* Adds a copy of `len` bytes of `s` (binary-safe), owned by the list. */
void tp_argv_add_copy(tp_argv_t *a, const char *s, size_t len);
/* Replaces entry `i` with a copy of `len` bytes of `s` (binary-safe). */
void tp_argv_set_copy(tp_argv_t *a, size_t i, const char *s, size_t len);
/* Replaces entry `i` with a formatted string owned by the list. */
void tp_argv_setf(tp_argv_t *a, size_t i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
