"""report.py: the Markdown of bench/report/run.sh.

Reads, for each bench run, <dir>/<bench>.json (its headline figures, from
tpbench.write_result or bench/scale), .out (its printed report), .err (its
log) and .status ("rc seconds sizes"), and writes one report: a summary
table of every figure next to its ceiling and its peer, then each bench's
own printed report. bench/notifier's figures come from its printed lines
(its sending path is a C program). Standard library only.

  python3 report.py RUN_DIR OUT.md SIZE BENCH...
"""
import datetime
import json
import os
import re
import subprocess
import sys


def read(path, default=""):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return default


def notifier_figures(out):
    """Figures of bench/notifier from its printed lines."""
    figs = []
    for m in re.finditer(r"deliveries (\d+) failed (\d+) in [\d.]+ s: (\d+) deliveries/s; "
                         r"in flight (\d+) \(max connections (\d+)\); heap per delivery in "
                         r"flight (\d+) B", out):
        figs.append({"name": "sending path alone (webhook, %s in flight, %s connections)"
                     % (m.group(4), m.group(5)),
                     "value": float(m.group(3)), "unit": "deliveries/s",
                     "note": "%s failed; %s B heap per delivery in flight" % (m.group(2),
                                                                             m.group(6))})
    m = re.search(r"end to end: .*?: (\d+) deliveries/s; Redis (\d+) B per delivery", out)
    if m:
        figs.append({"name": "end to end, reminder.due -> signed webhook", "unit": "deliveries/s",
                     "value": float(m.group(1)),
                     "note": "Redis %s B per delivery" % m.group(2)})
    # the sending path alone is the ceiling of the end-to-end path
    alone = [f["value"] for f in figs if f["name"].startswith("sending path")]
    for f in figs:
        f.setdefault("ceiling", max(alone) if alone and f["name"].startswith("end to end")
                     else None)
        f.setdefault("peer", None)
    return figs


def scale_figures(doc):
    rows = doc.get("rows", [])
    base = rows[0]["eps"] if rows else 0
    figs = []
    for r in rows:
        figs.append({"name": "scoring path, %d instance(s)" % r["instances"], "unit": "events/s",
                     "value": r["eps"], "ceiling": None,
                     "peer": base if r["instances"] != 1 else None,
                     "note": "Redis %.0f%% of a core, machine %.0f%% busy, other %.0f%%; "
                             "peer = 1 instance" % (r["redis_cpu_pct"], r["machine_busy_pct"],
                                                    r["other_cpu_pct"])})
    return figs


def fmt(v, unit=""):
    if v is None:
        return "—"
    if isinstance(v, (int, float)):
        return ("%.1f" % v if abs(v) < 100 else "{:,.0f}".format(v)) + (" " + unit if unit else "")
    return str(v)


def share(v, ceiling):
    """v as a share of its ceiling (for latencies and bytes: of the bound)."""
    if not v or not ceiling:
        return "—"
    return "%.0f%%" % (100 * v / ceiling)


def times(v, peer):
    if not v or not peer:
        return "—"
    return "%.2fx" % (v / peer)


def machine():
    model = ""
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    load = read("/proc/loadavg").split()[:3]
    return model, os.cpu_count(), load


def main():
    run_dir, out_path, size = sys.argv[1], sys.argv[2], sys.argv[3]
    benches = sys.argv[4:]
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
    commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "?"
    model, cores, load = machine()
    lines = ["# Touchpoint benchmark report", "",
             "%s, commit `%s`, %s sizes (`bench/report/run.sh%s`); %d cores (%s), load "
             "average %s at the end. Every figure is from this one run; ceilings are what "
             "the same work costs Redis (redis-benchmark replaying the services' own "
             "scripts) or the bench's target, peers another system or configuration doing "
             "the same. The machine is shared: see each bench's CPU table for what else ran."
             % (datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), commit, size,
                " --full" if size == "full" else "", cores, model or "?", " ".join(load)), "",
             "| bench | figure | value | ceiling | of ceiling | peer | vs peer | note |",
             "|---|---|---|---|---|---|---|---|"]
    sections = []
    for b in benches:
        status = read(os.path.join(run_dir, b + ".status"), "? 0").split(" ", 2)
        rc, secs = status[0], status[1] if len(status) > 1 else "?"
        sizes = status[2].strip() if len(status) > 2 else ""
        out = read(os.path.join(run_dir, b + ".out"))
        err = read(os.path.join(run_dir, b + ".err"))
        doc = {}
        try:
            doc = json.loads(read(os.path.join(run_dir, b + ".json"), "{}"))
        except ValueError:
            pass
        if b == "scale":
            figs = scale_figures(doc)
        elif b == "notifier":
            figs = notifier_figures(out)
        else:
            figs = doc.get("figures", [])
        if rc != "0":
            lines.append("| %s | **failed** (exit %s) | — | — | — | — | — | see below |" % (b, rc))
        elif not figs:
            lines.append("| %s | no figures found | — | — | — | — | — | see below |" % b)
        for f in figs:
            v, c, p = f.get("value"), f.get("ceiling"), f.get("peer")
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                b, f["name"], fmt(v, f.get("unit", "")), fmt(c), share(v, c), fmt(p),
                times(v, p), f.get("note", "").replace("|", "/")))
        sec = ["", "## bench/%s" % b, "",
               "`bench/%s/run.sh`%s: exit %s after %s s." % (
                   b, " with `%s`" % sizes if sizes else "", rc, secs)]
        if b == "scale" and doc.get("ceiling"):
            sec += ["", "**Ceiling:** " + doc["ceiling"]]
        if out.strip():
            sec += ["", "```", out.strip("\n"), "```"]
        if rc != "0":
            sec += ["", "The end of its log:", "", "```",
                    "\n".join(err.strip().splitlines()[-25:]), "```"]
        sections += sec
    lines += sections
    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
