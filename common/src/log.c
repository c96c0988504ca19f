/* log.c: one JSON object per line on stdout: time, level, service,
 * instance, event and customer (while an apply's context is set), message.
 * Owns the process-wide level, names, stream and context. Never logs
 * secrets: callers pass ids, never keys or message contents. */
#include "tp/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static tp_log_level_t min_level = TP_LOG_INFO;
static char service_name[32] = "tp";
static char instance_name[64] = "";
static char context_event[128] = "";
static char context_customer[128] = "";
static FILE *log_out = NULL; /* NULL: stdout */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void tp_log_init(const char *service, const char *instance,
                 tp_log_level_t level) {
    snprintf(service_name, sizeof service_name, "%s", service ? service : "tp");
    snprintf(instance_name, sizeof instance_name, "%s", instance ? instance : "");
    min_level = level;
}

int tp_log_level_parse(const char *name, tp_log_level_t *out) {
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, level_names[i]) == 0) {
            *out = (tp_log_level_t)i;
            return 0;
        }
    return -1;
}

void tp_log_stream(FILE *out) { log_out = out; }

void tp_log_context_set(const char *event_id, const char *customer) {
    snprintf(context_event, sizeof context_event, "%s", event_id ? event_id : "");
    snprintf(context_customer, sizeof context_customer, "%s", customer ? customer : "");
}

void tp_log_context_clear(void) {
    context_event[0] = context_customer[0] = '\0';
}

int tp_log_context_save(tp_log_context_t *out) {
    memcpy(out->event, context_event, sizeof out->event);
    memcpy(out->customer, context_customer, sizeof out->customer);
    return context_event[0] || context_customer[0];
}

void tp_log_context_restore(const tp_log_context_t *ctx) {
    if (!ctx) {
        tp_log_context_clear();
        return;
    }
    memcpy(context_event, ctx->event, sizeof context_event);
    memcpy(context_customer, ctx->customer, sizeof context_customer);
}

/* Appends `s` to `out` as the inside of a JSON string; stops short of
 * `cap` on a whole escape. Returns the length written. */
static size_t json_escape(char *out, size_t cap, const char *s) {
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[n++] = '\\';
            out[n++] = (char)ch;
        } else if (ch == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else if (ch < 0x20 || ch == 0x7f) {
            memcpy(out + n, "\\u00", 4);
            out[n + 4] = hex[ch >> 4];
            out[n + 5] = hex[ch & 15];
            n += 6;
        } else {
            out[n++] = (char)ch;
        }
    }
    out[n] = '\0';
    return n;
}

size_t tp_log_format(char *out, size_t cap, tp_log_level_t level, const char *msg) {
    char esc[2048], service[80], instance[160], event[300], customer[300], stamp[32];
    json_escape(esc, sizeof esc, msg);
    json_escape(service, sizeof service, service_name);
    json_escape(instance, sizeof instance, instance_name);
    json_escape(event, sizeof event, context_event);
    json_escape(customer, sizeof customer, context_customer);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    int n = snprintf(out, cap,
                     "{\"time\":\"%s.%03dZ\",\"level\":\"%s\",\"service\":\"%s\","
                     "\"instance\":\"%s\"%s%s%s%s%s%s,\"msg\":\"%s\"}\n",
                     stamp, (int)(tv.tv_usec / 1000), level_names[level], service,
                     instance, *event ? ",\"event\":\"" : "", event, *event ? "\"" : "",
                     *customer ? ",\"customer\":\"" : "", customer,
                     *customer ? "\"" : "", esc);
    if (n < 0) return 0;
    /* The fields are bounded so that a line fits the callers' 4 KiB; a
     * smaller `cap` still gets one line (its message cut). */
    if ((size_t)n >= cap) {
        if (cap < 5) return 0;
        memcpy(out + cap - 4, "\"}\n", 4);
        return cap - 1;
    }
    return (size_t)n;
}

void tp_log(tp_log_level_t level, const char *fmt, ...) {
    if (level < min_level) return;
    char msg[1024], line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t n = tp_log_format(line, sizeof line, level, msg);
    FILE *out = log_out ? log_out : stdout;
    fwrite(line, 1, n, out);
    fflush(out); /* one whole line at a time, even into a pipe or file */
}
