/* log.c: one JSON object per line on stderr: time, level, service,
 * instance, message. Owns the process-wide level and names. Never logs
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

/* Appends `s` to `out` as the inside of a JSON string. */
static size_t json_escape(char *out, size_t cap, const char *s) {
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[n++] = '\\';
            out[n++] = (char)ch;
        } else if (ch == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else if (ch < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", ch);
        } else {
            out[n++] = (char)ch;
        }
    }
    out[n] = '\0';
    return n;
}

void tp_log(tp_log_level_t level, const char *fmt, ...) {
    if (level < min_level) return;
    char msg[1024], esc[2048], stamp[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_escape(esc, sizeof esc, msg);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr,
            "{\"time\":\"%s.%03dZ\",\"level\":\"%s\",\"service\":\"%s\","
            "\"instance\":\"%s\",\"msg\":\"%s\"}\n",
            stamp, (int)(tv.tv_usec / 1000), level_names[level], service_name,
            instance_name, esc);
}
