/* tpctl_post.c: `tpctl post FILE [--bus [--as NAME]]`: an event, or a
 * batch {"events":[...]}, from a file ("-": standard input) into intake.
 *
 * Over HTTP (the default): POST /v1/events with tpctl's API key, the
 * bytes of the file as they are; prints intake's answer (accepted and
 * duplicate ids, or the error naming the field). Over the bus (--bus):
 * each event as msgpack on the ZeroMQ ingress ([bus] ingress_endpoint),
 * as producer NAME ([tpctl] producer by default) with CURVE key pair
 * <keys_dir>/NAME.key and intake's <keys_dir>/intake.pub, exactly what a
 * native producer does; prints intake's answer per event (ok, dup,
 * busy, err <field>: <why>). (--bus was tools/tp-send.)
 *
 * Exit 0 when everything was accepted (or a duplicate), 1 otherwise. Owns
 * its ZeroMQ context and socket, or one HTTP request. */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "tp/config.h"
#include "tp/event.h"
#include "tp/service.h"
#include "tpctl.h"

/* Reads [curve] public (and secret) of <dir>/<name>.<ext>. */
static int key_read(tpctl_t *t, const char *dir, const char *name, const char *ext, char *pub,
                    char *sec) {
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext);
    tp_config_t *k = tp_config_new(path, err, sizeof err);
    if (!k) return tpctl_fail(t, TPCTL_FAIL, "%s", err), -1;
    snprintf(pub, 41, "%s", tp_config_str(k, "curve", "public", ""));
    if (sec) snprintf(sec, 41, "%s", tp_config_str(k, "curve", "secret", ""));
    tp_config_destroy(&k);
    if (!pub[0] || (sec && !sec[0]))
        return tpctl_fail(t, TPCTL_FAIL, "%s holds no %s key", path, sec ? "secret" : "public"),
               -1;
    return 0;
}

/* One event over the ingress; its answer appended to `answers`. 1 ok or
 * dup, 0 refused, -1 no answer (printed). */
static int bus_send_one(tpctl_t *t, void *s, const char *endpoint, uint64_t token,
                        const json_t *obj, const char *where, json_t *answers) {
    tp_event_t ev;
    tp_event_error_t everr;
    tp_event_init(&ev);
    if (tp_event_from_json(&ev, obj, &everr) < 0) {
        tp_event_clear(&ev);
        json_array_append_new(answers, json_pack("{s:s, s:s, s:s}", "event", where, "answer",
                                                 "invalid", "field", everr.field));
        fprintf(stderr, "tpctl: post: %s: %s: %s\n", where, everr.field, everr.message);
        return 0;
    }
    msgpack_sbuffer payload;
    msgpack_sbuffer_init(&payload);
    tp_event_pack(&ev, &payload);
    json_t *id = json_string(ev.id);
    tp_event_clear(&ev);
    zmq_send(s, &token, sizeof token, ZMQ_SNDMORE);
    zmq_send(s, payload.data, payload.size, 0);
    msgpack_sbuffer_destroy(&payload);
    char answer[512];
    uint64_t back = 0;
    int n;
    do { /* a late answer to an earlier event is skipped by its token */
        n = zmq_recv(s, &back, sizeof back, 0);
        if (n >= 0) n = zmq_recv(s, answer, sizeof answer - 1, 0);
    } while (n >= 0 && back != token);
    if (n < 0) {
        json_decref(id);
        tpctl_fail(t, TPCTL_FAIL, "no answer from intake at %s in %lld ms (a key it does not "
                   "admit looks like this too)", endpoint,
                   (long long)tp_config_ms(t->cfg, "tpctl", "bus_timeout", "5s"));
        return -1;
    }
    answer[n < (int)sizeof answer ? n : (int)sizeof answer - 1] = '\0';
    json_array_append_new(answers, json_pack("{s:s, s:o, s:s}", "event", where, "id", id,
                                             "answer", answer));
    return strcmp(answer, "ok") == 0 || strcmp(answer, "dup") == 0;
}

static int post_bus(tpctl_t *t, json_t *doc, const char *as) {
    if (!as || !*as) as = tp_config_str(t->cfg, "tpctl", "producer", "");
    if (!*as) return tpctl_fail(t, TPCTL_USAGE, "--as NAME: the producer whose key to use "
                                                "(or [tpctl] producer)");
    int timeout = (int)tp_config_ms(t->cfg, "tpctl", "bus_timeout", "5s");
    char err[256];
    int curve = tp_config_bool(t->cfg, "bus", "curve", 1);
    const char *dir = tp_config_str(t->cfg, "bus", "keys_dir", "");
    const char *endpoint = tp_service_endpoint(t->cfg, TP_SERVICE_INTAKE);
    if (tp_config_check(t->cfg, err, sizeof err) < 0) return tpctl_fail(t, TPCTL_FAIL, "%s", err);
    char pub[41], sec[41], server[41];
    if (curve && (key_read(t, dir, as, "key", pub, sec) < 0 ||
                  key_read(t, dir, "intake", "pub", server, NULL) < 0))
        return TPCTL_FAIL;
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    if (curve) {
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server, 41);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 41);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 41);
    }
    int rc = TPCTL_OK;
    json_t *answers = json_array();
    if (zmq_connect(s, endpoint) < 0) {
        rc = tpctl_fail(t, TPCTL_FAIL, "[bus] ingress_endpoint %s: %s", endpoint,
                        zmq_strerror(zmq_errno()));
    } else {
        json_t *events = json_object_get(doc, "events");
        if (json_is_array(events)) {
            size_t i;
            json_t *ev;
            json_array_foreach(events, i, ev) {
                char where[32];
                snprintf(where, sizeof where, "events[%zu]", i);
                int ok = bus_send_one(t, s, endpoint, i + 1, ev, where, answers);
                if (ok <= 0) rc = TPCTL_FAIL;
                if (ok < 0) break;
            }
        } else if (bus_send_one(t, s, endpoint, 1, doc, "event", answers) <= 0) {
            rc = TPCTL_FAIL;
        }
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    memset(sec, 0, sizeof sec);
    if (t->json) {
        json_t *out = json_pack("{s:s, s:s, s:o}", "via", "bus", "as", as, "answers", answers);
        if (tpctl_print_json(out) != TPCTL_OK) rc = TPCTL_FAIL;
        json_decref(out);
    } else {
        size_t i;
        json_t *a;
        json_array_foreach(answers, i, a) {
            const char *id = json_string_value(json_object_get(a, "id"));
            printf("%s%s%s: %s\n", json_string_value(json_object_get(a, "event")),
                   id && *id ? " " : "", id ? id : "",
                   json_string_value(json_object_get(a, "answer")));
        }
        json_decref(answers);
    }
    return rc;
}

static int post_http(tpctl_t *t, const char *body, size_t len) {
    json_t *answer = NULL;
    int status = tpctl_http(t, "POST", "/v1/events", body, len, &answer);
    if (status < 0) return TPCTL_FAIL;
    int rc = status == 202 ? TPCTL_OK : TPCTL_FAIL;
    if (t->json && answer) {
        json_t *out = json_pack("{s:s, s:i, s:O}", "via", "http", "status", status, "answer",
                                answer);
        if (tpctl_print_json(out) != TPCTL_OK) rc = TPCTL_FAIL;
        json_decref(out);
        if (status != 202) tpctl_http_error(t, status, answer);
    } else if (status == 202) {
        json_t *acc = json_object_get(answer, "accepted"), *dup = json_object_get(answer, "duplicates");
        size_t i;
        json_t *id;
        json_array_foreach(acc, i, id) printf("accepted   %s\n", json_string_value(id));
        json_array_foreach(dup, i, id) printf("duplicate  %s\n", json_string_value(id));
    } else {
        tpctl_http_error(t, status, answer);
    }
    json_decref(answer);
    return rc;
}

int tpctl_post(tpctl_t *t, int argc, char **argv) {
    const char *file = NULL, *as = NULL;
    int bus = 0;
    for (int i = 0; i < argc; i++) {
        int o = tpctl_opt(t, argc, argv, &i, "--as", &as);
        if (o < 0) return TPCTL_USAGE;
        if (o) continue;
        if (strcmp(argv[i], "--bus") == 0) bus = 1;
        else if (argv[i][0] == '-' && argv[i][1]) return tpctl_fail(t, TPCTL_USAGE, "unknown option '%s'", argv[i]);
        else if (!file) file = argv[i];
        else return tpctl_fail(t, TPCTL_USAGE, "one FILE only ('%s')", argv[i]);
    }
    if (!file) return tpctl_fail(t, TPCTL_USAGE, "FILE: the event (or {\"events\":[...]}) to post, - for stdin");
    if (as && !bus) return tpctl_fail(t, TPCTL_USAGE, "--as goes with --bus");
    size_t len;
    char *body = tpctl_read_file(t, file, &len);
    if (!body) return TPCTL_FAIL;
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, 0, &jerr);
    int rc;
    if (!doc || !json_is_object(doc)) {
        rc = tpctl_fail(t, TPCTL_FAIL, "%s: %s (line %d)", file,
                        doc ? "not a JSON object" : jerr.text, doc ? 1 : jerr.line);
    } else {
        rc = bus ? post_bus(t, doc, as) : post_http(t, body, len);
    }
    json_decref(doc);
    free(body);
    return rc;
}
