"""tp_harness: a throwaway world for integration tests.

Starts a real redis-server (AOF on) on a free port in a temporary folder,
the real service binaries with a test configuration of short durations and
ports of their own (so tests run in parallel), and a real HTTP receiver for
webhooks. Talks to Redis over RESP and to intake over HTTP. Standard library
only, so a fresh machine needs nothing but python3.
"""
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

BUILD = os.environ.get("TP_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
SOURCE_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
SOURCE = os.environ.get("TP_SOURCE_DIR", SOURCE_DIR)
SERVICES = ["intake", "scoring", "scheduler", "notifier", "ticketing"]
API_KEY = "test-key"


def free_port():
    """A port nobody listens on, from below the kernel's ephemeral range:
    a port the kernel hands out (bind to 0) may be taken again at once as
    the local port of some outgoing connection of a test running beside."""
    import random
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError):
        pass
    for _ in range(200):
        port = random.randrange(10000, max(low, 10001))
        if port in HANDED_OUT:  # given to this test already, maybe not bound yet
            continue
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                HANDED_OUT.add(port)
                return port
            except OSError:
                continue
    raise RuntimeError("no free port below %d" % low)


# Ports free_port() (and a cluster node's bus port) gave out in this
# process: a port chosen for a process started later is not given twice.
HANDED_OUT = set()


def wait_until(cond, timeout=20.0, interval=0.05, what="condition"):
    """Polls cond() until it is truthy; fails the test after `timeout`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))


# ---- the key layout (common/include/tp/keys.h) ----

TP_SHARDS = 16


def shard(ident):
    """tp_key_shard: FNV-1a (64 bits) of the id, modulo TP_SHARDS."""
    h = 1469598103934665603
    for b in ident.encode():
        h ^= b
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h % TP_SHARDS


def ckey(customer, rest, ns="tp:"):
    """One of a customer's keys: ckey("ACME", "profile")."""
    return "%s{s%d}:c:%s:%s" % (ns, shard(customer), customer, rest)


def ukey(user, rest, ns="tp:"):
    """One of a user's keys: ukey("rep-1", "inbox")."""
    return "%s{s%d}:u:%s:%s" % (ns, shard(user), user, rest)


def skey(owner, rest, ns="tp:"):
    """The index `rest` of a shard: of the shard number `owner`, or of the
    shard of the customer or user id `owner` (skey("ACME", "at_risk"))."""
    n = owner if isinstance(owner, int) else shard(owner)
    return "%s{s%d}:%s" % (ns, n, rest)


def dkey(delivery, customer=None, ns="tp:"):
    """The record of delivery "<event>/<channel>/<recipient>": in its
    recipient's shard, or the customer's for the customer's "contact"."""
    recipient = delivery.rsplit("/", 1)[-1]
    owner = customer if recipient == "contact" and customer else recipient
    return skey(owner, "delivery:" + delivery, ns)


def skeys(rest, ns="tp:"):
    """The index `rest` of every shard."""
    return [skey(n, rest, ns) for n in range(TP_SHARDS)]


def cluster_single_wanted():
    """TP_TEST_REDIS_CLUSTER=1: every World's Redis is a one-node cluster."""
    return os.environ.get("TP_TEST_REDIS_CLUSTER", "") not in ("", "0", "6")


def cluster_single_args(folder, bus_port=None):
    """redis-server arguments of a one-node cluster kept in `folder`. Its
    cluster bus gets a free port of its own (by default Redis takes the
    client port + 10000, which may be taken)."""
    return ["--cluster-enabled", "yes",
            "--cluster-config-file", os.path.join(folder, "nodes.conf"),
            "--cluster-port", str(bus_port or free_port())]


def cluster_single_start(port, auth=None, timeout=10.0):
    """Gives the node at `port` every slot and waits for cluster_state:ok."""
    r = Redis(port, auth=auth)
    try:
        def ok():
            try:
                info = r("CLUSTER", "INFO")
            except RuntimeError as e:  # restarted: still loading its data
                if str(e).startswith("LOADING"):
                    return False
                raise
            info = info.decode() if isinstance(info, bytes) else str(info)
            if "cluster_slots_assigned:16384" not in info:  # (a restart keeps them)
                r("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
                return False
            return "cluster_state:ok" in info
        wait_until(ok, timeout, what="cluster_state:ok")
    finally:
        r.close()


class Redis:
    """A minimal RESP client: enough for tests to read what services wrote."""

    def __init__(self, port, auth=None, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buf = b""
        if auth:  # (user, password): an ACL user
            self("AUTH", *auth)

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError("unexpected RESP reply %r" % line)

    def __call__(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._reply()

    def hgetall(self, key):
        flat = self("HGETALL", key) or []
        return dict(zip(flat[0::2], flat[1::2]))


def keyslot(key):
    """The cluster hash slot of a key (CRC16/XMODEM of the key or its hash
    tag, modulo 16384), as the cluster specification defines it."""
    k = key if isinstance(key, bytes) else str(key).encode()
    open_ = k.find(b"{")
    if open_ >= 0:
        close = k.find(b"}", open_ + 1)
        if close > open_ + 1:
            k = k[open_ + 1:close]
    crc = 0
    for byte in k:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc & 16383


class RedisCluster:
    """A real Redis Cluster on loopback: `nodes` redis-servers (AOF on,
    cluster-enabled, their nodes.conf in the folder `dir`) on free ports,
    joined by `redis-cli --cluster create --cluster-replicas 1`, so 6 nodes
    are 3 primaries with a replica each. `acl_path`: every node loads that
    ACL file and replicas authenticate to their primary as `auth` (the admin
    user). `node_timeout` (ms) is how soon a dead primary's replica takes
    over. The processes are this object's children unless `detach`
    (tp_cluster.py start leaves them running for a C test)."""

    def __init__(self, dir, nodes=6, acl_path=None, auth=None, node_timeout=1000,
                 detach=False):
        self.dir = dir
        self.acl_path = acl_path
        self.auth = auth
        self.node_timeout = node_timeout
        self.detach = detach
        self.procs = {}
        self.ports = []
        for _ in range(nodes):
            self.ports.append(self._free_pair())
        try:
            self._create()
        except BaseException:
            self.stop()  # no node outlives a cluster that could not be made
            raise

    def _create(self):
        for port in self.ports:
            self.start_node(port)
        auth = self.auth
        cmd = ["redis-cli", "--cluster", "create"]
        cmd += ["127.0.0.1:%d" % p for p in self.ports]
        cmd += ["--cluster-replicas", "1", "--cluster-yes"]
        if auth:
            cmd += ["--user", auth[0], "--pass", auth[1]]
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=120)
        if out.returncode != 0:
            raise RuntimeError("redis-cli --cluster create failed:\n%s"
                               % out.stdout.decode(errors="replace"))
        self.wait_ok()

    def _free_pair(self):
        """A free port whose cluster bus port (port + 10000) is free too, both
        below the kernel's ephemeral range (see free_port): a bus port taken
        by some outgoing connection would keep a restarted node from
        starting."""
        low = 32768
        try:
            with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
                low = int(f.read().split()[0])
        except (OSError, ValueError):
            pass
        for _ in range(500):
            port = free_port()
            if port in self.ports or port + 10000 >= low or port + 10000 in HANDED_OUT:
                continue
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            HANDED_OUT.add(port + 10000)
            return port
        raise RuntimeError("no free port pair below %d" % low)

    def node_dir(self, port):
        return os.path.join(self.dir, "node-%d" % port)

    def start_node(self, port):
        """Starts (or restarts, with its nodes.conf and AOF) the node on `port`
        and waits until it answers."""
        d = self.node_dir(port)
        os.makedirs(d, exist_ok=True)
        cmd = ["redis-server", os.path.join(SOURCE_DIR, "deploy", "redis.conf"),
               "--port", str(port), "--bind", "127.0.0.1", "--dir", d,
               "--logfile", os.path.join(d, "redis.log"),
               "--cluster-enabled", "yes",
               "--cluster-config-file", os.path.join(d, "nodes.conf"),
               "--cluster-node-timeout", str(self.node_timeout),
               "--appendonly", "yes", "--pidfile", os.path.join(d, "redis.pid")]
        if self.acl_path:
            cmd += ["--aclfile", self.acl_path]
        if self.auth:
            cmd += ["--masteruser", self.auth[0], "--masterauth", self.auth[1]]
        self.procs[port] = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=self.detach)

        proc = self.procs[port]

        def up():
            if proc.poll() is not None:
                with open(os.path.join(d, "redis.log"), errors="replace") as f:
                    raise AssertionError("cluster node on %d exited %s:\n%s"
                                         % (port, proc.returncode, f.read()[-2000:]))
            try:
                Redis(port).close()
                return True
            except OSError:
                return False
        wait_until(up, 20, what="cluster node on %d" % port)

    def client(self, port):
        return Redis(port, auth=self.auth)

    def info(self, port, section):
        c = self.client(port)
        try:
            text = c("INFO", section) if section != "cluster" else c("CLUSTER", "INFO")
        finally:
            c.close()
        return dict(line.split(":", 1) for line in text.split("\r\n") if ":" in line)

    def alive(self):
        return [p for p in self.ports if p in self.procs]

    def wait_ok(self, timeout=60):
        """Every live node says cluster_state:ok, agrees on who the
        primaries are, and every replica's link to its primary is up."""
        def ok():
            try:
                views = set()
                for p in self.alive():
                    if self.info(p, "cluster").get("cluster_state") != "ok":
                        return False
                    views.add(tuple(sorted(self.primaries(p).items())))
                    repl = self.info(p, "replication")
                    if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
                        return False
                return len(views) == 1
            except (OSError, RuntimeError):
                return False
        wait_until(ok, timeout, interval=0.2, what="cluster_state:ok on every node")

    def primaries(self, port=None):
        """{(first slot, last slot): primary port}, as node `port` sees it."""
        c = self.client(port or self.alive()[0])
        try:
            return {(r[0], r[1]): int(r[2][1]) for r in c("CLUSTER", "SLOTS")}
        finally:
            c.close()

    def primary_of(self, key):
        slot = keyslot(key)
        for (lo, hi), port in self.primaries().items():
            if lo <= slot <= hi:
                return port
        raise AssertionError("slot %d has no primary" % slot)

    def replica_of(self, primary):
        """The port of a replica of `primary` (by its INFO replication)."""
        repl = self.info(primary, "replication")
        for k, v in repl.items():
            if k.startswith("slave") and "port=" in v:
                return int(dict(x.split("=") for x in v.split(","))["port"])
        raise AssertionError("primary %d has no replica" % primary)

    def kill(self, port, sig=signal.SIGKILL):
        p = self.procs.pop(port)
        p.send_signal(sig)
        p.wait(10)

    def stop(self):
        for port, p in list(self.procs.items()):
            p.terminate()
        for port, p in list(self.procs.items()):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs.clear()


class ClusterClient:
    """The minimal RESP client for a cluster: each command goes to the
    primary of its key's slot (args[1]; key-less commands to any node),
    following MOVED; the map is re-read on MOVED or a dead node."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.conns = {}
        self.map = {}

    def _conn(self, port):
        if port not in self.conns:
            self.conns[port] = self.cluster.client(port)
        return self.conns[port]

    def _refresh(self):
        for port in self.cluster.alive():
            try:
                self.map = self.cluster.primaries(port)
                return
            except (OSError, RuntimeError):
                continue

    def _port(self, args):
        if len(args) < 2:
            return self.cluster.alive()[0]
        slot = keyslot(args[1])
        if not self.map:
            self._refresh()
        for (lo, hi), port in self.map.items():
            if lo <= slot <= hi:
                return port
        return self.cluster.alive()[0]

    def __call__(self, *args):
        port = self._port(args)
        for _ in range(10):
            try:
                return self._conn(port)(*args)
            except RuntimeError as e:
                if not str(e).startswith("MOVED "):
                    raise
                port = int(str(e).split()[2].rsplit(":", 1)[1])
                self._refresh()
            except OSError:
                self.conns.pop(port, None)
                time.sleep(0.2)
                self._refresh()
                port = self._port(args)
        raise AssertionError("no answer from the cluster for %r" % (args[:2],))

    def hgetall(self, key):
        flat = self("HGETALL", key) or []
        return dict(zip(flat[0::2], flat[1::2]))

    def close(self):
        for c in self.conns.values():
            try:
                c.close()
            except OSError:
                pass
        self.conns.clear()


class Receiver:
    """A real HTTP server recording every webhook POST (path, headers, body).
    Paths under /fail answer 500 while `failing` is set. `host`: the
    address it listens on (another network namespace reaches it there)."""

    def __init__(self, host="127.0.0.1"):
        self.requests = []
        self.failing = False
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                status = 500 if outer.failing else 200
                with outer.lock:
                    outer.requests.append({"path": self.path,
                                           "headers": dict(self.headers.items()),
                                           "body": body, "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 1024  # the default 5 drops bursts of connects
            daemon_threads = True

            def handle_error(self, request, client_address):
                # a sender killed mid-request (chaos tests) is not news
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.server = Server((host, 0), Handler)
        self.port = self.server.server_address[1]
        self.url = "http://%s:%d/hook" % (host, self.port)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def received(self):
        with self.lock:
            return [r for r in self.requests if r["status"] == 200]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """A real SMTP server on loopback: postfix's smtp-sink, writing every
    message it accepts to its own file in `dir`. `args` adds smtp-sink
    options, e.g. ["-f", "RCPT", "-B", "550 5.1.1 no such user"] to refuse
    every recipient for good. stop() and start() again on the same port
    play a mail server that is down for a while."""

    def __init__(self, port=None, args=()):
        self.dir = tempfile.mkdtemp(prefix="tp-mail-")
        self.port = port or free_port()
        self.url = "smtp://127.0.0.1:%d/touchpoint.test" % self.port
        self.proc = None
        self.start(args)

    def start(self, args=()):
        cmd = ["smtp-sink"]
        if os.getuid() == 0:  # it insists on dropping privileges
            import pwd
            cmd += ["-u", pwd.getpwuid(os.getuid()).pw_name]
        cmd += list(args) + ["-d", os.path.join(self.dir, "%M."),
                             "127.0.0.1:%d" % self.port, "256"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5) as c:
                    return c.recv(100).startswith(b"220")
            except OSError:
                return False
        wait_until(up, 10, what="smtp-sink on %d" % self.port)

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def messages(self):
        """Every message received so far, parsed (email.message.Message),
        oldest first."""
        import email
        import email.policy
        out = []
        for name in sorted(os.listdir(self.dir), key=lambda n: os.path.getmtime(
                os.path.join(self.dir, n))):
            with open(os.path.join(self.dir, name), "rb") as f:
                raw = f.read()
            if raw.endswith(b"\n"):  # smtp-sink writes a file once DATA ends
                out.append(email.message_from_bytes(raw, policy=email.policy.default))
        return out


class World:
    """Redis + the five services, configured for a test.

    `config` overrides keys: {"scheduler": {"first_touch_a": "2s"}}. `acl`:
    Redis with one ACL user per service and the default user locked
    (deploy/redis-acl.sh), as deployed; the test's own client is admin.
    `keys`, when given, is the text of intake's keys file (written to the
    world's folder as api-keys.ini); API_KEY stays valid beside it as an
    [intake] api_keys key of every scope. `cluster`: a 6-node Redis Cluster
    (RedisCluster: 3 primaries, 3 replicas, node timeout 1 s) instead of the
    single Redis, the services with [redis] cluster = on and every node as a
    seed; self.redis and client() then route by slot (ClusterClient).

    `hosts` places processes on other hosts (network namespaces):
    {name: (netns, address)} for "redis", "intake", each service, and
    "test" (where the test's own receiver listens, reachable from the
    others). Each process named runs under `ip netns exec NETNS`; Redis
    and intake bind their address, the bus goes over TCP to intake's. The
    namespaces and links are the caller's (tests/integration/test_multihost.py).

    TP_TEST_REDIS_CLUSTER in the environment runs any World on a cluster:
    "6" a real 6-node cluster (as `cluster`), "1" a one-node cluster
    (`cluster_single`: every slot its own node, so it refuses a script
    whose keys span slots, CROSSSLOT, like a real cluster, with no MOVED)."""

    def __init__(self, config=None, services=SERVICES, receiver=True, acl=True, keys=None,
                 hosts=None, cluster=False, cluster_single=None):
        self.dir = tempfile.mkdtemp(prefix="tp-test-")
        self.hosts = dict(hosts or {})
        self.redis_host = self.addr("redis")
        self.http_host = self.addr("intake")
        wanted = os.environ.get("TP_TEST_REDIS_CLUSTER", "")
        if wanted == "6" and not hosts:
            cluster = True
        self.cluster_single = (wanted not in ("", "0", "6")) if cluster_single is None \
            else cluster_single
        if cluster:
            self.cluster_single = False
        self.cluster_bus_port = free_port() if self.cluster_single else None
        if keys is not None:
            self.keys_path = os.path.join(self.dir, "api-keys.ini")
            with open(self.keys_path, "w") as f:
                f.write(keys)
            config = dict(config or {})
            config["intake"] = dict(config.get("intake", {}), keys_file=self.keys_path)
        self.procs = {}
        self.cluster = None
        self.cluster_mode = cluster
        self.receiver = Receiver(self.addr("test")) if receiver else None
        self.redis_port = free_port()
        self.http_port = free_port()
        # the bus on unix sockets in the test's own folder: no ports to race
        # for; over TCP to intake's address when it is on a host of its own
        if "intake" in self.hosts:
            self.bus = {s: "tcp://%s:%d" % (self.http_host, free_port())
                        for s in ["ingress"] + SERVICES[1:]}
        else:
            self.bus = {s: "ipc://%s/%s.sock" % (self.dir, s) for s in ["ingress"] + SERVICES[1:]}
        self.acl_path = self.secrets_dir = self.redis_auth = None
        if acl:
            self.secrets_dir = os.path.join(self.dir, "secrets")
            self.acl_path = os.path.join(self.dir, "users.acl")
            with open(self.acl_path, "w") as f:
                subprocess.run(["bash", os.path.join(SOURCE_DIR, "deploy", "redis-acl.sh"),
                                "tp:", self.secrets_dir], stdout=f, check=True)
            with open(os.path.join(self.secrets_dir, "admin.pass")) as f:
                self.redis_auth = ("admin", f.read().strip())
        self._start_redis()
        self.redis = self.client()
        # business hours around the clock: SLA clocks of short tests do not
        # depend on the hour the suite runs at (the calendar has its own tests)
        self.calendar_path = os.path.join(self.dir, "always.ini")
        with open(self.calendar_path, "w") as f:
            f.write("[calendar]\ntime_zone = UTC\nwork_days = mon,tue,wed,thu,fri,sat,sun\n"
                    "work_hours = 00:00-24:00\n")
        # CURVE on the bus, as deployed: a key pair per service (tpctl keygen curve)
        self.keys_dir = os.path.join(self.dir, "keys")
        subprocess.run([os.path.join(BUILD, "tools", "tpctl"), "keygen", "curve",
                        "--dir", self.keys_dir] + SERVICES + ["producer"],
                       check=True, stdout=subprocess.DEVNULL)
        self.config_path = os.path.join(self.dir, "touchpoint.ini")
        self._config = config or {}
        self._write_config(self._config)
        for s in services:
            self.start(s)
        if "intake" in services:
            wait_until(self._healthy, what="intake /healthz with redis up")

    # ---- processes ----

    def addr(self, name):
        """The address process `name` is reached at: its host's, or loopback."""
        return self.hosts[name][1] if name in self.hosts else "127.0.0.1"

    def wrap(self, name):
        """The command prefix that runs process `name` on its host: `ip netns
        exec NETNS` (which execs, so the pid is the process's own)."""
        return ["ip", "netns", "exec", self.hosts[name][0]] if name in self.hosts else []

    def client(self, cls=Redis):
        """A new connection to the test's Redis, as admin when ACLs are on
        (with a cluster: a ClusterClient, whatever `cls`)."""
        if self.cluster:
            return ClusterClient(self.cluster)
        return cls(self.redis_port, auth=self.redis_auth, host=self.redis_host)

    def _start_redis(self):
        if self.cluster_mode:
            self.cluster = RedisCluster(os.path.join(self.dir, "cluster"),
                                        acl_path=self.acl_path, auth=self.redis_auth)
            self.redis_port = self.cluster.ports[0]
            return
        acl = ["--aclfile", self.acl_path] if self.acl_path else []
        self.redis_proc = subprocess.Popen(
            self.wrap("redis") +
            ["redis-server", os.path.join(SOURCE_DIR, "deploy", "redis.conf"),
             "--port", str(self.redis_port), "--bind", self.redis_host,
             "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log")] + acl
            + (cluster_single_args(self.dir, self.cluster_bus_port) if self.cluster_single
               else []),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            try:
                Redis(self.redis_port, host=self.redis_host).close()
                return True
            except OSError:
                return False
        wait_until(up, 10, what="redis-server")
        if self.cluster_single:
            cluster_single_start(self.redis_port, self.redis_auth)

    def _write_config(self, overrides):
        cfg = {
            "log": {"level": "info"},
            "redis": dict({"host": self.redis_host, "port": self.redis_port,
                           "namespace": "tp:"},
                          **({"acl": "on", "secrets_dir": self.secrets_dir}
                             if self.secrets_dir else {}),
                          **({"cluster": "on",
                              "nodes": ",".join("127.0.0.1:%d" % p for p in self.cluster.ports)}
                             if self.cluster else {})),
            "bus": dict({"ingress_endpoint": self.bus["ingress"],
                         "curve": "on", "keys_dir": self.keys_dir,
                         "producers": "producer"},
                        **{"%s_endpoint" % s: self.bus[s] for s in SERVICES[1:]}),
            "intake": {"listen": self.http_host, "port": self.http_port,
                       "api_keys": API_KEY},
            "scoring": {"reconcile_lag": "1s", "reconcile_interval": "300ms"},
            # reminders fire when due whatever the hour the suite runs at;
            # the calendar and quiet hours have tests of their own
            "scheduler": {"reconcile_lag": "1s", "reconcile_interval": "300ms",
                          "poll_interval": "200ms", "lookahead": "1s",
                          "working_hours_only": "false", "quiet_hours": ""},
            "notifier": {"reconcile_lag": "1s", "reconcile_interval": "300ms",
                         "webhook_url": self.receiver.url if self.receiver else "",
                         "backoff": "200ms", "backoff_max": "1s",
                         "retry_poll": "100ms", "claim": "5s",
                         "webhook_timeout": "3s",
                         "templates": os.path.join(SOURCE, "deploy", "templates"),
                         "default_lang": "en"},
            "ticketing": {"reconcile_lag": "1s", "reconcile_interval": "300ms",
                          "sla_check": "100ms", "calendar": self.calendar_path},
        }
        # each process's /metrics on a port of its own choosing (tests run
        # in parallel); metrics_port() reads it from the log
        for s in SERVICES:
            cfg.setdefault(s, {})["metrics_listen"] = "127.0.0.1:0"
        for section, keys in overrides.items():
            cfg.setdefault(section, {}).update(keys)
        with open(self.config_path, "w") as f:
            for section, keys in cfg.items():
                f.write("[%s]\n" % section)
                for k, v in keys.items():
                    f.write("%s = %s\n" % (k, v))

    def start(self, service, instance=None, env=None, wrap=None):
        """Starts a service; `env` adds variables (TP_<SECTION>_<KEY>
        overrides, e.g. a second intake's port). `wrap` is a command prefix
        (default: its host's, see wrap()); the process it starts must exec
        the service, so that signals reach it. Intake on the test's own
        HTTP port that finds it taken (a test beside took it between
        free_port() and the bind) starts again on another."""
        for attempt in range(3):
            try:
                return self._start(service, instance, env, wrap)
            except AssertionError as e:
                if (service != "intake" or instance or env or attempt == 2 or
                        "address already in use" not in str(e)):
                    raise
                self.http_port = free_port()
                self._write_config(self._config)

    def _start(self, service, instance, env, wrap):
        name = instance or service
        binary = os.path.join(BUILD, "services", service, "tp-" + service)
        env = dict(os.environ, TP_CONFIG=self.config_path, **(env or {}))
        env["TP_%s_INSTANCE" % service.upper()] = name
        path = os.path.join(self.dir, name + ".log")
        before = os.path.getsize(path) if os.path.exists(path) else 0
        log = open(path, "ab")
        admitted = self._admitted(service)
        prefix = self.wrap(service) if wrap is None else list(wrap)
        proc = subprocess.Popen(prefix + [binary], env=env, stdout=log, stderr=log)
        self.procs[name] = proc
        ready = " listening on http://" if service == "intake" else " consuming "

        def started():
            if proc.poll() is not None:
                raise AssertionError("%s exited %s at start:\n%s"
                                     % (name, proc.returncode, self.log(name)[-2000:]))
            with open(path, errors="replace") as f:
                f.seek(before)
                return ready in f.read()
        wait_until(started, 20, what="%s ready" % name)
        if admitted is not None:
            # both of its sockets through intake's CURVE handshake: an event
            # posted now goes over the bus, not to the reconcile walk
            wait_until(lambda: self._admitted(service) >= admitted + 2, 20,
                       what="%s admitted by intake" % name)
        return proc

    def _admitted(self, service):
        """How often intake's log says it admitted `service` on the bus;
        None when that cannot be waited for (intake, no CURVE, no intake)."""
        path = os.path.join(self.dir, "intake.log")
        if service == "intake" or "intake" not in self.procs or not os.path.exists(path):
            return None
        with open(self.config_path) as f:
            if "curve = off" in f.read():
                return None
        with open(path, errors="replace") as f:
            return f.read().count("bus: admitted %s " % service)

    def metrics_port(self, name):
        """The port of `name`'s /metrics, /healthz and /readyz, from the
        last "metrics: listening on HOST:PORT" of its log."""
        import re
        found = re.findall(r"metrics: listening on [0-9.]+:(\d+)", self.log(name))
        if not found:
            raise AssertionError("%s logged no metrics port" % name)
        return int(found[-1])

    def probe(self, name, path):
        """GET `path` on `name`'s metrics port: (status, body text)."""
        url = "http://127.0.0.1:%d%s" % (self.metrics_port(name), path)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def kill(self, name, sig=signal.SIGKILL):
        p = self.procs.pop(name)
        p.send_signal(sig)
        p.wait(10)

    def log(self, name):
        with open(os.path.join(self.dir, name + ".log"), errors="replace") as f:
            return f.read()

    def close(self):
        failed = False
        for name, p in list(self.procs.items()):
            p.send_signal(signal.SIGTERM)
        for name, p in list(self.procs.items()):
            try:
                rc = p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = "hung on SIGTERM"
            if rc != 0:
                failed = True
                sys.stderr.write("%s exited %s; its log:\n%s\n" % (name, rc, self.log(name)[-4000:]))
        self.redis.close()
        if self.cluster:
            self.cluster.stop()
        else:
            self.redis_proc.terminate()
            self.redis_proc.wait(10)
        if self.receiver:
            self.receiver.close()
        if failed or os.environ.get("TP_KEEP_LOGS") == "1":
            sys.stderr.write("(logs kept in %s)\n" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return not failed

    # ---- HTTP ----

    def request(self, method, path, body=None, key=API_KEY, raw=None, headers=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request("http://%s:%d%s" % (self.http_host, self.http_port, path),
                                     data=data, method=method)
        if key is not None:
            req.add_header("Authorization", "Bearer " + key)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                payload = r.read()
                return r.status, json.loads(payload) if payload else None
        except urllib.error.HTTPError as e:
            payload = e.read()
            try:
                return e.code, json.loads(payload) if payload else None
            except ValueError:
                return e.code, payload

    def post(self, events, **kw):
        body = {"events": events} if isinstance(events, list) else events
        return self.request("POST", "/v1/events", body, **kw)

    def customer(self, cid):
        return self.request("GET", "/v1/customers/" + cid)

    def _healthy(self):
        try:
            status, body = self.request("GET", "/healthz", key=None)
            return status == 200 and body.get("redis") == "up"
        except OSError:
            return False

    # ---- journal ----

    def journal(self, type_name=None):
        """Entries of the journal as (id, type) pairs, optionally one type."""
        entries = self.redis("XRANGE", "tp:{j}:journal", "-", "+") or []
        out = []
        for eid, fields in entries:
            f = dict(zip(fields[0::2], fields[1::2]))
            if type_name is None or f.get("t") == type_name:
                out.append((eid, f.get("t")))
        return out


def _fnv(customer):
    h = 1469598103934665603
    for b in customer.encode():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def reminder_group(customer):
    """The customer's reminder group g in its shard (tp_key_reminder_group):
    its book (its state and open reminders, one field "<customer>") is in
    {s<n>}:r:c:<g>, the earliest due time of its reminders in
    {s<n>}:r:due:<g> (member: the customer)."""
    return (_fnv(customer) // 16) % 1024


def group_hash(customer):
    """The scheduler's group hash holding the customer's book."""
    return "tp:{s%d}:r:c:%d" % (shard(customer), reminder_group(customer))


def scheduler_fired(w):
    """Reminders fired, every scheduler instance, every shard
    ({s<n>}:r:stats fired)."""
    return sum(int(w.redis("HGET", "tp:{s%d}:r:stats" % n, "fired") or 0) for n in range(16))


def reminders_pending(w):
    """Reminders pending in every shard, as the scheduler counts them
    ({s<n>}:r:count pending)."""
    return sum(int(w.redis("HGET", "tp:{s%d}:r:count" % n, "pending") or 0) for n in range(16))


def due_score(due_ms):
    """A due time's score in the scheduler's indexes (tp_key_due_score):
    whole seconds."""
    return due_ms // 1000 if due_ms > 0 else 0


def owner_reminder_due(w, customer, owner):
    """The customer's score in `owner`'s index of its shard (the part of its
    group, tp_key_reminder_owner_part): the earliest due time of its open
    reminders `owner` owns, in whole seconds (due_score), as an int, or None
    when it has none."""
    part = reminder_group(customer) % 8
    due = w.redis("ZSCORE", "tp:{s%d}:r:owner:%d:%s" % (shard(customer), part, owner),
                  customer)
    return None if due is None else int(due)


# ---- a customer's book (tp/reminder.h tp_book_*), decoded ----

# The stored fields of a reminder's record, in order (TP_REMINDER_FIELD_MAP).
REMINDER_FIELDS = ("owner", "due_at", "urgent", "cause_ts", "text", "closed_by", "agreed",
                   "rrule", "dtstart", "occurrence", "ahead", "until")
BOOK_FORM = 3
# The rules stored as codes in a book's keys (common/src/reminder.c
# rule_codes: the same order).
RULE_CODES = (None, "R-SLA-1", "R-CAD-1", "R-TOUCH-1", "R-MAIL-1", "R-VISIT-1", "R-STAGE-3",
              "R-STAGE-3-manager", "R-STAGE-4", "R-STAGE-4-report", "R-DAYS-1", "R-PAY-1",
              "R-SAT-1", "R-REORDER-1")

# Books' bytes in hex (the RESP client reads bulk strings as text): of
# field ARGV[1] of hash KEYS[1], or of every field (field, hex, ...).
_HEX_LUA = ("local function hex(v) return (string.gsub(v, '.', function(c)"
            " return string.format('%02x', string.byte(c)) end)) end\n"
            "if ARGV[1] then\n"
            "  local v = redis.call('HGET', KEYS[1], ARGV[1])\n"
            "  if not v then return false end\n"
            "  return hex(v)\n"
            "end\n"
            "local all = redis.call('HGETALL', KEYS[1])\n"
            "for i = 2, #all, 2 do all[i] = hex(all[i]) end\n"
            "return all\n")


def msgpack_unpack(b, i=0):
    """The msgpack value at b[i:] and the offset after it: enough of msgpack
    for a book (nil, booleans, integers, strings, arrays, maps)."""
    t = b[i]
    if t <= 0x7F:
        return t, i + 1
    if t >= 0xE0:
        return t - 0x100, i + 1
    if 0xA0 <= t <= 0xBF or t in (0xD9, 0xDA, 0xDB):
        if t <= 0xBF:
            n, i = t & 0x1F, i + 1
        else:
            w = {0xD9: 1, 0xDA: 2, 0xDB: 4}[t]
            n, i = int.from_bytes(b[i + 1:i + 1 + w], "big"), i + 1 + w
        return b[i:i + n].decode(), i + n
    if 0x90 <= t <= 0x9F or t in (0xDC, 0xDD) or 0x80 <= t <= 0x8F or t in (0xDE, 0xDF):
        is_map = 0x80 <= t <= 0x8F or t in (0xDE, 0xDF)
        if t <= 0x9F:
            n, i = t & 0x0F, i + 1
        else:
            w = 2 if t in (0xDC, 0xDE) else 4
            n, i = int.from_bytes(b[i + 1:i + 1 + w], "big"), i + 1 + w
        items = []
        for _ in range(2 * n if is_map else n):
            v, i = msgpack_unpack(b, i)
            items.append(v)
        return (dict(zip(items[0::2], items[1::2])) if is_map else items), i
    if t == 0xC0:
        return None, i + 1
    if t in (0xC2, 0xC3):
        return t == 0xC3, i + 1
    if 0xCC <= t <= 0xD3:  # uint8..64, int8..64
        w = 1 << ((t - 0xCC) % 4)
        return int.from_bytes(b[i + 1:i + 1 + w], "big", signed=t >= 0xD0), i + 1 + w
    raise ValueError("msgpack type 0x%02x at %d: not in a book" % (t, i))


def msgpack_pack(v):
    """`v` (None, bool, int, str, list, dict) as msgpack, in its shortest
    form: enough of msgpack to write a book."""
    if v is None:
        return b"\xc0"
    if v is True or v is False:
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        if 0 <= v <= 0x7F or -32 <= v < 0:
            return (v & 0xFF).to_bytes(1, "big")
        for w, t in ((1, 0xCC), (2, 0xCD), (4, 0xCE), (8, 0xCF)) if v > 0 else \
                ((1, 0xD0), (2, 0xD1), (4, 0xD2), (8, 0xD3)):
            try:
                return bytes([t]) + v.to_bytes(w, "big", signed=v < 0)
            except OverflowError:
                continue
        raise ValueError("integer out of msgpack's range: %d" % v)
    if isinstance(v, str):
        b = v.encode()
        n = len(b)
        head = bytes([0xA0 | n]) if n < 32 else (b"\xd9" + bytes([n]) if n < 256 else
                                                   b"\xda" + n.to_bytes(2, "big"))
        return head + b
    if isinstance(v, (list, dict)):
        n = len(v)
        small, big = (0x80, b"\xde") if isinstance(v, dict) else (0x90, b"\xdc")
        head = bytes([small | n]) if n < 16 else big + n.to_bytes(2, "big")
        items = [x for kv in sorted(v.items()) for x in kv] if isinstance(v, dict) else v
        return head + b"".join(msgpack_pack(x) for x in items)
    raise TypeError("not in a book: %r" % (v,))


def pack_book(customer, state, reminders):
    """A customer's book as tp_book_pack stores it: [3, {state}, [key,
    field, ...], ...], reminders (id "<customer>|<key>" -> record with
    REMINDER_FIELDS by name) in id order, cause_ts as its distance to
    due_at; frequent values are left as strings (the reader takes both)."""
    stored = [BOOK_FORM, {k: v for k, v in state.items() if isinstance(v, str)}]
    for rid in sorted(reminders):
        assert rid.startswith(customer + "|"), rid
        rec = dict(reminders[rid])
        if "cause_ts" in rec and "due_at" in rec:
            rec["cause_ts"] = rec["due_at"] - rec["cause_ts"]
        values = [rec.get(f) for f in REMINDER_FIELDS]
        while values and values[-1] is None:
            values.pop()
        stored.append([rid[len(customer) + 1:]] + values)
    return msgpack_pack(stored)


def write_book(w, customer, reminders, state=None):
    """Stores the customer's book and indexes it as the scheduler does: the
    customer in its group's due index and in each owner's index at the
    earliest due time of its reminders (of theirs), its group in the
    shard's index. For intake's readers, without a scheduler."""
    n, g = shard(customer), reminder_group(customer)
    w.redis("HSET", group_hash(customer), customer,
            pack_book(customer, state or {}, reminders))
    earliest = {}
    for rec in reminders.values():
        o = rec.get("owner") or "unassigned"
        earliest[o] = min(earliest.get(o, rec["due_at"]), rec["due_at"])
    if earliest:
        first = due_score(min(earliest.values()))
        w.redis("ZADD", "tp:{s%d}:r:due:%d" % (n, g), first, customer)
        w.redis("ZADD", "tp:{s%d}:r:due" % n, "LT", first, g)  # (LT adds a new one)
    for o, due in earliest.items():
        w.redis("ZADD", "tp:{s%d}:r:owner:%d:%s" % (n, g % 8, o), due_score(due), customer)


def book_bytes(w, customer):
    """The customer's book as stored (bytes), or None when it has none."""
    h = w.redis("EVAL", _HEX_LUA, 1, group_hash(customer), customer)
    return None if h is None else bytes.fromhex(h)


def book(w, customer):
    """The customer's book as (state, reminders): its state's string fields,
    and reminder id -> record (REMINDER_FIELDS by name, absent ones left
    out, "rule" from the id, the owner code 0 as "unassigned", cause_ts
    restored from its distance to due_at; other codes, of closed_by and
    text, are left as their numbers). None when it has none."""
    b = book_bytes(w, customer)
    return None if b is None else book_decode(customer, b)


def book_decode(customer, b):
    """The book `b` (bytes) of `customer` as book() gives it."""
    top, end = msgpack_unpack(b)
    assert end == len(b) and isinstance(top, list) and top[0] == BOOK_FORM, (customer, b)
    state, reminders = top[1], {}
    for stored in top[2:]:
        key, values = stored[0], stored[1:]
        if isinstance(key, int):  # a coded rule without a subject
            key = RULE_CODES[key]
        elif isinstance(key, list):  # [code, subject]
            key = "%s|%s" % (RULE_CODES[key[0]], key[1])
        rec = {f: v for f, v in zip(REMINDER_FIELDS, values) if v is not None}
        if rec.get("owner") == 0:
            rec["owner"] = "unassigned"
        if "cause_ts" in rec and "due_at" in rec:
            rec["cause_ts"] = rec["due_at"] - rec["cause_ts"]
        rec["rule"] = key.split("|")[0]
        reminders["%s|%s" % (customer, key)] = rec
    return state, reminders


def booked_reminder(w, customer, reminder):
    """The record of `reminder` in its customer's book (book), or None."""
    b = book(w, customer)
    return None if b is None else b[1].get(reminder)


def reminders_booked(w):
    """Reminders pending in every book of every group hash, counted apart
    from the scheduler's own count (a test's check of it; KEYS: tests only)."""
    n = 0
    for key in w.redis("KEYS", "tp:{s*}:r:c:*") or []:
        flat = w.redis("EVAL", _HEX_LUA, 1, key) or []
        for customer, h in zip(flat[0::2], flat[1::2]):
            n += len(book_decode(customer, bytes.fromhex(h))[1])
    return n


def now_ms():
    return int(time.time() * 1000)


def lead(company="ACME", urgency=3, budget=3, decision=3, owner="rep-1", **extra):
    ev = {"type": "lead.captured", "ts": now_ms(), "src": "web",
          "data": {"company": company, "urgency": urgency, "budget": budget,
                   "decision": decision, "owner": owner, "industry": "manufacturing",
                   "size": 500, "contact": {"name": "Li Lei", "phone": "138 0013 8000"}}}
    ev.update(extra)
    return ev


def run(tests):
    """Runs test functions; prints the 'N passed, N failed' line ctest reads."""
    passed = failed = 0
    for t in tests:
        start = time.time()
        try:
            t()
            passed += 1
            print("PASS %s (%.1fs)" % (t.__name__, time.time() - start), flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure
            failed += 1
            import traceback
            traceback.print_exc()
            print("FAIL %s: %s" % (t.__name__, e), flush=True)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
