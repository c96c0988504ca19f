#!/usr/bin/env bash
# deploy/redis-acl.sh: the Redis ACL file for Touchpoint, one user per
# service with only the commands and keys it needs, the default user locked.
#
#   deploy/redis-acl.sh NAMESPACE SECRETS_DIR > users.acl
#
# Passwords: SECRETS_DIR/<user>.pass (mode 0600), made once (random, 32
# characters) and kept; services read theirs with [redis] acl = on and
# secrets_dir (common/src/service.c), never from the configuration itself
# and never into a log. Users:
#   admin      operators and tests: everything
#   intake     writes the journal and its indexes ({j}) and the signed
#              requests it has seen (replay:<mac>); reads everything
#              (the queries)
#   scoring    the customer record and its indexes; the contact indexes
#   scheduler  reminders, their indexes and its done marks ({s<n>}:r:*,
#              {s<n>}:done:scheduler:*)
#   notifier   inboxes and digests ({u:<user>}), deliveries, the dead-letter
#              set, digest:due, and the customer-facing cap counters
#              ({c:<cust>}:contact_cap:*, R-CAD-3)
#   ticketing  tickets (under their customer's tag), their indexes and
#              queues, the SLA and escalation indexes, and ticket ids in
#              {j}:ticket (for tickets it opens from calls and emails)
#   tpctl      the operator's command line (tools/tpctl.c): reads the
#              heartbeats, cursors and journal, prunes stale heartbeats,
#              trims the journal (XTRIM), lists and replays dead letters;
#              nothing else, not even reads of customer data (it asks
#              intake's HTTP API for those)
# Every service also owns its cursor, reconcile lease, outbox, counters and
# its heartbeat field set (heartbeat:<svc>), and reads everything under the
# namespace (the journal, the record). No
# service may run administrative or dangerous commands (CONFIG, FLUSHALL,
# KEYS, DEBUG, ...): commands are reads, writes, scripts and the
# connection's own, and CLUSTER SLOTS: the store reads the slot map with
# it when [redis] cluster = on (ASKING and WAIT are @connection already).
set -euo pipefail
ns=${1:?usage: redis-acl.sh NAMESPACE SECRETS_DIR}
dir=${2:?usage: redis-acl.sh NAMESPACE SECRETS_DIR}
mkdir -p "$dir"
chmod 700 "$dir"

pass() {
    local f=$dir/$1.pass
    if [ ! -s "$f" ]; then
        (umask 077; head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32 >"$f")
    fi
    cat "$f"
}

cmds="-@all +@read +@write +@scripting +@connection +@transaction -@dangerous -@admin +cluster|slots"
own() { # the keys every consuming service owns
    echo "~${ns}cursor:$1 ~${ns}lease:$1:* ~${ns}outbox:$1 ~${ns}stats:$1 ~${ns}heartbeat:$1"
}

# The default user is locked rather than off: a random password that is
# written nowhere. (Redis 7.0 replays the AOF's transactions as the default
# user; switched off, it would refuse them on the next start and the data
# would not come back.)
echo "user default on #$(head -c 32 /dev/urandom | sha256sum | cut -c1-64) ~* &* +@all"
echo "user admin on >$(pass admin) ~* &* +@all"
echo "user intake on >$(pass intake) %R~${ns}* ~${ns}{j}:* ~${ns}replay:* ~${ns}heartbeat:intake $cmds"
echo "user scoring on >$(pass scoring) %R~${ns}* $(own scoring) ~${ns}{c:*}:* ~${ns}pipeline:* ~${ns}at_risk ~${ns}health:watch ~${ns}{j}:phone ~${ns}{j}:email $cmds"
echo "user scheduler on >$(pass scheduler) %R~${ns}* $(own scheduler) ~${ns}{s*}:r:* ~${ns}{s*}:done:scheduler:* $cmds"
echo "user notifier on >$(pass notifier) %R~${ns}* $(own notifier) ~${ns}{u:*}:* ~${ns}delivery:* ~${ns}deliveries:* ~${ns}notifier:* ~${ns}deadletter ~${ns}digest:* ~${ns}{c:*}:contact_cap:* $cmds"
echo "user ticketing on >$(pass ticketing) %R~${ns}* $(own ticketing) ~${ns}{c:*}:* ~${ns}sla:* ~${ns}tickets:* ~${ns}ticket:* ~${ns}ticketing:* ~${ns}{j}:ticket $cmds"
# tpctl: only the commands its commands send (and those its scripts call)
tpctl_cmds="-@all +@connection +hgetall +hget +hdel +get +xlen +xrange +xtrim +zrange +zscore +zadd +zrem +hmget +hset +eval"
echo "user tpctl on >$(pass tpctl) %R~${ns}cursor:* ~${ns}heartbeat:* ~${ns}{j}:journal ~${ns}deadletter ~${ns}deliveries:due ~${ns}delivery:* $tpctl_cmds"
