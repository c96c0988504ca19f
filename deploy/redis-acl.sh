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
#   scoring    the customer record ({s<n>}:c:<cust>:*) and its shard's
#              indexes (pipelines, at_risk, health:watch); the contact
#              indexes
#   scheduler  reminders, their indexes and its done marks ({s<n>}:r:*,
#              {s<n>}:done:scheduler:*)
#   notifier   inboxes and digests ({s<n>}:u:<user>:*), each shard's
#              deliveries, dead-letter set and digest:due, and the
#              customer-facing cap counters ({s<n>}:c:<cust>:contact_cap:*,
#              R-CAD-3)
#   ticketing  tickets (under their customer's keys), each shard's ticket
#              indexes and SLA, escalation and auto-close queues, and ticket
#              ids in {j}:ticket (for tickets it opens from calls and emails)
#   tpctl      the operator's command line (tools/tpctl.c): reads the
#              heartbeats, cursors and journal, prunes stale heartbeats,
#              trims the journal (XTRIM), lists and replays dead letters;
#              nothing else, not even reads of customer data (it asks
#              intake's HTTP API for those)
# Every service also owns its cursor, reconcile lease, outbox (one per
# shard, and the old unsharded one for one release), counters and its
# heartbeat field set (heartbeat:<svc>), and reads everything under the
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
    echo "~${ns}cursor:$1 ~${ns}lease:$1:* ~${ns}outbox:$1 ~${ns}{s*}:outbox:$1 ~${ns}stats:$1 ~${ns}heartbeat:$1"
}

# The default user is locked rather than off: a random password that is
# written nowhere. (Redis 7.0 replays the AOF's transactions as the default
# user; switched off, it would refuse them on the next start and the data
# would not come back.)
echo "user default on #$(head -c 32 /dev/urandom | sha256sum | cut -c1-64) ~* &* +@all"
echo "user admin on >$(pass admin) ~* &* +@all"
echo "user intake on >$(pass intake) %R~${ns}* ~${ns}{j}:* ~${ns}replay:* ~${ns}heartbeat:intake $cmds"
echo "user scoring on >$(pass scoring) %R~${ns}* $(own scoring) ~${ns}{s*}:c:* ~${ns}{s*}:pipeline:* ~${ns}{s*}:at_risk ~${ns}{s*}:health:watch ~${ns}{j}:phone ~${ns}{j}:email $cmds"
echo "user scheduler on >$(pass scheduler) %R~${ns}* $(own scheduler) ~${ns}{s*}:r:* ~${ns}{s*}:done:scheduler:* $cmds"
echo "user notifier on >$(pass notifier) %R~${ns}* $(own notifier) ~${ns}{s*}:u:* ~${ns}{s*}:done:notifier:* ~${ns}{s*}:delivery:* ~${ns}{s*}:deliveries:* ~${ns}{s*}:deadletter ~${ns}{s*}:digest:* ~${ns}{s*}:c:*:contact_cap:* ~${ns}notifier:* $cmds"
echo "user ticketing on >$(pass ticketing) %R~${ns}* $(own ticketing) ~${ns}{s*}:c:* ~${ns}{s*}:sla:* ~${ns}{s*}:tickets:* ~${ns}{s*}:ticket:* ~${ns}ticketing:* ~${ns}{j}:ticket $cmds"
# tpctl: only the commands its commands send (and those its scripts call)
tpctl_cmds="-@all +@connection +hgetall +hget +hdel +get +xlen +xrange +xtrim +zrange +zscore +zadd +zrem +hmget +hset +eval"
echo "user tpctl on >$(pass tpctl) %R~${ns}cursor:* ~${ns}heartbeat:* ~${ns}{j}:journal ~${ns}{s*}:deadletter ~${ns}{s*}:deliveries:due ~${ns}{s*}:delivery:* $tpctl_cmds"
