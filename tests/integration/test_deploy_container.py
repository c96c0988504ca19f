"""deploy/container: without building (no container engine is needed on
the test machine), checks what can be checked: the Containerfile parses
into stages on debian:12, every COPY source exists (or names an earlier
stage), the build copies every directory CMake adds, the image runs as a
non-root user through the entrypoint, its paths match the k8s manifests,
the runtime stage's package list covers every library the binaries load,
and the entrypoint refuses what is not a service.
"""
import os
import re
import shlex
import subprocess

from tp_harness import BUILD, SOURCE, SERVICES, run

CONTAINER = os.path.join(SOURCE, "deploy", "container")


def instructions():
    """(instruction, arguments) of the Containerfile, continuations joined."""
    with open(os.path.join(CONTAINER, "Containerfile")) as f:
        text = f.read()
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        assert word.isupper(), "not an instruction: %r" % line
        out.append((word, rest.strip()))
    return out


def stages():
    """[(name or None, base image, [(instr, args)...])]."""
    out = []
    for word, rest in instructions():
        if word == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            out.append((name, parts[0], []))
        else:
            assert out, "%s before FROM" % word
            out[-1][2].append((word, rest))
    return out


def test_containerfile_stages_and_sources():
    st = stages()
    assert len(st) >= 2, "multi-stage"
    assert all(base == "debian:12" for _, base, _ in st), [b for _, b, _ in st]
    names = set()
    known = {"FROM", "RUN", "COPY", "WORKDIR", "ENV", "USER", "EXPOSE", "ENTRYPOINT", "CMD",
             "ARG", "LABEL"}
    for name, _, body in st:
        for word, rest in body:
            assert word in known, word
            if word != "COPY":
                continue
            args = shlex.split(rest)
            opts = [a for a in args if a.startswith("--")]
            paths = [a for a in args if not a.startswith("--")]
            assert len(paths) >= 2, rest
            frm = [o.split("=", 1)[1] for o in opts if o.startswith("--from=")]
            if frm:
                assert frm[0] in names, "COPY --from=%s: no such earlier stage" % frm[0]
                continue
            for src in paths[:-1]:
                assert os.path.exists(os.path.join(SOURCE, src)), "COPY source %s missing" % src
        if name:
            names.add(name)
    # the build stage copies every directory the top CMakeLists.txt adds
    with open(os.path.join(SOURCE, "CMakeLists.txt")) as f:
        cm = f.read()
    subdirs = set(re.findall(r"^add_subdirectory\((\w+)", cm, re.M))
    subdirs.discard("tests")  # TP_BUILD_TESTS=OFF in the image
    copied = {shlex.split(r)[0].split("/")[0] for w, r in st[0][2] if w == "COPY"}
    assert subdirs <= copied, subdirs - copied
    assert "services" in copied
    assert "-DTP_BUILD_TESTS=OFF" in " ".join(r for w, r in st[0][2] if w == "RUN")


def test_runtime_stage_runs_one_service_unprivileged():
    _, _, body = stages()[-1]
    kv = {}
    for word, rest in body:
        kv.setdefault(word, []).append(rest)
    user = kv["USER"][-1].split(":")[0]
    assert user not in ("root", "0"), user
    assert kv["ENTRYPOINT"] == ['["/usr/local/bin/tp-entrypoint"]'], kv["ENTRYPOINT"]
    assert any("entrypoint.sh /usr/local/bin/tp-entrypoint" in c for c in kv["COPY"])
    assert any("install-deps.sh runtime" in r for r in kv["RUN"]), "runtime packages only"
    env = dict(e.split("=", 1) for e in kv["ENV"])
    # the k8s Deployments mount the ConfigMap there, and the cluster's ini
    # names the image's templates and calendars
    assert env["TP_CONFIG"] == "/etc/touchpoint/config/touchpoint.ini"
    with open(os.path.join(SOURCE, "deploy", "k8s", "config.yaml")) as f:
        k8s = f.read()
    for shared in ("templates", "calendars"):
        dest = "/usr/local/share/touchpoint/" + shared
        assert any(c.endswith(" " + dest) for c in kv["COPY"]), dest
        assert dest in k8s, dest


def test_entrypoint_refuses_unknown_service():
    script = os.path.join(CONTAINER, "entrypoint.sh")
    for bad in ([], ["scorng"], ["../../bin/sh"], ["redis-server"]):
        r = subprocess.run(["sh", script] + bad, capture_output=True, text=True)
        assert r.returncode == 64 and "unknown service" in r.stderr, (bad, r.returncode, r.stderr)
    with open(script) as f:
        text = f.read()
    for s in SERVICES:
        assert s in text, s
    assert 'exec "/usr/local/bin/tp-$svc"' in text
    # the redis role: the conf the image copies, the ACL where k8s mounts it
    assert "/usr/local/share/touchpoint/redis.conf" in text
    with open(os.path.join(SOURCE, "deploy", "k8s", "redis.yaml")) as f:
        assert "mountPath: /etc/touchpoint/redis-acl" in f.read()
    assert "--aclfile /etc/touchpoint/redis-acl/users.acl" in text


def runtime_packages():
    with open(os.path.join(SOURCE, "deploy", "install-deps.sh")) as f:
        text = f.read()
    m = re.search(r'RUNTIME_PKGS="([^"]*)"', text)
    assert m, "install-deps.sh has no RUNTIME_PKGS"
    return set(m.group(1).split())


def test_runtime_packages_cover_the_binaries():
    """Every library a service loads directly comes from a package the
    runtime stage installs (or from libc, always there)."""
    pkgs = runtime_packages()
    base = {"libc6", "libgcc-s1"}
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    for s in SERVICES:
        binary = os.path.join(BUILD, "services", s, "tp-" + s)
        dyn = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True,
                             check=True).stdout
        for lib in re.findall(r"\(NEEDED\).*\[(.+)\]", dyn):
            if lib.startswith(("libasan.", "libubsan.")):
                continue  # a sanitizer build's (the image builds without)
            m = re.search(r"^\s*%s \(.*x86-64.*\) => (\S+)" % re.escape(lib), cache, re.M) or \
                re.search(r"^\s*%s .* => (\S+)" % re.escape(lib), cache, re.M)
            assert m, "%s: %s not in the linker cache" % (s, lib)
            path = os.path.realpath(m.group(1))
            owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
            if owner.returncode != 0:  # merged /usr: dpkg knows the /lib path
                owner = subprocess.run(["dpkg", "-S", path.replace("/usr/lib/", "/lib/", 1)],
                                       capture_output=True, text=True)
            assert owner.returncode == 0, (s, lib, path, owner.stderr)
            pkg = owner.stdout.split(":")[0]
            assert pkg in pkgs | base, "%s needs %s from %s, not in RUNTIME_PKGS" % (s, lib, pkg)


if __name__ == "__main__":
    run([test_containerfile_stages_and_sources, test_runtime_stage_runs_one_service_unprivileged,
         test_entrypoint_refuses_unknown_service, test_runtime_packages_cover_the_binaries])
