/* horizon.c: the journal's trim floor (tp/horizon.h). Pure computation
 * over cursor values; never talks to Redis itself. */
#include "tp/horizon.h"

#include <stdio.h>

#include "tp/proto.h"

int tp_horizon_keys(tp_argv_t *a, const char *ns) {
    tp_argv_addf(a, "%s{j}:journal", ns);
    for (int i = 0; i < tp_horizon_count(); i++)
        tp_argv_addf(a, "%scursor:%s", ns, tp_horizon_service(i));
    return 1 + tp_horizon_count();
}

int tp_horizon_count(void) { return TP_SERVICE_COUNT - 1; }

const char *tp_horizon_service(int i) {
    /* every service but intake, which writes the journal and reads none */
    int s = i < (int)TP_SERVICE_INTAKE ? i : i + 1;
    return tp_proto_service_name((tp_service_t)s);
}

static int id_parse(const char *s, unsigned long long *ms, unsigned long long *seq) {
    int used = 0;
    *seq = 0;
    if (sscanf(s, "%llu%n", ms, &used) != 1) return -1;
    if (s[used] == '\0') return 0;
    int more = 0;
    if (s[used] != '-' || sscanf(s + used + 1, "%llu%n", seq, &more) != 1 ||
        s[used + 1 + more] != '\0')
        return -1;
    return 0;
}

int tp_horizon_older(const char *a, const char *b) {
    unsigned long long am = 0, as = 0, bm = 0, bs = 0;
    id_parse(a, &am, &as);
    id_parse(b, &bm, &bs);
    return am != bm ? am < bm : as < bs;
}

int tp_horizon_floor(const char *const *cursors, size_t n, int64_t now_ms,
                     int64_t retention_ms, char *out, size_t outlen) {
    int64_t horizon = now_ms - retention_ms;
    char floor[48];
    snprintf(floor, sizeof floor, "%lld-0", (long long)(horizon > 0 ? horizon : 0));
    for (size_t i = 0; i < n; i++) {
        unsigned long long ms, seq;
        if (!cursors[i] || cursors[i][0] < '0' || cursors[i][0] > '9' ||
            id_parse(cursors[i], &ms, &seq) < 0)
            return -1; /* no cursor yet: that service holds everything */
        char next[48]; /* the cursor itself is applied */
        snprintf(next, sizeof next, "%llu-%llu", ms, seq + 1);
        if (tp_horizon_older(next, floor)) snprintf(floor, sizeof floor, "%s", next);
    }
    if ((size_t)snprintf(out, outlen, "%s", floor) >= outlen) return -1;
    return 0;
}
