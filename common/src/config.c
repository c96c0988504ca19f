/* config.c: the deployment's INI file, overridden key by key from the
 * environment (TP_<SECTION>_<KEY>).
 *
 * Owns copies of every section/key/value read from the file, copies of the
 * environment values handed out (so they outlive a later setenv), and the
 * first error a getter met. Must never log or quote a value in an error (it
 * may be a secret), and never fail loudly from a getter: it records the
 * error and returns the default, and main asks tp_config_check once. */
#include "tp/config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    char *section;
    char *key;
    char *value;
    int from_env; /* a copy of an environment value, handed out */
    int line;     /* where the file set it, for errors; 0 otherwise */
} entry_t;

struct tp_config {
    entry_t *entries;
    size_t count, cap;
    int failed;      /* a getter recorded an error */
    char error[512]; /* the first one */
    char *path;      /* the file, for errors naming file:line */
    /* Loading only: */
    FILE *file;
    int lines_read;
    int long_line; /* first line longer than inih's buffer, 0 if none */
};

static char *copy(const char *s) {
    char *out = strdup(s);
    if (!out) abort();
    return out;
}

static void entry_add(tp_config_t *self, const char *section, const char *key,
                      const char *value, int from_env) {
    if (self->count == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 16;
        self->entries =
            realloc(self->entries, self->cap * sizeof *self->entries);
        if (!self->entries) abort();
    }
    self->entries[self->count++] =
        (entry_t){copy(section), copy(key), copy(value), from_env, 0};
}

/* Sections and keys compare without case, like their environment names. */
static entry_t *entry_find(tp_config_t *self, const char *section,
                           const char *key, int from_env) {
    for (size_t i = self->count; i-- > 0;) {
        entry_t *e = &self->entries[i];
        if (e->from_env == from_env && strcasecmp(e->section, section) == 0 &&
            strcasecmp(e->key, key) == 0)
            return e;
    }
    return NULL;
}

/* ini_parse_stream's line source: fgets, except that a line longer than
 * inih's buffer is noted (inih would silently read its tail as a line of
 * its own) and its tail skipped. */
static char *line_read(char *str, int num, void *stream) {
    tp_config_t *self = stream;
    if (!fgets(str, num, self->file)) return NULL;
    self->lines_read++;
    size_t len = strlen(str);
    if (len == (size_t)num - 1 && str[len - 1] != '\n') {
        int ch = getc(self->file);
        if (ch != EOF && ch != '\n') {
            if (!self->long_line) self->long_line = self->lines_read;
            while (ch != EOF && ch != '\n')
                ch = getc(self->file);
        }
    }
    return str;
}

/* Later duplicates win, as they would in the environment. */
static int line_parsed(void *user, const char *section, const char *key,
                       const char *value) {
    tp_config_t *self = user;
    entry_t *e = entry_find(self, section, key, 0);
    if (e) {
        free(e->value);
        e->value = copy(value);
    } else {
        entry_add(self, section, key, value, 0);
        e = &self->entries[self->count - 1];
    }
    e->line = self->lines_read; /* inih hands over each line as it reads it */
    return 1;
}

tp_config_t *tp_config_new(const char *path, char *err, size_t errlen) {
    tp_config_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    if (!path) return self;
    self->path = copy(path);

    self->file = fopen(path, "r");
    if (!self->file) {
        if (err && errlen)
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        goto fail;
    }
    int line = ini_parse_stream(line_read, self, line_parsed, self);
    int read_failed = ferror(self->file);
    fclose(self->file);
    self->file = NULL;

    if (read_failed) {
        if (err && errlen) snprintf(err, errlen, "cannot read %s", path);
        goto fail;
    }
    if (self->long_line && (line <= 0 || self->long_line < line)) {
        if (err && errlen)
            snprintf(err, errlen, "%s:%d: line too long", path,
                     self->long_line);
        goto fail;
    }
    if (line > 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s:%d: syntax error", path, line);
        goto fail;
    }
    if (line < 0) abort(); /* -2: inih ran out of memory */
    return self;

fail:
    tp_config_destroy(&self);
    return NULL;
}

void tp_config_destroy(tp_config_t **self_p) {
    if (!self_p || !*self_p) return;
    tp_config_t *self = *self_p;
    *self_p = NULL;
    for (size_t i = 0; i < self->count; i++) {
        free(self->entries[i].section);
        free(self->entries[i].key);
        free(self->entries[i].value);
    }
    free(self->entries);
    free(self->path);
    free(self);
}

/* The environment's value for section/key, or NULL. */
static const char *env_lookup(const char *section, const char *key) {
    size_t len = 3 + strlen(section) + 1 + strlen(key) + 1;
    char *name = malloc(len);
    if (!name) abort();
    snprintf(name, len, "TP_%s_%s", section, key);
    for (char *p = name; *p; p++) {
        if (*p == '.' || *p == '-')
            *p = '_';
        else
            *p = (char)toupper((unsigned char)*p);
    }
    const char *value = getenv(name);
    free(name);
    return value;
}

/* Records the first error only: it names section.key, never the value. */
static void error_record(tp_config_t *self, const char *section,
                         const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void error_record(tp_config_t *self, const char *section,
                         const char *key, const char *fmt, ...) {
    if (self->failed) return;
    self->failed = 1;
    /* A value from the file is named by file and line too; the
     * environment's wins, so only when it is not set there. */
    entry_t *e = env_lookup(section, key) ? NULL : entry_find(self, section, key, 0);
    int n = e && e->line && self->path
                ? snprintf(self->error, sizeof self->error, "%s:%d: %s.%s: ",
                           self->path, e->line, section, key)
                : snprintf(self->error, sizeof self->error, "%s.%s: ", section, key);
    if (n < 0 || (size_t)n >= sizeof self->error) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->error + n, sizeof self->error - (size_t)n, fmt, ap);
    va_end(ap);
}

const char *tp_config_str(tp_config_t *self, const char *section,
                          const char *key, const char *def) {
    assert(self && section && key);
    const char *env = env_lookup(section, key);
    if (env) {
        /* Copy, so the result outlives a later setenv; reuse the copy while
         * the value stays the same. */
        entry_t *e = entry_find(self, section, key, 1);
        if (!e || strcmp(e->value, env) != 0) {
            entry_add(self, section, key, env, 1);
            e = &self->entries[self->count - 1];
        }
        return e->value;
    }
    entry_t *e = entry_find(self, section, key, 0);
    return e ? e->value : def;
}

/* Strict decimal: optional '-', digits, nothing else (no spaces, no '+',
 * no hex, no separators). */
static int parse_int(const char *text, int64_t *out) {
    const char *p = text;
    if (*p == '-') p++;
    if (!isdigit((unsigned char)*p)) return -1;
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (errno == ERANGE || *end != '\0') return -1;
    *out = (int64_t)v;
    return 0;
}

int64_t tp_config_int(tp_config_t *self, const char *section, const char *key,
                      int64_t def, int64_t min, int64_t max) {
    const char *text = tp_config_str(self, section, key, NULL);
    if (!text) return def;
    int64_t v;
    if (parse_int(text, &v) == 0 && v >= min && v <= max) return v;
    error_record(self, section, key,
                 "must be an integer from %" PRId64 " to %" PRId64, min, max);
    return def;
}

int tp_config_bool(tp_config_t *self, const char *section, const char *key,
                   int def) {
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    const char *text = tp_config_str(self, section, key, NULL);
    if (!text) return def;
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(text, yes[i]) == 0) return 1;
        if (strcasecmp(text, no[i]) == 0) return 0;
    }
    error_record(self, section, key,
                 "must be true/false, yes/no, on/off or 1/0");
    return def;
}

int tp_config_parse_ms(const char *text, int64_t *out) {
    static const struct {
        const char *suffix;
        int64_t ms;
    } units[] = {{"", 1},          {"ms", 1},          {"s", 1000},
                 {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 86400 * 1000}};
    if (!text || !isdigit((unsigned char)*text)) return -1;
    int64_t n = 0;
    const char *p = text;
    for (; isdigit((unsigned char)*p); p++) {
        int digit = *p - '0';
        if (n > (INT64_MAX - digit) / 10) return -1;
        n = n * 10 + digit;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(p, units[i].suffix) != 0) continue;
        if (n > INT64_MAX / units[i].ms) return -1;
        *out = n * units[i].ms;
        return 0;
    }
    return -1;
}

int64_t tp_config_ms(tp_config_t *self, const char *section, const char *key,
                     const char *def) {
    int64_t fallback = 0;
    if (def && tp_config_parse_ms(def, &fallback) == -1) {
        assert(!"tp_config_ms: malformed default");
        error_record(self, section, key, "default is not a duration");
        fallback = 0;
    }
    const char *text = tp_config_str(self, section, key, NULL);
    if (!text) return fallback;
    int64_t v;
    if (tp_config_parse_ms(text, &v) == 0) return v;
    error_record(self, section, key,
                 "must be a duration such as 250ms, 2s, 30m, 24h or 3d");
    return fallback;
}

int tp_config_check(tp_config_t *self, char *err, size_t errlen) {
    assert(self);
    if (!self->failed) return 0;
    if (err && errlen) snprintf(err, errlen, "%s", self->error);
    return -1;
}
