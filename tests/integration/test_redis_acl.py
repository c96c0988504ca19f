"""Redis (issue 7, "Security"): one ACL user per service with only the
commands and key patterns it needs, the default user locked, passwords from
files and never in logs (deploy/redis-acl.sh; the harness runs every test
this way)."""
import os

from tp_harness import Redis, World, ckey, lead, run, wait_until


def refused(client, *cmd):
    try:
        client(*cmd)
    except RuntimeError as e:
        return str(e)
    return None


def test_each_service_only_its_own():
    w = World(services=["intake", "scoring"])
    try:
        assert w.post(lead("Acl Co", customer="ACL-1"))[0] == 202
        wait_until(lambda: w.redis.hgetall(ckey("ACL-1", "profile")).get("grade"), 10,
                   what="the lead graded by scoring as its own user")

        def login(user):
            with open(os.path.join(w.secrets_dir, user + ".pass")) as f:
                return Redis(w.redis_port, auth=(user, f.read().strip()))

        anonymous = Redis(w.redis_port)
        assert refused(anonymous, "GET", ckey("ACL-1", "profile")).startswith("NOAUTH")
        assert refused(anonymous, "AUTH", "default", "") is not None
        anonymous.close()

        scoring = login("scoring")
        assert scoring("HGET", ckey("ACL-1", "profile"), "grade") in ("A", "B", "C")
        for cmd in (("SET", "tp:{s1}:r:due", "x"),        # the scheduler's
                    ("XADD", "tp:{j}:journal", "*", "t", "x"),  # intake's
                    ("SET", "tp:cursor:scheduler", "0-0"),  # another's cursor
                    ("SET", "other:key", "x"),              # outside the namespace
                    ("FLUSHALL",), ("CONFIG", "GET", "*"), ("KEYS", "*"),
                    ("SHUTDOWN",), ("ACL", "LIST")):
            why = refused(scoring, *cmd)
            assert why and why.startswith("NOPERM"), (cmd, why)
        scoring.close()

        intake = login("intake")
        assert intake("HGET", ckey("ACL-1", "profile"), "grade") in ("A", "B", "C")
        why = refused(intake, "HSET", ckey("ACL-1", "profile"), "grade", "A")
        assert why and why.startswith("NOPERM"), why
        intake.close()

        # passwords come from files and go nowhere else
        for user in ("intake", "scoring"):
            with open(os.path.join(w.secrets_dir, user + ".pass")) as f:
                secret = f.read().strip()
            assert len(secret) >= 24
            assert secret not in open(w.config_path).read()
            for log in ("intake", "scoring"):
                assert secret not in w.log(log), (user, log)
            mode = os.stat(os.path.join(w.secrets_dir, user + ".pass")).st_mode & 0o777
            assert mode == 0o600, oct(mode)
    finally:
        w.close()


if __name__ == "__main__":
    run([test_each_service_only_its_own])
