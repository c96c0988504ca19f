/* store_answer.h: what the store's unit tests keep of a reply, header-only.
 * answer_cb is a tp_store_reply_cb filling an answer_t (its arg): calls,
 * NULL replies, and the reply's type, integer, element count and string
 * (cut to TP_ANSWER_STR - 1 bytes; define TP_ANSWER_STR before including
 * for more). Owns nothing. */
#ifndef TP_STORE_ANSWER_H
#define TP_STORE_ANSWER_H

#include <stdio.h>
#include <string.h>

#include "tp/store.h"

#ifndef TP_ANSWER_STR
#define TP_ANSWER_STR 512
#endif

typedef struct {
    int calls;
    int nulls;
    int type;
    long long integer;
    size_t len; /* the reply string's whole length */
    size_t elements;
    char str[TP_ANSWER_STR];
} answer_t;

static void answer_cb(tp_store_t *store, redisReply *reply, void *arg) {
    (void)store;
    answer_t *a = arg;
    a->calls++;
    if (!reply) {
        a->nulls++;
        return;
    }
    a->type = reply->type;
    a->integer = reply->integer;
    a->elements = reply->elements;
    a->len = 0;
    a->str[0] = '\0';
    if (reply->str) {
        a->len = reply->len;
        size_t n = reply->len < sizeof a->str - 1 ? reply->len : sizeof a->str - 1;
        memcpy(a->str, reply->str, n);
        a->str[n] = '\0';
    }
}

#endif
