/* notifier_template.c: loading, checking and rendering the templates.
 *
 * Owns the template texts (copies of the files). Checks each placeholder
 * against the catalogue in proto/ at load; never reads a file after
 * loading. */
#include "notifier_template.h"
#include "notifier_text.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/proto.h"

#define NAME_MAX_LEN 200

typedef struct template {
    char key[NAME_MAX_LEN]; /* "<type>[.<rule>].<lang>" */
    char *subject, *text, *html;
} template_t;

struct tp_templates {
    template_t *items;
    size_t n, cap;
};

static void buf_add_escaped(tp_text_t *b, const char *s, int html, int json) {
    for (; *s; s++) {
        const char *rep = NULL;
        char tmp[8];
        unsigned char c = (unsigned char)*s;
        if (html) {
            if (c == '<') rep = "&lt;";
            else if (c == '>') rep = "&gt;";
            else if (c == '&') rep = "&amp;";
            else if (c == '"') rep = "&quot;";
            else if (c == '\'') rep = "&#39;";
        } else if (json) {
            if (c == '"') rep = "\\\"";
            else if (c == '\\') rep = "\\\\";
            else if (c == '\n') rep = "\\n";
            else if (c == '\r') rep = "\\r";
            else if (c == '\t') rep = "\\t";
            else if (c < 0x20) {
                snprintf(tmp, sizeof tmp, "\\u%04x", c);
                rep = tmp;
            }
        }
        if (rep)
            tp_text_add(b, rep, strlen(rep));
        else
            tp_text_add(b, s, 1);
    }
}

/* ---- placeholders ---- */

typedef struct placeholder {
    char name[96];
    const char *fallback; /* into the text; NULL when none */
    size_t fallback_len;
    const char *end;      /* just past "}}" */
} placeholder_t;

/* Parses the placeholder starting at `p` ("{{"). Returns 0, or -1 when it
 * is not well formed. */
static int placeholder_parse(const char *p, placeholder_t *ph) {
    const char *q = p + 2;
    size_t n = strspn(q, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "0123456789_.-");
    if (n == 0 || n >= sizeof ph->name) return -1;
    memcpy(ph->name, q, n);
    ph->name[n] = '\0';
    q += n;
    ph->fallback = NULL;
    ph->fallback_len = 0;
    if (*q == '|') {
        const char *close = strstr(q, "}}");
        if (!close) return -1;
        ph->fallback = q + 1;
        ph->fallback_len = (size_t)(close - q - 1);
        q = close;
    }
    if (strncmp(q, "}}", 2) != 0) return -1;
    ph->end = q + 2;
    return 0;
}

static int in_list(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

/* The catalogue field `path` ("contact.name") of `fields`, or NULL. */
static const tp_field_t *field_find(const tp_field_t *fields, const char *path) {
    const char *dot = strchr(path, '.');
    size_t n = dot ? (size_t)(dot - path) : strlen(path);
    for (const tp_field_t *f = fields; f && f->name; f++) {
        if (strlen(f->name) != n || strncmp(f->name, path, n) != 0) continue;
        if (!dot) return f;
        if (f->kind != TP_FIELD_OBJECT) return NULL;
        const tp_field_t *sub = field_find(f->sub, dot + 1);
        /* a required field inside an optional object is optional */
        static tp_field_t optional;
        if (sub && !f->required) {
            optional = *sub;
            optional.required = 0;
            return &optional;
        }
        return sub;
    }
    return NULL;
}

int tp_template_check(const char *text, const char *allowed, char *bad,
                      size_t badlen) {
    for (const char *p = strstr(text, "{{"); p; p = strstr(p + 2, "{{")) {
        placeholder_t ph;
        if (placeholder_parse(p, &ph) < 0) {
            snprintf(bad, badlen, "malformed placeholder");
            return -1;
        }
        if (!in_list(allowed, ph.name)) {
            snprintf(bad, badlen, "%s", ph.name);
            return -1;
        }
    }
    return 0;
}

/* Checks one line of a template against the catalogue. Returns 0 or -1
 * with why in err. */
static int line_check(const char *line, const tp_event_schema_t *schema,
                      int digest, char *err, size_t errlen) {
    for (const char *p = strstr(line, "{{"); p; p = strstr(p + 2, "{{")) {
        placeholder_t ph;
        if (placeholder_parse(p, &ph) < 0) {
            snprintf(err, errlen, "malformed placeholder (expected {{field}} "
                                  "or {{field|fallback}})");
            return -1;
        }
        if (digest) {
            if (in_list(TP_TEMPLATE_DIGEST_FIELDS, ph.name)) continue;
            snprintf(err, errlen, "{{%s}}: a digest has only %s", ph.name,
                     TP_TEMPLATE_DIGEST_FIELDS);
            return -1;
        }
        if (in_list(TP_TEMPLATE_EXTRAS, ph.name)) continue;
        const tp_field_t *f = field_find(schema->fields, ph.name);
        if (!f) {
            snprintf(err, errlen, "{{%s}}: %s has no such field", ph.name,
                     schema->name);
            return -1;
        }
        if (f->kind == TP_FIELD_OBJECT || f->kind == TP_FIELD_ARRAY) {
            snprintf(err, errlen, "{{%s}}: not a single value", ph.name);
            return -1;
        }
        if (!f->required && !ph.fallback) {
            snprintf(err, errlen,
                     "{{%s}}: optional in %s; write {{%s|fallback}}", ph.name,
                     schema->name, ph.name);
            return -1;
        }
    }
    return 0;
}

static int expand(const char *text, const json_t *fields, int html, int json,
                  tp_text_t *out, char *err, size_t errlen) {
    tp_text_add(out, "", 0);
    const char *p = text;
    for (const char *open = strstr(p, "{{"); open; open = strstr(p, "{{")) {
        tp_text_add(out, p, (size_t)(open - p));
        placeholder_t ph;
        if (placeholder_parse(open, &ph) < 0) { /* checked at load */
            tp_text_add(out, "{{", 2);
            p = open + 2;
            continue;
        }
        const char *v = json_string_value(json_object_get(fields, ph.name));
        if (v && (*v || !ph.fallback)) {
            buf_add_escaped(out, v, html, json);
        } else if (ph.fallback) {
            char *fb = strndup(ph.fallback, ph.fallback_len);
            if (!fb) abort();
            buf_add_escaped(out, fb, html, json);
            free(fb);
        } else {
            if (err) snprintf(err, errlen, "field %s missing", ph.name);
            return -1;
        }
        p = ph.end;
    }
    tp_text_add(out, p, strlen(p));
    return 0;
}

int tp_template_expand(const char *text, const json_t *fields, int json_escape,
                       char **out) {
    tp_text_t b = {0};
    if (expand(text, fields, 0, json_escape, &b, NULL, 0) < 0) {
        free(b.p);
        *out = NULL;
        return -1;
    }
    *out = b.p;
    return 0;
}

/* ---- loading ---- */

static char *read_file(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    tp_text_t b = {0};
    char chunk[4096];
    size_t n;
    tp_text_add(&b, "", 0);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) tp_text_add(&b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (bad || strlen(b.p) != b.n) {
        snprintf(err, errlen, "cannot read %s%s", path,
                 bad ? "" : ": contains a NUL byte");
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* Checks every line of `text` (file `path`, its first line numbered
 * `first_line`). */
static int text_check(const char *path, int first_line, const char *text,
                      const tp_event_schema_t *schema, int digest, char *err,
                      size_t errlen) {
    int line = first_line;
    for (const char *p = text; *p; line++) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char *one = strndup(p, len);
        if (!one) abort();
        char why[300];
        int rc = line_check(one, schema, digest, why, sizeof why);
        free(one);
        if (rc < 0) {
            snprintf(err, errlen, "%s:%d: %s", path, line, why);
            return -1;
        }
        if (!nl) break;
        p = nl + 1;
    }
    return 0;
}

static template_t *find(const tp_templates_t *self, const char *key) {
    for (size_t i = 0; i < self->n; i++)
        if (strcmp(self->items[i].key, key) == 0) return &self->items[i];
    return NULL;
}

static template_t *add(tp_templates_t *self, const char *key) {
    template_t *t = find(self, key);
    if (t) return t;
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        template_t *items = realloc(self->items, cap * sizeof *items);
        if (!items) abort();
        self->items = items;
        self->cap = cap;
    }
    t = &self->items[self->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->key, sizeof t->key, "%s", key);
    return t;
}

/* One file: "<type>[.<rule>].<lang>.(txt|html)". */
static int load_file(tp_templates_t *self, const char *dir, const char *name,
                     char *err, size_t errlen) {
    size_t n = strlen(name);
    int html = n > 5 && strcmp(name + n - 5, ".html") == 0;
    int txt = n > 4 && strcmp(name + n - 4, ".txt") == 0;
    if (!html && !txt) return 0; /* README and the like */
    char path[1024], key[NAME_MAX_LEN], type[NAME_MAX_LEN];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t keylen = n - (html ? 5 : 4);
    if (keylen >= sizeof key) {
        snprintf(err, errlen, "%s: name too long", path);
        return -1;
    }
    memcpy(key, name, keylen);
    key[keylen] = '\0';
    /* the type is the first two dot-separated words, the lang the last */
    const char *dot1 = strchr(key, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot2) {
        snprintf(err, errlen, "%s: expected <type>[.<rule>].<lang>.txt", path);
        return -1;
    }
    snprintf(type, sizeof type, "%.*s", (int)(dot2 - key), key);
    tp_event_type_t et = tp_proto_type(type);
    if (et == TP_EVENT_NONE) {
        snprintf(err, errlen, "%s: unknown event type \"%s\"", path, type);
        return -1;
    }
    const tp_event_schema_t *schema = tp_proto_schema(et);
    /* "<type>.digest.<lang>": the digest's own fields */
    const char *last = strrchr(key, '.');
    int digest = (size_t)(last - dot2) == 7 && strncmp(dot2, ".digest", 7) == 0;

    char *content = read_file(path, err, errlen);
    if (!content) return -1;
    template_t *t = add(self, key);
    if (html) {
        if (text_check(path, 1, content, schema, digest, err, errlen) < 0) {
            free(content);
            return -1;
        }
        free(t->html);
        t->html = content;
        return 0;
    }
    /* "Subject: ...\n\n<text>" */
    if (strncmp(content, "Subject:", 8) != 0) {
        snprintf(err, errlen, "%s:1: expected \"Subject: ...\"", path);
        free(content);
        return -1;
    }
    const char *nl = strchr(content, '\n');
    const char *s = content + 8;
    while (*s == ' ') s++;
    char *subject = strndup(s, nl ? (size_t)(nl - s) : strlen(s));
    if (!subject) abort();
    size_t sl = strlen(subject);
    while (sl && (subject[sl - 1] == '\r' || subject[sl - 1] == ' ')) subject[--sl] = 0;
    const char *body = nl ? nl + 1 : "";
    int body_line = 2;
    if (*body == '\n' || (*body == '\r' && body[1] == '\n')) {
        body += *body == '\n' ? 1 : 2;
        body_line = 3;
    }
    if (!*subject || text_check(path, 1, subject, schema, digest, err, errlen) < 0 ||
        text_check(path, body_line, body, schema, digest, err, errlen) < 0) {
        if (!*subject) snprintf(err, errlen, "%s:1: empty subject", path);
        free(subject);
        free(content);
        return -1;
    }
    free(t->subject);
    free(t->text);
    t->subject = subject;
    t->text = strdup(body);
    if (!t->text) abort();
    free(content);
    return 0;
}

tp_templates_t *tp_templates_new(const char *dir, char *err, size_t errlen) {
    tp_templates_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot open template folder %s: %s", dir,
                 strerror(errno));
        free(self);
        return NULL;
    }
    /* sorted, so the first error is the same on every machine */
    struct dirent **names = NULL;
    int count = scandir(dir, &names, NULL, alphasort);
    closedir(d);
    int rc = count < 0 ? -1 : 0;
    if (count < 0)
        snprintf(err, errlen, "cannot list %s: %s", dir, strerror(errno));
    for (int i = 0; i < count; i++) {
        if (rc == 0 && names[i]->d_name[0] != '.')
            rc = load_file(self, dir, names[i]->d_name, err, errlen);
        free(names[i]);
    }
    free(names);
    for (size_t i = 0; rc == 0 && i < self->n; i++)
        if (!self->items[i].text) {
            snprintf(err, errlen, "%s/%s.html: no %s.txt beside it", dir,
                     self->items[i].key, self->items[i].key);
            rc = -1;
        }
    if (rc < 0) tp_templates_destroy(&self);
    return self;
}

void tp_templates_destroy(tp_templates_t **self_p) {
    if (!self_p || !*self_p) return;
    tp_templates_t *self = *self_p;
    *self_p = NULL;
    for (size_t i = 0; i < self->n; i++) {
        free(self->items[i].subject);
        free(self->items[i].text);
        free(self->items[i].html);
    }
    free(self->items);
    free(self);
}

static const template_t *lookup(const tp_templates_t *self, const char *type,
                                const char *rule, const char *lang,
                                const char *fallback_lang) {
    const char *langs[2] = {lang, fallback_lang};
    char key[NAME_MAX_LEN];
    for (int l = 0; l < 2; l++) {
        if (!langs[l] || !*langs[l]) continue;
        const template_t *t = NULL;
        if (rule && *rule) {
            snprintf(key, sizeof key, "%s.%s.%s", type, rule, langs[l]);
            t = find(self, key);
        }
        size_t rl = rule ? strlen(rule) : 0;
        int strict = (rl > 9 && strcmp(rule + rl - 9, ".customer") == 0) ||
                     (rule && (strcmp(rule, "digest") == 0 ||
                               strcmp(rule, "customer") == 0));
        if (!t && !strict) {
            snprintf(key, sizeof key, "%s.%s", type, langs[l]);
            t = find(self, key);
        }
        if (t) return t;
    }
    return NULL;
}

int tp_templates_has(const tp_templates_t *self, const char *type,
                     const char *rule, const char *lang,
                     const char *fallback_lang) {
    return lookup(self, type, rule, lang, fallback_lang) != NULL;
}

int tp_templates_render(const tp_templates_t *self, const char *type,
                        const char *rule, const char *lang,
                        const char *fallback_lang, const json_t *fields,
                        char **subject, char **text, char **html, char *err,
                        size_t errlen) {
    *subject = *text = *html = NULL;
    const template_t *t = lookup(self, type, rule, lang, fallback_lang);
    if (!t) {
        snprintf(err, errlen, "no template for %s (%s)", type, lang);
        return -1;
    }
    tp_text_t s = {0}, x = {0}, h = {0};
    if (expand(t->subject, fields, 0, 0, &s, err, errlen) < 0 ||
        expand(t->text, fields, 0, 0, &x, err, errlen) < 0 ||
        (t->html && expand(t->html, fields, 1, 0, &h, err, errlen) < 0)) {
        free(s.p);
        free(x.p);
        free(h.p);
        return -1;
    }
    /* a subject is one line whatever a field held */
    for (char *c = s.p; *c; c++)
        if (*c == '\r' || *c == '\n') *c = ' ';
    *subject = s.p;
    *text = x.p;
    *html = h.p;
    return 0;
}
