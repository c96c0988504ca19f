/* send.c: tp-send, one event into intake over the ZeroMQ ingress, as a
 * producer with a CURVE key: what a phone system or another integration
 * does natively, and the operator's way to post an event from a file.
 *
 *   tp-send [-c CONFIG] --as NAME EVENT.json     (- reads standard input)
 *
 * Reads [bus] ingress_endpoint, curve and keys_dir from the configuration
 * (TP_CONFIG by default); with CURVE on, uses the key pair
 * <keys_dir>/NAME.key and intake's <keys_dir>/intake.pub. NAME must be one
 * intake admits: a service, or one of [bus] producers. Prints intake's
 * answer ("ok", "dup", "err <field>: <why>", "busy") and exits 0 for ok and
 * dup, 1 otherwise, 2 on bad usage, 3 when intake does not answer in 5 s.
 * Owns its ZeroMQ context and socket only. */
#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "tp/config.h"
#include "tp/event.h"
#include "tp/service.h"
#include "tp/log.h"

static int usage(void) {
    fprintf(stderr, "usage: tp-send [-c CONFIG] --as NAME EVENT.json\n");
    return 2;
}

/* Reads [curve] public (and secret) of <dir>/<name>.<ext> into `pub`/`sec`. */
static int key_read(const char *dir, const char *name, const char *ext, char *pub,
                    char *sec) {
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext);
    tp_config_t *k = tp_config_new(path, err, sizeof err);
    if (!k) {
        fprintf(stderr, "tp-send: %s\n", err);
        return -1;
    }
    snprintf(pub, 41, "%s", tp_config_str(k, "curve", "public", ""));
    if (sec) snprintf(sec, 41, "%s", tp_config_str(k, "curve", "secret", ""));
    tp_config_destroy(&k);
    return 0;
}

int main(int argc, char **argv) {
    const char *config = getenv("TP_CONFIG"), *as = NULL, *file = NULL;
    tp_log_stream(stderr); /* stdout is this tool's answer; logs go aside */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) config = argv[++i];
        else if (strcmp(argv[i], "--as") == 0 && i + 1 < argc) as = argv[++i];
        else if (!file) file = argv[i];
        else return usage();
    }
    if (!as || !file) return usage();
    char err[512];
    tp_config_t *cfg = tp_config_new(config, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "tp-send: %s\n", err);
        return 2;
    }
    json_error_t jerr;
    json_t *obj = strcmp(file, "-") == 0 ? json_loadf(stdin, 0, &jerr)
                                         : json_load_file(file, 0, &jerr);
    tp_event_t ev;
    tp_event_error_t everr;
    tp_event_init(&ev);
    if (!obj) {
        fprintf(stderr, "tp-send: %s: %s (line %d)\n", file, jerr.text, jerr.line);
        return 2;
    }
    if (tp_event_from_json(&ev, obj, &everr) < 0) {
        fprintf(stderr, "tp-send: %s: %s\n", everr.field, everr.message);
        return 2;
    }
    json_decref(obj);
    msgpack_sbuffer payload;
    msgpack_sbuffer_init(&payload);
    tp_event_pack(&ev, &payload);
    tp_event_clear(&ev);

    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, timeout = 5000;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    int rc = 2;
    if (tp_config_bool(cfg, "bus", "curve", 1)) {
        const char *dir = tp_config_str(cfg, "bus", "keys_dir", "");
        char pub[41], sec[41], server[41];
        if (key_read(dir, as, "key", pub, sec) < 0 ||
            key_read(dir, "intake", "pub", server, NULL) < 0)
            goto out;
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server, 41);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 41);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 41);
    }
    const char *endpoint = tp_service_endpoint(cfg, TP_SERVICE_INTAKE);
    if (zmq_connect(s, endpoint) < 0) {
        fprintf(stderr, "tp-send: %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
        goto out;
    }
    uint64_t token = 1;
    zmq_send(s, &token, sizeof token, ZMQ_SNDMORE);
    zmq_send(s, payload.data, payload.size, 0);
    char answer[512];
    int n = zmq_recv(s, &token, sizeof token, 0);
    if (n >= 0) n = zmq_recv(s, answer, sizeof answer - 1, 0);
    if (n < 0) {
        fprintf(stderr, "tp-send: no answer from intake at %s in 5 s (a key it does "
                        "not admit looks like this too)\n", endpoint);
        rc = 3;
        goto out;
    }
    answer[n < (int)sizeof answer ? n : (int)sizeof answer - 1] = '\0';
    printf("%s\n", answer);
    rc = strcmp(answer, "ok") == 0 || strcmp(answer, "dup") == 0 ? 0 : 1;
out:
    zmq_close(s);
    zmq_ctx_term(ctx);
    msgpack_sbuffer_destroy(&payload);
    tp_config_destroy(&cfg);
    return rc;
}
