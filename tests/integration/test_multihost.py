"""Several hosts: Redis, intake and the four consuming services on hosts
of their own (network namespaces joined by veth links to a switch, on
addresses of the test's own), configured by address as a deployment over
several machines is, and the spine's end-to-end scenarios
(tests/integration/test_spine.py) pass across them.

Needs root (ip netns); skips with a message otherwise. The namespaces,
links and bridge carry a random suffix and are removed whatever happens.
"""
import atexit
import os
import random
import subprocess
import sys

import tp_harness
from tp_harness import SERVICES, run

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_spine  # noqa: E402  (the scenarios, run as they are)

HOSTS_PLAN = ["redis", "intake", "services"]  # the consuming services share one host


def ip(*args, check=True):
    return subprocess.run(["ip"] + list(args), capture_output=True, text=True, check=check)


class Network:
    """A switch (a bridge in a namespace of its own, so that the test host's
    firewall, e.g. Docker's FORWARD DROP with br_netfilter, never sees the
    traffic between hosts) and one namespace per host, each with a veth link
    to the switch and an address in a 10.x.y.0/24 of its own; the test's own
    namespace is linked too (.254: where its receiver listens and from where
    it talks to Redis and intake)."""

    def __init__(self):
        self.tag = "%06x" % random.randrange(1 << 24)
        self.net = "10.%d.%d" % (random.randrange(100, 250), random.randrange(1, 250))
        self.lan = "tp%s-lan" % self.tag
        self.netns = {}
        self.links = []
        atexit.register(self.close)
        try:
            ip("netns", "add", self.lan)
            ip("-n", self.lan, "link", "add", "switch", "type", "bridge")
            ip("-n", self.lan, "link", "set", "switch", "up")
            # the test's own link: its end stays here
            self.plug(None, 0, self.net + ".254")
            for n, host in enumerate(HOSTS_PLAN, 1):
                ns = "tp%s-%s" % (self.tag, host)
                ip("netns", "add", ns)
                self.netns[host] = (ns, "%s.%d" % (self.net, n))
                self.plug(ns, n, self.netns[host][1])
        except Exception:
            self.close()
            raise

    def plug(self, ns, n, address):
        """A veth from namespace `ns` (None: the test's) to the switch."""
        near, far = "tv%s%d" % (self.tag, n), "tw%s%d" % (self.tag, n)
        ip("link", "add", near, "type", "veth", "peer", "name", far)
        self.links.append(near)
        ip("link", "set", far, "netns", self.lan)
        ip("-n", self.lan, "link", "set", far, "master", "switch")
        ip("-n", self.lan, "link", "set", far, "up")
        if ns:
            ip("link", "set", near, "netns", ns)
            ip("-n", ns, "link", "set", "lo", "up")
        where = ["-n", ns] if ns else []
        ip(*(where + ["addr", "add", address + "/24", "dev", near]))
        ip(*(where + ["link", "set", near, "up"]))

    def hosts(self):
        """World(hosts=...) for this network."""
        out = {"redis": self.netns["redis"], "intake": self.netns["intake"],
               "test": (None, self.net + ".254")}
        for s in SERVICES[1:]:
            out[s] = self.netns["services"]
        return out

    def close(self):
        for ns in [ns for ns, _ in self.netns.values()] + ([self.lan] if self.lan else []):
            # a process left in a namespace (a failed test) goes with it
            pids = ip("netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except OSError:
                    pass
            ip("netns", "delete", ns, check=False)
        for link in self.links:  # gone with their namespaces, but the test's own
            ip("link", "delete", link, check=False)
        self.netns, self.links, self.lan = {}, [], None


NET = None


def on_hosts(*args, **kw):
    """test_spine's World, placed on the test network's hosts."""
    return tp_harness.World(*args, hosts=NET.hosts(), **kw)


def net_ns(pid):
    return os.readlink("/proc/%d/ns/net" % pid)


def test_processes_talk_across_hosts():
    """Each process runs in its own host's namespace, and Redis sees the
    services connect from their hosts' addresses, not from loopback."""
    w = on_hosts()
    try:
        hosts = NET.hosts()
        mine = net_ns(os.getpid())
        seen = {}
        for name, proc in list(w.procs.items()) + [("redis", w.redis_proc)]:
            space = net_ns(proc.pid)
            assert space != mine, "%s runs on the test's host" % name
            seen.setdefault(hosts[name][0], set()).add(space)
        assert all(len(s) == 1 for s in seen.values()), seen
        assert len({next(iter(s)) for s in seen.values()}) == 3, seen  # three hosts
        clients = w.redis("CLIENT", "LIST")
        addrs = {part.split("=", 1)[1].rsplit(":", 1)[0]
                 for line in clients.splitlines() for part in line.split()
                 if part.startswith("addr=")}
        assert hosts["intake"][1] in addrs and hosts["scoring"][1] in addrs, addrs
        assert not any(a.startswith("127.") for a in addrs), addrs
        # and Redis is not on the test's loopback at all
        try:
            tp_harness.Redis(w.redis_port).close()
            raise AssertionError("redis reachable on the test's 127.0.0.1")
        except OSError:
            pass
    finally:
        assert w.close()


SCENARIOS = [test_spine.test_grade_a_lead_gets_one_first_touch_reminder,
             test_spine.test_contact_before_deadline_closes_first_touch,
             test_spine.test_interested_contacts_regrade_c_to_a,
             test_spine.test_regrade_replans_first_touch,
             test_spine.test_call_resolves_customer_by_number]


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("SKIP: test_multihost needs root for ip netns (CI runs as root); "
              "run it as root to check the services across hosts")
        print("0 passed, 0 failed")
        sys.exit(0)
    NET = Network()
    test_spine.World = on_hosts
    try:
        run([test_processes_talk_across_hosts] + SCENARIOS)
    finally:
        NET.close()
