/* test_store_cluster.c: tp_store in cluster mode against a real 6-node
 * Redis Cluster (3 primaries, 3 replicas on loopback), built once for the
 * group by tests/lib/tp_cluster.py.
 *
 * Covers the slot function (pinned values from the cluster specification
 * and CLUSTER KEYSLOT of the running cluster), commands to keys in every
 * primary's slots (formatted, argv, XREAD ... STREAMS, key-less), scripts
 * loaded on every primary (before and after connecting, and a caller's
 * SCRIPT LOAD), MOVED after a slot
 * moved, ASK during a migration, TRYAGAIN retried until the command
 * timeout (NULL) or until the migration ends (MOVED, then the values),
 * WAIT (enough replicas: the reply; too few: NULL), a manual failover (CLUSTER FAILOVER on a replica) and a primary
 * killed with SIGKILL, the client following both, and destroy while a
 * reply waits for its WAIT. Every test ends with
 * uv_loop_close() == 0; the cluster is stopped in the group teardown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "store_answer.h"
#include "tp/log.h"
#include "tp/store.h"

#define NODES 6
#define KEYS 300

typedef struct {
    uv_loop_t loop;
    uv_timer_t watchdog;
    int expired;
    tp_store_t *store;
    answer_t ans[KEYS];
    int states[64];
    int nstates;
} fixture_t;

static char cluster_dir[256];
static int ports[NODES];
static pid_t pids[NODES];

/* ---------------------------------------------------------------------------
 * The cluster, through blocking hiredis (test side only) */

/* One command to the node on `port`; caller owns the reply (NULL when the
 * node does not answer). */
static redisReply *node_cmd(int port, const char *fmt, ...) {
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (!c || c->err) {
        if (c) redisFree(c);
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

static int node_alive(int i) { return pids[i] > 0; }

/* The port of the primary of `slot`, as the first live node sees it. */
static int slot_owner(int slot) {
    for (int i = 0; i < NODES; i++) {
        if (!node_alive(i)) continue;
        redisReply *r = node_cmd(ports[i], "CLUSTER SLOTS");
        if (!r) continue;
        int port = -1;
        for (size_t k = 0; r->type == REDIS_REPLY_ARRAY && k < r->elements; k++) {
            redisReply *e = r->element[k];
            if (slot >= e->element[0]->integer && slot <= e->element[1]->integer)
                port = (int)e->element[2]->element[1]->integer;
        }
        freeReplyObject(r);
        return port;
    }
    return -1;
}

static void node_id(int port, char out[64]) {
    redisReply *r = node_cmd(port, "CLUSTER MYID");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    snprintf(out, 64, "%s", r->str);
    freeReplyObject(r);
}

/* Sends `fmt` to every live node (CLUSTER SETSLOT ... NODE is to be told to
 * all of them). */
static void all_nodes(const char *fmt, const char *a1, const char *a2) {
    for (int i = 0; i < NODES; i++) {
        if (!node_alive(i)) continue;
        redisReply *r = node_cmd(ports[i], fmt, a1, a2);
        if (r) freeReplyObject(r);
    }
}

/* errorstat_<kind> count of the node on `port` (Redis 7 INFO errorstats). */
static long long error_count(int port, const char *kind) {
    redisReply *r = node_cmd(port, "INFO errorstats");
    assert_non_null(r);
    char needle[64];
    snprintf(needle, sizeof needle, "errorstat_%s:count=", kind);
    const char *p = strstr(r->str, needle);
    long long n = p ? atoll(p + strlen(needle)) : 0;
    freeReplyObject(r);
    return n;
}

/* A primary other than `port`. */
static int other_primary(int port) {
    for (int slot = 0; slot < 16384; slot += 1000) {
        int owner = slot_owner(slot);
        if (owner > 0 && owner != port) return owner;
    }
    return -1;
}

static void state_cb(tp_store_t *store, int connected, void *arg) {
    fixture_t *fx = arg;
    if (fx->nstates < 64) fx->states[fx->nstates] = connected;
    fx->nstates++;
}

static tp_store_options_t cluster_options(void) {
    tp_store_options_t opts;
    memset(&opts, 0, sizeof opts);
    opts.host = "127.0.0.1";
    opts.port = ports[0];
    opts.cluster = 1;
    opts.reconnect_min_ms = 10;
    opts.reconnect_max_ms = 200;
    opts.command_timeout_ms = 3000;
    return opts;
}

static void connect_with(fixture_t *fx, const tp_store_options_t *opts) {
    fx->store = tp_store_new(&fx->loop, opts);
    assert_non_null(fx->store);
    tp_store_on_state(fx->store, state_cb, fx);
    RUN_UNTIL(fx, tp_store_connected(fx->store), 10000);
    assert_true(tp_store_connected(fx->store));
}

static void connect_store(fixture_t *fx) {
    tp_store_options_t opts = cluster_options();
    connect_with(fx, &opts);
}

static answer_t *roundtrip(fixture_t *fx, int slot, const char *fmt,
                           const char *a1, const char *a2) {
    answer_t *a = &fx->ans[slot];
    memset(a, 0, sizeof *a);
    assert_int_equal(tp_store_command(fx->store, answer_cb, a, fmt, a1, a2), 0);
    RUN_UNTIL(fx, a->calls > 0, 5000);
    assert_int_equal(a->calls, 1);
    assert_int_equal(a->nulls, 0);
    return a;
}

/* ---------------------------------------------------------------------------
 * Fixture */

static int group_setup(void **state) {
    tp_log_init("test_store_cluster", "", TP_LOG_INFO);
    const char *src = getenv("TP_SOURCE_DIR");
    const char *tmp = getenv("TMPDIR");
    snprintf(cluster_dir, sizeof cluster_dir, "%s/tp-cluster-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(cluster_dir)) return -1;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "python3 %s/tests/lib/tp_cluster.py start %s",
             src && *src ? src : ".", cluster_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not build the cluster: %s\n", cmd);
        return -1;
    }
    char path[300];
    snprintf(path, sizeof path, "%s/nodes", cluster_dir);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    for (int i = 0; i < NODES; i++)
        if (fscanf(f, "%d %d", &ports[i], &pids[i]) != 2) {
            fclose(f);
            return -1;
        }
    fclose(f);
    return 0;
}

static int group_teardown(void **state) {
    const char *src = getenv("TP_SOURCE_DIR");
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "python3 %s/tests/lib/tp_cluster.py stop %s && rm -rf %s",
             src && *src ? src : ".", cluster_dir, cluster_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int setup(void **state) {
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx || uv_loop_init(&fx->loop) != 0) return -1;
    uv_timer_init(&fx->loop, &fx->watchdog);
    fx->watchdog.data = &fx->expired;
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fixture_t *fx = *state;
    tp_store_destroy(&fx->store);
    uv_close((uv_handle_t *)&fx->watchdog, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&fx->loop);
    free(fx);
    assert_int_equal(rc, 0);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Tests */

static void test_slot_function(void **state) {
    (void)state;
    /* The specification's CRC16 check value: "123456789" -> 0x31C3. */
    assert_int_equal(tp_store_slot("123456789", 9), 0x31C3);
    /* Hash tags, with the specification's examples. */
    assert_int_equal(tp_store_slot("{user1000}.following", 20),
                     tp_store_slot("user1000", 8));
    assert_int_equal(tp_store_slot("{user1000}.followers", 20),
                     tp_store_slot("user1000", 8));
    assert_int_equal(tp_store_slot("foo{}{bar}", 10),
                     tp_store_slot("foo{}{bar}", 10) /* whole key */);
    assert_int_not_equal(tp_store_slot("foo{}{bar}", 10),
                         tp_store_slot("bar", 3));
    assert_int_equal(tp_store_slot("foo{{bar}}zap", 13),
                     tp_store_slot("{bar", 4));
    assert_int_equal(tp_store_slot("foo{bar}{zap}", 13),
                     tp_store_slot("bar", 3));
    assert_int_equal(tp_store_slot("", 0), 0);
    /* Against the server, for keys of the project's shapes and others. */
    const char *shapes[] = {"tp:{j}:journal", "tp:{s%d}:customer:%d",
                            "tp:{c:CUST-%d}:record", "key:%d", "{%d}", "x{%d"};
    for (int i = 0; i < 300; i++) {
        char key[64];
        snprintf(key, sizeof key, shapes[i % 6], i, i);
        redisReply *r = node_cmd(ports[0], "CLUSTER KEYSLOT %s", key);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        assert_int_equal(tp_store_slot(key, strlen(key)), (int)r->integer);
        freeReplyObject(r);
    }
}

/* A malformed seed list is refused at creation (the log names
 * [redis] nodes); nothing is left running. */
static void test_bad_nodes(void **state) {
    fixture_t *fx = *state;
    tp_store_options_t opts = cluster_options();
    const char *bad[] = {"127.0.0.1", "127.0.0.1:", ":7000", "127.0.0.1:0",
                         "127.0.0.1:70000", "127.0.0.1:7000x",
                         "127.0.0.1:7001,oops"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        opts.nodes = bad[i];
        assert_null(tp_store_new(&fx->loop, &opts));
    }
    opts.nodes = " 127.0.0.1:1 , localhost:2,";
    fx->store = tp_store_new(&fx->loop, &opts);
    assert_non_null(fx->store);
}

static void test_commands_in_many_slots(void **state) {
    fixture_t *fx = *state;
    connect_store(fx);
    assert_int_equal(fx->states[0], 1);

    /* formatted and argv commands to keys spread over every primary */
    char keys[KEYS][32];
    for (int i = 0; i < KEYS; i++) {
        snprintf(keys[i], sizeof keys[i], "tp:test:spread:%d", i);
        char value[16];
        snprintf(value, sizeof value, "v%d", i);
        assert_int_equal(tp_store_command(fx->store, answer_cb, &fx->ans[i],
                                          "SET %s %s", keys[i], value),
                         0);
    }
    int done = 0;
    RUN_UNTIL(fx, (done = tp_store_pending(fx->store) == 0), 10000);
    assert_true(done);
    for (int i = 0; i < KEYS; i++) {
        assert_int_equal(fx->ans[i].nulls, 0);
        assert_string_equal(fx->ans[i].str, "OK");
        memset(&fx->ans[i], 0, sizeof fx->ans[i]);
        const char *argv[2] = {"GET", keys[i]};
        assert_int_equal(
            tp_store_command_argv(fx->store, answer_cb, &fx->ans[i], 2, argv, NULL), 0);
    }
    RUN_UNTIL(fx, tp_store_pending(fx->store) == 0, 10000);
    int owners[3] = {0}, nowners = 0;
    for (int i = 0; i < KEYS; i++) {
        char value[16];
        snprintf(value, sizeof value, "v%d", i);
        assert_int_equal(fx->ans[i].type, REDIS_REPLY_STRING);
        assert_string_equal(fx->ans[i].str, value);
        /* and it really lives on its slot's primary */
        int owner = slot_owner(tp_store_slot(keys[i], strlen(keys[i])));
        int seen = 0;
        for (int k = 0; k < nowners; k++) seen |= owners[k] == owner;
        if (!seen && nowners < 3) owners[nowners++] = owner;
    }
    assert_int_equal(nowners, 3);
    redisReply *r = node_cmd(slot_owner(tp_store_slot(keys[7], strlen(keys[7]))),
                             "GET %s", keys[7]);
    assert_non_null(r);
    assert_string_equal(r->str, "v7");
    freeReplyObject(r);

    /* XREAD routes by the stream after STREAMS */
    roundtrip(fx, 0, "XADD %s * f %s", "tp:test:{stream}", "one");
    answer_t *a = roundtrip(fx, 0, "XREAD COUNT 10 STREAMS %s %s",
                            "tp:test:{stream}", "0");
    assert_int_equal(a->type, REDIS_REPLY_ARRAY);
    assert_int_equal(a->elements, 1);
    /* key-less commands go to some primary */
    a = roundtrip(fx, 0, "PING", NULL, NULL);
    assert_string_equal(a->str, "PONG");
    a = roundtrip(fx, 0, "ROLE", NULL, NULL);
    assert_int_equal(a->type, REDIS_REPLY_ARRAY);
    assert_int_equal(tp_store_pending(fx->store), 0);
}

static const char *const incr_lua = "return redis.call('INCRBY', KEYS[1], ARGV[1])";

static void test_scripts_on_every_primary(void **state) {
    fixture_t *fx = *state;
    tp_store_options_t opts = cluster_options();
    fx->store = tp_store_new(&fx->loop, &opts);
    assert_non_null(fx->store);
    int incr = tp_store_script(fx->store, "incr", incr_lua);
    RUN_UNTIL(fx, tp_store_connected(fx->store), 10000);
    assert_true(tp_store_connected(fx->store));
    int late = tp_store_script(fx->store, "late", "return 'late:' .. #KEYS");

    /* an eval per primary's range, and key-less */
    for (int i = 0; i < 30; i++) {
        char key[32];
        snprintf(key, sizeof key, "tp:test:count:%d", i);
        redisReply *del = node_cmd(slot_owner(tp_store_slot(key, strlen(key))),
                                   "DEL %s", key);
        assert_non_null(del);
        freeReplyObject(del);
        const char *args[2] = {key, "5"};
        memset(&fx->ans[i], 0, sizeof fx->ans[i]);
        assert_int_equal(tp_store_eval(fx->store, incr, answer_cb, &fx->ans[i],
                                       1, 2, args, NULL),
                         0);
    }
    RUN_UNTIL(fx, tp_store_pending(fx->store) == 0, 10000);
    for (int i = 0; i < 30; i++) {
        assert_int_equal(fx->ans[i].nulls, 0);
        assert_int_equal(fx->ans[i].type, REDIS_REPLY_INTEGER);
        assert_int_equal(fx->ans[i].integer, 5);
    }
    const char *none[1] = {"x"};
    memset(&fx->ans[0], 0, sizeof fx->ans[0]);
    assert_int_equal(tp_store_eval(fx->store, late, answer_cb, &fx->ans[0], 0, 0,
                                   none, NULL),
                     0);
    RUN_UNTIL(fx, fx->ans[0].calls > 0, 5000);
    assert_int_equal(fx->ans[0].type, REDIS_REPLY_STRING);
    assert_string_equal(fx->ans[0].str, "late:0");

    /* both scripts are in every primary's cache */
    char sha_incr[64], sha_late[64];
    redisReply *r = node_cmd(ports[0], "SCRIPT LOAD %s", incr_lua);
    snprintf(sha_incr, sizeof sha_incr, "%s", r->str);
    freeReplyObject(r);
    r = node_cmd(ports[0], "SCRIPT LOAD %s", "return 'late:' .. #KEYS");
    snprintf(sha_late, sizeof sha_late, "%s", r->str);
    freeReplyObject(r);
    for (int slot = 0; slot < 16384; slot += 4096) {
        int owner = slot_owner(slot);
        /* (ports[0] was just given both; the others only by the store) */
        if (owner == ports[0]) continue;
        int loaded = 0;
        for (int t = 0; t < 100 && !loaded; t++) {
            r = node_cmd(owner, "SCRIPT EXISTS %s %s", sha_incr, sha_late);
            assert_non_null(r);
            loaded = r->element[0]->integer == 1 && r->element[1]->integer == 1;
            freeReplyObject(r);
            if (!loaded) RUN_UNTIL(fx, 0, 50);
        }
        assert_true(loaded);
    }

    /* a caller's SCRIPT LOAD goes to every primary too */
    const char *body = "return 'by the caller'";
    answer_t *a = roundtrip(fx, 0, "SCRIPT LOAD %s", body, NULL);
    assert_int_equal(a->type, REDIS_REPLY_STRING);
    assert_int_equal(strlen(a->str), 40);
    char sha[41];
    memcpy(sha, a->str, 40);
    sha[40] = '\0';
    int primaries = 0;
    for (int i = 0; i < NODES; i++) {
        r = node_cmd(ports[i], "ROLE");
        assert_non_null(r);
        int primary = strcmp(r->element[0]->str, "master") == 0;
        freeReplyObject(r);
        if (!primary) continue;
        primaries++;
        r = node_cmd(ports[i], "SCRIPT EXISTS %s", sha);
        assert_int_equal(r->element[0]->integer, 1);
        freeReplyObject(r);
    }
    assert_int_equal(primaries, 3);
    assert_int_equal(tp_store_pending(fx->store), 0);
}

/* Moves `slot` from its primary to `to`, first migrating its keys. */
static void slot_move(int slot, int from, int to, const char **keys, int nkeys) {
    char from_id[64], to_id[64], s[16];
    node_id(from, from_id);
    node_id(to, to_id);
    snprintf(s, sizeof s, "%d", slot);
    redisReply *r = node_cmd(to, "CLUSTER SETSLOT %s IMPORTING %s", s, from_id);
    assert_string_equal(r->str, "OK");
    freeReplyObject(r);
    r = node_cmd(from, "CLUSTER SETSLOT %s MIGRATING %s", s, to_id);
    assert_string_equal(r->str, "OK");
    freeReplyObject(r);
    for (int i = 0; i < nkeys; i++) {
        r = node_cmd(from, "MIGRATE 127.0.0.1 %d %s 0 5000", to, keys[i]);
        assert_non_null(r);
        assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
        freeReplyObject(r);
    }
}

static void slot_assign(int slot, int to) {
    char to_id[64], s[16];
    node_id(to, to_id);
    snprintf(s, sizeof s, "%d", slot);
    /* the importing node first: it bumps its config epoch */
    redisReply *r = node_cmd(to, "CLUSTER SETSLOT %s NODE %s", s, to_id);
    assert_string_equal(r->str, "OK");
    freeReplyObject(r);
    all_nodes("CLUSTER SETSLOT %s NODE %s", s, to_id);
}

static void test_moved_after_slot_moved(void **state) {
    fixture_t *fx = *state;
    connect_store(fx);
    const char *key = "tp:{moved}:k";
    int slot = tp_store_slot(key, strlen(key));
    roundtrip(fx, 0, "SET %s %s", key, "here");
    int from = slot_owner(slot), to = other_primary(from);
    assert_true(to > 0);
    slot_move(slot, from, to, &key, 1);
    slot_assign(slot, to);

    long long moved = error_count(from, "MOVED");
    answer_t *a = roundtrip(fx, 0, "GET %s", key, NULL);
    assert_int_equal(a->type, REDIS_REPLY_STRING);
    assert_string_equal(a->str, "here");
    assert_int_equal(error_count(from, "MOVED"), moved + 1);
    /* the slot's new owner is remembered: no second MOVED */
    a = roundtrip(fx, 0, "GET %s", key, NULL);
    assert_string_equal(a->str, "here");
    assert_int_equal(error_count(from, "MOVED"), moved + 1);
    /* scripts follow too */
    int incr = tp_store_script(fx->store, "incr", incr_lua);
    const char *args[2] = {"tp:{moved}:n", "3"};
    answer_t *e = &fx->ans[1];
    assert_int_equal(tp_store_eval(fx->store, incr, answer_cb, e, 1, 2, args, NULL), 0);
    RUN_UNTIL(fx, e->calls > 0, 5000);
    assert_int_equal(e->type, REDIS_REPLY_INTEGER);
    assert_int_equal(e->integer, 3);
    redisReply *r = node_cmd(to, "GET %s", "tp:{moved}:n");
    assert_string_equal(r->str, "3");
    freeReplyObject(r);
    assert_true(tp_store_connected(fx->store));
}

static void test_ask_during_migration(void **state) {
    fixture_t *fx = *state;
    connect_store(fx);
    const char *moving = "tp:{ask}:moving", *staying = "tp:{ask}:staying";
    int slot = tp_store_slot(moving, strlen(moving));
    roundtrip(fx, 0, "SET %s %s", moving, "m");
    roundtrip(fx, 0, "SET %s %s", staying, "s");
    int from = slot_owner(slot), to = other_primary(from);
    slot_move(slot, from, to, &moving, 1); /* one key moved, slot not yet */

    long long asks = error_count(from, "ASK");
    answer_t *a = roundtrip(fx, 0, "GET %s", moving, NULL);
    assert_int_equal(a->type, REDIS_REPLY_STRING);
    assert_string_equal(a->str, "m");
    assert_int_equal(error_count(from, "ASK"), asks + 1);
    /* ASK is for one command: the slot still goes to the old owner */
    a = roundtrip(fx, 0, "GET %s", staying, NULL);
    assert_string_equal(a->str, "s");
    a = roundtrip(fx, 0, "GET %s", moving, NULL);
    assert_string_equal(a->str, "m");
    assert_int_equal(error_count(from, "ASK"), asks + 2);

    /* finish the migration: then MOVED */
    slot_move(slot, from, to, &staying, 1);
    slot_assign(slot, to);
    a = roundtrip(fx, 0, "GET %s", staying, NULL);
    assert_string_equal(a->str, "s");
    assert_true(tp_store_connected(fx->store));
}

/* A multi-key command while its slot migrates with its keys split between
 * the nodes: the old owner says TRYAGAIN; the store retries it until the
 * command timeout, and gives NULL when that passes; once the migration ends
 * the retry meets MOVED and succeeds. */
static void test_tryagain_during_migration(void **state) {
    fixture_t *fx = *state;
    tp_store_options_t opts = cluster_options();
    opts.command_timeout_ms = 1000;
    connect_with(fx, &opts);
    const char *a_key = "tp:{try}:a", *b_key = "tp:{try}:b";
    int slot = tp_store_slot(a_key, strlen(a_key));
    roundtrip(fx, 0, "SET %s %s", a_key, "1");
    roundtrip(fx, 0, "SET %s %s", b_key, "2");
    int from = slot_owner(slot), to = other_primary(from);
    slot_move(slot, from, to, &a_key, 1); /* a moved, b not yet */

    /* never resolved: NULL after the command timeout */
    long long tries = error_count(from, "TRYAGAIN");
    answer_t *a = &fx->ans[1];
    uint64_t t0 = uv_now(&fx->loop);
    assert_int_equal(tp_store_command(fx->store, answer_cb, a, "MGET %s %s",
                                      a_key, b_key),
                     0);
    RUN_UNTIL(fx, a->calls > 0, 5000);
    assert_int_equal(a->calls, 1);
    assert_int_equal(a->nulls, 1);
    assert_true(uv_now(&fx->loop) - t0 >= 1000);
    assert_true(error_count(from, "TRYAGAIN") >= tries + 3); /* retried */
    assert_int_equal(tp_store_pending(fx->store), 0);

    /* resolved while it waits (a timeout the blocking admin calls below
     * cannot outlast): the retry follows MOVED to the values */
    tp_store_destroy(&fx->store);
    opts.command_timeout_ms = 30000;
    connect_with(fx, &opts);
    memset(a, 0, sizeof *a);
    assert_int_equal(tp_store_command(fx->store, answer_cb, a, "MGET %s %s",
                                      a_key, b_key),
                     0);
    RUN_UNTIL(fx, 0, 200);
    assert_int_equal(a->calls, 0);
    slot_move(slot, from, to, &b_key, 1);
    slot_assign(slot, to);
    RUN_UNTIL(fx, a->calls > 0, 5000);
    assert_int_equal(a->calls, 1);
    assert_int_equal(a->nulls, 0);
    assert_int_equal(a->type, REDIS_REPLY_ARRAY);
    assert_int_equal(a->elements, 2);
    redisReply *r = node_cmd(to, "MGET %s %s", a_key, b_key);
    assert_string_equal(r->element[0]->str, "1");
    assert_string_equal(r->element[1]->str, "2");
    freeReplyObject(r);
}

static void test_wait_replicas(void **state) {
    fixture_t *fx = *state;
    tp_store_options_t opts = cluster_options();
    opts.wait_replicas = 1;
    opts.wait_timeout_ms = 2000;
    connect_with(fx, &opts);
    int incr = tp_store_script(fx->store, "incr", incr_lua);
    int ro = tp_store_script_ro(fx->store, "get", "return redis.call('GET', KEYS[1])");
    const char *args[2] = {"tp:{wait}:n", "1"};
    roundtrip(fx, 0, "DEL %s", args[0], NULL);
    answer_t *a = &fx->ans[1];
    assert_int_equal(tp_store_eval(fx->store, incr, answer_cb, a, 1, 2, args, NULL), 0);
    RUN_UNTIL(fx, a->calls > 0, 5000);
    assert_int_equal(a->nulls, 0);
    assert_int_equal(a->integer, 1);
    tp_store_destroy(&fx->store);

    /* more replicas than there are: the write happened, but is not
     * acknowledged (NULL), after about the WAIT timeout */
    opts.wait_replicas = 2;
    opts.wait_timeout_ms = 300;
    connect_with(fx, &opts);
    incr = tp_store_script(fx->store, "incr", incr_lua);
    ro = tp_store_script_ro(fx->store, "get", "return redis.call('GET', KEYS[1])");
    memset(a, 0, sizeof *a);
    uint64_t t0 = uv_now(&fx->loop);
    assert_int_equal(tp_store_eval(fx->store, incr, answer_cb, a, 1, 2, args, NULL), 0);
    RUN_UNTIL(fx, a->calls > 0, 5000);
    assert_int_equal(a->calls, 1);
    assert_int_equal(a->nulls, 1);
    assert_true(uv_now(&fx->loop) - t0 >= 250);
    /* read-only scripts and plain commands do not wait */
    memset(a, 0, sizeof *a);
    assert_int_equal(tp_store_eval(fx->store, ro, answer_cb, a, 1, 1, args, NULL), 0);
    RUN_UNTIL(fx, a->calls > 0, 5000);
    assert_int_equal(a->nulls, 0);
    assert_string_equal(a->str, "2");
    assert_int_equal(tp_store_pending(fx->store), 0);
}

/* Destroy while a script's reply is held for its WAIT and plain commands
 * are in flight on every primary: each callback runs once, with NULL. */
static void test_destroy_with_reply_held(void **state) {
    fixture_t *fx = *state;
    tp_store_options_t opts = cluster_options();
    opts.wait_replicas = 2; /* more than there are: WAIT runs its timeout */
    opts.wait_timeout_ms = 2000;
    connect_with(fx, &opts);
    int incr = tp_store_script(fx->store, "incr", incr_lua);
    const char *args[2] = {"tp:{held}:n", "1"};
    answer_t *held = &fx->ans[0];
    assert_int_equal(tp_store_eval(fx->store, incr, answer_cb, held, 1, 2, args, NULL), 0);
    for (int i = 1; i < 40; i++) {
        char key[32];
        snprintf(key, sizeof key, "tp:test:held:%d", i);
        assert_int_equal(tp_store_command(fx->store, answer_cb, &fx->ans[i],
                                          "GET %s", key, NULL),
                         0);
    }
    /* the script's own reply is in (the key exists), its WAIT is not */
    int written = 0;
    for (int t = 0; t < 100 && !written; t++) {
        RUN_UNTIL(fx, 0, 10);
        redisReply *r = node_cmd(slot_owner(tp_store_slot(args[0], strlen(args[0]))),
                                 "EXISTS %s", args[0]);
        written = r && r->integer == 1;
        if (r) freeReplyObject(r);
    }
    assert_true(written);
    RUN_UNTIL(fx, 0, 100);
    assert_int_equal(held->calls, 0);
    tp_store_destroy(&fx->store);
    assert_null(fx->store);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    assert_int_equal(held->calls, 1);
    assert_int_equal(held->nulls, 1);
    for (int i = 1; i < 40; i++) assert_int_equal(fx->ans[i].calls, 1);
    redisReply *r = node_cmd(slot_owner(tp_store_slot(args[0], strlen(args[0]))),
                             "DEL %s", args[0]);
    if (r) freeReplyObject(r);
}

/* Sends GET key until a non-NULL, non-error answer, within `ms`. */
static answer_t *get_eventually(fixture_t *fx, const char *key, int ms) {
    answer_t *a = &fx->ans[0];
    uint64_t deadline = uv_now(&fx->loop) + (uint64_t)ms;
    while (uv_now(&fx->loop) < deadline) {
        memset(a, 0, sizeof *a);
        if (tp_store_command(fx->store, answer_cb, a, "GET %s", key) == 0) {
            RUN_UNTIL(fx, a->calls > 0, 5000);
            if (a->calls == 1 && a->nulls == 0 && a->type == REDIS_REPLY_STRING)
                return a;
        }
        RUN_UNTIL(fx, 0, 50);
        uv_update_time(&fx->loop);
    }
    return a;
}

static int port_index(int port) {
    for (int i = 0; i < NODES; i++)
        if (ports[i] == port) return i;
    return -1;
}

static int replica_of(int primary) {
    redisReply *r = node_cmd(primary, "ROLE");
    assert_non_null(r);
    assert_string_equal(r->element[0]->str, "master");
    assert_true(r->element[2]->elements > 0);
    int port = atoi(r->element[2]->element[0]->element[1]->str);
    freeReplyObject(r);
    return port;
}

static void test_manual_failover(void **state) {
    fixture_t *fx = *state;
    connect_store(fx);
    const char *key = "tp:{failover}:k";
    roundtrip(fx, 0, "SET %s %s", key, "before");
    roundtrip(fx, 0, "WAIT %s %s", "1", "2000");
    int old = slot_owner(tp_store_slot(key, strlen(key)));
    int replica = replica_of(old);
    redisReply *r = node_cmd(replica, "CLUSTER FAILOVER");
    assert_string_equal(r->str, "OK");
    freeReplyObject(r);
    int promoted = 0;
    for (int t = 0; t < 200 && !promoted; t++) {
        r = node_cmd(replica, "ROLE");
        promoted = r && strcmp(r->element[0]->str, "master") == 0;
        if (r) freeReplyObject(r);
        if (!promoted) RUN_UNTIL(fx, 0, 50);
    }
    assert_true(promoted);
    /* the old primary answers MOVED (it is a replica now): followed */
    answer_t *a = get_eventually(fx, key, 10000);
    assert_string_equal(a->str, "before");
    a = roundtrip(fx, 0, "SET %s %s", key, "after");
    r = node_cmd(replica, "GET %s", key);
    assert_string_equal(r->str, "after");
    freeReplyObject(r);
    RUN_UNTIL(fx, tp_store_connected(fx->store), 5000);
    assert_true(tp_store_connected(fx->store));
}

static void test_primary_killed(void **state) {
    fixture_t *fx = *state;
    connect_store(fx);
    const char *key = "tp:{killed}:k";
    roundtrip(fx, 0, "SET %s %s", key, "kept");
    roundtrip(fx, 0, "WAIT %s %s", "1", "2000");
    int victim = slot_owner(tp_store_slot(key, strlen(key)));
    int i = port_index(victim);
    assert_true(i >= 0);
    kill(pids[i], SIGKILL);
    pids[i] = 0;
    /* the link drops: not every slot has a primary any more */
    RUN_UNTIL(fx, !tp_store_connected(fx->store), 5000);
    assert_false(tp_store_connected(fx->store));
    assert_int_equal(fx->states[fx->nstates - 1], 0);
    /* the replica takes over (node timeout 1 s); the store finds it */
    RUN_UNTIL(fx, tp_store_connected(fx->store), 30000);
    assert_true(tp_store_connected(fx->store));
    assert_int_equal(fx->states[fx->nstates - 1], 1);
    answer_t *a = get_eventually(fx, key, 10000);
    assert_string_equal(a->str, "kept");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot_function),
        cmocka_unit_test_setup_teardown(test_bad_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commands_in_many_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scripts_on_every_primary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_moved_after_slot_moved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ask_during_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tryagain_during_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_replicas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_with_reply_held, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manual_failover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_primary_killed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
