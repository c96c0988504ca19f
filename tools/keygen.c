/* keygen.c: tp-keygen, the CURVE key pairs of the bus.
 *
 *   tp-keygen DIR NAME...      e.g. tp-keygen var/keys intake scoring scheduler notifier ticketing
 *
 * Writes DIR/NAME.key (public and secret key, mode 0600: give it to that
 * service only) and DIR/NAME.pub (the public key: intake needs every
 * service's, each service needs intake's) for every NAME that has no key
 * yet; an existing pair is kept, so the command can run at every start.
 * Keys are ZeroMQ's Z85 text, from zmq_curve_keypair (libsodium). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

/* Writes `text` to `path` created with `mode`, only if it does not exist. */
static int write_new(const char *path, mode_t mode, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0) {
        fprintf(stderr, "tp-keygen: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t len = strlen(text);
    int ok = write(fd, text, len) == (ssize_t)len;
    ok = close(fd) == 0 && ok;
    if (!ok) fprintf(stderr, "tp-keygen: %s: write failed\n", path);
    return ok ? 0 : -1;
}

static int keygen(const char *dir, const char *name) {
    char key_path[4096], pub_path[4096];
    snprintf(key_path, sizeof key_path, "%s/%s.key", dir, name);
    snprintf(pub_path, sizeof pub_path, "%s/%s.pub", dir, name);
    if (access(key_path, F_OK) == 0) {
        printf("%s: kept\n", key_path);
        return 0;
    }
    char public_key[41], secret_key[41], text[512];
    if (zmq_curve_keypair(public_key, secret_key) != 0) {
        fprintf(stderr, "tp-keygen: zmq_curve_keypair: %s\n", zmq_strerror(errno));
        return -1;
    }
    snprintf(text, sizeof text,
             "; CURVE key pair of %s (tp-keygen). Secret: for %s only.\n"
             "[curve]\npublic = %s\nsecret = %s\n", name, name, public_key, secret_key);
    if (write_new(key_path, 0600, text) < 0) return -1;
    snprintf(text, sizeof text, "; CURVE public key of %s (tp-keygen).\n"
             "[curve]\npublic = %s\n", name, public_key);
    unlink(pub_path); /* a stale one from an older pair */
    if (write_new(pub_path, 0644, text) < 0) return -1;
    printf("%s: new\n", key_path);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: tp-keygen DIR NAME...\n"
                        "  e.g. tp-keygen var/keys intake scoring scheduler notifier "
                        "ticketing\n");
        return 2;
    }
    if (!zmq_has("curve")) {
        fprintf(stderr, "tp-keygen: this libzmq has no CURVE\n");
        return 1;
    }
    if (mkdir(argv[1], 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "tp-keygen: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    int rc = 0;
    for (int i = 2; i < argc; i++) {
        if (!argv[i][0] || strchr(argv[i], '/')) {
            fprintf(stderr, "tp-keygen: %s: not a name\n", argv[i]);
            rc = 1;
            continue;
        }
        if (keygen(argv[1], argv[i]) < 0) rc = 1;
    }
    return rc;
}
