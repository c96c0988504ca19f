/* test_notifier_transfer.c: the notifier's transfer client against a real
 * HTTP receiver and, for mail, postfix's smtp-sink (accepting, and refusing
 * every recipient with 550).
 *
 * Each test starts its own receiver: python3's http.server on a free
 * 127.0.0.1 port (the receiver binds port 0 and reports it through a file),
 * recording every request (path, client port, headers, body in hex) as one
 * JSON line before it answers, so a completed request is always on record.
 * Paths: /fail answers 500, /sleep/<ms> answers 200 after <ms>, anything
 * else answers 200. Never leaves a process behind (the receiver dies with
 * the test) nor, on a passing run, a temporary file. Every test closes its
 * handles and checks uv_loop_close. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "notifier_transfer.h"
#include "tp/log.h"

static const char receiver_py[] =
    "import http.server, json, os, sys, threading, time\n"
    "log_path, port_path = sys.argv[1], sys.argv[2]\n"
    "lock = threading.Lock()\n"
    "log = open(log_path, 'a')\n"
    "class Handler(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def log_message(self, *args): pass\n"
    "    def do_POST(self):\n"
    "        n = int(self.headers.get('Content-Length', '0'))\n"
    "        body = self.rfile.read(n)\n"
    "        rec = {'path': self.path, 'port': self.client_address[1],\n"
    "               'headers': {k.lower(): v for k, v in "
    "self.headers.items()},\n"
    "               'body_hex': body.hex()}\n"
    "        with lock:\n"
    "            log.write(json.dumps(rec, sort_keys=True) + '\\n')\n"
    "            log.flush()\n"
    "        if self.path.startswith('/sleep/'):\n"
    "            time.sleep(int(self.path.split('/')[2]) / 1000.0)\n"
    "        code = 500 if self.path.startswith('/fail') else 200\n"
    "        out = b'{\"ok\":true}'\n"
    "        try:\n"
    "            self.send_response(code)\n"
    "            self.send_header('Content-Type', 'application/json')\n"
    "            self.send_header('Content-Length', str(len(out)))\n"
    "            self.end_headers()\n"
    "            self.wfile.write(out)\n"
    "        except OSError:\n"
    "            pass\n"
    "class Server(http.server.ThreadingHTTPServer):\n"
    "    daemon_threads = True\n"
    "    request_queue_size = 2048\n"
    "    def handle_error(self, request, client_address): pass\n"
    "srv = Server(('127.0.0.1', 0), Handler)\n"
    "with open(port_path + '.tmp', 'w') as f:\n"
    "    f.write(str(srv.server_address[1]))\n"
    "os.rename(port_path + '.tmp', port_path)\n"
    "srv.serve_forever()\n";

typedef struct fixture {
    char dir[64];
    char script[128];
    char log_path[128];
    char port_path[128];
    pid_t pid;
    int port;
    uv_loop_t loop;
} fixture_t;

/* What one callback saw. */
typedef struct outcome {
    int calls;
    long status;
    char error[CURL_ERROR_SIZE];
} outcome_t;

static void on_done(long http_status, const char *error, void *arg) {
    outcome_t *o = arg;
    o->calls++;
    o->status = http_status;
    snprintf(o->error, sizeof o->error, "%s", error ? error : "");
    if (error) assert_true(error[0] != '\0'); /* never an empty reason */
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    size_t n = fwrite(text, 1, strlen(text), f);
    return fclose(f) == 0 && n == strlen(text) ? 0 : -1;
}

/* The whole file, NUL-terminated; caller owns the result. "" if absent. */
static char *read_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

static size_t count_lines(const char *text) {
    size_t n = 0;
    for (; *text; text++)
        if (*text == '\n') n++;
    return n;
}

static size_t count_substr(const char *text, const char *needle) {
    size_t n = 0, k = strlen(needle);
    for (const char *p = strstr(text, needle); p; p = strstr(p + k, needle))
        n++;
    return n;
}

/* Open file descriptors of this process, to catch leaked sockets. */
static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory's own */
}

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/tp_transfer_XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->script, sizeof fx->script, "%s/receiver.py", fx->dir);
    snprintf(fx->log_path, sizeof fx->log_path, "%s/requests.jsonl", fx->dir);
    snprintf(fx->port_path, sizeof fx->port_path, "%s/port", fx->dir);
    assert_int_equal(write_file(fx->script, receiver_py), 0);

    fx->pid = fork();
    assert_true(fx->pid >= 0);
    if (fx->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* dies with a crashed test */
        execlp("python3", "python3", fx->script, fx->log_path, fx->port_path,
               (char *)NULL);
        _exit(127);
    }
    for (int waited = 0; waited < 10000; waited += 10) {
        char *text = read_file(fx->port_path);
        fx->port = atoi(text);
        free(text);
        if (fx->port > 0) break;
        int status;
        if (waitpid(fx->pid, &status, WNOHANG) == fx->pid) {
            fx->pid = 0;
            break; /* the receiver died */
        }
        sleep_ms(10);
    }
    if (fx->port <= 0) {
        print_error("receiver did not start\n");
        return -1;
    }
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture_t *fx = *state;
    if (fx->pid > 0) {
        kill(fx->pid, SIGTERM);
        waitpid(fx->pid, NULL, 0);
    }
    unlink(fx->script);
    unlink(fx->log_path);
    unlink(fx->port_path);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static void url_of(const fixture_t *fx, const char *path, char *out,
                   size_t cap) {
    snprintf(out, cap, "http://127.0.0.1:%d%s", fx->port, path);
}

/* A port nothing listens on: bound (so nobody takes it), not listening. */
static int closed_port(int *fd_out) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *fd_out = fd;
    return ntohs(sa.sin_port);
}

/* Runs the loop until it has nothing left to do, failing the test when
 * that takes longer than `limit_ms` (a guard that does not keep the loop
 * alive by itself). */
static void on_guard(uv_timer_t *guard) {
    *(int *)guard->data = 1;
    uv_stop(guard->loop);
}

static void run_loop(uv_loop_t *loop, uint64_t limit_ms) {
    uv_timer_t guard;
    int fired = 0;
    assert_int_equal(uv_timer_init(loop, &guard), 0);
    guard.data = &fired;
    assert_int_equal(uv_timer_start(&guard, on_guard, limit_ms, 0), 0);
    uv_unref((uv_handle_t *)&guard);
    uv_run(loop, UV_RUN_DEFAULT);
    if (fired)
        fail_msg("the loop still had work after %llu ms",
                 (unsigned long long)limit_ms);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
}

/* Destroys `wh`, lets libuv finish with its handles, closes the loop. */
static void finish(fixture_t *fx, tp_transfer_t **wh) {
    tp_transfer_destroy(wh);
    assert_null(*wh);
    tp_transfer_destroy(wh); /* twice is fine */
    run_loop(&fx->loop, 5000);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
}

static void hex_of(const char *bytes, size_t len, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[(unsigned char)bytes[i] >> 4];
        out[2 * i + 1] = digits[(unsigned char)bytes[i] & 15];
    }
    out[2 * len] = '\0';
}

/* ------------------------------------------------------------------ */

static void test_post_arrives_intact(void **state) {
    fixture_t *fx = *state;
    tp_transfer_options_t opts = {.user_agent = "tp-test/1"};
    tp_transfer_t *wh = tp_transfer_new(&fx->loop, &opts);
    assert_non_null(wh);

    static const char body[] = "{\"type\":\"lead.captured\",\"id\":\"d-1\","
                               "\"note\":\"caf\xc3\xa9\\n\"}";
    const char *headers[] = {"Idempotency-Key: d-1",
                             "X-Touchpoint-Event: lead.captured", NULL};
    char url[128];
    url_of(fx, "/hooks/a", url, sizeof url);
    outcome_t o = {0};
    assert_int_equal(
        tp_transfer_post(wh, url, body, sizeof body - 1, headers, on_done, &o),
        0);
    assert_int_equal(o.calls, 0); /* never from inside post */
    assert_int_equal(tp_transfer_inflight(wh), 1);
    run_loop(&fx->loop, 10000);

    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.error, "");
    assert_int_equal(tp_transfer_inflight(wh), 0);

    char *log = read_file(fx->log_path);
    char hex[2 * sizeof body + 1], want[2 * sizeof body + 32];
    hex_of(body, sizeof body - 1, hex);
    snprintf(want, sizeof want, "\"body_hex\": \"%s\"", hex);
    assert_int_equal(count_lines(log), 1);
    assert_non_null(strstr(log, want));
    assert_non_null(strstr(log, "\"path\": \"/hooks/a\""));
    assert_non_null(strstr(log, "\"idempotency-key\": \"d-1\""));
    assert_non_null(strstr(log, "\"x-touchpoint-event\": \"lead.captured\""));
    assert_non_null(strstr(log, "\"content-type\": \"application/json\""));
    assert_non_null(strstr(log, "\"user-agent\": \"tp-test/1\""));
    assert_null(strstr(log, "\"expect\""));
    free(log);
    finish(fx, &wh);
}

/* A second request after the first completes rides the same connection. */
static void test_connection_reused(void **state) {
    fixture_t *fx = *state;
    tp_transfer_t *wh = tp_transfer_new(&fx->loop, NULL);
    assert_non_null(wh);
    char url[128];
    url_of(fx, "/reuse", url, sizeof url);
    outcome_t o[2] = {{0}};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(
            tp_transfer_post(wh, url, "{}", 2, NULL, on_done, &o[i]), 0);
        run_loop(&fx->loop, 10000);
        assert_int_equal(o[i].calls, 1);
        assert_int_equal(o[i].status, 200);
    }
    char *log = read_file(fx->log_path);
    assert_int_equal(count_lines(log), 2);
    const char *first = strstr(log, "\"port\": ");
    assert_non_null(first);
    const char *second = strstr(first + 1, "\"port\": ");
    assert_non_null(second);
    assert_int_equal(atoi(first + 8), atoi(second + 8));
    free(log);
    finish(fx, &wh);
}

#define BULK 1000

static void test_thousand_in_flight(void **state) {
    fixture_t *fx = *state;
    tp_transfer_options_t opts = {.timeout_ms = 30000,
                                 .connect_timeout_ms = 10000};
    int fds_before = count_fds();
    tp_transfer_t *wh = tp_transfer_new(&fx->loop, &opts);
    assert_non_null(wh);
    outcome_t *o = calloc(BULK, sizeof *o);
    assert_non_null(o);
    for (int i = 0; i < BULK; i++) {
        char url[128], path[32], body[64], key[64];
        snprintf(path, sizeof path, "/sleep/200/%d", i); /* hold it open */
        url_of(fx, path, url, sizeof url);
        int len = snprintf(body, sizeof body, "{\"n\":%d}", i);
        snprintf(key, sizeof key, "Idempotency-Key: bulk-%d", i);
        const char *headers[] = {key, NULL};
        assert_int_equal(tp_transfer_post(wh, url, body, (size_t)len, headers,
                                         on_done, &o[i]),
                         0);
    }
    assert_int_equal(tp_transfer_inflight(wh), BULK);
    int64_t t0 = now_ms();
    run_loop(&fx->loop, 50000);
    int64_t took = now_ms() - t0;
    for (int i = 0; i < BULK; i++) {
        assert_int_equal(o[i].calls, 1);
        assert_int_equal(o[i].status, 200);
    }
    assert_int_equal(tp_transfer_inflight(wh), 0);
    char *log = read_file(fx->log_path);
    assert_int_equal(count_lines(log), BULK);
    assert_int_equal(count_substr(log, "\"idempotency-key\": \"bulk-"), BULK);
    assert_non_null(strstr(log, "\"path\": \"/sleep/200/999\""));
    /* One at a time would take 200 s; in flight together, about 1 s. */
    assert_true(took < 20000);
    free(log);
    print_message("%d POSTs completed in %lld ms\n", BULK, (long long)took);
    free(o);
    assert_true(count_fds() >= fds_before + 100); /* kept for reuse */
    tp_transfer_destroy(&wh);
    run_loop(&fx->loop, 5000);
    assert_int_equal(count_fds(), fds_before); /* every socket closed */
    assert_int_equal(uv_loop_close(&fx->loop), 0);
}

static void test_server_error_is_a_status(void **state) {
    fixture_t *fx = *state;
    tp_transfer_t *wh = tp_transfer_new(&fx->loop, NULL);
    assert_non_null(wh);
    char url[128];
    url_of(fx, "/fail", url, sizeof url);
    outcome_t o = {0};
    assert_int_equal(tp_transfer_post(wh, url, "{}", 2, NULL, on_done, &o), 0);
    run_loop(&fx->loop, 10000);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, 500);
    assert_string_equal(o.error, "");
    finish(fx, &wh);
}

static void test_connection_refused(void **state) {
    fixture_t *fx = *state;
    tp_transfer_t *wh = tp_transfer_new(&fx->loop, NULL);
    assert_non_null(wh);
    int fd;
    int port = closed_port(&fd);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
    outcome_t o = {0};
    assert_int_equal(tp_transfer_post(wh, url, "{}", 2, NULL, on_done, &o), 0);
    run_loop(&fx->loop, 10000);
    close(fd);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, 0);
    assert_true(o.error[0] != '\0');
    print_message("refused: %s\n", o.error);
    finish(fx, &wh);
}

static void test_timeout(void **state) {
    fixture_t *fx = *state;
    tp_transfer_options_t opts = {.timeout_ms = 300};
    tp_transfer_t *wh = tp_transfer_new(&fx->loop, &opts);
    assert_non_null(wh);
    char url[128];
    url_of(fx, "/sleep/3000", url, sizeof url);
    outcome_t o = {0};
    int64_t t0 = now_ms();
    assert_int_equal(tp_transfer_post(wh, url, "{}", 2, NULL, on_done, &o), 0);
    run_loop(&fx->loop, 10000);
    int64_t took = now_ms() - t0;
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, 0);
    assert_non_null(strstr(o.error, "timed out"));
    assert_true(took >= 250);
    assert_true(took < 2000);
    finish(fx, &wh);
}

/* Refusals return -1 and never call back; a bad scheme is a callback. */
static void test_refusals(void **state) {
    fixture_t *fx = *state;
    tp_transfer_options_t opts = {.max_inflight = 2};
    tp_transfer_t *wh = tp_transfer_new(&fx->loop, &opts);
    assert_non_null(wh);
    char url[128];
    url_of(fx, "/refuse", url, sizeof url);
    outcome_t o[5] = {{0}};

    const char *smuggled[] = {"X-Ok: 1", "X-Bad: 1\r\nX-Injected: 1", NULL};
    assert_int_equal(
        tp_transfer_post(wh, url, "{}", 2, smuggled, on_done, &o[0]), -1);
    assert_non_null(strstr(tp_transfer_errstr(wh), "header"));
    const char *nameless[] = {": value", NULL};
    assert_int_equal(
        tp_transfer_post(wh, url, "{}", 2, nameless, on_done, &o[0]), -1);

    assert_int_equal(tp_transfer_post(wh, "file:///etc/passwd", "{}", 2, NULL,
                                     on_done, &o[1]),
                     0);
    assert_int_equal(tp_transfer_post(wh, url, "", 0, NULL, on_done, &o[2]), 0);
    assert_int_equal(tp_transfer_post(wh, url, "{}", 2, NULL, on_done, &o[3]),
                     -1); /* max_inflight */
    assert_non_null(strstr(tp_transfer_errstr(wh), "in flight"));
    assert_int_equal(tp_transfer_inflight(wh), 2);
    run_loop(&fx->loop, 10000);

    assert_int_equal(o[0].calls, 0);
    assert_int_equal(o[3].calls, 0);
    assert_int_equal(o[1].calls, 1);
    assert_int_equal(o[1].status, 0);
    assert_true(o[1].error[0] != '\0');
    print_message("file:// : %s\n", o[1].error);
    assert_int_equal(o[2].calls, 1);
    assert_int_equal(o[2].status, 200); /* an empty body is still a POST */
    char *log = read_file(fx->log_path);
    assert_int_equal(count_lines(log), 1);
    assert_null(strstr(log, "x-injected"));
    free(log);

    tp_transfer_t *none = NULL;
    tp_transfer_destroy(&none);
    tp_transfer_destroy(NULL);
    finish(fx, &wh);
}

/* ------------------------------------------------------------------ */
/* Destroy with requests in flight                                     */
/* ------------------------------------------------------------------ */

#define SLOW 50

typedef struct shutdown_ctx {
    tp_transfer_t *wh;
    outcome_t o[SLOW];
} shutdown_ctx_t;

static void on_destroy_timer(uv_timer_t *timer) {
    shutdown_ctx_t *ctx = timer->data;
    assert_int_equal(tp_transfer_inflight(ctx->wh), SLOW);
    tp_transfer_destroy(&ctx->wh);
    assert_null(ctx->wh);
    uv_close((uv_handle_t *)timer, NULL);
}

static void test_destroy_in_flight(void **state) {
    fixture_t *fx = *state;
    shutdown_ctx_t *ctx = calloc(1, sizeof *ctx);
    assert_non_null(ctx);
    int fds_before = count_fds();
    ctx->wh = tp_transfer_new(&fx->loop, NULL);
    assert_non_null(ctx->wh);
    char url[128];
    url_of(fx, "/sleep/5000", url, sizeof url);
    for (int i = 0; i < SLOW; i++)
        assert_int_equal(
            tp_transfer_post(ctx->wh, url, "{}", 2, NULL, on_done, &ctx->o[i]),
            0);
    uv_timer_t timer; /* destroy once the requests are on the wire */
    assert_int_equal(uv_timer_init(&fx->loop, &timer), 0);
    timer.data = ctx;
    assert_int_equal(uv_timer_start(&timer, on_destroy_timer, 300, 0), 0);
    int64_t t0 = now_ms();
    run_loop(&fx->loop, 4000);
    assert_true(now_ms() - t0 < 3000);
    for (int i = 0; i < SLOW; i++) {
        assert_int_equal(ctx->o[i].calls, 1);
        assert_int_equal(ctx->o[i].status, 0);
        assert_string_equal(ctx->o[i].error, "shutting down");
    }
    char *log = read_file(fx->log_path); /* they had reached the receiver */
    assert_int_equal(count_lines(log), SLOW);
    free(log);
    assert_int_equal(count_fds(), fds_before);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(ctx);
}

/* Destroy right after posting, before the loop ever ran. */
static void test_destroy_before_running(void **state) {
    fixture_t *fx = *state;
    tp_transfer_t *wh = tp_transfer_new(&fx->loop, NULL);
    assert_non_null(wh);
    char url[128];
    url_of(fx, "/never", url, sizeof url);
    outcome_t o[10] = {{0}};
    for (int i = 0; i < 10; i++)
        assert_int_equal(
            tp_transfer_post(wh, url, "{}", 2, NULL, on_done, &o[i]), 0);
    tp_transfer_destroy(&wh);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(o[i].calls, 1);
        assert_string_equal(o[i].error, "shutting down");
    }
    run_loop(&fx->loop, 5000);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
}

/* ------------------------------------------------------------------ */
/* Callbacks that re-enter: post again, or destroy mid-drain           */
/* ------------------------------------------------------------------ */

#define CHAIN 5
#define BURST 40

typedef struct reentry_ctx {
    tp_transfer_t *wh;
    char url[128];
    int chained; /* chain callbacks so far */
    long chain_status[CHAIN];
    int burst_calls[BURST];
    int burst_ok, burst_shut;
    int post_after_destroy; /* tp_transfer_post's result once destroyed */
} reentry_ctx_t;

static void on_chain(long http_status, const char *error, void *arg) {
    reentry_ctx_t *ctx = arg;
    ctx->chain_status[ctx->chained++] = http_status;
    if (ctx->chained < CHAIN)
        assert_int_equal(
            tp_transfer_post(ctx->wh, ctx->url, "{}", 2, NULL, on_chain, ctx),
            0);
}

typedef struct burst_slot {
    reentry_ctx_t *ctx;
    int index;
} burst_slot_t;

static void on_burst(long http_status, const char *error, void *arg) {
    burst_slot_t *slot = arg;
    reentry_ctx_t *ctx = slot->ctx;
    ctx->burst_calls[slot->index]++;
    if (error) {
        assert_string_equal(error, "shutting down");
        ctx->burst_shut++;
        return;
    }
    assert_int_equal(http_status, 200);
    ctx->burst_ok++;
    if (ctx->wh) { /* the first to finish shuts everything down */
        tp_transfer_t *alias = ctx->wh;
        tp_transfer_destroy(&ctx->wh);
        /* still valid memory until the loop runs on; refuses work */
        ctx->post_after_destroy =
            tp_transfer_post(alias, ctx->url, "{}", 2, NULL, on_burst, slot);
    }
}

static void test_callbacks_reenter(void **state) {
    fixture_t *fx = *state;
    reentry_ctx_t *ctx = calloc(1, sizeof *ctx);
    assert_non_null(ctx);
    burst_slot_t slots[BURST];
    ctx->wh = tp_transfer_new(&fx->loop, NULL);
    assert_non_null(ctx->wh);
    url_of(fx, "/chain", ctx->url, sizeof ctx->url);
    assert_int_equal(
        tp_transfer_post(ctx->wh, ctx->url, "{}", 2, NULL, on_chain, ctx), 0);
    run_loop(&fx->loop, 10000);
    assert_int_equal(ctx->chained, CHAIN);
    for (int i = 0; i < CHAIN; i++)
        assert_int_equal(ctx->chain_status[i], 200);

    /* Fast requests and slow ones: the first fast completion destroys the
     * webhook from its callback; every other callback still runs once. */
    char slow[128];
    url_of(fx, "/sleep/4000", slow, sizeof slow);
    for (int i = 0; i < BURST; i++) {
        slots[i] = (burst_slot_t){ctx, i};
        assert_int_equal(tp_transfer_post(ctx->wh, i % 2 ? slow : ctx->url, "{}",
                                         2, NULL, on_burst, &slots[i]),
                         0);
    }
    int64_t t0 = now_ms();
    run_loop(&fx->loop, 10000);
    assert_true(now_ms() - t0 < 3000);
    assert_null(ctx->wh);
    assert_int_equal(ctx->post_after_destroy, -1);
    for (int i = 0; i < BURST; i++)
        assert_int_equal(ctx->burst_calls[i], 1);
    assert_true(ctx->burst_ok >= 1);
    assert_true(ctx->burst_shut >= BURST / 2); /* the slow ones at least */
    assert_int_equal(ctx->burst_ok + ctx->burst_shut, BURST);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(ctx);
}

/* ---- SMTP, against postfix's smtp-sink ---- */

/* Starts smtp-sink on a free port with `extra` options (NULL-terminated),
 * dumping messages into fx->dir; returns its port. */
static int start_sink(fixture_t *fx, pid_t *pid, const char *const *extra) {
    int fd;
    int port = closed_port(&fd);
    close(fd);
    char addr[64], dump[200];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    snprintf(dump, sizeof dump, "%s/mail.%%M.", fx->dir);
    const char *argv[20] = {"smtp-sink"};
    int n = 1;
    if (getuid() == 0) argv[n++] = "-u", argv[n++] = "root";
    for (int i = 0; extra && extra[i]; i++) argv[n++] = extra[i];
    argv[n++] = "-d", argv[n++] = dump, argv[n++] = addr, argv[n++] = "64";
    argv[n] = NULL;
    *pid = fork();
    assert_true(*pid >= 0);
    if (*pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        execvp("smtp-sink", (char *const *)argv);
        _exit(127);
    }
    for (int waited = 0; waited < 5000; waited += 20) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(c, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(c);
        if (ok) return port;
        sleep_ms(20);
    }
    fail_msg("smtp-sink did not start");
    return -1;
}

static void stop_sink(fixture_t *fx, pid_t pid) {
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    DIR *d = opendir(fx->dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strncmp(e->d_name, "mail.", 5) == 0) {
            char path[600];
            snprintf(path, sizeof path, "%s/%s", fx->dir, e->d_name);
            unlink(path);
        }
    if (d) closedir(d);
}

static int mails_in(fixture_t *fx, const char *needle) {
    int n = 0;
    DIR *d = opendir(fx->dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strncmp(e->d_name, "mail.", 5) == 0) {
            char path[600];
            snprintf(path, sizeof path, "%s/%s", fx->dir, e->d_name);
            char *text = read_file(path);
            n += strstr(text, needle) != NULL;
            free(text);
        }
    if (d) closedir(d);
    return n;
}

static const char mail[] = "From: <tp@example.com>\r\nTo: <a@example.com>\r\n"
                           "Subject: hello\r\nMessage-ID: <tp.1@example.com>\r\n\r\n"
                           "the body\r\n.leading dot\r\n";

static void test_mail_accepted_and_refused(void **state) {
    fixture_t *fx = *state;
    pid_t ok_pid, bad_pid;
    int ok_port = start_sink(fx, &ok_pid, NULL);
    static const char *const refuse[] = {"-f", "RCPT", "-B", "550 5.1.1 no such user", NULL};
    int bad_port = start_sink(fx, &bad_pid, refuse);
    tp_transfer_t *t = tp_transfer_new(&fx->loop, NULL);
    assert_non_null(t);
    char ok_url[64], bad_url[64];
    snprintf(ok_url, sizeof ok_url, "smtp://127.0.0.1:%d/tp.test", ok_port);
    snprintf(bad_url, sizeof bad_url, "smtp://127.0.0.1:%d/tp.test", bad_port);
    tp_transfer_smtp_t ok = {.url = ok_url}, bad = {.url = bad_url};
    tp_transfer_smtp_t tls = {.url = ok_url, .require_tls = 1};
    outcome_t o[3] = {0};
    assert_int_equal(tp_transfer_mail(t, &ok, "tp@example.com", "a@example.com", mail,
                                      strlen(mail), on_done, &o[0]), 0);
    assert_int_equal(tp_transfer_mail(t, &bad, "tp@example.com", "a@example.com", mail,
                                      strlen(mail), on_done, &o[1]), 0);
    /* smtp-sink offers no STARTTLS: insisting on TLS refuses to send */
    assert_int_equal(tp_transfer_mail(t, &tls, "tp@example.com", "a@example.com", mail,
                                      strlen(mail), on_done, &o[2]), 0);
    /* an address that would smuggle a command is refused at once */
    assert_int_equal(tp_transfer_mail(t, &ok, "tp@example.com", "a@b>\r\nRCPT TO:<c@d",
                                      mail, strlen(mail), on_done, &o[2]), -1);
    run_loop(&fx->loop, 10000);
    assert_int_equal(o[0].calls, 1);
    assert_string_equal(o[0].error, "");
    assert_int_equal(o[0].status, 250);
    assert_int_equal(o[1].calls, 1);
    assert_int_equal(o[1].status, 550);
    assert_true(o[1].error[0] != '\0');
    assert_int_equal(o[2].calls, 1);
    assert_true(o[2].error[0] != '\0');
    assert_int_equal(mails_in(fx, "Message-ID: <tp.1@example.com>"), 1);
    /* curl dot-stuffs, the server unstuffs: the line arrives as written */
    assert_int_equal(mails_in(fx, "\n.leading dot"), 1);
    stop_sink(fx, ok_pid);
    stop_sink(fx, bad_pid);
    finish(fx, &t);
}

static void test_put_with_a_method(void **state) {
    fixture_t *fx = *state;
    tp_transfer_t *t = tp_transfer_new(&fx->loop, NULL);
    char url[128];
    url_of(fx, "/sms", url, sizeof url);
    outcome_t o = {0};
    assert_int_equal(tp_transfer_http(t, "put", url, "{}", 2, NULL, on_done, &o), -1);
    assert_int_equal(tp_transfer_http(t, "POST", url, "{}", 2, NULL, on_done, &o), 0);
    run_loop(&fx->loop, 5000);
    assert_int_equal(o.status, 200);
    finish(fx, &t);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* as the service's main does */
    tp_log_init("notifier-test", "unit", TP_LOG_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_post_arrives_intact, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connection_reused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_thousand_in_flight, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server_error_is_a_status, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_in_flight, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_destroy_before_running, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_callbacks_reenter, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mail_accepted_and_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_with_a_method, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup(); /* a no-op when every webhook was destroyed */
    return failed;
}
