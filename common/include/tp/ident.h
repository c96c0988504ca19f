/* ident.h: normal forms of the addresses a customer is found by, so that
 * every contact point finds the same customer (R-SHARED-2).
 * Owns nothing; pure functions. */
#ifndef TP_IDENT_H
#define TP_IDENT_H

#include <stddef.h>

/* Phone number to E.164 ("+8613800138000"). Spaces, dashes, dots and
 * parentheses are ignored; "+" or the international prefix "00" start a
 * country code; otherwise one leading trunk "0" is dropped and
 * `default_cc` (digits, e.g. "86") is put in front. Returns 0, or -1 when
 * the result would not be 8..15 digits or the input has other characters. */
int tp_ident_phone(const char *in, const char *default_cc, char *out,
                   size_t outlen);
/* Email address trimmed and lower-cased. Returns 0, or -1 when it is not
 * local@domain or does not fit. */
int tp_ident_email(const char *in, char *out, size_t outlen);

#endif
