/* test_ticketing_roster.c: departments, agents, leads and managers from
 * configuration, and the choice of an agent (R-TICKET-1), and who each
 * escalation step goes to (R-TICKET-4): services/ticketing/
 * ticketing_roster.h and tp_escalate_recipient. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ticketing_escalate.h"
#include "ticketing_roster.h"

/* A roster from an INI text; NULL with `err` when refused. */
static tp_roster_t *roster_of(const char *ini, char *err, size_t errlen) {
    char path[] = "/tmp/tp-roster-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, ini, strlen(ini)), (ssize_t)strlen(ini));
    close(fd);
    char cerr[256];
    tp_config_t *cfg = tp_config_new(path, cerr, sizeof cerr);
    unlink(path);
    if (!cfg) fail_msg("config: %s", cerr);
    tp_roster_t *r = tp_roster_new(cfg, err, errlen);
    tp_config_destroy(&cfg);
    return r;
}

static const char *const INI =
    "[ticketing]\n"
    "departments = sales, engineering ,maintenance\n"
    "agents_engineering = eng-1, eng-2,eng-3\n"
    "agents_sales = s-1\n"
    "lead_engineering = eng-lead\n"
    "manager = boss\n"
    "manager_sales = sales-boss\n"
    "department_fault = engineering\n"
    "default_department = sales\n"
    "default_owner = support-lead\n"
    "assignment = round_robin\n";

static void test_R_TICKET_1_departments_from_configuration(void **state) {
    (void)state;
    char err[256];
    tp_roster_t *r = roster_of(INI, err, sizeof err);
    assert_non_null(r);
    assert_true(tp_roster_has(r, "engineering"));
    assert_true(tp_roster_has(r, "maintenance"));
    assert_false(tp_roster_has(r, "legal"));
    assert_false(tp_roster_has(r, NULL));
    assert_string_equal(tp_roster_department_for(r, "fault"), "engineering");
    assert_string_equal(tp_roster_department_for(r, "question"), "sales");
    assert_string_equal(tp_roster_department_for(r, "change"), "engineering"); /* usual */
    assert_string_equal(tp_roster_department_for(r, NULL), "sales");
    size_t n;
    const char *const *a = tp_roster_agents(r, "engineering", &n);
    assert_int_equal(n, 3);
    assert_string_equal(a[0], "eng-1");
    assert_string_equal(a[2], "eng-3");
    assert_null(tp_roster_agents(r, "legal", &n));
    assert_int_equal(n, 0);
    tp_roster_agents(r, "maintenance", &n);
    assert_int_equal(n, 0);
    assert_string_equal(tp_roster_lead(r, "engineering"), "eng-lead");
    assert_string_equal(tp_roster_lead(r, "sales"), "support-lead"); /* default */
    assert_string_equal(tp_roster_manager(r, "engineering"), "boss");
    assert_string_equal(tp_roster_manager(r, "sales"), "sales-boss");
    tp_roster_destroy(&r);
    assert_null(r);
    tp_roster_destroy(&r); /* twice is safe */
}

static void test_R_TICKET_1_round_robin_skips_the_agents_away(void **state) {
    (void)state;
    char err[256];
    tp_roster_t *r = roster_of(INI, err, sizeof err);
    assert_non_null(r);
    int away[3] = {0, 0, 0};
    int64_t open[3] = {9, 9, 9};
    assert_string_equal(tp_roster_pick(r, "engineering", 0, away, open), "eng-1");
    assert_string_equal(tp_roster_pick(r, "engineering", 1, away, open), "eng-2");
    assert_string_equal(tp_roster_pick(r, "engineering", 5, away, open), "eng-3");
    away[1] = 1;
    assert_string_equal(tp_roster_pick(r, "engineering", 1, away, open), "eng-3");
    away[0] = away[2] = 1;
    assert_null(tp_roster_pick(r, "engineering", 1, away, open)); /* nobody */
    assert_null(tp_roster_pick(r, "maintenance", 0, away, open));  /* no agents */
    assert_null(tp_roster_pick(r, "legal", 0, away, open));
    tp_roster_destroy(&r);
}

static void test_R_TICKET_1_least_open_among_the_available(void **state) {
    (void)state;
    char err[256], ini[1024];
    snprintf(ini, sizeof ini, "%s", INI);
    memcpy(strstr(ini, "round_robin"), "least_open\n", 12);
    tp_roster_t *r = roster_of(ini, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(tp_roster_strategy(r), TP_ROSTER_LEAST_OPEN);
    int away[3] = {0, 0, 0};
    int64_t open[3] = {4, 2, 3};
    assert_string_equal(tp_roster_pick(r, "engineering", 0, away, open), "eng-2");
    open[2] = 2; /* a tie: the first listed */
    assert_string_equal(tp_roster_pick(r, "engineering", 7, away, open), "eng-2");
    away[1] = 1;
    assert_string_equal(tp_roster_pick(r, "engineering", 0, away, open), "eng-3");
    tp_roster_destroy(&r);
}

static void test_bad_configuration_names_the_key(void **state) {
    (void)state;
    char err[256];
    assert_null(roster_of("[ticketing]\nassignment = random\n", err, sizeof err));
    assert_non_null(strstr(err, "ticketing.assignment"));
    assert_null(roster_of("[ticketing]\ndepartments = a,b\ndefault_department = c\n", err,
                          sizeof err));
    assert_non_null(strstr(err, "ticketing.default_department"));
    assert_null(roster_of("[ticketing]\ndepartments = a,b\ndepartment_complaint = c\n", err,
                          sizeof err));
    assert_non_null(strstr(err, "ticketing.department_complaint"));
    assert_null(roster_of("[ticketing]\ndepartments = ,\n", err, sizeof err));
    assert_non_null(strstr(err, "ticketing.departments"));
    /* the defaults hold together */
    tp_roster_t *r = roster_of("[ticketing]\n", err, sizeof err);
    assert_non_null(r);
    assert_true(tp_roster_has(r, "sales") && tp_roster_has(r, "engineering") &&
                tp_roster_has(r, "maintenance"));
    assert_string_equal(tp_roster_department_for(r, "fault"), "engineering");
    assert_string_equal(tp_roster_department_for(r, "complaint"), "sales");
    tp_roster_destroy(&r);
    /* departments of other names: everything to the first */
    r = roster_of("[ticketing]\ndepartments = support, field\n", err, sizeof err);
    assert_non_null(r);
    assert_string_equal(tp_roster_department_for(r, "fault"), "support");
    tp_roster_destroy(&r);
}

static void test_R_TICKET_4_each_step_has_its_recipient(void **state) {
    (void)state;
    char err[256];
    tp_roster_t *r = roster_of(INI, err, sizeof err);
    assert_non_null(r);
    assert_string_equal(tp_escalate_recipient(r, "warning", "engineering", "eng-2"), "eng-2");
    /* nobody owns it yet: the warning goes to the lead */
    assert_string_equal(tp_escalate_recipient(r, "warning", "engineering", ""), "eng-lead");
    assert_string_equal(tp_escalate_recipient(r, "lead", "engineering", "eng-2"), "eng-lead");
    assert_string_equal(tp_escalate_recipient(r, "manager", "engineering", "eng-2"), "boss");
    assert_string_equal(tp_escalate_recipient(r, "manager", "sales", ""), "sales-boss");
    /* a department no longer configured: the default owner */
    assert_string_equal(tp_escalate_recipient(r, "lead", "legal", ""), "support-lead");
    tp_roster_destroy(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_R_TICKET_1_departments_from_configuration),
        cmocka_unit_test(test_R_TICKET_1_round_robin_skips_the_agents_away),
        cmocka_unit_test(test_R_TICKET_1_least_open_among_the_available),
        cmocka_unit_test(test_bad_configuration_names_the_key),
        cmocka_unit_test(test_R_TICKET_4_each_step_has_its_recipient),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
