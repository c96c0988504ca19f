/* notifier_fixture.h: temporary files and folders for the notifier's unit
 * tests, header-only. Owns nothing beyond the paths it hands out; each test
 * removes what it made. */
#ifndef TP_TEST_NOTIFIER_FIXTURE_H
#define TP_TEST_NOTIFIER_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes `text` to `dir`/`name` (dir NULL: a temporary file whose name
 * lands in `path`; when `path` already names one of ours, that one is
 * replaced, so a test rewriting it leaves one file to unlink). `path` must
 * start as "" or a previous result. */
static inline void fx_write(char *path, size_t len, const char *dir,
                            const char *name, const char *text) {
    if (dir) {
        snprintf(path, len, "%s/%s", dir, name);
    } else {
        if (strstr(path, "/tmp/tp-test-notifier-") == path) unlink(path);
        snprintf(path, len, "/tmp/tp-test-notifier-XXXXXX");
        int fd = mkstemp(path);
        if (fd >= 0) close(fd);
    }
    FILE *f = fopen(path, "w");
    if (!f) abort();
    fputs(text, f);
    fclose(f);
}

/* Removes every file in `dir` (flat), then `dir`. */
static inline void fx_rmdir(const char *dir) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) abort();
}

#endif
