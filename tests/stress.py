"""Production under stress, with real processes the tests start and kill themselves.

- :class:`PrivatePostgres`: a throw-away PostgreSQL cluster (``initdb`` + ``pg_ctl``, as the
  ``postgres`` user when we are root) in a temporary folder, on a free port: the tests SIGKILL it
  without disturbing the shared server on 5432.
- :class:`PrivateRedis`: ``redis-server --port FREE --save ""``, likewise.
- :class:`Host`: one production host: ``gunicorn --paste`` with the repository's gunicorn.conf.py
  and a ``ticketing_worker``, from an ini that ``use``s production.ini and swaps in only what a
  test must (the mock gateway, whose ledger is a SQLite file every process shares; SMTP to the
  test's aiosmtpd; the private servers).
- :class:`Load`: buyers on threads, each purchase a new connection with an idempotency key and a
  client address of its own (``X-Forwarded-For``, believed from 127.0.0.1), some orders cancelled;
  every answer (or failure to get one) is recorded with its timing.
- :func:`settle` and :func:`books`: what the scheduled jobs would do after the storm (settle stale
  orders, sweep the outbox), then every invariant read back from the database, the ledger and the
  mailbox.

Everything stops by itself: bounded loops, client timeouts, and servers stopped on the way out.
"""

import contextlib
import dataclasses
import datetime as dt
import http.client
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
import transaction
from pyramid.paster import get_appsettings

from ticketing import main
from ticketing.domain import orders, outbox
from ticketing.interfaces import IPaymentGateway
from ticketing.models import get_tm_session
from ticketing.models.types import utcnow

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
API_KEY = "stress-organiser-key"
STARTUP_TIMEOUT = 60

#: environment variables that would win over the test's ini (ticketing.settings)
OVERRIDING_ENVIRONMENT = (
    "DATABASE_URL",
    "TICKETING_API_KEYS",
    "TICKETING_TICKET_SECRET",
    "RATELIMIT_STORAGE_URL",
    "HUEY_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "MAIL_HOST",
    "MAIL_PORT",
    "MAIL_USERNAME",
    "MAIL_PASSWORD",
    "MAIL_DEFAULT_SENDER",
)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def clean_environment(**extra):
    environ = {k: v for k, v in os.environ.items() if k not in OVERRIDING_ENVIRONMENT}
    return {**environ, **extra}


def stop(process, first=signal.SIGTERM, timeout=30):
    if process is None or process.poll() is not None:
        return
    process.send_signal(first)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


# --- private servers ------------------------------------------------------------------------------


def _postgres_binary(name):
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not candidates:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return str(candidates[-1])


class PrivatePostgres:
    """A PostgreSQL cluster of our own, which a test may SIGKILL and start again."""

    def __init__(self):
        self.directory = Path(tempfile.mkdtemp(prefix="ticketing-pg-"))
        self.port = free_port()
        # PostgreSQL refuses to run as root: as root, the cluster is the postgres user's.
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            os.chown(self.directory, pwd.getpwnam(self.user).pw_uid, -1)
        self._run(
            _postgres_binary("initdb"), "-D", self.data, "-A", "trust", "-U", "root", "--no-sync"
        )

    @property
    def data(self):
        return str(self.directory / "data")

    def url(self, database="postgres"):
        return f"postgresql+psycopg://root@127.0.0.1:{self.port}/{database}"

    def _run(self, *command):
        if self.user:
            command = ["su", self.user, "-c", " ".join(_quoted(part) for part in command)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{command} failed:\n{done.stdout}\n{done.stderr}")

    def start(self):
        """Start (after a SIGKILL: crash recovery first) and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        self._run(
            _postgres_binary("pg_ctl"),
            "-D", self.data, "-w", "-t", "60", "-l", str(self.directory / "log"),
            "-o", options, "start",
        )  # fmt: skip

    def kill(self):
        """SIGKILL the postmaster, as a crashed host would leave it; its backends follow."""
        pid = int(Path(self.data, "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not _alive(pid), 10, "the postmaster to die")

    def create_database(self, name):
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)

    def close(self):
        with contextlib.suppress(RuntimeError):
            self._run(_postgres_binary("pg_ctl"), "-D", self.data, "-m", "immediate", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)


def _quoted(part):
    return "'" + str(part).replace("'", "'\\''") + "'"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (a child of ours not reaped yet) is dead too.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


class PrivateRedis:
    """``redis-server`` of our own, in memory only, which a test may SIGKILL and start again."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.port = free_port()
        self.process = None

    def url(self, db=0):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self):
        log = open(self.directory / f"redis-{self.port}.log", "ab")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for(self._answers, 10, "redis-server to start")

    def _answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def close(self):
        stop(self.process, timeout=10)


# --- one production host --------------------------------------------------------------------------


def stress_ini(directory, name, *, database_url, redis, smtp_port, ledger_path, **settings):
    """production.ini with the mock gateway, SMTP to the test's server and the private servers."""
    production = REPO / "production.ini"
    values = {
        "sqlalchemy.url": database_url,
        "ticketing.api_keys": API_KEY,
        "ticketing.ticket_secret": "stress-ticket-secret",
        "ticketing.payments": "mock",
        "payments.mock.ledger_url": f"sqlite:///{ledger_path}",
        "mail.host": "127.0.0.1",
        "mail.port": smtp_port,
        "mail.tls": "false",
        "mail.default_sender": "Tickets <tickets@example.test>",
        "huey.url": redis.url(0),
        "huey.name": f"stress-{name}",
        "huey.email_retry_delay_seconds": 1,
        "ratelimit.storage_url": redis.url(1),
        # Each buyer of the load has an address of its own, vouched for by "our proxy".
        "ratelimit.trusted_proxies": "127.0.0.1",
        **settings,
    }
    text = production.read_text()
    rest = text[text.index("[pshell]") :]
    path = Path(directory) / f"{name}.ini"
    path.write_text(
        f"[app:main]\nuse = config:{production}#main\n"
        + "".join(f"{key} = {value}\n" for key, value in values.items())
        + "\n"
        + rest
    )
    return path


class Host:
    """gunicorn (as in production: gunicorn.conf.py, 2 workers) and a job worker, on one ini."""

    def __init__(self, ini, directory, *, threads=16, worker_queues=None):
        self.ini = Path(ini)
        self.directory = Path(directory)
        self.port = free_port()
        self.threads = threads
        self.worker_queues = worker_queues
        self.server = None
        self.worker = None

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def server_log(self):
        return self.directory / f"{self.ini.stem}-{self.port}-gunicorn.log"

    def start(self):
        self.start_server()
        self.start_worker()
        return self

    def start_server(self):
        environ = clean_environment(
            BIND=f"127.0.0.1:{self.port}", WEB_CONCURRENCY="2", GUNICORN_THREADS=str(self.threads)
        )
        with open(self.server_log, "ab") as log:
            self.server = subprocess.Popen(
                [
                    str(BIN / "gunicorn"),
                    "--paste",
                    str(self.ini),
                    "-c",
                    str(REPO / "gunicorn.conf.py"),
                ],
                cwd=REPO,
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._healthy, STARTUP_TIMEOUT, f"gunicorn on {self.port}")

    def _healthy(self):
        if self.server.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{self.server_log.read_text()[-3000:]}")
        status, _, _, _ = request("GET", f"{self.base}/api/health", timeout=2)
        return status == 200

    def start_worker(self):
        command = [str(BIN / "ticketing_worker"), str(self.ini)]
        if self.worker_queues:
            command += ["--queue", self.worker_queues]
        with open(self.directory / f"{self.ini.stem}-{self.port}-worker.log", "ab") as log:
            self.worker = subprocess.Popen(
                command, cwd=REPO, env=clean_environment(), stdout=log, stderr=subprocess.STDOUT
            )

    def close(self):
        stop(self.server)
        stop(self.worker)

    def unhandled_errors(self):
        """Errors that reached the last line of defence (a 500): none may, whatever crashes."""
        return self.server_log.read_text(errors="replace").count("unhandled error")


# --- the load -------------------------------------------------------------------------------------


def request(method, url, body=None, headers=None, timeout=5):
    """One request on a new connection: (status, json body, headers, error kind) where error
    kind is None, ``refused``, ``reset`` (the connection died before an answer) or ``timeout``."""
    match = re.match(r"http://([^:/]+):(\d+)(.*)", url)
    host, port, path = match.group(1), int(match.group(2)), match.group(3)
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    payload = None if body is None else json.dumps(body).encode()
    sent_headers = {"Connection": "close", **(headers or {})}
    if payload is not None:
        sent_headers["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=payload, headers=sent_headers)
        response = connection.getresponse()
        data = response.read()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = {"raw": data.decode(errors="replace")}
        return response.status, parsed, dict(response.headers), None
    except ConnectionRefusedError:
        return None, None, {}, "refused"
    except TimeoutError:
        return None, None, {}, "timeout"
    except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
        return None, None, {}, "reset"
    finally:
        connection.close()


@dataclasses.dataclass
class Answer:
    kind: str  # purchase or cancel
    started: float
    ended: float
    status: int | None
    code: str | None
    error: str | None
    retry_after: str | None = None
    body: object = None
    base: str | None = None

    @property
    def seconds(self):
        return self.ended - self.started


class Load:
    """Buyers on ``buyers`` threads, spread over ``bases`` in turn, until :meth:`stop`.

    Each purchase buys one ticket of ``event_id`` with an idempotency key and a client address of
    its own; every ``cancel_every``-th confirmed order of a buyer is cancelled. ``pause`` seconds
    between a buyer's requests keep the load steady rather than flat out.
    """

    def __init__(self, bases, event_id, *, buyers=6, pause=0.05, cancel_every=4, timeout=5):
        self.bases = list(bases)
        self.event_id = event_id
        self.buyers = buyers
        self.pause = pause
        self.cancel_every = cancel_every
        self.timeout = timeout
        self.answers = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads = []
        self.run = uuid.uuid4().hex[:8]

    def __enter__(self):
        for number in range(self.buyers):
            thread = threading.Thread(target=self._buyer, args=(number,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def stop(self):
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 10)

    def _record(self, answer):
        with self._lock:
            self.answers.append(answer)

    def _buyer(self, number):
        chooser = random.Random(number)
        bought = 0
        sequence = 0
        while not self._stopping.is_set():
            sequence += 1
            base = self.bases[(number + sequence) % len(self.bases)]
            key = f"{self.run}-{number}-{sequence}"
            address = f"10.{number}.{sequence // 250 % 250}.{sequence % 250 + 1}"
            headers = {"X-Forwarded-For": address, "X-Request-Id": key}
            body = {
                "order": {
                    "customer_email": f"buyer{number}@example.com",
                    "customer_name": f"Buyer {number}",
                    "quantity": 1,
                    "idempotency_key": key,
                }
            }
            answer = self._send(
                "purchase", "POST", f"{base}/api/events/{self.event_id}/purchase", body, headers
            )
            answer.base = base
            if answer.status == 201:
                bought += 1
                if bought % self.cancel_every == 0:
                    url = f"{base}/api/orders/{answer.body['data']['id']}/cancel"
                    self._cancel(url, headers)
            self._stopping.wait(self.pause * (0.5 + chooser.random()))

    def _cancel(self, url, headers):
        """Cancel, and, as a client told 503 (or cut off) does, retry after Retry-After until
        the answer is final: a refund the gateway made before the database went away is then
        recorded on the retry (same refund key, same refund), not left beside a confirmed order.
        """
        for _ in range(20):
            answer = self._send("cancel", "POST", url, None, headers)
            if answer.status is not None and answer.status < 500:
                return
            time.sleep(float(answer.retry_after or 1))

    def _send(self, kind, method, url, body, headers):
        started = time.monotonic()
        status, parsed, response_headers, error = request(
            method, url, body, headers, timeout=self.timeout
        )
        code = parsed.get("code") if isinstance(parsed, dict) else None
        answer = Answer(
            kind,
            started,
            time.monotonic(),
            status,
            code,
            error,
            retry_after=response_headers.get("Retry-After"),
            body=parsed,
        )
        self._record(answer)
        return answer

    def between(self, start, end, kind=None):
        """Answers to requests sent from ``start`` to ``end`` (monotonic seconds)."""
        return [
            a for a in self.answers if start <= a.started < end and (kind is None or a.kind == kind)
        ]

    def summary(self, answers=None):
        answers = self.answers if answers is None else answers
        return Counter(
            f"{a.kind} {a.status or a.error}" + (f" {a.code}" if a.code and a.status != 201 else "")
            for a in answers
        )


# --- after the storm: settle, sweep, check the books --------------------------------------------


class Operator:
    """The app built in the test process from a host's ini: what the scheduled jobs do, run on
    demand (the scheduler runs them every minute, with thresholds a test cannot wait for)."""

    def __init__(self, ini):
        environ = dict(os.environ)
        for variable in OVERRIDING_ENVIRONMENT:
            os.environ.pop(variable, None)
        try:
            self.app = main({}, **get_appsettings(str(ini)))
        finally:
            os.environ.clear()
            os.environ.update(environ)
        self.registry = self.app.registry
        self.swept = 0

    def settle(self, rounds=20):
        """Settle every pending order, however young (the load has stopped); some lookups may
        fail (a flaky gateway), so round after round until none is left. Returns the reports."""
        reports = []
        factory = self.registry["dbsession_factory"]
        gateway = self.registry.getUtility(IPaymentGateway)
        for _ in range(rounds):
            tm = transaction.TransactionManager(explicit=True)
            tm.begin()
            dbsession = get_tm_session(factory, tm)
            report = orders.settle_stale_pending_orders(
                dbsession,
                tm,
                gateway,
                now=utcnow(),
                ticket_codes=self.registry["ticket_codes"],
                older_than=dt.timedelta(0),
            )
            tm.commit()
            reports.append(report)
            if not report.unresolved and not (report.confirmed or report.failed):
                break
        return reports

    def sweep_outbox(self):
        """The outbox sweep as the scheduler runs it, a minute later each time (time the test
        does not wait for): re-enqueue every pending email whose dispatch seems lost, including
        those an earlier sweep dispatched in vain (its enqueue failed, say)."""
        self.swept += 1
        session = self.registry["dbsession_factory"]()
        with session.begin():
            later = utcnow() + (1 + self.swept) * outbox.SWEEP_GRACE
            found = outbox.overdue_emails(session, now=later)
        session.close()
        return len(found)

    def close(self):
        self.registry.getUtility(IPaymentGateway).dispose()
        self.registry["dbengine"].dispose()


def books(database_url, ledger_path, mailbox):
    """Every invariant, read back: {name: count of violations} and the figures."""
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    with engine.connect() as connection:
        events = connection.execute(
            sa.text(
                "SELECT e.id, e.total_tickets, e.available_tickets,"
                " (SELECT coalesce(sum(quantity), 0) FROM orders o"
                "   WHERE o.event_id = e.id AND o.status = 'confirmed') AS sold FROM events e"
            )
        ).all()
        by_status = dict(
            connection.execute(sa.text("SELECT status, count(*) FROM orders GROUP BY status")).all()
        )
        confirmed = dict(
            connection.execute(
                sa.text("SELECT id::text, payment_reference FROM orders WHERE status = 'confirmed'")
            ).all()
        )
        owed = connection.execute(
            sa.text("SELECT id::text, order_id::text, kind, status FROM email_outbox")
        ).all()
        cancelled = {
            row[0]
            for row in connection.execute(
                sa.text("SELECT id::text FROM orders WHERE status = 'cancelled'")
            )
        }
    engine.dispose()
    with contextlib.closing(sqlite3.connect(ledger_path)) as ledger:
        kept = [row[0] for row in ledger.execute(
            "SELECT charge_id FROM mock_payment_ledger WHERE refund_id IS NULL"
        )]  # fmt: skip
    sent = Counter(_email_id(message) for message in mailbox.messages)
    owed_ids = {row.id for row in owed}
    confirmations = {row.order_id for row in owed if row.kind == "order_confirmation"}
    cancellations = {row.order_id for row in owed if row.kind == "order_cancellation"}
    violations = {
        "events_unbalanced": sum(
            1 for e in events if e.available_tickets + e.sold != e.total_tickets
        ),
        "pending_orders": by_status.get("pending", 0),
        "confirmed_without_its_kept_charge": sum(
            1 for reference in confirmed.values() if reference not in set(kept)
        ),
        "kept_charges_without_confirmed_order": sum(
            1 for charge in kept if charge not in set(confirmed.values())
        ),
        "charges_kept_twice": sum(count - 1 for count in Counter(kept).values() if count > 1),
        "confirmed_without_confirmation_email": len(set(confirmed) - confirmations),
        "cancelled_without_cancellation_email": len(cancelled - cancellations),
        "emails_not_sent": sum(1 for row in owed if row.status != "sent"),
        "emails_sent_twice": sum(count - 1 for count in sent.values() if count > 1),
        "emails_sent_for_nothing": sum(1 for email_id in sent if email_id not in owed_ids),
    }
    figures = {
        "orders": dict(sorted(by_status.items())),
        "kept_charges": len(kept),
        "emails_sent": sum(sent.values()),
    }
    return {name: count for name, count in violations.items() if count}, figures


def _email_id(message):
    return message["Message-ID"].strip("<>").split("@", 1)[0]


def wait_for_emails(database_url, mailbox, timeout=60, sweep=None, sweep_every=10):
    """Until every owed email is sent (and a moment more, for a second copy to show up);
    ``sweep`` (the outbox sweep) runs at once and every ``sweep_every`` seconds meanwhile, as the
    scheduler would each minute."""
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    last_sweep = [None]

    def all_sent():
        now = time.monotonic()
        if sweep is not None and (last_sweep[0] is None or now - last_sweep[0] >= sweep_every):
            sweep()
            last_sweep[0] = now
        with engine.connect() as connection:
            return not connection.scalar(
                sa.text("SELECT count(*) FROM email_outbox WHERE status <> 'sent'")
            )

    try:
        wait_for(all_sent, timeout, "every owed email to be sent")
        time.sleep(1.5)
    finally:
        engine.dispose()
