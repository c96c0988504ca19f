// bullmq_bench.js: the BullMQ side of bench/scheduler (the peer).
//
// Run by scheduler_bench.py with NODE_PATH pointing at a temp dir where
// `npm install bullmq` put the package. Two modes, each one process (as
// Touchpoint's intake and scheduler are separate processes):
//
//   work --port P --db D --queue Q --n N --concurrency C
//     A Worker (one process, `concurrency` jobs in flight) that records, for
//     every job, lateness = the time its processor starts - (job.timestamp
//     + job.delay), i.e. against the due time the job was added with. Says
//     "ready" on stdout once connected; when N jobs have completed, prints
//     key=value results and exits.
//
//   add --port P --db D --queue Q --n N --batch B --inflight K --due T
//       [--spread S] [--base X] [--owners O]
//     Adds N delayed jobs with Queue.addBulk, B jobs per call, K calls in
//     flight. Job i is due at T + i * S / N (ms since the epoch; S = 0: all
//     at T): opts.timestamp = now, opts.delay = due - now. Each job carries
//     what a Touchpoint reminder carries (customer, rule, owner, text) and,
//     like a Touchpoint reminder, an id of its own (opts.jobId = customer
//     |rule|n, so it can be replaced or removed by id); removeOnComplete and
//     removeOnFail, as Touchpoint deletes a reminder when it fires.
"use strict";

const { Queue, Worker } = require("bullmq");

function args(argv) {
  const o = {};
  for (let i = 3; i + 1 < argv.length; i += 2) o[argv[i].replace(/^--/, "")] = argv[i + 1];
  return o;
}

function connection(o) {
  return { host: "127.0.0.1", port: +o.port, db: +(o.db || 0), maxRetriesPerRequest: null,
           enableOfflineQueue: true };
}

function out(kv) {
  process.stdout.write(Object.entries(kv).map(([k, v]) => `${k}=${v}`).join("\n") + "\n");
}

function cpuS() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

async function add(o) {
  const n = +o.n, batch = +(o.batch || 1000), inflight = +(o.inflight || 4);
  const due = +o.due, spread = +(o.spread || 0), base = +(o.base || 0);
  const owners = +(o.owners || 50), useId = (o.jobid || "1") === "1";
  const queue = new Queue(o.queue, { connection: connection(o) });
  await queue.waitUntilReady();
  const t0 = Date.now(), c0 = cpuS();
  let next = 0, late = 0;
  async function lane() {
    while (next < n) {
      const first = next, k = Math.min(batch, n - next);
      next += k;
      const now = Date.now(), jobs = new Array(k);
      for (let j = 0; j < k; j++) {
        const i = first + j;
        const customer = "C01JZB" + String(base + i).padStart(21, "0");
        const at = due + Math.floor((i * spread) / n);
        if (at <= now) late++;
        jobs[j] = {
          name: "R-SLA-1",
          data: { customer, rule: "R-SLA-1", owner: "rep-" + (i % owners),
                  text: "Answer the web inquiry" },
          opts: { timestamp: now, delay: Math.max(0, at - now), removeOnComplete: true,
                  removeOnFail: true, ...(useId ? { jobId: `${customer}|R-SLA-1|${i}` } : {}) },
        };
      }
      await queue.addBulk(jobs);
    }
  }
  await Promise.all(Array.from({ length: inflight }, lane));
  const el = (Date.now() - t0) / 1000;
  out({ mode: "add", added: n, elapsed_s: el.toFixed(3), add_rate: Math.round(n / el),
        added_late: late, cpu_s: (cpuS() - c0).toFixed(3), t_start_ms: t0,
        t_end_ms: Date.now() });
  await queue.close();
}

function pct(sorted, p) {
  return sorted.length ? sorted[Math.round(p * (sorted.length - 1))] : 0;
}

async function work(o) {
  const n = +o.n;
  const lat = new Float64Array(n);
  let started = 0, done = 0, firstStart = 0, lastStart = 0, minDue = Infinity, failed = 0;
  const c0 = cpuS();
  let finish;
  const finished = new Promise((r) => (finish = r));
  const worker = new Worker(
    o.queue,
    async (job) => {
      const now = Date.now();
      const due = job.timestamp + (job.delay || (job.opts && job.opts.delay) || 0);
      if (started < n) lat[started] = now - due;
      started++;
      if (!firstStart) firstStart = now;
      lastStart = now;
      if (due < minDue) minDue = due;
    },
    { connection: connection(o), concurrency: +(o.concurrency || 100), autorun: false },
  );
  worker.on("completed", () => {
    if (++done === n) finish();
  });
  worker.on("failed", () => {
    failed++;
    if (++done === n) finish();
  });
  worker.on("error", (e) => process.stderr.write("worker error: " + e + "\n"));
  worker.run();
  await worker.waitUntilReady();
  process.stdout.write("ready\n");
  await finished;
  const lastDone = Date.now();
  const s = Array.from(lat.subarray(0, Math.min(started, n))).sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  out({ mode: "work", processed: done, failed, first_due_ms: minDue, first_start_ms: firstStart,
        last_start_ms: lastStart, last_done_ms: lastDone, late_p50_ms: pct(s, 0.5),
        late_p90_ms: pct(s, 0.9), late_p99_ms: pct(s, 0.99), late_p999_ms: pct(s, 0.999),
        late_max_ms: s.length ? s[s.length - 1] : 0, late_mean_ms: mean.toFixed(2),
        cpu_s: (cpuS() - c0).toFixed(3) });
  await worker.close();
}

const mode = process.argv[2];
const o = args(process.argv);
(mode === "add" ? add(o) : mode === "work" ? work(o) : Promise.reject(new Error("mode?")))
  .then(() => process.exit(0))
  .catch((e) => {
    process.stderr.write(String(e && e.stack || e) + "\n");
    process.exit(2);
  });
