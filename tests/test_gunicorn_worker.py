"""The gthread worker of gunicorn.conf.py tells the application how long a request waited for a
thread: gunicorn serving a slow application with one thread, and three requests at once."""

import json
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .live_server import free_port

ROOT = Path(__file__).resolve().parent.parent


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())["waited"]


def test_requests_queued_behind_a_busy_thread_carry_their_wait():
    port = free_port()
    gunicorn = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--worker-class",
            "ticketing.gunicorn_worker.ThreadWorker",
            "--threads",
            "1",
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "tests.queue_probe:application",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 20
        while True:
            try:
                assert get(url) < 0.1  # alone: no wait
                break
            except OSError:
                assert gunicorn.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        with ThreadPoolExecutor(3) as pool:
            waits = sorted(pool.map(get, [url] * 3))
        # One thread, 0.4 s a request: the second waited about 0.4 s, the third about 0.8 s.
        assert waits[0] < 0.2
        assert 0.3 < waits[1] < 0.7
        assert 0.7 < waits[2] < 1.2
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=30)
