/* test_notify.c: sd_notify on a libuv loop. The test is the supervisor: a
 * unix datagram socket it binds is NOTIFY_SOCKET; it reads what the module
 * sends while the loop runs: READY=1 only once the readiness condition
 * holds, WATCHDOG=1 paced at half of WATCHDOG_USEC, STOPPING=1, and
 * nothing at all without NOTIFY_SOCKET; a socket in the abstract namespace
 * ("@name") as systemd may give; no watchdog from a WATCHDOG_USEC that is
 * not a number; an address it cannot speak to changes nothing else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "tp/notify.h"

#define WATCHDOG_MS 400
#define MAX_SEEN 256

typedef struct fixture {
    uv_loop_t loop;
    int sock;
    char path[108];
    char seen[MAX_SEEN][32];
    uint64_t at[MAX_SEEN];  /* loop time of arrival */
    int n;
    int ready_after;        /* the condition holds from this many polls on */
    int polls;
    uv_timer_t stop_timer;
    uv_poll_t reader;       /* datagrams read as they arrive, timed */
} fixture_t;

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof *fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    snprintf(fx->path, sizeof fx->path, "/tmp/tp-test-notify-%ld.sock", (long)getpid());
    unlink(fx->path);
    fx->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(fx->sock >= 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", fx->path);
    assert_int_equal(bind(fx->sock, (struct sockaddr *)&sun, sizeof sun), 0);
    char pid[32], usec[32];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    snprintf(usec, sizeof usec, "%d", WATCHDOG_MS * 1000);
    setenv("NOTIFY_SOCKET", fx->path, 1);
    setenv("WATCHDOG_PID", pid, 1);
    setenv("WATCHDOG_USEC", usec, 1);
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture_t *fx = *state;
    close(fx->sock);
    unlink(fx->path);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_PID");
    unsetenv("WATCHDOG_USEC");
    free(fx);
    return 0;
}

/* Reads every datagram waiting, one line each. */
static void drain(fixture_t *fx) {
    char buf[32];
    ssize_t n;
    while ((n = recv(fx->sock, buf, sizeof buf - 1, 0)) > 0 && fx->n < MAX_SEEN) {
        buf[n] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        snprintf(fx->seen[fx->n], sizeof fx->seen[0], "%s", buf);
        fx->at[fx->n++] = uv_now(&fx->loop);
    }
}

static int count(fixture_t *fx, const char *what) {
    drain(fx);
    int c = 0;
    for (int i = 0; i < fx->n; i++) c += strcmp(fx->seen[i], what) == 0;
    return c;
}

static int first(fixture_t *fx, const char *what) {
    for (int i = 0; i < fx->n; i++)
        if (strcmp(fx->seen[i], what) == 0) return i;
    return -1;
}

static int ready_cond(void *arg) {
    fixture_t *fx = arg;
    drain(fx); /* what came before the condition holds is in order */
    return ++fx->polls > fx->ready_after;
}

static void stop_cb(uv_timer_t *t) { uv_stop(t->loop); }

static void readable_cb(uv_poll_t *p, int status, int events) { drain(p->data); }

/* Runs the loop for `ms` of loop time, reading datagrams as they come. */
static void run_for(fixture_t *fx, int ms) {
    uv_timer_init(&fx->loop, &fx->stop_timer);
    uv_timer_start(&fx->stop_timer, stop_cb, (uint64_t)ms, 0);
    uv_poll_init(&fx->loop, &fx->reader, fx->sock);
    fx->reader.data = fx;
    uv_poll_start(&fx->reader, UV_READABLE, readable_cb);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&fx->stop_timer, NULL);
    uv_close((uv_handle_t *)&fx->reader, NULL);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    drain(fx);
}

static void test_ready_when_condition_holds_and_watchdog_paced(void **state) {
    fixture_t *fx = *state;
    fx->ready_after = 5; /* five polls: about 5 x TP_NOTIFY_READY_POLL_MS */
    tp_notify_t *n = tp_notify_new(&fx->loop);
    assert_non_null(n);
    tp_notify_ready(n, ready_cond, fx);
    assert_int_equal(count(fx, "READY=1"), 0); /* not yet: the condition is false */
    run_for(fx, 6 * WATCHDOG_MS);
    assert_int_equal(count(fx, "READY=1"), 1);
    assert_true(fx->polls > fx->ready_after);
    /* polling stopped once ready */
    int polls = fx->polls;
    int wd = count(fx, "WATCHDOG=1");
    assert_true(wd >= 6 && wd <= 16); /* ~12 at half of 400 ms over 2.4 s */
    for (int i = first(fx, "WATCHDOG=1") + 1, last = first(fx, "WATCHDOG=1"); i < fx->n; i++) {
        if (strcmp(fx->seen[i], "WATCHDOG=1") != 0) continue;
        uint64_t gap = fx->at[i] - fx->at[last];
        assert_true(gap >= WATCHDOG_MS / 4 && gap < WATCHDOG_MS);
        last = i;
    }
    tp_notify_stopping(n);
    assert_int_equal(count(fx, "STOPPING=1"), 1);
    int before = count(fx, "WATCHDOG=1");
    run_for(fx, 2 * WATCHDOG_MS);
    assert_int_equal(count(fx, "WATCHDOG=1"), before); /* none after STOPPING=1 */
    assert_int_equal(fx->polls, polls);
    tp_notify_destroy(&n);
    assert_null(n);
    tp_notify_destroy(&n); /* twice is fine */
    uv_run(&fx->loop, UV_RUN_DEFAULT);
}

static void test_ready_at_once_without_condition(void **state) {
    fixture_t *fx = *state;
    tp_notify_t *n = tp_notify_new(&fx->loop);
    tp_notify_ready(n, NULL, NULL);
    assert_int_equal(count(fx, "READY=1"), 1);
    tp_notify_ready(n, NULL, NULL); /* once */
    assert_int_equal(count(fx, "READY=1"), 1);
    tp_notify_destroy(&n);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
}

static void test_watchdog_of_another_process_not_fed(void **state) {
    fixture_t *fx = *state;
    setenv("WATCHDOG_PID", "1", 1);
    tp_notify_t *n = tp_notify_new(&fx->loop);
    tp_notify_ready(n, NULL, NULL);
    run_for(fx, 2 * WATCHDOG_MS);
    assert_int_equal(count(fx, "READY=1"), 1);
    assert_int_equal(count(fx, "WATCHDOG=1"), 0);
    tp_notify_destroy(&n);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
}

static void test_nothing_without_notify_socket(void **state) {
    fixture_t *fx = *state;
    unsetenv("NOTIFY_SOCKET");
    fx->ready_after = 0;
    tp_notify_t *n = tp_notify_new(&fx->loop);
    tp_notify_ready(n, ready_cond, fx);
    run_for(fx, 2 * WATCHDOG_MS);
    tp_notify_stopping(n);
    drain(fx);
    assert_int_equal(fx->n, 0);
    assert_int_equal(fx->polls, 0); /* not even polled */
    tp_notify_destroy(&n);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
}

/* NOTIFY_SOCKET "@name": the abstract namespace, the name without '@'. */
static void test_abstract_socket(void **state) {
    fixture_t *fx = *state;
    int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(sock >= 0);
    char name[64];
    int len = snprintf(name, sizeof name, "@tp-test-notify-%ld", (long)getpid());
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, name, (size_t)len);
    sun.sun_path[0] = '\0';
    assert_int_equal(bind(sock, (struct sockaddr *)&sun,
                          (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)len)),
                     0);
    setenv("NOTIFY_SOCKET", name, 1);
    unsetenv("WATCHDOG_USEC"); /* READY=1 the only datagram */
    tp_notify_t *n = tp_notify_new(&fx->loop);
    tp_notify_ready(n, NULL, NULL);
    char buf[32] = {0};
    ssize_t got = recv(sock, buf, sizeof buf - 1, 0);
    assert_int_equal(got, 7);
    assert_string_equal(buf, "READY=1");
    close(sock);
    tp_notify_destroy(&n);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
}

static void test_watchdog_interval_not_a_number(void **state) {
    fixture_t *fx = *state;
    setenv("WATCHDOG_USEC", "400ms", 1);
    tp_notify_t *n = tp_notify_new(&fx->loop);
    tp_notify_ready(n, NULL, NULL);
    run_for(fx, WATCHDOG_MS);
    assert_int_equal(count(fx, "READY=1"), 1);
    assert_int_equal(count(fx, "WATCHDOG=1"), 0);
    tp_notify_destroy(&n);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
}

/* An address it does not speak (vsock:, a relative path): inert, as
 * without NOTIFY_SOCKET (one warning in the log), even with a watchdog
 * asked for: no timer runs to fail every ping. */
static void test_unsupported_address(void **state) {
    fixture_t *fx = *state;
    setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
    fx->ready_after = 0;
    tp_notify_t *n = tp_notify_new(&fx->loop);
    assert_false(uv_loop_alive(&fx->loop)); /* no watchdog timer */
    tp_notify_ready(n, ready_cond, fx);
    assert_int_equal(fx->polls, 0); /* not even polled */
    assert_false(uv_loop_alive(&fx->loop));
    tp_notify_stopping(n);
    drain(fx);
    assert_int_equal(fx->n, 0);
    tp_notify_destroy(&n);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
}

/* The supervisor's queue full when READY=1 goes: it is sent again once
 * there is room, not lost (systemd would kill the unit at its start
 * timeout). */
static void test_ready_again_when_queue_full(void **state) {
    fixture_t *fx = *state;
    unsetenv("WATCHDOG_USEC");
    int small = 4096; /* a short queue: full after a few dozen datagrams */
    assert_int_equal(setsockopt(fx->sock, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    int filler = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", fx->path);
    int queued = 0;
    while (queued < MAX_SEEN &&
           sendto(filler, "x", 1, 0, (struct sockaddr *)&sun, sizeof sun) == 1)
        queued++;
    close(filler);
    assert_true(queued > 0 && queued < MAX_SEEN - 1); /* the queue is full now */
    tp_notify_t *n = tp_notify_new(&fx->loop);
    tp_notify_ready(n, NULL, NULL);
    assert_int_equal(count(fx, "READY=1"), 0); /* drained: it did not get in */
    run_for(fx, 4 * TP_NOTIFY_READY_POLL_MS);
    assert_int_equal(count(fx, "READY=1"), 1);
    assert_int_equal(count(fx, "x"), queued);
    run_for(fx, 2 * TP_NOTIFY_READY_POLL_MS);
    assert_int_equal(count(fx, "READY=1"), 1); /* once */
    tp_notify_destroy(&n);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ready_when_condition_holds_and_watchdog_paced,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_ready_at_once_without_condition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watchdog_of_another_process_not_fed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_nothing_without_notify_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abstract_socket, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watchdog_interval_not_a_number, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsupported_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ready_again_when_queue_full, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
