/* config.h: one INI file per deployment, every key overridable from the
 * environment as TP_<SECTION>_<KEY> (upper case; '.' and '-' become '_').
 *
 * Owns the parsed file. Getters never fail loudly: a value that does not
 * parse records an error naming section.key and returns the default;
 * tp_config_check() reports the first such error once every value was read,
 * so main can stop with one clear message. Never logs values (they may be
 * secrets). */
#ifndef TP_CONFIG_H
#define TP_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct tp_config tp_config_t;

/* Loads `path` (NULL: environment only). Returns NULL with a message naming
 * the file and line in `err` when the file cannot be read or parsed.
 * Caller owns the result. */
tp_config_t *tp_config_new(const char *path, char *err, size_t errlen);
void tp_config_destroy(tp_config_t **self_p);

/* The value, environment first, then file, else `def`. Borrowed: valid until
 * tp_config_destroy. */
const char *tp_config_str(tp_config_t *self, const char *section,
                          const char *key, const char *def);
int64_t tp_config_int(tp_config_t *self, const char *section, const char *key,
                      int64_t def, int64_t min, int64_t max);
int tp_config_bool(tp_config_t *self, const char *section, const char *key,
                   int def);
/* A duration in ms: "250ms", "2s", "30m", "24h", "3d", or plain ms.
 * `def` uses the same notation. */
int64_t tp_config_ms(tp_config_t *self, const char *section, const char *key,
                     const char *def);
/* Parses a duration as tp_config_ms does. Returns 0, or -1 when malformed. */
int tp_config_parse_ms(const char *text, int64_t *out);

/* Returns 0, or -1 and the first error ("scoring.weight_urgency: not an
 * integer") in `err`. */
int tp_config_check(tp_config_t *self, char *err, size_t errlen);

#endif
