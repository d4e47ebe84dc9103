"""A real ``pserve development.ini`` on a free port, on SQLite files of the test's own (the app's
database, the job queue, the mock gateway's ledger), for tests that need a server a browser (or
any other HTTP client) can reach. Starting it again on the same ``tmp_path`` is a restart: the
same database and the same ledger."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 20


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def ini_for_tests(tmp_path, ini, settings=None):
    """``ini`` with the mock gateway's ledger moved into ``tmp_path``, so that no test books its
    charges into the developer's own ledger beside development.ini, and with ``settings`` (app
    settings) set over its own. Its other sections (server, pshell, logging) are copied as they
    are."""
    source = (REPO / ini).resolve()
    text = source.read_text()
    app_start = text.index("[app:main]")
    app_end = text.find("\n[", app_start)
    wrapper = tmp_path / f"live-{source.name}"
    wrapper.write_text(
        f"[app:main]\nuse = config:{source}#main\n"
        f"payments.mock.ledger_url = sqlite:///{tmp_path / 'payments-mock.sqlite'}\n"
        + "".join(f"{name} = {value}\n" for name, value in (settings or {}).items())
        + "\n"
        + (text[app_end + 1 :] if app_end != -1 else "")
    )
    return wrapper


@contextlib.contextmanager
def live_server(tmp_path, ini="development.ini", settings=None):
    """Migrate the database (a fresh one, the first time), start pserve, yield its base URL; stop
    it on the way out."""
    ini = ini_for_tests(tmp_path, ini, settings)
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'live.sqlite'}",
        "HUEY_URL": f"sqlite:///{tmp_path / 'huey.sqlite'}",
    }
    migrated = subprocess.run(
        [str(BIN / "initialize_ticketing_db"), str(ini)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    log_path = tmp_path / "pserve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(BIN / "pserve"), str(ini), f"http_port={port}"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not _answers(f"{base}/api/health"):
            if process.poll() is not None:
                pytest.fail(f"pserve exited with {process.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"pserve did not start in {STARTUP_TIMEOUT}s:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
