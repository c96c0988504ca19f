/* tp-notify-bench: the notifier's sending path alone: N signed webhook
 * deliveries (the webhook channel's prepare and send, on the transfer
 * client: one libuv loop, libcurl multi) to a local receiver, INFLIGHT at a
 * time. Prints deliveries/s and the heap in use per delivery in flight
 * (malloc's count at the midpoint, over the baseline before the first,
 * divided by the deliveries then in flight). Owns its loop, the transfer
 * client and the channel.
 *
 *   tp-notify-bench URL N INFLIGHT [MAX_CONNECTIONS] */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "notifier_transfer.h"
#include "notifier_webhook.h"
#include "tp/config.h"
#include "tp/id.h"
#include "tp/log.h"

static tp_channel_t *channel;
static const char *url;
static long total, started, done, failed, inflight_max;
static size_t heap_base, heap_mid;
static long mid_inflight;
static tp_transfer_t *transfer;
static uint64_t t0;

static void start_one(void);

static void on_done(long status, const char *error, void *arg) {
    free(arg);
    done++;
    if (error || status < 200 || status >= 300) failed++;
    if (done == total / 2) {
        heap_mid = mallinfo2().uordblks;
        mid_inflight = (long)tp_transfer_inflight(transfer) + 1;
    }
    if (started < total) start_one();
}

static void start_one(void) {
    char *id = malloc(64);
    snprintf(id, 64, "bench-%ld/webhook/rep-bench", started);
    tp_message_t m = {.delivery = id, .address = url, .recipient = "rep-bench",
                      .customer = "BENCH-1", .kind = "reminder.due", .lang = "en",
                      .subject = "R-TOUCH-1: ACME (due 2026-12-03 09:00)",
                      .text = "Hello rep-bench,\n\nA reminder for ACME fell due: call them.\n",
                      .now_ms = tp_now_ms()};
    size_t len;
    char err[200];
    char *payload = channel->prepare(channel, &m, &len, err, sizeof err);
    started++;
    if (!payload || channel->send(channel, id, url, payload, len, on_done, id) < 0) {
        fprintf(stderr, "not started: %s\n", payload ? "send" : err);
        free(id);
        failed++, done++;
    }
    free(payload);
}

int main(int argc, char **argv) {
    tp_log_stream(stderr); /* stdout is this tool's answer; logs go aside */
    if (argc < 4) {
        fprintf(stderr, "usage: tp-notify-bench URL N INFLIGHT [MAX_CONNECTIONS]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    url = argv[1];
    total = atol(argv[2]);
    long inflight = atol(argv[3]);
    long conns = argc > 4 ? atol(argv[4]) : 64;
    uv_loop_t *loop = uv_default_loop();
    setenv("TP_NOTIFIER_WEBHOOK_SECRET", "bench-secret", 1);
    char err[300];
    tp_config_t *cfg = tp_config_new(NULL, err, sizeof err);
    tp_transfer_options_t topts = {.timeout_ms = 60000, .connect_timeout_ms = 5000,
                                   .max_inflight = (int)inflight + 10,
                                   .max_connections = (int)conns};
    heap_base = mallinfo2().uordblks;
    transfer = tp_transfer_new(loop, &topts);
    channel = tp_webhook_new(cfg, transfer, err, sizeof err);
    if (!transfer || !channel) {
        fprintf(stderr, "setup: %s\n", err);
        return 1;
    }
    t0 = uv_hrtime();
    while (started < total && started < inflight) start_one();
    inflight_max = started;
    uv_run(loop, UV_RUN_DEFAULT);
    double secs = (double)(uv_hrtime() - t0) / 1e9;
    printf("deliveries %ld failed %ld in %.2f s: %.0f deliveries/s; in flight %ld "
           "(max connections %ld); heap per delivery in flight %.0f B\n",
           done, failed, secs, (double)done / secs, inflight_max, conns,
           mid_inflight ? (double)(heap_mid - heap_base) / (double)mid_inflight : 0.0);
    tp_channel_destroy(&channel);
    tp_transfer_destroy(&transfer);
    uv_run(loop, UV_RUN_DEFAULT);
    tp_config_destroy(&cfg);
    return failed ? 1 : 0;
}
