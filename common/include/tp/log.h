/* log.h: one JSON object per line on stderr, for operators.
 *
 * Owns the process-wide log level and service name. Never logs secrets (API
 * keys, passwords) or personal data beyond ids: callers pass ids, not
 * contents. Safe from the loop thread only (one thread per service). */
#ifndef TP_LOG_H
#define TP_LOG_H

typedef enum { TP_LOG_DEBUG, TP_LOG_INFO, TP_LOG_WARN, TP_LOG_ERROR } tp_log_level_t;

/* Sets the service name and instance shown on every line. `service` and
 * `instance` are copied. */
void tp_log_init(const char *service, const char *instance, tp_log_level_t level);
/* Parses "debug|info|warn|error". Returns 0, or -1 when unknown. */
int tp_log_level_parse(const char *name, tp_log_level_t *out);
void tp_log(tp_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define tp_log_debug(...) tp_log(TP_LOG_DEBUG, __VA_ARGS__)
#define tp_log_info(...) tp_log(TP_LOG_INFO, __VA_ARGS__)
#define tp_log_warn(...) tp_log(TP_LOG_WARN, __VA_ARGS__)
#define tp_log_error(...) tp_log(TP_LOG_ERROR, __VA_ARGS__)

#endif
