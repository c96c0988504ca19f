/* notifier_template.h: the words of every notification, per kind and
 * language, from files an operator edits.
 *
 * Owns the templates loaded from one folder (deploy/templates):
 *
 *   <type>[.<rule>].<lang>.txt    "Subject: ..." line, a blank line, the text
 *   <type>[.<rule>].<lang>.html   optional HTML alternative of the text
 *
 * <type> is an event type of the catalogue (reminder.due, sla.breached,
 * customer.at_risk); <rule> narrows it to the reminders of one rule
 * (reminder.due.R-DAYS-1.en.txt); <lang> is "en", "zh-CN", ... A message
 * to the customer's own contact uses <rule>.customer
 * (reminder.due.R-DAYS-1.customer.en.txt), or for a whole kind sent to
 * the customer, <type>.customer.<lang>; these never fall back to a
 * template written for staff; nor does the digest (<type>.digest.<lang>).
 * Placeholders are {{field}} or {{field|fallback}}. A field is a field of
 * the type's `data` in the catalogue (nested as contact.name) or one of the
 * extras every message has (TP_TEMPLATE_EXTRAS). A field the catalogue
 * marks optional needs a fallback: a template that could render a blank is
 * refused at load, naming file:line, so a message never goes out with a
 * hole in it. HTML templates escape what they substitute.
 *
 * Pure after loading: no I/O, no loop; never logs message contents. */
#ifndef TP_NOTIFIER_TEMPLATE_H
#define TP_NOTIFIER_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

/* The fields of the daily digest (<type>.digest.<lang>.txt, e.g.
 * reminder.due.digest.en.txt): how many, the items one per line, whose. */
#define TP_TEMPLATE_DIGEST_FIELDS "count|items|recipient|recipient_name|date"

/* Fields every message carries besides the event's own. */
#define TP_TEMPLATE_EXTRAS                                                    \
    "customer|customer_name|recipient|recipient_name|kind|rule_name|when"

typedef struct tp_templates tp_templates_t;

/* Loads every template in `dir`. Returns NULL with "<file>:<line>: <why>" in
 * `err` when a file is unreadable, misnamed, or names an unknown field or
 * an optional one without fallback. Caller owns the result. */
tp_templates_t *tp_templates_new(const char *dir, char *err, size_t errlen);
void tp_templates_destroy(tp_templates_t **self_p);

/* Whether a template exists for `type` (and `rule`, "" for none) in `lang`,
 * falling back to the rule-less template and then to `fallback_lang`. */
int tp_templates_has(const tp_templates_t *self, const char *type,
                     const char *rule, const char *lang,
                     const char *fallback_lang);

/* Renders the template for `type`/`rule`/`lang` (same fallbacks) with
 * `fields` (an object of strings, borrowed). Returns 0 with the results in
 * *subject, *text and *html (NULL when the template has no HTML); caller
 * owns them (free). Returns -1 when no template fits or a field without
 * fallback is missing from `fields` (the caller's bug: fields come from a
 * validated event), with why in `err`. */
int tp_templates_render(const tp_templates_t *self, const char *type,
                        const char *rule, const char *lang,
                        const char *fallback_lang, const json_t *fields,
                        char **subject, char **text, char **html, char *err,
                        size_t errlen);

/* Expands {{name}} in `text` from `fields` (strings; a missing one is an
 * error, -1). `json_escape` escapes for a JSON string. Caller owns *out. */
int tp_template_expand(const char *text, const json_t *fields, int json_escape,
                       char **out);

/* Checks that every {{name}} in `text` is one of `allowed` ("a|b|c").
 * Returns 0, or -1 with the offending name in `bad`. */
int tp_template_check(const char *text, const char *allowed, char *bad,
                      size_t badlen);

#endif
