/* tp_loadclient.c: the bench generators' shared clocks and HTTP client
 * (see tp_loadclient.h). */
#include "tp_loadclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Room kept before a body for its request line and headers. */
#define HEADER_ROOM 512

double tp_load_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

long long tp_load_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double tp_load_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

void tp_load_die(const char *what) {
    fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, strerror(errno));
    exit(2);
}

void tp_load_ensure(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    *buf = realloc(*buf, c);
    if (!*buf) tp_load_die("realloc");
    *cap = c;
}

int tp_load_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) tp_load_die("socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) tp_load_die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

void tp_load_reconnect(tp_load_conn_t *c, int port) {
    close(c->fd);
    c->fd = tp_load_connect(port);
    c->out_off = 0;
    c->in_len = 0;
    c->busy = 1;
    c->paused = 0;
}

void tp_load_conn_free(tp_load_conn_t *c) {
    if (c->fd >= 0) close(c->fd);
    free(c->out);
    free(c->in);
    c->out = c->in = NULL;
    c->fd = -1;
}

char *tp_load_body(tp_load_conn_t *c, size_t body_max) {
    tp_load_ensure(&c->out, &c->out_cap, HEADER_ROOM + body_max + 1);
    return c->out + HEADER_ROOM;
}

void tp_load_post(tp_load_conn_t *c, const char *key, size_t body_len) {
    char hdr[HEADER_ROOM];
    int h = snprintf(hdr, sizeof hdr,
                     "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     key, body_len);
    if (h < 0 || h >= (int)sizeof hdr) {
        errno = ENAMETOOLONG;
        tp_load_die("request headers");
    }
    memmove(c->out + h, c->out + HEADER_ROOM, body_len);
    memcpy(c->out, hdr, (size_t)h);
    c->out_len = (size_t)h + body_len;
    c->out_off = 0;
    c->in_len = 0;
    c->busy = 1;
    c->paused = 0;
}

long tp_load_duplicates(const char *body, size_t len) {
    long quotes = 0;
    const char *d = memmem(body, len, "\"duplicates\":[", 14);
    if (d)
        for (d += 14; d < body + len && *d != ']'; d++) quotes += *d == '"';
    return quotes / 2;
}

/* The status once a whole answer is in c->in, else 0; -1 when it is
 * malformed. *body, *body_len: its body. */
static int response_parse(tp_load_conn_t *c, const char **body, size_t *body_len) {
    if (c->in_len < 12) return 0;
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end) return 0;
    size_t hlen = (size_t)(end - c->in) + 4;
    int status = atoi(c->in + 9);
    size_t clen = 0;
    for (char *p = c->in; p < end; p++) {
        if ((p == c->in || p[-1] == '\n') && strncasecmp(p, "Content-Length:", 15) == 0) {
            clen = (size_t)strtoul(p + 15, NULL, 10);
            break;
        }
    }
    if (c->in_len < hlen + clen) return 0;
    *body = c->in + hlen;
    *body_len = clen;
    return status > 0 ? status : -1;
}

void tp_load_pump(tp_load_conn_t *const *conns, int n, double timeout_s, tp_load_done_cb done,
                  void *arg) {
    struct pollfd pfd[256];
    if (n > 256) n = 256;
    for (int i = 0; i < n; i++) {
        const tp_load_conn_t *c = conns[i];
        pfd[i].fd = c->busy && !c->paused ? c->fd : -1;
        pfd[i].events = c->out_off < c->out_len ? POLLOUT : POLLIN;
        pfd[i].revents = 0;
    }
    if (timeout_s < 0) timeout_s = 0;
    struct timespec ts = {.tv_sec = (time_t)timeout_s,
                          .tv_nsec = (long)((timeout_s - (double)(time_t)timeout_s) * 1e9)};
    int r = ppoll(pfd, (nfds_t)n, &ts, NULL);
    if (r < 0 && errno != EINTR) tp_load_die("poll");
    for (int i = 0; i < n && r > 0; i++) {
        tp_load_conn_t *c = conns[i];
        if (!pfd[i].revents) continue;
        if (c->out_off < c->out_len) {
            ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN) { /* closed by intake */
                c->busy = 0;
                done(c, 0, NULL, 0, arg);
            } else if (w > 0) {
                c->out_off += (size_t)w;
            }
            continue;
        }
        int closed = 0;
        for (;;) {
            tp_load_ensure(&c->in, &c->in_cap, c->in_len + 65536);
            ssize_t got = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
            if (got < 0 && errno == EINTR) continue;
            if (got < 0 && errno == EAGAIN) break;
            if (got <= 0) {
                closed = 1;
                break;
            }
            c->in_len += (size_t)got;
        }
        const char *body = NULL;
        size_t blen = 0;
        int status = response_parse(c, &body, &blen);
        if (status != 0 || closed) {
            c->busy = 0;
            done(c, status != 0 ? status : 0, body, blen, arg);
        }
    }
}
