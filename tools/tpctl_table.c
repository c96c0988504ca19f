/* tpctl_table.c: aligned columns and time texts for tpctl's plain output
 * (tpctl_table.h). Never reads the clock; never writes but to `out`. */
#include "tpctl_table.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tp/config.h"

void tp_table_time(int64_t ms, char *out, size_t outlen) {
    if (ms <= 0) {
        snprintf(out, outlen, "-");
        return;
    }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void tp_table_duration(int64_t ms, char *out, size_t outlen) {
    const char *sign = "";
    if (ms < 0) sign = "-", ms = -ms;
    int64_t s = ms / 1000;
    if (ms < 1000)
        snprintf(out, outlen, "%s%" PRId64 "ms", sign, ms);
    else if (s < 60)
        snprintf(out, outlen, "%s%" PRId64 "s", sign, s);
    else if (s < 3600)
        snprintf(out, outlen, "%s%" PRId64 "m%02" PRId64 "s", sign, s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, outlen, "%s%" PRId64 "h%02" PRId64 "m", sign, s / 3600, s % 3600 / 60);
    else
        snprintf(out, outlen, "%s%" PRId64 "d%02" PRId64 "h", sign, s / 86400,
                 s % 86400 / 3600);
}

int tp_table_time_key(const char *key) {
    size_t n = strlen(key);
    return strcmp(key, "ts") == 0 || strcmp(key, "due") == 0 ||
           (n > 3 && strcmp(key + n - 3, "_at") == 0) ||
           (n > 4 && strcmp(key + n - 4, "_due") == 0);
}

/* The value at dotted `path`, or NULL. */
static const json_t *lookup(const json_t *obj, const char *path) {
    char part[128];
    const json_t *v = obj;
    while (v && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof part) return NULL;
        memcpy(part, path, n);
        part[n] = '\0';
        v = json_is_object(v) ? json_object_get(v, part) : NULL;
        path += n + (path[n] == '.');
    }
    return v;
}

/* A scalar as text; other kinds as compact JSON. */
static void scalar_text(const json_t *v, char *out, size_t outlen) {
    if (!v || json_is_null(v)) snprintf(out, outlen, "-");
    else if (json_is_string(v)) snprintf(out, outlen, "%s", *json_string_value(v) ? json_string_value(v) : "-");
    else if (json_is_integer(v)) snprintf(out, outlen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v)) snprintf(out, outlen, "%g", json_real_value(v));
    else if (json_is_true(v)) snprintf(out, outlen, "yes");
    else if (json_is_false(v)) snprintf(out, outlen, "no");
    else {
        char *s = json_dumps(v, JSON_COMPACT);
        snprintf(out, outlen, "%s", s ? s : "?");
        free(s);
    }
    for (char *p = out; *p; p++) /* one row, one line */
        if (*p == '\n' || *p == '\t' || *p == '\r') *p = ' ';
}

static int number_of(const json_t *v, int64_t *out) {
    if (json_is_integer(v)) *out = (int64_t)json_integer_value(v);
    else if (json_is_real(v)) *out = (int64_t)json_real_value(v);
    else if (json_is_string(v) && *json_string_value(v)) {
        char *end;
        long long n = strtoll(json_string_value(v), &end, 10);
        if (*end) return -1;
        *out = n;
    } else return -1;
    return 0;
}

size_t tp_table_cell(const json_t *obj, const tp_column_t *col, int64_t now_ms, char *out,
                     size_t outlen) {
    const json_t *v = lookup(obj, col->path);
    int64_t n;
    if (col->kind != TP_COLUMN_TEXT && number_of(v, &n) == 0) {
        if (col->kind == TP_COLUMN_TIME) tp_table_time(n, out, outlen);
        else if (col->kind == TP_COLUMN_AGE) tp_table_duration(now_ms - n, out, outlen);
        else if (col->kind == TP_COLUMN_UNTIL) {
            char d[64];
            tp_table_duration(n >= now_ms ? n - now_ms : now_ms - n, d, sizeof d);
            snprintf(out, outlen, n >= now_ms ? "in %s" : "%s ago", d);
        }
        else tp_table_duration(n, out, outlen);
    } else {
        scalar_text(v, out, outlen);
    }
    return strlen(out);
}

size_t tp_table_print(FILE *out, const json_t *rows, const tp_column_t *cols, size_t ncols,
                      int64_t now_ms) {
    size_t nrows = json_array_size(rows);
    size_t *width = calloc(ncols, sizeof *width);
    char **cells = calloc((nrows + 1) * ncols, sizeof *cells);
    if (!width || !cells) abort();
    char buf[1024];
    for (size_t c = 0; c < ncols; c++) {
        cells[c] = strdup(cols[c].header);
        width[c] = strlen(cols[c].header);
    }
    for (size_t r = 0; r < nrows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            size_t n = tp_table_cell(json_array_get(rows, r), &cols[c], now_ms, buf, sizeof buf);
            cells[(r + 1) * ncols + c] = strdup(buf);
            if (n > width[c]) width[c] = n;
        }
    }
    for (size_t r = 0; r <= nrows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            const char *s = cells[r * ncols + c];
            if (!s) abort();
            if (c + 1 < ncols) fprintf(out, "%-*s  ", (int)width[c], s);
            else fprintf(out, "%s\n", s);
        }
    }
    for (size_t i = 0; i < (nrows + 1) * ncols; i++) free(cells[i]);
    free(cells);
    free(width);
    return nrows;
}

/* Collects "key value" pairs of `obj` under `prefix` into `pairs`. */
static void flatten(const json_t *obj, const char *prefix, json_t *pairs) {
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        char key[256], text[1024];
        snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", k);
        if (json_is_object(v) && json_object_size(v) > 0) {
            flatten(v, key, pairs);
            continue;
        }
        if (json_is_array(v)) {
            size_t i, used = 0;
            json_t *item;
            int scalars = 1;
            json_array_foreach(v, i, item) if (json_is_object(item) || json_is_array(item)) scalars = 0;
            if (!scalars) {
                snprintf(text, sizeof text, "(%zu)", json_array_size(v));
            } else {
                text[0] = '\0';
                json_array_foreach(v, i, item) {
                    char one[256];
                    scalar_text(item, one, sizeof one);
                    used += (size_t)snprintf(text + used, used < sizeof text ? sizeof text - used : 0,
                                             "%s%s", i ? ", " : "", one);
                    if (used >= sizeof text) break;
                }
                if (json_array_size(v) == 0) snprintf(text, sizeof text, "-");
            }
        } else {
            int64_t ms;
            /* times as UTC, when they hold ms */
            if (tp_table_time_key(k) && number_of(v, &ms) == 0 && ms > 100000000000LL)
                tp_table_time(ms, text, sizeof text);
            else
                scalar_text(v, text, sizeof text);
        }
        json_array_append_new(pairs, json_pack("[ss]", key, text));
    }
}

void tp_table_print_record(FILE *out, const json_t *obj) {
    json_t *pairs = json_array();
    flatten(obj, "", pairs);
    size_t width = 0, i;
    json_t *p;
    json_array_foreach(pairs, i, p) {
        size_t n = strlen(json_string_value(json_array_get(p, 0)));
        if (n > width) width = n;
    }
    json_array_foreach(pairs, i, p)
        fprintf(out, "%-*s  %s\n", (int)width, json_string_value(json_array_get(p, 0)),
                json_string_value(json_array_get(p, 1)));
    json_decref(pairs);
}

int tp_table_parse_time(const char *text, int64_t now_ms, int64_t *out) {
    if (!text || !*text) return -1;
    if (text[0] == '+') {
        int64_t ms;
        if (tp_config_parse_ms(text + 1, &ms) < 0 || ms < 0) return -1;
        *out = now_ms + ms;
        return 0;
    }
    size_t n = strlen(text);
    if (strspn(text, "0123456789") == n) {
        if (n > 15) return -1;
        *out = strtoll(text, NULL, 10);
        return 0;
    }
    struct tm tm;
    const char *formats[] = {"%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ", "%Y-%m-%d"};
    for (size_t i = 0; i < sizeof formats / sizeof *formats; i++) {
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(text, formats[i], &tm);
        if (end && *end == '\0') {
            *out = (int64_t)timegm(&tm) * 1000;
            return 0;
        }
    }
    return -1;
}
