"""What the benchmarks share: databases of their own, the app served by gunicorn exactly as in
production, peak RSS and CPU read from /proc, and a cleanup that runs whatever happens.

Everything is local: PostgreSQL and Redis on 127.0.0.1, gunicorn bound to 127.0.0.1 only.
"""

import contextlib
import datetime as dt
import json
import math
import os
import platform
import re
import runpy
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
BIN = Path(sys.executable).parent
BENCH_INI = BENCH / "bench.ini"
GUNICORN_CONF = REPO / "gunicorn.conf.py"

#: where the benchmarks create (and drop) their databases
SERVER_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+psycopg://root@127.0.0.1:5432/postgres"
)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def log(message):
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def run_id():
    return dt.datetime.now().strftime("%Y%m%d%H%M%S") + uuid.uuid4().hex[:4]


def raise_on_termination():
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt, so cleanups run on those too."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def raise_open_file_limit():
    """Lift the soft limit on open files to the hard one, for this process and its children:
    wrk with 1,000 connections (and gunicorn accepting them) needs more than the usual 1,024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- databases ------------------------------------------------------------------------------------


class Databases:
    """Create databases on the local server; drop every one of them on close."""

    def __init__(self, server_url=SERVER_URL, keep=False):
        self.keep = keep
        self.server = sa.make_url(server_url)
        self.admin = sa.create_engine(
            self.server.set(database="postgres"),
            isolation_level="AUTOCOMMIT",
            poolclass=sa.pool.NullPool,
        )
        self.names = []

    def create(self, name):
        with self.admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.names.append(name)
        return self.url(name)

    def url(self, name):
        return self.server.set(database=name).render_as_string(hide_password=False)

    def drop(self, name):
        with self.admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.names:
            self.names.remove(name)

    def close(self):
        if self.keep:
            log(f"keeping the databases {', '.join(self.names)}")
            self.names = []
        for name in list(self.names):
            try:
                self.drop(name)
            except Exception as error:  # keep cleaning up the rest
                log(f"could not drop database {name}: {error}")
        self.admin.dispose()

    def postgres_version(self):
        with self.admin.connect() as connection:
            return connection.scalar(sa.text("SHOW server_version"))


def libpq_args(url):
    """pgbench's connection options for a SQLAlchemy URL."""
    url = sa.make_url(url)
    args = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    if url.username:
        args += ["-U", url.username]
    return args, url.database


# --- configuration --------------------------------------------------------------------------------


def scenario_ini(directory, name, **settings):
    """An ini of one scenario: bench.ini (thus production.ini) with ``settings`` on top."""
    lines = ["[app:main]", f"use = config:{BENCH_INI}#main"]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    text = BENCH_INI.read_text()
    # The server and logging sections, as in bench.ini.
    rest = text[text.index("[server:main]") :]
    path = Path(directory) / f"{name}.ini"
    path.write_text("\n".join(lines) + "\n\n" + rest)
    return path


def app_settings(ini):
    from pyramid.paster import get_appsettings

    return dict(get_appsettings(str(ini)))


def gunicorn_config(env):
    """The settings gunicorn.conf.py gives under ``env`` (its env-var overrides included)."""
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        config = runpy.run_path(str(GUNICORN_CONF))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {
        key: config.get(key)
        for key in (
            "workers",
            "worker_class",
            "threads",
            "timeout",
            "keepalive",
            "graceful_timeout",
        )
    }


def migrate(ini, database_url):
    """``initialize_ticketing_db`` on the bench database, as an operator would run it."""
    env = {**os.environ, "DATABASE_URL": database_url}
    done = subprocess.run(
        [str(BIN / "initialize_ticketing_db"), str(ini)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"initialize_ticketing_db failed:\n{done.stdout}\n{done.stderr}")


def clear_redis_keys(url, pattern):
    """Delete the Redis keys a run left (its job queues), matching ``pattern`` only."""
    if not url or not url.startswith(("redis://", "rediss://")):
        return 0
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)
    except redis.RedisError as error:
        log(f"could not clear Redis keys {pattern}: {error}")
        return 0
    finally:
        client.close()


# --- /proc ------------------------------------------------------------------------------------


def children(pid):
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(child) for child in text.split()]
    except (OSError, ValueError):
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
        return found


def status_kb(pid, field):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def process_cpu_seconds(pid):
    """User + system CPU of a process (all its threads), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu():
    """(busy, total) CPU seconds of the whole machine since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])
    idle = fields[3] + fields[4]
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def wait_for_quiet(timeout, threshold=0.12, window=1.0):
    """Wait (up to ``timeout`` seconds) until the machine is nearly idle, so that another job's
    load does not end up in the figures; True if it got quiet."""
    deadline = time.monotonic() + timeout
    cores = os.cpu_count() or 1
    while True:
        before = machine_cpu()[0]
        time.sleep(window)
        busy = (machine_cpu()[0] - before) / (window * cores)
        if busy < threshold:
            return True
        if time.monotonic() > deadline:
            log(f"the machine is still {busy:.0%} busy with something else; measuring anyway")
            return False


def postgres_cpu_seconds():
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += process_cpu_seconds(int(entry.name))
            except OSError:
                continue
    return total


def machine_info(databases):
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_kb = status_like(Path("/proc/meminfo"), "MemTotal")
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1) if memory_kb else None,
        "kernel": platform.release(),
        "os": platform.freedesktop_os_release().get("PRETTY_NAME", platform.system())
        if hasattr(platform, "freedesktop_os_release")
        else platform.system(),
        "python": platform.python_version(),
        "postgresql": databases.postgres_version(),
    }


def status_like(path, field):
    for line in path.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


class RssSampler(threading.Thread):
    """Samples the RSS of a process tree every ``interval`` seconds; ``finish()`` adds each
    process's own high-water mark (VmHWM) so that peaks between samples are not missed."""

    def __init__(self, pids, interval=0.05):
        super().__init__(daemon=True)
        self.pids = pids
        self.interval = interval
        self.stopping = threading.Event()
        self.peak_kb = {}
        self.peak_sum_kb = 0

    def sample(self):
        total = 0
        for pid in self.pids():
            rss = status_kb(pid, "VmRSS")
            if rss is None:
                continue
            total += rss
            self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), rss)
        self.peak_sum_kb = max(self.peak_sum_kb, total)

    def run(self):
        while not self.stopping.wait(self.interval):
            self.sample()

    def finish(self):
        self.sample()
        for pid in self.pids():
            hwm = status_kb(pid, "VmHWM")
            if hwm is not None:
                self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), hwm)
        self.stopping.set()
        self.join(timeout=5)
        return {
            "sum_mb": round(self.peak_sum_kb / 1024, 1),
            "max_mb": round(max(self.peak_kb.values(), default=0) / 1024, 1),
            "per_process_mb": sorted(round(kb / 1024, 1) for kb in self.peak_kb.values()),
        }


# --- the server -----------------------------------------------------------------------------------


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method, url, body=None, timeout=10, headers=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class ProcessGroup:
    """A server process we started in a session of its own (``start_new_session``), with its
    children, writing to ``log_path``."""

    process = None
    log_path = None

    def pids(self):
        if self.process is None or self.process.poll() is not None:
            return []
        return [self.process.pid, *children(self.process.pid)]

    def stop_group(self, first, timeout):
        """``first`` to the process; SIGKILL to its whole group if it has not exited in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(first)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"{type(self).__name__} did not stop in time; killing its process group")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines=40):
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Gunicorn(ProcessGroup):
    """``gunicorn --paste INI`` with the repository's gunicorn.conf.py, bound to 127.0.0.1."""

    def __init__(self, ini, database_url, log_path, env=None):
        self.ini = ini
        self.database_url = database_url
        self.log_path = log_path
        self.port = free_port()
        self.env = {
            **os.environ,
            **(env or {}),
            "DATABASE_URL": database_url,
            "BIND": f"127.0.0.1:{self.port}",
        }
        self.config = gunicorn_config({k: v for k, v in self.env.items() if isinstance(v, str)})
        self.process = None

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=60):
        with open(self.log_path, "ab") as output:
            self.process = subprocess.Popen(
                [str(BIN / "gunicorn"), "--paste", str(self.ini), "--config", str(GUNICORN_CONF)],
                cwd=REPO,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, for the last-resort kill
            )
        deadline = time.monotonic() + timeout
        healthy = 0
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                status, _ = http("GET", f"{self.base}/api/health", timeout=2)
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                status = None
            workers = len(children(self.process.pid))
            healthy = healthy + 1 if status == 200 and workers >= self.config["workers"] else 0
            if healthy >= 3:
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not become healthy:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self):
        """Graceful stop (SIGTERM lets in-flight requests finish)."""
        self.stop_group(signal.SIGTERM, timeout=(self.config.get("graceful_timeout") or 30) + 10)


def stop_process(process, first=signal.SIGINT, timeout=15):
    """Stop a child we started: ``first``, then SIGKILL."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(first)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


# --- profiles -----------------------------------------------------------------------------------


def start_profiler(pid, seconds, output):
    """py-spy (the bench extra) on one process: samples of the thread holding the GIL, i.e. where
    the worker's Python CPU goes. Returns the process, or None when py-spy is not installed."""
    spy = BIN / "py-spy"
    if not spy.exists():
        log("py-spy is not installed (pip install -e '.[bench]'); no profile")
        return None
    return subprocess.Popen(
        [str(spy), "record", "--gil", "--nonblocking", "-r", "200", "-d", str(seconds)]
        + ["-f", "raw", "-o", str(output), "-p", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def summarize_profile(path, top=25):
    """(share of samples, function) for the functions with the most inclusive samples, from
    py-spy's folded stacks; the WSGI and gunicorn plumbing above the view is left out."""
    inclusive = {}
    total = 0
    frame = re.compile(r"^(?P<name>.*?) \((?P<file>[^:]*)(:\d+)?\)$")
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        seen = set()
        for part in stack.split(";"):
            match = frame.match(part)
            name = part if not match else f"{match['name']} ({match['file']})"
            if name not in seen:
                seen.add(name)
                inclusive[name] = inclusive.get(name, 0) + int(count)
    boring = (
        "gunicorn/", "pyramid/", "pyramid_retry", "pyramid_tm", "threading.py", "<module>",
        "concurrent/futures", "state_changes.py", "deprecations.py",
    )  # fmt: skip
    ranked = [
        (round(count / total, 3), name)
        for name, count in sorted(inclusive.items(), key=lambda item: -item[1])
        if not any(word in name for word in boring) and "cornice/service.py" not in name
    ]
    return total, ranked[:top]


# --- numbers --------------------------------------------------------------------------------------


def percentile(values, fraction):
    """Nearest-rank percentile of ``values`` (any order); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def write_results(kind, payload):
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    path = RESULTS / f"{stamp}{'-' + kind if kind else ''}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def temporary_directory(stack, keep=False):
    """A scratch directory for inis, logs and wrk's output; kept (and named) with ``keep``."""
    if keep:
        path = Path(tempfile.mkdtemp(prefix="ticketing-bench-"))
        log(f"keeping the scratch files in {path}")
        return path
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ticketing-bench-")))


def fmt(value, digits=0):
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


SAFE_NAME = re.compile(r"[^a-z0-9_]")


def db_name(*parts):
    return SAFE_NAME.sub("_", "_".join(str(part).lower() for part in parts))[:60]


# --- the job worker and its mail server -----------------------------------------------------------


def huey_key_name(name):
    """``name`` as Huey spells it in its Redis keys (it drops all but letters, digits and _)."""
    return re.sub(r"[^A-Za-z0-9_]", "", name)


class SmtpSink:
    """A local SMTP server that takes every message and keeps none (aiosmtpd's ``Sink``), in a
    process of its own so that its CPU is not the bench's."""

    def __init__(self, log_path):
        self.port = free_port()
        self.log_path = log_path
        self.process = None

    def start(self, timeout=20):
        with open(self.log_path, "ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink"]
                + ["-l", f"127.0.0.1:{self.port}"],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the SMTP sink exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(3) == b"220":
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the SMTP sink did not start")
            time.sleep(0.1)

    def stop(self):
        stop_process(self.process, first=signal.SIGTERM)


class Worker(ProcessGroup):
    """``ticketing_worker INI`` as production runs it: a consumer process per queue."""

    def __init__(self, ini, database_url, log_path):
        self.ini = ini
        self.log_path = log_path
        self.env = {**os.environ, "DATABASE_URL": database_url}
        self.process = None

    def start(self):
        with open(self.log_path, "ab") as output:
            self.process = subprocess.Popen(
                [str(BIN / "ticketing_worker"), str(self.ini)],
                cwd=REPO,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def queue_pid(self, queue):
        """The consumer process of ``queue`` (for a profiler)."""
        for pid in children(self.process.pid):
            try:
                arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if queue.encode() in arguments:
                return pid
        return None

    def cpu_seconds(self):
        return sum(process_cpu_seconds(pid) for pid in self.pids())

    def wait_until_idle(self, timeout=180, cores=0.05, window=1.0):
        """Wait until every consumer has started (importing and bootstrapping the app costs a
        consumer ~1.5 s of CPU, which no order should be charged) and the tree idles."""
        deadline = time.monotonic() + timeout
        while True:
            before = self.cpu_seconds()
            time.sleep(window)
            if (self.cpu_seconds() - before) / window < cores:
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                log("the worker is still busy; measuring anyway")
                return

    def stop(self):
        # SIGINT: each consumer finishes the job in hand, then exits.
        self.stop_group(signal.SIGINT, timeout=30)


def redis_memory(url, pattern):
    """Redis's ``used_memory`` (bytes), and the keys matching ``pattern`` with their bytes
    (``MEMORY USAGE``); None without a Redis URL."""
    if not url or not url.startswith(("redis://", "rediss://")):
        return None
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    try:
        keys = list(client.scan_iter(match=pattern, count=1000))
        return {
            "used_memory": client.info("memory")["used_memory"],
            "keys": len(keys),
            "key_bytes": sum(client.memory_usage(key) or 0 for key in keys),
        }
    finally:
        client.close()
