"""deploy/k8s: the manifests parse, each object validates against the pinned
schema of its kind (tests/deploy/k8s-schemas, from the Kubernetes API
reference; no cluster needed), and they fit together: probes on ports the
container declares, Services selecting the pods they mean, the HPAs on
existing Deployments and the tp_reconcile_backlog metric, every mount
backed by a volume, and the ConfigMap's touchpoint.ini pointing at those
Services and mounts.
"""
import configparser
import copy
import glob
import json
import os
import re
import warnings

import jsonschema
import yaml

from tp_harness import SOURCE, SERVICES, run

K8S = os.path.join(SOURCE, "deploy", "k8s")
SCHEMAS = os.path.join(SOURCE, "tests", "deploy", "k8s-schemas")
METRICS_BASE = 9700  # [<svc>] metrics_listen defaults: 9700 intake, 9701.. in catalogue order


def load_schemas():
    out = {}
    for path in glob.glob(os.path.join(SCHEMAS, "*.json")):
        with open(path) as f:
            out[os.path.basename(path)] = json.load(f)
    return out


def validator(schemas, kind):
    """A validator of `kind` resolving common.json locally (python3-jsonschema
    4.10 on Debian 12 has RefResolver; newer ones the referencing registry)."""
    schema = schemas[kind + ".json"]
    cls = jsonschema.validators.validator_for(schema)
    try:
        from referencing import Registry, Resource
        registry = Registry().with_resources(
            (name, Resource.from_contents(s)) for name, s in schemas.items())
        return cls(schema, registry=registry)
    except ImportError:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            resolver = jsonschema.RefResolver("", schema, store=dict(schemas))
            return cls(schema, resolver=resolver)


def manifests():
    """(file, document) for every YAML document of deploy/k8s."""
    out = []
    for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
        if os.path.basename(path) == "kustomization.yaml":
            continue
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    out.append((os.path.basename(path), doc))
    return out


def schema_errors(schemas, docs):
    errors = []
    for name, doc in docs:
        kind = doc.get("kind")
        if kind + ".json" not in schemas:
            errors.append("%s: no schema for kind %s" % (name, kind))
            continue
        for e in validator(schemas, kind).iter_errors(doc):
            errors.append("%s %s/%s: %s at %s" % (name, kind, doc.get("metadata", {}).get("name"),
                                                   e.message, "/".join(map(str, e.absolute_path))))
    return errors


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for _, d in docs if d["kind"] == kind}


def test_manifests_validate():
    schemas = load_schemas()
    docs = manifests()
    assert docs
    errors = schema_errors(schemas, docs)
    assert not errors, "\n".join(errors)
    # the schemas can fail: a misspelt probe, a bad port, a wrong HPA metric type
    dep = copy.deepcopy(by_kind(docs, "Deployment")["touchpoint-scoring"])
    c = dep["spec"]["template"]["spec"]["containers"][0]
    c["readinesProbe"] = c.pop("readinessProbe")
    c["ports"][0]["containerPort"] = 70000
    hpa = copy.deepcopy(by_kind(docs, "HorizontalPodAutoscaler")["touchpoint-scoring"])
    hpa["spec"]["metrics"][0]["type"] = "Pod"
    errors = schema_errors(schemas, [("mutant", dep), ("mutant", hpa)])
    assert len(errors) >= 3, errors


def test_kustomization_lists_every_file():
    with open(os.path.join(K8S, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    files = {os.path.basename(p) for p in glob.glob(os.path.join(K8S, "*.yaml"))}
    files.discard("kustomization.yaml")
    assert sorted(k["resources"]) == sorted(files), k["resources"]


def test_cross_references():
    docs = manifests()
    ns = by_kind(docs, "Namespace")
    assert list(ns) == ["touchpoint"]
    for name, d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"].get("namespace") == "touchpoint", (name, d["metadata"])
    deps = by_kind(docs, "Deployment")
    sets = by_kind(docs, "StatefulSet")
    services = by_kind(docs, "Service")
    configmaps = by_kind(docs, "ConfigMap")
    with open(os.path.join(K8S, "secrets.md")) as f:
        secrets_doc = f.read()
    assert sorted(deps) == sorted("touchpoint-" + s for s in SERVICES), sorted(deps)
    for i, svc in enumerate(SERVICES):
        dep = deps["touchpoint-" + svc]
        pod = dep["spec"]["template"]
        sel = dep["spec"]["selector"]["matchLabels"]
        assert sel and all(pod["metadata"]["labels"].get(k) == v for k, v in sel.items()), svc
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, svc
        (c,) = spec["containers"]
        assert c["args"] == [svc], c.get("args")
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        env = {e["name"]: e for e in c["env"]}
        listen = env["TP_%s_METRICS_LISTEN" % svc.upper()]["value"]
        assert listen == "0.0.0.0:%d" % (METRICS_BASE + i), listen  # probes come from outside the pod
        assert ports["metrics"] == METRICS_BASE + i, ports
        assert env["TP_%s_INSTANCE" % svc.upper()]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = c[probe]["httpGet"]
            assert get["path"] == path, (svc, probe, get)
            port = get["port"]
            assert (ports.get(port) if isinstance(port, str) else port in ports.values()), \
                (svc, probe, port, ports)
            assert (ports[port] if isinstance(port, str) else port) == METRICS_BASE + i
        req = c["resources"]["requests"]
        assert "memory" in req and "cpu" in req and "memory" in c["resources"]["limits"], svc
        volumes = {v["name"]: v for v in spec["volumes"]}
        for m in c["volumeMounts"]:
            assert m["name"] in volumes, (svc, m)
        for v in volumes.values():
            if "configMap" in v:
                assert v["configMap"]["name"] in configmaps, v
            secret_names = [v["secret"]["secretName"]] if "secret" in v else [
                s["secret"]["name"] for s in v.get("projected", {}).get("sources", []) if "secret" in s]
            for s in secret_names:
                assert s in secrets_doc, "secret %s is not explained in secrets.md" % s
        # its own keys and password, nobody else's
        keys = [it["key"] for s in volumes["bus-keys"]["projected"]["sources"] for it in s["secret"]["items"]]
        assert [k for k in keys if k.endswith(".key")] == [svc + ".key"], keys
        assert [it["key"] for it in volumes["redis-password"]["secret"]["items"]] == [svc + ".pass"]
    # Redis: a StatefulSet with its own Service, its data on a claim, probed
    redis = sets["touchpoint-redis"]
    assert redis["spec"]["serviceName"] in services
    (rc,) = redis["spec"]["template"]["spec"]["containers"]
    assert rc["args"] == ["redis"] and "livenessProbe" in rc and "readinessProbe" in rc
    claims = [t["metadata"]["name"] for t in redis["spec"].get("volumeClaimTemplates", [])]
    rvols = {v["name"] for v in redis["spec"]["template"]["spec"]["volumes"]} | set(claims)
    for m in rc["volumeMounts"]:
        assert m["name"] in rvols, m
    assert "/data" in [m["mountPath"] for m in rc["volumeMounts"] if m["name"] in claims]
    for v in redis["spec"]["template"]["spec"]["volumes"]:
        if "secret" in v:
            assert v["secret"]["secretName"] in secrets_doc, v
    # every Service selects the pods of a Deployment or StatefulSet and
    # targets ports they declare
    for name, s in services.items():
        matches = [d for d in list(deps.values()) + list(sets.values())
                   if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v
                          for k, v in s["spec"]["selector"].items())]
        assert len(matches) == 1, (name, s["spec"]["selector"])
        cports = {p["name"]: p["containerPort"]
                  for p in matches[0]["spec"]["template"]["spec"]["containers"][0]["ports"]}
        for p in s["spec"]["ports"]:
            t = p.get("targetPort", p["port"])
            assert (t in cports) if isinstance(t, str) else (t in cports.values()), (name, p)
    for svc in SERVICES:
        assert "touchpoint-" + svc in services, svc
    # the HPAs scale existing Deployments on the backlog gauge
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    assert hpas
    for name, h in hpas.items():
        ref = h["spec"]["scaleTargetRef"]
        assert ref["kind"] == "Deployment" and ref["name"] in deps, ref
        assert ref["name"] != "touchpoint-intake", "intake does not consume: no backlog"
        (m,) = h["spec"]["metrics"]
        assert m["type"] == "Pods" and m["pods"]["metric"]["name"] == "tp_reconcile_backlog", m
        assert 1 <= h["spec"].get("minReplicas", 1) <= h["spec"]["maxReplicas"]
    with open(os.path.join(K8S, "hpa.yaml")) as f:
        assert "adapter" in f.read()  # the comment saying a Pods metric needs one


def test_configmap_ini_matches_manifests():
    docs = manifests()
    cm = by_kind(docs, "ConfigMap")["touchpoint-config"]["data"]
    ini = configparser.ConfigParser(inline_comment_prefixes=(";",), interpolation=None,
                                    strict=False)
    ini.read_string(cm["touchpoint.ini"])
    services = by_kind(docs, "Service")
    deps = by_kind(docs, "Deployment")
    # the bus: every endpoint the services connect to is a port of a Service
    for key in ["ingress_endpoint"] + ["%s_endpoint" % s for s in SERVICES[1:]]:
        m = re.fullmatch(r"tcp://([a-z0-9-]+):(\d+)", ini["bus"][key])
        assert m, (key, ini["bus"][key])
        host, port = m.group(1), int(m.group(2))
        assert host in services, (key, host)
        assert port in [p["port"] for p in services[host]["spec"]["ports"]], (key, port)
        # and intake binds it on every address
        intake_env = {e["name"]: e.get("value") for e in
                      deps["touchpoint-intake"]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert intake_env["TP_BUS_%s" % key.upper()] == "tcp://0.0.0.0:%d" % port
    assert ini["intake"]["listen"] == "0.0.0.0"
    assert int(ini["intake"]["port"]) in [p["port"] for p in services["touchpoint-intake"]["spec"]["ports"]]
    assert ini["redis"]["host"] == "touchpoint-redis" and ini["redis"].getboolean("acl")
    assert int(ini["redis"]["port"]) in [p["port"] for p in
                                         services[ini["redis"]["host"]]["spec"]["ports"]]
    # paths land on the mounts (and the image's shared files)
    for svc in SERVICES:
        mounts = {m["mountPath"] for m in
                  deps["touchpoint-" + svc]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
        assert ini["bus"]["keys_dir"] in mounts and ini["redis"]["secrets_dir"] in mounts, svc
        assert "/etc/touchpoint/config" in mounts
    for section, key in (("scoring", "rules"), ("notifier", "users")):
        path = ini[section][key]
        assert path.startswith("/etc/touchpoint/config/") and os.path.basename(path) in cm, path
    assert os.path.dirname(ini["intake"]["keys_file"]) in {
        m["mountPath"] for m in deps["touchpoint-intake"]["spec"]["template"]["spec"]
        ["containers"][0]["volumeMounts"]}
    for section, key in (("notifier", "templates"), ("scheduler", "calendar")):
        assert ini[section][key].startswith("/usr/local/share/touchpoint/"), ini[section][key]
    # no local-only leftovers
    text = cm["touchpoint.ini"]
    assert "127.0.0.1" not in re.sub(r";.*", "", text), "a loopback address in the cluster config"
    assert "var/" not in re.sub(r";.*", "", text)


if __name__ == "__main__":
    run([test_manifests_validate, test_kustomization_lists_every_file,
         test_cross_references, test_configmap_ini_matches_manifests])
