#!/usr/bin/env python3
"""`make soak`: sitemon under faults for minutes, then proof that every slot was stored once.

Runs `sitemon producer` (200 sites every second on a local HTTP target, plus failing, flaky, slow
and hanging ones) and two `sitemon consumer`s in one group against the real test services, and
meanwhile injects faults at random times from a seeded RNG: consumer SIGKILLs (then a restart),
broker restarts, PostgreSQL restarts, a third consumer that joins and later leaves (SIGTERM). At
the end it stops the producer with SIGTERM (it must exit 0), drains the topic and checks the
database:

- every scheduled slot is in `check_results` exactly once: per site the distinct `scheduled_at`
  values form an unbroken run of `interval` steps from its first slot to its last (gaps = lost),
  no (site, region, slot) has two rows (duplicated), and the row count equals the number of
  results the producer reported published;
- `site_status` agrees with a recomputation from the history (newest non-MISSED slot and status,
  `consecutive_failures`, `status_since`);
- no consumer exited without being asked to, and every process asked to stop stopped cleanly.

Exit 0 when all holds, 1 when sitemon failed a check, 2 when the soak itself could not run (a
service did not start, the build failed). Each process's log, the config, the fault timeline and
the summary stay in the run directory (printed at start and end). With --write-benchmarks the
result replaces the "Soak" section of BENCHMARKS.md.

    scripts/soak.py --minutes 2                     # a short run
    SOAK_MINUTES=30 make soak                       # a long one, recorded in BENCHMARKS.md
    scripts/soak.py --minutes 3 --seed 1234         # the same fault plan again

Uses scripts/services (and its SITEMON_SERVICES_DIR / SITEMON_KAFKA_PORT / SITEMON_PG_PORT) and
psql; Python standard library only.
"""
import argparse
import collections
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "scripts" / "services"

OK_SITES = 200            # ok-NNNN every second
PRODUCER_GRACE = 15       # --grace of the producer, seconds
STOP_LIMIT = 45           # seconds a process asked to stop (SIGTERM) may take beyond its grace
DRAIN_IDLE = "10s"        # --exit-when-idle of the final drainer
DRAIN_LIMIT = 300         # seconds the drainer may take
START_SLACK = 10          # a site's first slot may lie this long after the producer's start + 1 interval
END_SLACK = 3             # … and its last this long before the SIGTERM − 1 interval

KIND_NAMES = {
    "consumer_kill": "consumer SIGKILL + restart",
    "kafka_restart": "broker restart",
    "postgres_restart": "PostgreSQL restart",
    "consumer_join": "third consumer joins",
    "consumer_leave": "third consumer leaves (SIGTERM)",
}



DOWN_AFTER, UP_AFTER = 3, 1  # the soak's sites keep the default thresholds


SILENCE = 3  # intervals without a result after which a region is unknown


def incidents_of(checked, step):
    """(started_us, ended_us or None, failed checks) of each outage in a region's checked slots
    (deduplicated, MISSED left out, in time order): DOWN_AFTER failures in a row open one, UP_AFTER
    successes in a row close it, ending at the first of them. A region's first result, and its
    first after more than SILENCE intervals without one, only makes it known: it counts from its
    next slot (as the README says)."""
    out, run_up, run_len, run_start, open_, prev = [], True, 0, None, None, None
    for us, status in checked:
        known, prev = prev is not None and us - prev <= SILENCE * step, us
        if not known:
            continue
        up = status == "SUCCESS"
        if up == run_up and run_len:
            run_len += 1
        else:
            run_up, run_len, run_start = up, 1, us
        if up:
            if open_ and run_len >= UP_AFTER:
                out.append((open_[0], run_start, open_[1]))
                open_ = None
        elif open_:
            open_[1] += 1
        elif run_len >= DOWN_AFTER:
            open_ = [run_start, run_len]
    if open_:
        out.append((open_[0], None, open_[1]))
    return out

class InfraError(Exception):
    """The soak could not run (services, build); says nothing about sitemon."""


class Interrupted(Exception):
    pass


# While scripts/services stops or starts a service, a SIGINT/SIGTERM waits for it to finish: a
# broker killed half-started would leave its pid file and port in a state the cleanup could not
# restart from.
SHIELD = {"depth": 0, "pending": None}


def interrupted(signum, _frame):
    if SHIELD["depth"]:
        SHIELD["pending"] = signum
        return
    raise Interrupted(f"signal {signum}")


def log(msg):
    print(f"soak: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the HTTP target

class Target:
    """Loopback HTTP server the sites point at. /ok answers 200, /fail 500, /flaky 500 at random
    (seeded), /slow after 0.6 s (inside the 900 ms timeout), /hang after 2 s (a timeout)."""

    def __init__(self, seed):
        rng = random.Random(seed)
        lock = threading.Lock()
        counts = collections.Counter()
        self.counts = counts

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                kind = self.path.strip("/").split("/", 1)[0]
                with lock:
                    counts[kind] += 1
                    flaky_fails = rng.random() < 0.4
                code = 200
                if kind == "fail" or (kind == "flaky" and flaky_fails):
                    code = 500
                elif kind == "slow":
                    time.sleep(0.6)
                elif kind == "hang":
                    time.sleep(2.0)
                elif kind != "ok" and kind != "flaky":
                    code = 404
                body = b"ok\n" if code == 200 else b"nope\n"
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the check timed out and hung up

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 1024

            def handle_error(self, request, client_address):
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def site_list(port):
    """(name, url, interval seconds, timeout) of every site the producer checks."""
    base = f"http://127.0.0.1:{port}"
    sites = [(f"ok-{i:04d}", f"{base}/ok/{i}", 1, "900ms") for i in range(OK_SITES)]
    sites += [(f"fail-{i}", f"{base}/fail/{i}", 1, "900ms") for i in range(2)]
    sites += [(f"flaky-{i}", f"{base}/flaky/{i}", 1, "900ms") for i in range(3)]
    sites += [(f"flaky2s-{i}", f"{base}/flaky/2s{i}", 2, "900ms") for i in range(2)]
    sites += [("slow-0", f"{base}/slow/0", 1, "900ms"), ("hang-0", f"{base}/hang/0", 1, "900ms")]
    return sites


def render_config(sites, topic, group, db_url, consumer):
    out = [
        "region: soak\n",
        "kafka:\n",
        f"  bootstrap_servers: '{os.environ['KAFKA_BOOTSTRAP_SERVERS']}'\n",
        f"  topic: {topic}\n",
        f"  group_id: {group}\n",
    ]
    if consumer:
        # A SIGKILLed member's partitions move on after 6 s instead of 45.
        out += ["  properties:\n", "    session.timeout.ms: 6000\n", "    heartbeat.interval.ms: 1000\n"]
    out += [
        "postgres:\n",
        f"  url: '{db_url}'\n",
        "consumer:\n",
        "  batch_size: 200\n",
        "  batch_wait: 200ms\n",
        "sites:\n",
    ]
    for name, url, interval, timeout in sites:
        out.append(f"  - {{name: {name}, url: '{url}', interval: {interval}s, timeout: {timeout}}}\n")
    return "".join(out)


# ---------------------------------------------------------------- processes

class Proc:
    """One sitemon process in its own process group, its output in its own log file."""

    def __init__(self, name, argv, logfile, env):
        self.name, self.logfile = name, logfile
        self.asked = None          # the signal we sent, once we asked it to stop (or killed it)
        self.reported = False      # its exit has been accounted for
        self.started = time.monotonic()
        self.signalled_at = None
        with open(logfile, "w") as f:
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                          env=env, start_new_session=True)

    @property
    def pid(self):
        return self.popen.pid

    def running(self):
        return self.popen.poll() is None

    def signal(self, sig):
        self.asked = sig
        self.signalled_at = time.monotonic()
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def wait(self, limit):
        try:
            return self.popen.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            return None

    def kill_group(self):
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def tail(self, n=12):
        try:
            lines = Path(self.logfile).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    | " + l for l in lines[-n:])


def last_count(text, key):
    """The number in `key=N` on the last line that has it (tracing's plain format)."""
    for line in reversed(text.splitlines()):
        m = re.search(rf"\b{key}=(\d+)", line)
        if m:
            return int(m.group(1))
    return None


# ---------------------------------------------------------------- the soak

class Soak:
    def __init__(self, args):
        self.args = args
        self.seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
        self.rng = random.Random(self.seed)
        base = Path(args.dir or os.environ.get("SITEMON_SOAK_DIR", "/tmp/sitemon-soak"))
        self.dir = base / f"{time.strftime('%Y%m%d-%H%M%S')}-seed{self.seed}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.events_log = open(self.dir / "events.log", "w")
        self.t0 = time.monotonic()
        self.procs = []                 # every Proc ever started
        self.consumers = {}             # member name -> current Proc
        self.generation = collections.Counter()
        self.retired = set()            # members that left and must not be restarted
        self.pending = []               # (due monotonic, action, member)
        self.reported_unstored = []     # members that stopped in an outage and reported unstored records
        self.down = set()               # services this run stopped and has not started again
        self.faults = collections.Counter()
        self.unexpected = []            # (name, exit code, log path, tail)
        self.stop_failures = []         # (name, what, log path, tail)
        self.producer = None
        self.producer_died = False
        self.final = False              # the final phase: no more restarts
        self.target = None
        self.db_name = self.db_url = None

    # ---------------------------------------------------------------- helpers

    def event(self, msg):
        line = f"[{time.monotonic() - self.t0:7.1f} s] {msg}"
        self.events_log.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        self.events_log.flush()
        log(line)

    def services(self, action):
        with open(self.dir / "services.log", "a") as err:
            err.write(f"--- {time.strftime('%H:%M:%S')} scripts/services {action}\n")
            err.flush()
            SHIELD["depth"] += 1
            try:
                out = subprocess.run([str(SERVICES), action], stdout=subprocess.PIPE, stderr=err, text=True,
                                     timeout=400, start_new_session=True)
            except subprocess.TimeoutExpired:
                raise InfraError(f"scripts/services {action} did not finish within 400 s (see {self.dir}/services.log)")
            finally:
                SHIELD["depth"] -= 1
            if SHIELD["pending"] is not None and not SHIELD["depth"]:
                signum, SHIELD["pending"] = SHIELD["pending"], None
                raise Interrupted(f"signal {signum}")
        if out.returncode != 0:
            raise InfraError(f"scripts/services {action} failed ({out.returncode}); see {self.dir}/services.log")
        return out.stdout

    def psql(self, sql, db=None, timeout=120):
        url = os.environ["DATABASE_URL"] if db is None else self.db_url
        r = subprocess.run(["psql", url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"psql: {r.stderr.strip()}")
        return r.stdout

    def env(self):
        return {**os.environ, "RUST_LOG": os.environ.get("SOAK_RUST_LOG", "info,rdkafka=warn,sqlx=warn")}

    def spawn(self, name, args):
        self.generation[name] += 1
        logfile = self.dir / f"{name}.{self.generation[name]}.log"
        p = Proc(name, [str(self.bin), *args], logfile, self.env())
        self.procs.append(p)
        return p

    def start_consumer(self, member, *extra):
        p = self.spawn(member, ["consumer", "-c", str(self.config), *extra])
        self.consumers[member] = p
        self.event(f"started {member} (pid {p.pid}, log {p.logfile.name})")
        return p

    # ---------------------------------------------------------------- setup

    def build(self):
        if self.args.bin:
            src = Path(self.args.bin)
        else:
            cargo = os.environ.get("CARGO", "cargo")
            cmd = [cargo, "build", "--locked", "--bin", "sitemon"]
            if self.args.profile == "release":
                cmd.append("--release")
            log(" ".join(cmd))
            if subprocess.run(cmd, cwd=ROOT).returncode != 0:
                raise InfraError("cargo build failed")
            target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
            if not target.is_absolute():
                target = ROOT / target
            src = target / self.args.profile / "sitemon"
        if not src.exists():
            raise InfraError(f"no sitemon binary at {src}")
        # A private copy: another build into the shared target directory must not swap it mid-run.
        self.bin = self.dir / "sitemon"
        shutil.copy2(src, self.bin)
        built = time.strftime('%Y-%m-%d %H:%M', time.localtime(src.stat().st_mtime))
        self.build_note = f"{self.args.profile} build" if not self.args.bin else f"binary {src} built {built}"
        log(f"binary {src} (built {built})")

    def setup(self):
        log(f"seed {self.seed}; logs in {self.dir}")
        out = self.services("up")
        os.environ.update(dict(re.findall(r"export (\w+)=(\S+)", out)))
        self.build()
        self.target = Target(self.seed)
        run_id = uuid.uuid4().hex[:10]
        self.db_name = f"sitemon_soak_{run_id}"
        self.psql(f"CREATE DATABASE {self.db_name}")
        self.db_url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/" + self.db_name
        self.topic = f"sitemon-soak-{run_id}"
        self.sites = site_list(self.target.port)
        self.config = self.dir / "consumer.yaml"
        self.config.write_text(render_config(self.sites, self.topic, f"sitemon-soak-{run_id}", self.db_url, True))
        self.producer_config = self.dir / "producer.yaml"
        self.producer_config.write_text(render_config(self.sites, self.topic, f"sitemon-soak-{run_id}", self.db_url, False))
        r = subprocess.run([str(self.bin), "migrate", "-c", str(self.config)], capture_output=True, text=True,
                           env=self.env(), timeout=120)
        (self.dir / "migrate.log").write_text(r.stdout + r.stderr)
        if r.returncode != 0:
            raise InfraError(f"sitemon migrate failed ({r.returncode}): {r.stderr.strip()[-500:]}")
        log(f"database {self.db_url}, topic {self.topic}, target http://127.0.0.1:{self.target.port}/, "
            f"{len(self.sites)} sites")

    # ---------------------------------------------------------------- watching

    def tick(self):
        """Accounts for exits we did not ask for and runs side events (restarts, leaves) due now."""
        for p in self.procs:
            if p.reported or p.running():
                continue
            p.reported = True
            code = p.popen.returncode
            if p.asked is not None:
                continue  # judged where we asked it to stop
            self.unexpected.append((p.name, code, p.logfile, p.tail()))
            self.event(f"UNEXPECTED EXIT: {p.name} (pid {p.pid}) exited {code} by itself; log {p.logfile}\n{p.tail(3)}")
            if p is self.producer:
                self.producer_died = True
            elif self.consumers.get(p.name) is p and p.name not in self.retired and not self.final:
                self.pending.append((time.monotonic() + 1, "restart", p.name))
        now = time.monotonic()
        due = [e for e in self.pending if e[0] <= now]
        self.pending = [e for e in self.pending if e[0] > now]
        for _, action, member in due:
            if action == "restart" and member not in self.retired:
                self.start_consumer(member)
            elif action == "leave":
                self.leave(member)

    def wait(self, seconds):
        """Sleeps `seconds` while watching the processes; returns early if the producer died."""
        end = time.monotonic() + seconds
        while True:
            self.tick()
            left = end - time.monotonic()
            if left <= 0 or self.producer_died:
                return
            time.sleep(min(0.2, left))

    def progress(self):
        try:
            n = self.psql("SELECT count(*) FROM check_results", db=True, timeout=5).strip()
        except Exception:
            n = "?"
        running = ", ".join(f"{m}" for m, p in sorted(self.consumers.items()) if p.running())
        self.event(f"progress: {n} rows stored; consumers running: {running or 'none'}")

    # ---------------------------------------------------------------- faults

    def plan(self, seconds):
        m = max(1, round(seconds / 60))
        kinds = (["consumer_kill"] * max(2, m) + ["kafka_restart"] * max(1, m // 3)
                 + ["postgres_restart"] * max(1, m // 3) + ["consumer_join"] * max(1, m // 4))
        self.rng.shuffle(kinds)
        start, end = min(20.0, seconds * 0.15), seconds - min(30.0, seconds * 0.2)
        width = (end - start) / len(kinds)
        return [(start + i * width + self.rng.uniform(0, width * 0.6), k) for i, k in enumerate(kinds)]

    def inject(self, kind):
        rng = self.rng
        if kind == "consumer_kill":
            # The two standing members; a joined one is left to leave by SIGTERM.
            live = sorted(m for m in ("consumer-a", "consumer-b")
                          if m in self.consumers and self.consumers[m].running() and self.consumers[m].asked is None)
            if not live:
                self.event("consumer SIGKILL: no consumer running, skipped")
                return
            member = rng.choice(live)
            p = self.consumers[member]
            p.signal(signal.SIGKILL)
            p.wait(10)
            self.faults[kind] += 1
            delay = rng.uniform(0.5, 5)
            self.event(f"FAULT consumer SIGKILL: {member} (pid {p.pid}); restart in {delay:.1f} s")
            self.pending.append((time.monotonic() + delay, "restart", member))
        elif kind in ("kafka_restart", "postgres_restart"):
            svc = "kafka" if kind == "kafka_restart" else "postgres"
            down = rng.uniform(2, 10) if svc == "kafka" else rng.uniform(2, 15)
            self.event(f"FAULT {svc} restart: stopping, down for {down:.1f} s")
            self.down.add(svc)
            self.services(f"stop-{svc}")
            self.faults[kind] += 1
            self.wait(down)
            self.services(f"start-{svc}")
            self.down.discard(svc)
            self.event(f"{svc} is up again")
        elif kind == "consumer_join":
            member = f"consumer-{chr(ord('c') + self.faults[kind])}"
            self.faults[kind] += 1
            stay = rng.uniform(15, 45)
            self.event(f"FAULT a consumer joins: {member}, leaves in {stay:.0f} s")
            self.start_consumer(member)
            self.pending.append((time.monotonic() + stay, "leave", member))

    def leave(self, member):
        self.retired.add(member)
        p = self.consumers.get(member)
        if p is None or not p.running():
            self.event(f"{member} should leave but is not running")
            return
        self.faults["consumer_leave"] += 1
        self.event(f"FAULT {member} leaves: SIGTERM")
        self.stop(p, STOP_LIMIT)

    def stop(self, p, limit):
        """SIGTERM and wait; a process that ignores it or exits non-zero is a stop failure."""
        p.signal(signal.SIGTERM)
        t = time.monotonic()
        outage = set(self.down)  # a service down while it drains may keep it from storing in time
        while p.running() and time.monotonic() - t < limit:
            time.sleep(0.2)
            self.tick()
            outage |= self.down
        code = p.popen.poll()
        if code is None:
            self.stop_failures.append((p.name, f"still running {limit} s after SIGTERM (then SIGKILLed)", p.logfile, p.tail()))
            self.event(f"STOP FAILURE: {p.name} (pid {p.pid}) still running {limit} s after SIGTERM; SIGKILL\n{p.tail()}")
            p.signal(signal.SIGKILL)
            p.wait(10)
        elif code == 1 and outage and "were not stored before the grace period ended" in p.tail():
            # The promise during an outage: stop within grace, count what was not stored, exit 1.
            # The group reads those records again; the final check proves none was lost.
            self.reported_unstored.append(p.name)
            self.event(f"{p.name} stopped during a {'/'.join(sorted(outage))} outage: exit 1, "
                       f"unstored records reported ({time.monotonic() - t:.1f} s after SIGTERM)")
        elif code != 0:
            self.stop_failures.append((p.name, f"exited {code} after SIGTERM", p.logfile, p.tail()))
            self.event(f"STOP FAILURE: {p.name} exited {code} after SIGTERM\n{p.tail()}")
        else:
            self.event(f"{p.name} stopped (exit 0, {time.monotonic() - t:.1f} s after SIGTERM)")
        return code

    # ---------------------------------------------------------------- the run

    def run(self):
        seconds = self.args.minutes * 60
        plan = self.plan(seconds)
        (self.dir / "plan.txt").write_text("".join(f"{at:7.1f} s  {KIND_NAMES[k]}\n" for at, k in plan))
        log("fault plan: " + ", ".join(f"{KIND_NAMES[k]} @{at:.0f}s" for at, k in plan))
        self.t0 = time.monotonic()
        self.producer_start = time.time()
        self.producer = self.spawn("producer", ["producer", "-c", str(self.producer_config), "--grace", f"{PRODUCER_GRACE}s"])
        self.event(f"started producer (pid {self.producer.pid})")
        self.wait(3)  # the producer's first results create the topic before anyone subscribes
        for member in ("consumer-a", "consumer-b"):
            self.start_consumer(member)
        next_progress = time.monotonic() + 30
        for at, kind in plan:
            while time.monotonic() < self.t0 + at and not self.producer_died:
                self.wait(min(1.0, self.t0 + at - time.monotonic()))
                if time.monotonic() >= next_progress:
                    self.progress()
                    next_progress += 30
            if self.producer_died:
                break
            self.inject(kind)
        while time.monotonic() < self.t0 + seconds and not self.producer_died:
            self.wait(min(1.0, self.t0 + seconds - time.monotonic()))
            if time.monotonic() >= next_progress:
                self.progress()
                next_progress += 30
        self.finish()

    def finish(self):
        # Joined consumers leave now if their time has not come; killed ones are not restarted.
        self.final = True
        for _, action, member in [e for e in self.pending if e[1] == "leave"]:
            self.leave(member)
        self.pending = []
        for svc in sorted(self.down):
            self.services(f"start-{svc}")
            self.down.discard(svc)
        self.producer_stop = time.time()
        if self.producer.running():
            self.event("stopping the producer: SIGTERM")
            # None when it had to be SIGKILLed.
            self.producer_code = self.stop(self.producer, PRODUCER_GRACE + STOP_LIMIT)
        else:
            self.producer_code = self.producer.popen.returncode
        text = Path(self.producer.logfile).read_text(errors="replace")
        stopped = [l for l in text.splitlines() if "producer stopped" in l]
        self.counts = {k: last_count(stopped[-1], k) if stopped else None for k in ("slots", "published", "failed", "missed", "abandoned")}
        self.event(f"producer exit {self.producer_code}; logged " +
                   " ".join(f"{k}={v}" for k, v in self.counts.items()))
        for member, p in sorted(self.consumers.items()):
            if p.running():
                self.event(f"stopping {member}: SIGTERM")
                self.stop(p, STOP_LIMIT)
        self.tick()
        drainer = self.spawn("drainer", ["consumer", "-c", str(self.config), "--exit-when-idle", DRAIN_IDLE])
        drainer.asked = "drain"  # it is meant to exit by itself
        self.event(f"draining: consumer --exit-when-idle {DRAIN_IDLE} (pid {drainer.pid})")
        t = time.monotonic()
        code = drainer.wait(DRAIN_LIMIT)
        if code is None:
            self.stop_failures.append(("drainer", f"--exit-when-idle {DRAIN_IDLE} did not exit within {DRAIN_LIMIT} s",
                                       drainer.logfile, drainer.tail()))
            self.event(f"STOP FAILURE: the drainer did not exit within {DRAIN_LIMIT} s; SIGTERM")
            self.stop(drainer, STOP_LIMIT)
        elif code == 1 and outage and "were not stored before the grace period ended" in p.tail():
            # The promise during an outage: stop within grace, count what was not stored, exit 1.
            # The group reads those records again; the final check proves none was lost.
            self.reported_unstored.append(p.name)
            self.event(f"{p.name} stopped during a {'/'.join(sorted(outage))} outage: exit 1, "
                       f"unstored records reported ({time.monotonic() - t:.1f} s after SIGTERM)")
        elif code != 0:
            self.stop_failures.append(("drainer", f"exited {code}", drainer.logfile, drainer.tail()))
            self.event(f"STOP FAILURE: the drainer exited {code}\n{drainer.tail()}")
        else:
            self.event(f"drained in {time.monotonic() - t:.1f} s; stored={last_count(Path(drainer.logfile).read_text(), 'stored')}")
        drainer.reported = True
        self.tick()

    # ---------------------------------------------------------------- the verdict

    def verify(self):
        intervals = {name: interval * 1_000_000 for name, _, interval, _ in self.sites}
        rows = collections.defaultdict(list)
        out = self.psql("SELECT site_id, region, (extract(epoch FROM scheduled_at) * 1000000)::bigint, status, "
                        "(extract(epoch FROM missed_since) * 1000000)::bigint, missed_slots "
                        "FROM check_results ORDER BY site_id, region, scheduled_at", db=True, timeout=600)
        total = 0
        for line in out.splitlines():
            site, region, us, status, since, carried = line.split("|")
            # A run of missed slots carried on a row counts as one MISSED row per slot.
            if since and carried and site in intervals:
                for k in range(int(carried)):
                    rows[(site, region)].append((int(since) + k * intervals[site], "MISSED"))
                    total += 1
            rows[(site, region)].append((int(us), status))
            total += 1
        lost = dup = off_grid = expected = missed_rows = 0
        gaps, incomplete, strangers = [], [], []
        recomputed = {}
        want_incidents = set()
        start_us, stop_us = int(self.producer_start * 1e6), int(self.producer_stop * 1e6)
        seen_sites = set()
        for (site, region), rs in sorted(rows.items()):
            step = intervals.get(site)
            if step is None or region != "soak":
                strangers.append(f"{site}/{region}: {len(rs)} rows")
                continue
            seen_sites.add(site)
            per_slot = collections.Counter(us for us, _ in rs)
            dup += sum(n - 1 for n in per_slot.values())
            # A site's slots sit at phase + k × interval: the phase is the residue most slots share.
            phase = collections.Counter(us % step for us in per_slot).most_common(1)[0][0]
            for us in sorted(u for u in per_slot if u % step != phase):
                off_grid += 1
                gaps.append(f"{site}: slot {fmt_us(us)} is off the site's {step // 1_000_000} s grid")
            slots = sorted(u for u in per_slot if u % step == phase)
            expected += (slots[-1] - slots[0]) // step + 1
            for a, b in zip(slots, slots[1:]):
                if b - a > step:
                    lost += (b - a) // step - 1
                    gaps.append(f"{site}: {(b - a) // step - 1} slot(s) missing between {fmt_us(a)} and {fmt_us(b)}")
            if slots[0] > start_us + step + START_SLACK * 1_000_000:
                incomplete.append(f"{site}: first slot {fmt_us(slots[0])}, {(slots[0] - start_us) / 1e6:.1f} s after the producer started")
            if slots[-1] < stop_us - step - END_SLACK * 1_000_000:
                incomplete.append(f"{site}: last slot {fmt_us(slots[-1])}, {(stop_us - slots[-1]) / 1e6:.1f} s before the producer's SIGTERM")
            # The latest status as the history says it should be.
            dedup = {}
            for us, status in rs:
                dedup.setdefault(us, status)
            missed_rows += sum(1 for s in dedup.values() if s == "MISSED")
            checked = [(us, s) for us, s in sorted(dedup.items()) if s != "MISSED"]
            if checked:
                newest_us, newest = checked[-1]
                run = 0
                for us, s in reversed(checked):
                    if s != newest:
                        break
                    run, since = run + 1, us
                recomputed[(site, region)] = (newest, newest_us, run if newest == "FAILURE" else 0, since)
            for inc in incidents_of(checked, step):
                # One region: the site-wide incident is the region's, as the quorum of one agrees.
                want_incidents.update({(site, region) + inc, (site, "") + inc})
        for name, _, _, _ in self.sites:
            if name not in seen_sites:
                incomplete.append(f"{name}: no rows at all")
        stored = {}
        for line in self.psql("SELECT site_id, region, status, (extract(epoch FROM scheduled_at) * 1000000)::bigint, "
                              "consecutive_failures, (extract(epoch FROM status_since) * 1000000)::bigint FROM site_status",
                              db=True).splitlines():
            site, region, status, at, cf, since = line.split("|")
            stored[(site, region)] = (status, int(at), int(cf), int(since))
        mismatched, mismatch_fields, mismatch_examples = 0, collections.Counter(), []
        for key in sorted(set(stored) | set(recomputed)):
            want, got = recomputed.get(key), stored.get(key)
            if want == got:
                continue
            mismatched += 1
            if want is None or got is None:
                field = "row missing" if got is None else "row without checked history"
                mismatch_fields[field] += 1
                detail = field
            else:
                names = ("status", "scheduled_at", "consecutive_failures", "status_since")
                diffs = [n for n, a, b in zip(names, want, got) if a != b]
                mismatch_fields.update(diffs)
                detail = ", ".join(f"{n} stored {show(n, got[i])} vs history {show(n, want[i])}"
                                   for i, n in enumerate(names) if n in diffs)
            mismatch_examples.append(f"{key[0]}: {detail}")
        dead = int(self.psql("SELECT count(*) FROM dead_letters", db=True).strip())
        # Sites whose results were stored out of slot order (a producer re-sent records after a
        # broker outage): a result whose slot was judged before it came is history only (the
        # README's rule), which the history alone cannot tell. Such a late result can change the
        # failed-check count, the end or the start of an incident, so of these sites only the
        # incidents over before their first late result (µs) are compared.
        reordered = {}
        for line in self.psql(
                "SELECT site_id, (extract(epoch FROM min(scheduled_at)) * 1000000)::bigint FROM (SELECT site_id, "
                "scheduled_at, stored_at, min(stored_at) OVER (PARTITION BY site_id, region ORDER BY scheduled_at "
                "ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) AS later FROM check_results) t "
                "WHERE stored_at > later GROUP BY site_id", db=True, timeout=600).splitlines():
            site, first_late = line.split("|")
            reordered[site] = int(first_late)
        inc = self.check_incidents(want_incidents, reordered)
        return {
            **inc,
            "rows": total, "expected": expected, "lost": lost, "dup": dup, "off_grid": off_grid, "gaps": gaps,
            "incomplete": incomplete, "strangers": strangers, "missed_rows": missed_rows, "dead_letters": dead,
            "mismatched": mismatched, "mismatch_fields": mismatch_fields, "mismatch_examples": mismatch_examples,
            "sites_with_status": len(stored),
        }

    def check_incidents(self, want, reordered):
        """The incidents table against the history's own (the consumer derived them batch by batch,
        through SIGKILLs and replays), and the outbox: one event per state change, by its id. Of the
        `reordered` sites (site → its first late result), those over before it."""
        def plain(incidents):
            return {(site, region, start, end, failed) for site, region, start, end, failed in incidents
                    if site not in reordered or (end is not None and end < reordered[site])}
        got = set()
        for line in self.psql("SELECT site_id, coalesce(region, ''), (extract(epoch FROM started_at) * 1000000)::bigint, "
                              "coalesce((extract(epoch FROM ended_at) * 1000000)::bigint, -1), failed_checks "
                              "FROM incidents", db=True).splitlines():
            site, region, start, end, failed = line.split("|")
            got.add((site, region, int(start), None if end == "-1" else int(end), int(failed)))
        events = int(self.psql("SELECT count(*) FROM incident_events", db=True).strip())
        # One event per state change of the incidents stored: an opening, and a closing once ended.
        # (Not the history's: of a site stored out of slot order, a late result is history only,
        # so its incidents may rightly differ from the history's; those of every other site are
        # compared with the history above.)
        changes = int(self.psql("SELECT count(*) + count(ended_at) FROM incidents", db=True).strip())
        orphans = int(self.psql(
            "SELECT count(*) FROM incidents i WHERE NOT EXISTS (SELECT 1 FROM incident_events e "
            "WHERE e.incident_id = i.incident_id AND e.kind = 'OPENED') OR (i.ended_at IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM incident_events e WHERE e.incident_id = i.incident_id AND e.kind = 'CLOSED'))",
            db=True).strip())
        unpublished = int(self.psql("SELECT count(*) FROM incident_events WHERE published_at IS NULL", db=True).strip())
        changes_want = want
        want, got = plain(want), plain(got)
        return {"incidents": len(got), "unpublished_events": unpublished, "incidents_expected": len(changes_want),
                "reordered_sites": len(reordered),
                "incident_diff": sorted(want - got)[:5] + sorted(got - want)[:5],
                "incident_mismatches": len(want ^ got), "events": events,
                "state_changes": changes, "incidents_without_events": orphans}

    def verdict(self, v):
        c = self.counts
        problems = []
        if v["lost"]:
            problems.append(f"{v['lost']} slots lost (gaps in a site's sequence)")
        if v["dup"]:
            problems.append(f"{v['dup']} duplicated rows")
        if v["off_grid"]:
            problems.append(f"{v['off_grid']} slots off their site's grid")
        if v["incomplete"]:
            problems.append(f"{len(v['incomplete'])} site(s) whose slots start late, stop early or are absent")
        if v["strangers"]:
            problems.append(f"rows of sites or regions not in the config: {len(v['strangers'])}")
        if c["published"] is None:
            problems.append("the producer logged no published= count")
        elif c["slots"] is not None and c["slots"] != c["published"]:
            # Every slot the producer took on ends published, failed or abandoned: on a clean stop
            # all of them must have been published.
            problems.append(f"the producer took on {c['slots']} slots but published {c['published']} "
                            f"(failed={c['failed']} abandoned={c['abandoned']})")
        elif v["rows"] != c["published"]:
            problems.append(f"{v['rows']} rows stored but the producer reported {c['published']} published "
                            f"({v['rows'] - c['published']:+d})")
        if v["mismatched"]:
            problems.append(f"{v['mismatched']} site(s) whose site_status disagrees with their history")
        if v["incident_mismatches"]:
            problems.append(f"{v['incident_mismatches']} incident(s) differ from those the history gives: "
                            f"{v['incident_diff']}")
        if v["events"] != v["state_changes"]:
            # (event_id is the outbox's key: a repeated derivation could only be refused there,
            # so the count against the stored incidents' state changes is what proves each once.)
            problems.append(f"{v['events']} events for {v['state_changes']} incident state changes")
        if v["unpublished_events"]:
            problems.append(f"{v['unpublished_events']} event(s) still unpublished after the consumers drained")
        if v["incidents_without_events"]:
            problems.append(f"{v['incidents_without_events']} incident(s) without their events")
        if v["dead_letters"]:
            problems.append(f"{v['dead_letters']} dead letters")
        if self.producer_code != 0:
            problems.append(f"producer exit code {self.producer_code} (expected 0)")
        if self.unexpected:
            problems.append(f"{len(self.unexpected)} process(es) exited without being asked")
        if self.stop_failures:
            problems.append(f"{len(self.stop_failures)} process(es) did not stop cleanly when asked")
        return problems

    def summary(self, v, problems):
        c = self.counts
        dur = (self.producer_stop - self.producer_start) / 60
        lines = [
            f"soak {'PASSED' if not problems else 'FAILED'}: seed {self.seed}, producer ran {dur:.1f} min",
            f"  sites: {len(self.sites)} ({OK_SITES} ok every 1 s; 2 failing, 5 flaky (3 at 1 s, 2 at 2 s), 1 slow, 1 hanging)",
            f"  slots expected (first..last slot per site): {v['expected']}",
            f"  rows stored: {v['rows']} (MISSED: {v['missed_rows']}); site_status rows: {v['sites_with_status']}",
            f"  producer: exit {self.producer_code}, slots={c['slots']} published={c['published']} failed={c['failed']} missed={c['missed']} abandoned={c['abandoned']}",
            f"  lost: {v['lost']}  duplicated: {v['dup']}  off-grid: {v['off_grid']}  incomplete sites: {len(v['incomplete'])}  "
            f"dead letters: {v['dead_letters']}",
            f"  incidents: {v['incidents']} (history gives {v['incidents_expected']}; {v['reordered_sites']} site(s) stored "
            f"out of slot order, compared only up to their first late result); events: {v['events']} "
            f"for {v['state_changes']} state changes, "
            f"{v['unpublished_events']} unpublished",
            f"  status mismatches: {v['mismatched']}" + (f" ({dict(v['mismatch_fields'])})" if v["mismatched"] else ""),
            f"  unexpected exits: {len(self.unexpected)}  stop failures: {len(self.stop_failures)}  "
            f"stopped in an outage with unstored records reported (exit 1): {len(self.reported_unstored)}",
            "  faults: " + (", ".join(f"{KIND_NAMES[k]} ×{self.faults[k]}" for k in KIND_NAMES if self.faults[k]) or "none"),
            f"  target requests: {dict(self.target.counts)}",
        ]
        for title, items in (("gaps", v["gaps"]), ("incomplete sites", v["incomplete"]), ("strangers", v["strangers"]),
                             ("status mismatches", v["mismatch_examples"])):
            if items:
                lines.append(f"  {title} (first 10 of {len(items)}):")
                lines += [f"    {x}" for x in items[:10]]
        for title, items in (("unexpected exits", [(f"exited {code}", f, t) for _, code, f, t in self.unexpected]),
                             ("stop failures", [(what, f, t) for _, what, f, t in self.stop_failures])):
            groups = collections.defaultdict(list)
            for what, logfile, tail in items:
                groups[(what, last_words(tail))].append((logfile, tail))
            for (what, words), members in groups.items():
                lines.append(f"  {title}: {len(members)} × {what}, last words: {words}")
                lines.append(f"    logs: {', '.join(Path(f).name for f, _ in members)}; the first one ends:")
                lines.append(members[0][1])
        if problems:
            lines.append("  FAILED: " + "; ".join(problems))
        lines.append(f"  logs: {self.dir}")
        return "\n".join(lines)

    def benchmarks(self, v, problems):
        c = self.counts
        dur = (self.producer_stop - self.producer_start) / 60
        faults = ", ".join(f"{KIND_NAMES[k]} {self.faults[k]}" for k in KIND_NAMES if self.faults[k]) or "none"
        section = "\n".join([
            "## Soak",
            "",
            f"Written by `{self.command()}` (scripts/soak.py) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{os.cpu_count()} cores, {self.build_note}: "
            f"**{'passed' if not problems else 'FAILED'}**" + ("" if not problems else f" ({'; '.join(problems)})") + ".",
            "",
            "| figure | value |",
            "|---|---|",
            f"| duration (producer running) | {dur:.1f} min |",
            f"| seed | {self.seed} |",
            f"| sites | {len(self.sites)}: {OK_SITES} answering 200 every 1 s, 2 failing (500), 5 flaky, 1 slow (0.6 s), 1 hanging (timeout) |",
            f"| slots expected (each site's first to last slot) | {v['expected']:,} |",
            f"| rows stored | {v['rows']:,} (MISSED {v['missed_rows']:,}) |",
            f"| producer published / failed / missed (its log) | {fmt_opt(c['published'])} / {fmt_opt(c['failed'])} / {fmt_opt(c['missed'])} |",
            f"| lost slots | {v['lost']} |",
            f"| duplicated rows | {v['dup']} |",
            f"| site_status mismatches (consecutive_failures, status_since, newest slot) | {v['mismatched']} |",
            f"| unexpected exits / unclean stops (SIGTERM ignored or exit ≠ 0) | {len(self.unexpected)} / {len(self.stop_failures)} |",
            f"| faults injected | {faults} |",
            f"| producer exit code | {self.producer_code} |",
            "",
            "- One `sitemon producer` and two `sitemon consumer`s (one group, 3 partitions, batches of 200) against the "
            "test services and a loopback Python HTTP target; faults at seeded random times: consumer SIGKILL then restart, "
            "`scripts/services stop-kafka`/`start-kafka`, `stop-postgres`/`start-postgres`, a third consumer joining and "
            "leaving with SIGTERM. At the end: SIGTERM to the producer and the consumers, then "
            f"`sitemon consumer --exit-when-idle {DRAIN_IDLE}` drains the topic.",
            "- Lost = slots missing inside each site's unbroken run of `interval` steps in `check_results`; duplicated = "
            "rows beyond one per (site, region, scheduled_at); rows stored must equal the producer's `published=`. "
            "site_status is compared with a recomputation from the history (trailing run of the newest non-MISSED status).",
            "",
        ])
        path = ROOT / "BENCHMARKS.md"
        text = path.read_text() if path.exists() else "# sitemon benchmarks\n"
        path.write_text(replace_section(text, "Soak", section))
        log(f"wrote the Soak section of {path}")

    def command(self):
        if os.environ.get("MAKELEVEL"):
            return "make soak" + (f" SOAK_MINUTES={self.args.minutes:g}" if self.args.minutes != 10 else "")
        return "scripts/soak.py " + " ".join(sys.argv[1:])

    # ---------------------------------------------------------------- cleanup

    def cleanup(self, keep_db):
        for p in self.procs:
            if p.running():
                p.kill_group()
        for svc in sorted(self.down):
            try:
                log(f"starting {svc} again")
                self.services(f"start-{svc}")
            except Exception as e:
                log(f"could not start {svc}: {e}")
        if self.target:
            self.target.stop()
        if self.db_name and not keep_db:
            try:
                self.psql(f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)")
            except Exception as e:
                log(f"could not drop {self.db_name}: {e}")
        elif self.db_name:
            log(f"kept the database: {self.db_url}")
        bin_copy = self.dir / "sitemon"
        if bin_copy.exists():
            bin_copy.unlink()
        self.events_log.close()


def replace_section(text, title, section):
    """`text` with its `## title` section (up to the next `## ` heading) replaced by `section`, or
    `section` appended at the end."""
    m = re.search(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", text, re.S | re.M)
    section = section.rstrip("\n") + "\n"
    if m:
        rest = text[m.end():]
        return text[:m.start()] + section + ("\n" + rest if rest else "")
    return text.rstrip("\n") + "\n\n" + section


def last_words(tail):
    """The line of a log tail that says why the process ended, without its timestamp."""
    lines = [l.removeprefix("    | ") for l in tail.splitlines()]
    errors = [l for l in lines if l.startswith("error:")]
    line = errors[-1] if errors else (lines[-1] if lines else "(empty log)")
    return re.sub(r"^\d{4}-\d\d-\d\dT[\d:.]+Z\s+", "", line)


def fmt_us(us):
    return time.strftime("%H:%M:%S", time.gmtime(us / 1e6)) + f".{us % 1_000_000:06d}"


def fmt_opt(x):
    return "?" if x is None else f"{x:,}"


def show(field, value):
    return fmt_us(value) if field in ("scheduled_at", "status_since") else str(value)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "10")),
                   help="how long the producer runs under faults (default $SOAK_MINUTES or 10)")
    p.add_argument("--seed", type=int, help="seed of the fault plan (default: random, printed)")
    p.add_argument("--write-benchmarks", action="store_true", help="replace the Soak section of BENCHMARKS.md")
    p.add_argument("--profile", choices=("release", "debug"), default="release", help="which build to soak")
    p.add_argument("--bin", help="use this sitemon binary instead of building one")
    p.add_argument("--dir", help="where run directories go (default $SITEMON_SOAK_DIR or /tmp/sitemon-soak)")
    p.add_argument("--keep-db", action="store_true", help="keep the database even when the soak passes")
    args = p.parse_args()
    if args.minutes < 1:
        p.error("--minutes must be at least 1")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    soak = Soak(args)
    problems, ok = None, False
    try:
        soak.setup()
        soak.run()
        v = soak.verify()
        problems = soak.verdict(v)
        text = soak.summary(v, problems)
        (soak.dir / "summary.txt").write_text(text + "\n")
        print(text, flush=True)
        if args.write_benchmarks:
            soak.benchmarks(v, problems)
        ok = not problems
    except InfraError as e:
        log(f"could not run the soak: {e}; logs in {soak.dir}")
        return 2
    except Interrupted:
        log(f"interrupted; logs in {soak.dir}")
        return 130
    except Exception:
        import traceback
        traceback.print_exc()
        log(f"the soak script failed (a bug in it, or psql could not reach the database); logs in {soak.dir}")
        return 2
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        soak.cleanup(keep_db=args.keep_db or not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
