/* ident.c: normal forms of phone numbers and email addresses. */
#include "tp/ident.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

int tp_ident_phone(const char *in, const char *default_cc, char *out,
                   size_t outlen) {
    char digits[40];
    size_t n = 0;
    int plus = 0;
    for (const char *p = in; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (isdigit(ch)) {
            if (n + 1 >= sizeof digits) return -1;
            digits[n++] = (char)ch;
        } else if (ch == '+' && n == 0 && !plus) {
            plus = 1;
        } else if (ch != ' ' && ch != '-' && ch != '.' && ch != '(' &&
                   ch != ')' && ch != '\t') {
            return -1;
        }
    }
    digits[n] = '\0';
    const char *national = digits;
    char full[48];
    if (plus) {
        snprintf(full, sizeof full, "%s", digits);
    } else if (n > 2 && digits[0] == '0' && digits[1] == '0') {
        snprintf(full, sizeof full, "%s", digits + 2);
    } else {
        if (national[0] == '0') national++; /* trunk prefix */
        snprintf(full, sizeof full, "%s%s", default_cc ? default_cc : "",
                 national);
    }
    size_t len = strlen(full);
    if (len < 8 || len > 15 || len + 2 > outlen) return -1;
    out[0] = '+';
    memcpy(out + 1, full, len + 1);
    return 0;
}

int tp_ident_email(const char *in, char *out, size_t outlen) {
    while (*in && isspace((unsigned char)*in)) in++;
    size_t len = strlen(in);
    while (len > 0 && isspace((unsigned char)in[len - 1])) len--;
    if (len == 0 || len + 1 > outlen) return -1;
    int at = -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (isspace(ch)) return -1;
        if (ch == '@') {
            if (at >= 0) return -1;
            at = (int)i;
        }
        out[i] = (char)tolower(ch);
    }
    out[len] = '\0';
    if (at <= 0 || (size_t)at == len - 1) return -1;
    return 0;
}
