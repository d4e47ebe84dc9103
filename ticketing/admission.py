"""Admission control for the purchase path, per process.

A burst far above what the server can sell must not turn into a queue that makes every buyer
wait (and time out). At most ``admission.max_in_progress`` purchases run at once in a process; up
to ``admission.max_waiting`` more wait for a turn, each at most ``admission.wait_seconds``. A
purchase that cannot start within that gets 503 ``server_busy`` with ``Retry-After`` at once,
having cost nothing: the check runs before the transaction begins and issues no SQL.

Settings (production.ini): ``admission.enabled`` (off unless set), ``admission.max_in_progress``,
``admission.max_waiting``, ``admission.wait_seconds``, ``admission.retry_after_seconds``.
"""

import threading
import time

from ticketing.ratelimit import PURCHASE_PATH
from ticketing.settings import as_bool, as_float, as_int
from ticketing.views.problems import problem


class Admission:
    """A counting gate with a bounded, deadline-limited waiting line."""

    def __init__(self, max_in_progress, max_waiting, wait_seconds):
        self.max_in_progress = max_in_progress
        self.max_waiting = max_waiting
        self.wait_seconds = wait_seconds
        self.in_progress = 0
        self.waiting = 0
        self._turn = threading.Condition()

    def enter(self):
        """Take a place (True), or say the purchase cannot start in time (False)."""
        with self._turn:
            if self.in_progress < self.max_in_progress and not self.waiting:
                self.in_progress += 1
                return True
            if self.waiting >= self.max_waiting:
                return False
            self.waiting += 1
            try:
                deadline = time.monotonic() + self.wait_seconds
                while self.in_progress >= self.max_in_progress:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._turn.wait(left)
                self.in_progress += 1
                return True
            finally:
                self.waiting -= 1

    def leave(self):
        with self._turn:
            self.in_progress -= 1
            self._turn.notify()


def admission_tween_factory(handler, registry):
    admission = registry["admission"]
    retry_after = str(as_int(registry.settings, "admission.retry_after_seconds", 1))

    def admission_tween(request):
        if request.method != "POST" or not PURCHASE_PATH.match(request.path):
            return handler(request)
        if not admission.enter():
            return problem(
                503,
                "server_busy",
                "Server busy",
                f"Too many purchases are in progress; retry after {retry_after} seconds.",
                headers={"Retry-After": retry_after},
            )
        try:
            return handler(request)
        finally:
            admission.leave()

    return admission_tween


def includeme(config):
    settings = config.get_settings()
    if not as_bool(settings, "admission.enabled", False):
        return
    config.registry["admission"] = Admission(
        max_in_progress=as_int(settings, "admission.max_in_progress", 32),
        max_waiting=as_int(settings, "admission.max_waiting", 16),
        wait_seconds=as_float(settings, "admission.wait_seconds", 0.5),
    )
    # Inside the rate limits (a limited client takes no place) and outside the transaction (a
    # refused purchase opens none).
    config.add_tween(
        "ticketing.admission.admission_tween_factory",
        over="pyramid_tm.tm_tween_factory",
        under=(
            "ticketing.ratelimit.rate_limit_tween_factory",
            "ticketing.tweens.request_tween_factory",
        ),
    )
