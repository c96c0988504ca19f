/* test_bus.c: the bus over real ZeroMQ sockets (ipc:// and tcp://), both
 * ends on one libuv loop. Every test closes its bus and checks that
 * uv_loop_close() returns 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tp/bus.h"

#define FLOOD_COUNT 100000

/* ---- harness ----------------------------------------------------------- */

typedef struct {
    uv_loop_t loop;
    uv_timer_t deadline;
    int timed_out;
} world_t;

static void deadline_fired(uv_timer_t *t) {
    world_t *w = t->data;
    w->timed_out = 1;
    uv_stop(&w->loop);
}

static void world_init(world_t *w) {
    memset(w, 0, sizeof *w);
    assert_int_equal(uv_loop_init(&w->loop), 0);
    uv_timer_init(&w->loop, &w->deadline);
    w->deadline.data = w;
}

/* Runs the loop until a callback calls uv_stop, or fails the test after
 * `ms`. */
static void world_run(world_t *w, uint64_t ms) {
    w->timed_out = 0;
    uv_timer_start(&w->deadline, deadline_fired, ms, 0);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&w->deadline);
    assert_false(w->timed_out);
}

/* Runs the loop for `ms` whatever happens (to prove nothing arrives). */
static void world_idle(world_t *w, uint64_t ms) {
    uv_timer_start(&w->deadline, deadline_fired, ms, 0);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&w->deadline);
}

static void world_close(world_t *w, tp_bus_t **bus) {
    tp_bus_destroy(bus);
    assert_null(*bus);
    tp_bus_destroy(bus); /* twice is fine */
    uv_close((uv_handle_t *)&w->deadline, NULL);
    assert_int_equal(uv_run(&w->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&w->loop), 0);
}

/* libzmq (since 4.2) leaves ipc files behind on close: the tests remember
 * theirs and remove them at the end. */
static char ipc_paths[16][96];
static int ipc_count;

static void ipc_endpoint(char *out, size_t cap, const char *name) {
    assert_true(ipc_count < 16);
    char *path = ipc_paths[ipc_count++];
    snprintf(path, sizeof ipc_paths[0], "/tmp/tp-test-bus-%ld-%s.sock",
             (long)getpid(), name);
    snprintf(out, cap, "ipc://%s", path);
}

static int ipc_cleanup(void **state) {
    for (int i = 0; i < ipc_count; i++)
        unlink(ipc_paths[i]);
    return 0;
}

/* A TCP port nobody listens on right now (the kernel picks it). */
static void tcp_endpoint(char *out, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    snprintf(out, cap, "tcp://127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
}

static int send_u32(tp_bus_socket_t *sock, uint32_t n) {
    const void *frames[] = {&n};
    size_t lens[] = {sizeof n};
    return tp_bus_send(sock, frames, lens, 1);
}

/* ---- PUSH -> PULL: order, no loss ------------------------------------- */

typedef struct {
    world_t *w;
    uint32_t received; /* also the next sequence number expected */
    uint32_t expect;   /* stop the loop at this count */
    int out_of_order;
    tp_bus_socket_t *self_destroy; /* closes itself at `expect` if set */
} counter_t;

static void counter_recv(tp_bus_socket_t *sock, const void *const *frames,
                         const size_t *lens, size_t nframes, void *arg) {
    counter_t *c = arg;
    uint32_t n = UINT32_MAX;
    if (nframes == 1 && lens[0] == sizeof n) memcpy(&n, frames[0], sizeof n);
    if (n != c->received) c->out_of_order++;
    c->received++;
    if (c->received == c->expect) {
        if (c->self_destroy) tp_bus_socket_destroy(&c->self_destroy);
        uv_stop(&c->w->loop);
    }
}

static void test_push_pull_flood(void **state) {
    world_t w;
    world_init(&w);
    tp_bus_t *bus = tp_bus_new(&w.loop);
    assert_non_null(bus);
    char ep[128];
    ipc_endpoint(ep, sizeof ep, "flood");
    counter_t c = {.w = &w, .expect = FLOOD_COUNT};

    /* HWM above the count: everything is admitted at once. */
    tp_bus_socket_t *pull = tp_bus_socket_new(
        bus, ZMQ_PULL, ep, 1, FLOOD_COUNT + 1, counter_recv, &c);
    assert_non_null(pull);
    tp_bus_socket_t *push =
        tp_bus_socket_new(bus, ZMQ_PUSH, ep, 0, FLOOD_COUNT + 1, NULL, NULL);
    assert_non_null(push);

    /* ZMQ_IMMEDIATE: wait for the connection before flooding. */
    while (send_u32(push, 0) == -1) {
        assert_int_equal(errno, EAGAIN);
        world_idle(&w, 5);
    }
    for (uint32_t i = 1; i < FLOOD_COUNT; i++)
        assert_int_equal(send_u32(push, i), 0);

    world_run(&w, 20000);
    assert_int_equal(c.received, FLOOD_COUNT);
    assert_int_equal(c.out_of_order, 0);

    tp_bus_socket_destroy(&push);
    assert_null(push);
    tp_bus_socket_destroy(&push); /* NULL is fine */
    world_close(&w, &bus);
}

/* A sender that keeps pushing whenever the loop is idle, backing off on
 * EAGAIN, against a small HWM: nothing is lost and order holds. */
typedef struct {
    tp_bus_socket_t *push;
    uint32_t next, total;
    uint64_t eagain;
} pacer_t;

static void pacer_tick(uv_idle_t *h) {
    pacer_t *p = h->data;
    while (p->next < p->total) {
        if (send_u32(p->push, p->next) == -1) {
            assert_int_equal(errno, EAGAIN);
            p->eagain++;
            return;
        }
        p->next++;
    }
    uv_idle_stop(h);
}

static void test_push_pull_backpressure(void **state) {
    world_t w;
    world_init(&w);
    tp_bus_t *bus = tp_bus_new(&w.loop);
    char ep[128];
    ipc_endpoint(ep, sizeof ep, "pace");
    counter_t c = {.w = &w, .expect = FLOOD_COUNT};
    tp_bus_socket_t *pull =
        tp_bus_socket_new(bus, ZMQ_PULL, ep, 1, 50, counter_recv, &c);
    assert_non_null(pull);
    pacer_t p = {.total = FLOOD_COUNT};
    p.push = tp_bus_socket_new(bus, ZMQ_PUSH, ep, 0, 50, NULL, NULL);
    assert_non_null(p.push);

    uv_idle_t pacer;
    uv_idle_init(&w.loop, &pacer);
    pacer.data = &p;
    uv_idle_start(&pacer, pacer_tick);
    world_run(&w, 30000);
    assert_int_equal(c.received, FLOOD_COUNT);
    assert_int_equal(c.out_of_order, 0);
    assert_true(p.eagain > 0); /* the HWM really pushed back */

    uv_close((uv_handle_t *)&pacer, NULL);
    world_close(&w, &bus);
}

/* ---- ROUTER / DEALER request-reply ------------------------------------ */

typedef struct {
    world_t *w;
    int requests, replies, bad;
} rr_t;

static void router_recv(tp_bus_socket_t *sock, const void *const *frames,
                        const size_t *lens, size_t nframes, void *arg) {
    rr_t *rr = arg;
    rr->requests++;
    if (nframes != 3 || lens[2] != 5 || memcmp(frames[2], "hello", 5) != 0) {
        rr->bad++;
        return;
    }
    /* Reply from inside the callback: [identity][token]["ok"]. */
    const void *out[] = {frames[0], frames[1], "ok"};
    size_t out_lens[] = {lens[0], lens[1], 2};
    if (tp_bus_send(sock, out, out_lens, 3) != 0) rr->bad++;
}

static void dealer_recv(tp_bus_socket_t *sock, const void *const *frames,
                        const size_t *lens, size_t nframes, void *arg) {
    rr_t *rr = arg;
    uint32_t token = UINT32_MAX;
    if (nframes == 2 && lens[0] == sizeof token)
        memcpy(&token, frames[0], sizeof token);
    if (token != (uint32_t)rr->replies || lens[1] != 2 ||
        memcmp(frames[1], "ok", 2) != 0)
        rr->bad++;
    rr->replies++;
    if (rr->replies == 1000) uv_stop(&rr->w->loop);
}

static void test_router_dealer(void **state) {
    world_t w;
    world_init(&w);
    tp_bus_t *bus = tp_bus_new(&w.loop);
    char ep[128];
    tcp_endpoint(ep, sizeof ep);
    rr_t rr = {.w = &w};
    tp_bus_socket_t *router =
        tp_bus_socket_new(bus, ZMQ_ROUTER, ep, 1, 0, router_recv, &rr);
    assert_non_null(router);
    tp_bus_socket_t *dealer =
        tp_bus_socket_new(bus, ZMQ_DEALER, ep, 0, 0, dealer_recv, &rr);
    assert_non_null(dealer);

    uint32_t token = 0;
    const void *frames[] = {&token, "hello"};
    size_t lens[] = {sizeof token, 5};
    while (tp_bus_send(dealer, frames, lens, 2) == -1) {
        assert_int_equal(errno, EAGAIN); /* not connected yet */
        world_idle(&w, 5);
    }
    for (token = 1; token < 1000; token++)
        assert_int_equal(tp_bus_send(dealer, frames, lens, 2), 0);

    world_run(&w, 10000);

    /* A reply to a peer the ROUTER does not know is refused, not lost. */
    const void *stray[] = {"nobody", "ok"};
    size_t stray_lens[] = {6, 2};
    errno = 0;
    assert_int_equal(tp_bus_send(router, stray, stray_lens, 2), -1);
    assert_int_equal(errno, EHOSTUNREACH);

    assert_int_equal(rr.requests, 1000);
    assert_int_equal(rr.replies, 1000);
    assert_int_equal(rr.bad, 0);
    world_close(&w, &bus);
}

/* ---- no peer ---------------------------------------------------------- */

static void test_send_no_peer(void **state) {
    world_t w;
    world_init(&w);
    tp_bus_t *bus = tp_bus_new(&w.loop);
    char ep_bound[128], ep_conn[128];
    ipc_endpoint(ep_bound, sizeof ep_bound, "lonely-bind");
    ipc_endpoint(ep_conn, sizeof ep_conn, "lonely-connect");

    tp_bus_socket_t *bound =
        tp_bus_socket_new(bus, ZMQ_PUSH, ep_bound, 1, 0, NULL, NULL);
    tp_bus_socket_t *connected =
        tp_bus_socket_new(bus, ZMQ_PUSH, ep_conn, 0, 0, NULL, NULL);
    tp_bus_socket_t *dealer =
        tp_bus_socket_new(bus, ZMQ_DEALER, ep_conn, 0, 0, NULL, NULL);
    assert_non_null(bound);
    assert_non_null(connected);
    assert_non_null(dealer);
    world_idle(&w, 20);

    const void *frames[] = {"x", "y"};
    size_t lens[] = {1, 1};
    errno = 0;
    assert_int_equal(tp_bus_send(bound, frames, lens, 1), -1);
    assert_int_equal(errno, EAGAIN);
    errno = 0;
    assert_int_equal(tp_bus_send(connected, frames, lens, 2), -1);
    assert_int_equal(errno, EAGAIN);
    errno = 0;
    assert_int_equal(tp_bus_send(dealer, frames, lens, 2), -1);
    assert_int_equal(errno, EAGAIN);
    errno = 0;
    assert_int_equal(tp_bus_send(bound, frames, lens, 0), -1);
    assert_int_equal(errno, EINVAL);

    /* A bad endpoint fails cleanly and leaves nothing behind. */
    assert_null(
        tp_bus_socket_new(bus, ZMQ_PULL, "nonsense://x", 1, 0, NULL, NULL));
    world_close(&w, &bus);
}

/* ---- a watched socket counts its connections --------------------------- */

typedef struct {
    world_t *w;
    tp_bus_socket_t *sock;
    int want;
    uv_timer_t poll;
} peers_wait_t;

static void peers_poll(uv_timer_t *t) {
    peers_wait_t *p = t->data;
    if (tp_bus_socket_peers(p->sock) == p->want) uv_stop(&p->w->loop);
}

/* Runs the loop until `sock` counts `want` connections (fails after 5 s). */
static void wait_peers(world_t *w, tp_bus_socket_t *sock, int want) {
    peers_wait_t p = {.w = w, .sock = sock, .want = want};
    uv_timer_init(&w->loop, &p.poll);
    p.poll.data = &p;
    uv_timer_start(&p.poll, peers_poll, 5, 5);
    world_run(w, 5000);
    uv_close((uv_handle_t *)&p.poll, NULL);
    uv_run(&w->loop, UV_RUN_NOWAIT);
}

static void test_watched_peers(void **state) {
    world_t w;
    world_init(&w);
    tp_bus_t *bus = tp_bus_new(&w.loop);
    char ep[128];
    ipc_endpoint(ep, sizeof ep, "watched");
    tp_bus_socket_t *plain = tp_bus_socket_new(bus, ZMQ_PULL, ep, 0, 0, NULL, NULL);
    tp_bus_socket_t *pull = tp_bus_socket_new_watched(bus, ZMQ_PULL, ep, 0, 0, NULL, NULL);
    assert_non_null(pull);
    assert_int_equal(tp_bus_socket_peers(plain), -1); /* not watched */
    assert_int_equal(tp_bus_socket_peers(pull), 0);   /* nobody there yet */
    world_idle(&w, 50);
    assert_int_equal(tp_bus_socket_peers(pull), 0);

    tp_bus_socket_t *push = tp_bus_socket_new(bus, ZMQ_PUSH, ep, 1, 0, NULL, NULL);
    assert_non_null(push);
    wait_peers(&w, pull, 1); /* the handshake with the binder succeeded */
    tp_bus_socket_destroy(&push);
    wait_peers(&w, pull, 0); /* and it went away */
    world_close(&w, &bus);
}

/* A service stopping with its peer still there: the bus closes a watched
 * socket while its monitor has events to report (its disconnection);
 * nothing may leak (ASan's leak check runs at exit). */
static void test_watched_close_while_connected(void **state) {
    for (int round = 0; round < 20; round++) {
        world_t w;
        world_init(&w);
        tp_bus_t *bus = tp_bus_new(&w.loop), *peer_bus = tp_bus_new(&w.loop);
        char ep[128];
        ipc_endpoint(ep, sizeof ep, round ? "watched-again" : "watched-close");
        ipc_count -= round ? 1 : 0; /* one path, reused */
        tp_bus_socket_t *push = tp_bus_socket_new(peer_bus, ZMQ_PUSH, ep, 1, 0, NULL, NULL);
        tp_bus_socket_t *pull =
            tp_bus_socket_new_watched(bus, ZMQ_PULL, ep, 0, 0, NULL, NULL);
        assert_non_null(push);
        wait_peers(&w, pull, 1);
        if (round % 2) tp_bus_socket_destroy(&pull); /* alone, or with the bus */
        tp_bus_destroy(&bus);
        world_close(&w, &peer_bus);
    }
}

/* ---- pause / resume ---------------------------------------------------- */

static void test_pause_resume(void **state) {
    world_t w;
    world_init(&w);
    tp_bus_t *bus = tp_bus_new(&w.loop);
    char ep[128];
    ipc_endpoint(ep, sizeof ep, "pause");
    counter_t c = {.w = &w};
    tp_bus_socket_t *pull =
        tp_bus_socket_new(bus, ZMQ_PULL, ep, 1, 20, counter_recv, &c);
    tp_bus_socket_t *push =
        tp_bus_socket_new(bus, ZMQ_PUSH, ep, 0, 20, NULL, NULL);
    assert_non_null(pull);
    assert_non_null(push);
    tp_bus_pause(pull);
    tp_bus_pause(pull); /* idempotent */

    /* Fill every queue between the two while the reader sleeps, until
     * the sender is told EAGAIN for a while. */
    uint32_t sent = 0;
    int quiet_rounds = 0;
    while (quiet_rounds < 20) {
        int any = 0;
        while (send_u32(push, sent) == 0) {
            sent++;
            any = 1;
        }
        assert_int_equal(errno, EAGAIN);
        quiet_rounds = any ? 0 : quiet_rounds + 1;
        world_idle(&w, 5);
        assert_true(sent < 1000000);
    }
    assert_true(sent > 0);
    assert_int_equal(c.received, 0);

    c.expect = sent;
    tp_bus_resume(pull);
    tp_bus_resume(pull); /* idempotent */
    world_run(&w, 10000);
    assert_int_equal(c.received, sent);
    assert_int_equal(c.out_of_order, 0);

    /* The reader keeps reading after a resume: more arrives. */
    c.expect = sent + 10;
    for (uint32_t i = 0; i < 10; i++) {
        while (send_u32(push, sent + i) == -1)
            world_idle(&w, 5);
    }
    world_run(&w, 10000);
    assert_int_equal(c.received, sent + 10);
    assert_int_equal(c.out_of_order, 0);
    world_close(&w, &bus);
}

/* ---- framing limits and re-entrancy ----------------------------------- */

static void test_oversize_dropped(void **state) {
    world_t w;
    world_init(&w);
    tp_bus_t *bus = tp_bus_new(&w.loop);
    char ep[128];
    ipc_endpoint(ep, sizeof ep, "oversize");
    counter_t c = {.w = &w, .expect = 2};
    tp_bus_socket_t *pull =
        tp_bus_socket_new(bus, ZMQ_PULL, ep, 1, 0, counter_recv, &c);
    tp_bus_socket_t *push =
        tp_bus_socket_new(bus, ZMQ_PUSH, ep, 0, 0, NULL, NULL);
    assert_non_null(pull);
    assert_non_null(push);
    while (send_u32(push, 0) == -1)
        world_idle(&w, 5);

    const void *frames[17];
    size_t lens[17];
    for (int i = 0; i < 17; i++) {
        frames[i] = "f";
        lens[i] = 1;
    }
    assert_int_equal(tp_bus_send(push, frames, lens, 17), 0); /* dropped */
    assert_int_equal(send_u32(push, 1), 0);
    world_run(&w, 10000);
    assert_int_equal(c.received, 2);
    assert_int_equal(c.out_of_order, 0);
    world_close(&w, &bus);
}

static void test_destroy_inside_callback(void **state) {
    world_t w;
    world_init(&w);
    tp_bus_t *bus = tp_bus_new(&w.loop);
    char ep[128];
    ipc_endpoint(ep, sizeof ep, "selfdestroy");
    counter_t c = {.w = &w, .expect = 10};
    tp_bus_socket_t *pull =
        tp_bus_socket_new(bus, ZMQ_PULL, ep, 1, 0, counter_recv, &c);
    c.self_destroy = pull;
    tp_bus_socket_t *push =
        tp_bus_socket_new(bus, ZMQ_PUSH, ep, 0, 0, NULL, NULL);
    while (send_u32(push, 0) == -1)
        world_idle(&w, 5);
    for (uint32_t i = 1; i < 100; i++)
        assert_int_equal(send_u32(push, i), 0);

    world_run(&w, 10000);
    assert_null(c.self_destroy);
    world_idle(&w, 50); /* the rest stays unread: the socket is gone */
    assert_int_equal(c.received, 10);
    world_close(&w, &bus);
}

static void test_destroy_with_nothing_open(void **state) {
    world_t w;
    world_init(&w);
    tp_bus_t *bus = tp_bus_new(&w.loop);
    assert_non_null(bus);
    world_close(&w, &bus);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_pull_flood),
        cmocka_unit_test(test_push_pull_backpressure),
        cmocka_unit_test(test_router_dealer),
        cmocka_unit_test(test_send_no_peer),
        cmocka_unit_test(test_watched_peers),
        cmocka_unit_test(test_watched_close_while_connected),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_oversize_dropped),
        cmocka_unit_test(test_destroy_inside_callback),
        cmocka_unit_test(test_destroy_with_nothing_open),
    };
    return cmocka_run_group_tests(tests, NULL, ipc_cleanup);
}
