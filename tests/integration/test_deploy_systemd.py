"""deploy/systemd: the unit files are valid for this systemd and say what
the services need (Type=notify with a watchdog, restarts, hardening, the
shipped configuration, a metrics port of its own per instance).

`systemd-analyze verify` loads each unit offline (no running systemd
needed) with ExecStart pointed at this build's binaries, as install.sh
would have put them in /usr/local/bin; any complaint fails the test.
"""
import os
import re
import shutil
import subprocess
import tempfile

from tp_harness import BUILD, SOURCE, SERVICES, run

UNITS = os.path.join(SOURCE, "deploy", "systemd")
HARDENING = ["NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
             "PrivateTmp=yes", "CapabilityBoundingSet=", "SystemCallFilter=@system-service"]


def unit_text(name):
    with open(os.path.join(UNITS, name)) as f:
        return f.read()


def settings(text):
    """Key=value lines of a unit (repeated keys kept in order)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, v = line.split("=", 1)
            out.append((k, v))
    return out


def staged(tmp):
    """The units copied into `tmp`, ExecStart on the build's binaries."""
    for name in os.listdir(UNITS):
        if name.endswith((".service", ".target")):
            text = unit_text(name)
            text = re.sub(r"/usr/local/bin/tp-([a-z]+)",
                          lambda m: os.path.join(BUILD, "services", m.group(1), "tp-" + m.group(1)),
                          text)
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
    return tmp


def verify(tmp, names):
    r = subprocess.run(["systemd-analyze", "verify", "--man=no"]
                       + [os.path.join(tmp, n) for n in names],
                       capture_output=True, text=True, cwd=tmp, timeout=120)
    return r.returncode, (r.stdout + r.stderr).strip()


def test_units_verify():
    tmp = staged(tempfile.mkdtemp(prefix="tp-units-"))
    try:
        names = ["touchpoint-%s@2.service" % s for s in SERVICES]
        names += ["touchpoint-redis.service", "touchpoint.target"]
        for s in SERVICES:
            assert os.access(os.path.join(BUILD, "services", s, "tp-" + s), os.X_OK), s
        rc, out = verify(tmp, names)
        assert rc == 0 and out == "", "systemd-analyze verify:\n" + out
        # and the check can fail: a broken copy is refused
        path = os.path.join(tmp, "touchpoint-scoring@.service")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("ExecStart=" + BUILD, "ExecStart=/nonexistent"))
        rc, out = verify(tmp, ["touchpoint-scoring@2.service"])
        assert rc != 0 and "not executable" in out, out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_units_say_what_services_need():
    ports = {}
    for s in SERVICES:
        name = "touchpoint-%s@.service" % s
        kv = settings(unit_text(name))
        d = dict(kv)
        assert d["Type"] == "notify", name
        assert d["NotifyAccess"] == "main", name
        assert re.fullmatch(r"\d+s", d["WatchdogSec"]) and int(d["WatchdogSec"][:-1]) >= 10, name
        assert d["Restart"] == "on-failure", name
        assert d["ExecStart"] == "/usr/local/bin/tp-%s -c /etc/touchpoint/touchpoint.ini" % s, name
        for h in HARDENING:
            assert h in ["%s=%s" % p for p in kv], (name, h)
        assert d["WantedBy"] == "touchpoint.target", name
        env = dict(v.split("=", 1) for k, v in kv if k == "Environment")
        assert env["TP_%s_INSTANCE" % s.upper()].endswith("-%i"), name
        listen = env["TP_%s_METRICS_LISTEN" % s.upper()]
        # instances 0-9 each get a port of their own, no two units share one
        for n in range(10):
            port = int(listen.replace("%i", str(n)).rsplit(":", 1)[1])
            assert 1024 < port < 65536, (name, port)
            assert port not in ports, (name, n, ports.get(port))
            ports[port] = (s, n)
        files = [v for k, v in kv if k == "EnvironmentFile"]
        assert files == ["-/etc/touchpoint/touchpoint.env",
                         "-/etc/touchpoint/%s@%%i.env" % s], files
    redis = dict(settings(unit_text("touchpoint-redis.service")))
    assert redis["Type"] == "notify" and "--supervised systemd" in redis["ExecStart"]


def test_install_script_is_valid_bash():
    r = subprocess.run(["bash", "-n", os.path.join(UNITS, "install.sh")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


if __name__ == "__main__":
    run([test_units_verify, test_units_say_what_services_need, test_install_script_is_valid_bash])
