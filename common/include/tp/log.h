/* log.h: one JSON object per line on stdout, for operators.
 *
 * Owns the process-wide log level, service and instance names, the output
 * stream and the event context (the event being applied and its customer).
 * Never logs secrets (API keys, passwords) or personal data beyond ids:
 * callers pass ids, not contents. Safe from the loop thread only (one
 * thread per service).
 *
 * A line: {"time":"2026-12-03T17:45:01.123Z","level":"info","service":
 * "scoring","instance":"scoring-1","event":"01J..","customer":"ACME-1",
 * "msg":"..."}; "event" and "customer" appear while a context is set. */
#ifndef TP_LOG_H
#define TP_LOG_H

#include <stddef.h>
#include <stdio.h>

typedef enum { TP_LOG_DEBUG, TP_LOG_INFO, TP_LOG_WARN, TP_LOG_ERROR } tp_log_level_t;

/* Sets the service name and instance shown on every line. `service` and
 * `instance` are copied. */
void tp_log_init(const char *service, const char *instance, tp_log_level_t level);
/* Parses "debug|info|warn|error". Returns 0, or -1 when unknown. */
int tp_log_level_parse(const char *name, tp_log_level_t *out);
/* Where lines go: stdout unless set (tools whose stdout is their answer
 * send logs to stderr; tests to a file). Borrowed, not closed. */
void tp_log_stream(FILE *out);
void tp_log(tp_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Every line from now until tp_log_context_clear carries "event" and
 * "customer" (either may be NULL or "": left out). Copied. The consumer
 * sets it around each apply callback; a service that logs later, from a
 * Redis reply, sets it again around that work. */
void tp_log_context_set(const char *event_id, const char *customer);
void tp_log_context_clear(void);

/* The context as a value, for work that goes on in a later callback: the
 * store saves it with each command and restores it around the reply's
 * callback, so the lines of an apply's whole chain of Redis replies carry
 * their event. */
typedef struct tp_log_context {
    char event[128];
    char customer[128];
} tp_log_context_t;
/* Copies the current context into `out`; returns 1 when one is set. */
int tp_log_context_save(tp_log_context_t *out);
/* Makes `ctx` current (NULL: clears). */
void tp_log_context_restore(const tp_log_context_t *ctx);

/* Formats one line (with its '\n') into `out`, as tp_log writes it, for
 * tests. Returns its length (truncated to fit `cap`). */
size_t tp_log_format(char *out, size_t cap, tp_log_level_t level, const char *msg);

#define tp_log_debug(...) tp_log(TP_LOG_DEBUG, __VA_ARGS__)
#define tp_log_info(...) tp_log(TP_LOG_INFO, __VA_ARGS__)
#define tp_log_warn(...) tp_log(TP_LOG_WARN, __VA_ARGS__)
#define tp_log_error(...) tp_log(TP_LOG_ERROR, __VA_ARGS__)

#endif
