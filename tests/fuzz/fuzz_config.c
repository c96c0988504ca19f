/* fuzz_config.c: bytes as the deployment's INI file -> tp_config_new, the
 * getters the services call (int, ms, bool, str), then tp_config_check.
 *
 * The file is a memfd opened by its /proc/self/fd path: tp_config_new reads
 * a path, and nothing touches the disk. The keys asked for are real ones
 * (intake.port, intake.read_timeout, ...) so libFuzzer's comparison hooks
 * lead it to them; `[a] b` exercises whatever section and key it invents.
 * No TP_* environment variable is set, so the file alone decides.
 * Invariants: a failed load says why, a getter returns a value in its range
 * or its default, and a failed tp_config_check says why. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "tp/config.h"

static int fd = -1;
static char path[64];
static volatile size_t sink; /* keeps the reads of returned strings */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fd < 0) {
        fd = memfd_create("tp-fuzz-config", 0);
        if (fd < 0) fuzz_die("memfd_create failed");
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        fuzz_die("cannot write the config memfd");

    char err[256] = "";
    tp_config_t *cfg = tp_config_new(path, err, sizeof err);
    if (cfg == NULL) {
        if (err[0] == '\0') fuzz_die("tp_config_new failed without a reason");
        return 0;
    }
    int64_t port = tp_config_int(cfg, "intake", "port", 8080, 0, 65535);
    if (port < 0 || port > 65535)
        fuzz_die("port %lld outside 0..65535", (long long)port);
    int64_t n = tp_config_int(cfg, "a", "b", -7, INT64_MIN, INT64_MAX);
    (void)n;
    int64_t ms = tp_config_ms(cfg, "intake", "read_timeout", "10s");
    if (ms < 0) fuzz_die("a negative duration %lld", (long long)ms);
    ms = tp_config_ms(cfg, "a", "b", "250ms");
    if (ms < 0) fuzz_die("a negative duration %lld", (long long)ms);
    int on = tp_config_bool(cfg, "security", "enabled", 1);
    if (on != 0 && on != 1) fuzz_die("a boolean that is %d", on);
    on = tp_config_bool(cfg, "a", "b", 0);
    if (on != 0 && on != 1) fuzz_die("a boolean that is %d", on);
    const char *s = tp_config_str(cfg, "redis", "url", NULL);
    if (s) sink += strlen(s);
    s = tp_config_str(cfg, "", "", "x");
    sink += strlen(s);

    int64_t parsed;
    const char *text = tp_config_str(cfg, "a", "b", NULL);
    if (text && tp_config_parse_ms(text, &parsed) == 0 && parsed < 0)
        fuzz_die("tp_config_parse_ms gave %lld", (long long)parsed);

    err[0] = '\0';
    int rc = tp_config_check(cfg, err, sizeof err);
    if (rc == -1 && err[0] == '\0')
        fuzz_die("tp_config_check failed without a reason");
    if (rc != 0 && rc != -1) fuzz_die("tp_config_check returned %d", rc);
    tp_config_destroy(&cfg);
    if (cfg != NULL) fuzz_die("tp_config_destroy did not clear the pointer");
    return 0;
}
