"""Admission control for the purchase path, per process.

A burst far above what the server can sell must not turn into a queue that makes every buyer
wait (and time out). At most a limit of purchases run at once in a process; up to
``admission.max_waiting`` more wait for a turn, each at most ``admission.wait_seconds``. A
purchase that cannot start within that gets 503 ``server_busy`` with ``Retry-After`` at once,
having cost nothing: the check runs before the transaction begins and issues no SQL.

The limit adapts, between ``admission.min_in_progress`` and ``admission.max_in_progress``, to
how long purchases take: how many may usefully run at once depends on where their time goes. With
a fast gateway a purchase is CPU and database work, and past a few at once they only queue for
the pool's connections (every one slower, none sold sooner); with a 200 ms gateway most of them
sleep on the gateway, holding neither, and dozens at once are what keep the server busy. So, as
TCP Vegas and Netflix's concurrency limits do, the limit grows by one per round of purchases that
take no more than ``admission.latency_tolerance`` times what a purchase takes when few run at
once (plus 50 ms), and shrinks by a tenth, at most once a round, when they take longer. What "few
at once" take is learnt only from purchases that ran with at most ``min_in_progress`` others, so
a long queue never becomes the measure of quick.

A purchase's deadline counts from when it reached the process, not from when a thread took it
up: gunicorn's threads may all be busy, and the requests behind them wait in its queue, unseen by
the application. ``ticketing.gunicorn_worker.ThreadWorker`` (gunicorn.conf.py) notes when each
request joined that queue; one that has waited its ``wait_seconds`` there already is turned away
at once unless a place is free.

``Retry-After`` gives each turned-away buyer a turn of their own, as a virtual waiting room does:
the turns are spaced by the time between purchases finishing, so that buyers come back at the
pace the process sells, instead of all together after a fixed second, each costing a turn to be
refused again. A buyer turned away while the process is calm is told the base
(``admission.retry_after_seconds``); no one is told more than 30 s. Turned-away purchases are
logged in one line every 10 seconds, not one each.

Settings (production.ini): ``admission.enabled`` (off unless set), ``admission.min_in_progress``,
``admission.max_in_progress``, ``admission.max_waiting``, ``admission.wait_seconds``,
``admission.latency_tolerance``, ``admission.retry_after_seconds``.
"""

import logging
import math
import threading
import time

from ticketing.gunicorn_worker import QUEUED_AT
from ticketing.ratelimit import PURCHASE_PATH
from ticketing.settings import as_bool, as_float, as_int
from ticketing.tweens import SHED
from ticketing.views.problems import problem

log = logging.getLogger(__name__)

#: a purchase this much over tolerance is still "quick": noise, not queueing
LATENCY_SLACK_SECONDS = 0.05
#: weight of each new purchase in the running average of what few at once take
UNLOADED_WEIGHT = 0.2
#: weight of each new gap between finishing purchases in their running average
PACE_WEIGHT = 0.05
#: a longer gap between purchases finishing says the process was idle, not slow
LONGEST_PACE_SECONDS = 1.0
DECREASE = 0.9
MAX_RETRY_AFTER_SECONDS = 30
SHED_LOG_EVERY_SECONDS = 10


class Admission:
    """A counting gate with an adaptive limit and a bounded, deadline-limited waiting line."""

    def __init__(
        self,
        max_in_progress,
        max_waiting,
        wait_seconds,
        *,
        min_in_progress=1,
        latency_tolerance=2.0,
        retry_after_seconds=1,
        clock=time.monotonic,
    ):
        self.max_in_progress = max_in_progress
        self.min_in_progress = min(min_in_progress, max_in_progress)
        self.max_waiting = max_waiting
        self.wait_seconds = wait_seconds
        self.latency_tolerance = latency_tolerance
        self.retry_after_seconds = retry_after_seconds
        self.clock = clock
        self.limit = float(max_in_progress)
        self.in_progress = 0
        self.waiting = 0
        self._turn = threading.Condition()
        now = clock()
        self._unloaded = None  # seconds a purchase takes with few at once; unknown at first
        self._last_decrease = now
        self._pace = None  # seconds between purchases finishing; unknown at first
        self._last_finished = None
        self._last_turn = now  # when the latest turned-away buyer was told to come back
        self._shed_logged_at = now
        self._shed_since_log = 0

    def enter(self, queued_at=None):
        """Take a place and return it (pass it to :meth:`leave`), or None: the purchase cannot
        start in time and should be turned away. ``queued_at`` (on this clock) is when the
        request reached the process, if it waited before it got here; the deadline counts from
        it."""
        with self._turn:
            if self._has_room() and not self.waiting:
                return self._take()
            now = self.clock()
            deadline = min(now, queued_at or now) + self.wait_seconds
            if self.waiting >= self.max_waiting or deadline <= now:
                return self._turn_away(now)
            self.waiting += 1
            try:
                while not self._has_room():
                    left = deadline - self.clock()
                    if left <= 0:
                        return self._turn_away(self.clock())
                    self._turn.wait(left)
                return self._take()
            finally:
                self.waiting -= 1

    def leave(self, place):
        """Give back the place :meth:`enter` gave; the purchase's time tunes the limit."""
        entered_at, alongside = place
        with self._turn:
            now = self.clock()
            self._note_pace(now)
            # It ran with at least as many as were in progress when it came or when it went.
            self._adapt(now - entered_at, max(alongside, self.in_progress), now)
            self.in_progress -= 1
            if self.waiting:
                self._turn.notify()

    def retry_after(self):
        """Whole seconds the buyer turned away last should wait: until their turn."""
        with self._turn:
            wait = self._last_turn - self.clock()
            return min(max(math.ceil(wait), self.retry_after_seconds), MAX_RETRY_AFTER_SECONDS)

    def _has_room(self):
        return self.in_progress < max(int(self.limit), self.min_in_progress)

    def _take(self):
        self.in_progress += 1
        return (self.clock(), self.in_progress)

    def _turn_away(self, now):
        # The next turn after the latest one given, one purchase's pace later.
        turn = max(self._last_turn, now) + (self._pace or 0)
        self._last_turn = min(turn, now + MAX_RETRY_AFTER_SECONDS)
        self._shed_since_log += 1
        if now - self._shed_logged_at >= SHED_LOG_EVERY_SECONDS:
            log.warning(
                "admission control turned %d purchases away in the last %.0f s "
                "(limit %d in progress, %d waiting)",
                self._shed_since_log,
                now - self._shed_logged_at,
                int(self.limit),
                self.max_waiting,
            )
            self._shed_logged_at, self._shed_since_log = now, 0
        return None

    def _note_pace(self, now):
        if self._last_finished is not None:
            gap = min(now - self._last_finished, LONGEST_PACE_SECONDS)
            known = gap if self._pace is None else self._pace
            self._pace = known + PACE_WEIGHT * (gap - known)
        self._last_finished = now

    def _adapt(self, latency, alongside, now):
        if alongside <= self.min_in_progress:
            self._unloaded = (
                latency
                if self._unloaded is None
                else self._unloaded + UNLOADED_WEIGHT * (latency - self._unloaded)
            )
        if self._unloaded is None:
            return
        tolerated = self._unloaded * self.latency_tolerance + LATENCY_SLACK_SECONDS
        if latency <= tolerated:
            self.limit = min(float(self.max_in_progress), self.limit + 1 / self.limit)
        elif now - self._last_decrease >= tolerated:
            self.limit = max(float(self.min_in_progress), self.limit * DECREASE)
            self._last_decrease = now


def admission_tween_factory(handler, registry):
    admission = registry["admission"]

    def admission_tween(request):
        if request.method != "POST" or not PURCHASE_PATH.match(request.path):
            return handler(request)
        place = admission.enter(request.environ.get(QUEUED_AT))
        if place is None:
            request.environ[SHED] = True
            retry_after = str(admission.retry_after())
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
            admission.leave(place)

    return admission_tween


def includeme(config):
    settings = config.get_settings()
    if not as_bool(settings, "admission.enabled", False):
        return
    config.registry["admission"] = Admission(
        max_in_progress=as_int(settings, "admission.max_in_progress", 32),
        max_waiting=as_int(settings, "admission.max_waiting", 16),
        wait_seconds=as_float(settings, "admission.wait_seconds", 0.5),
        min_in_progress=as_int(settings, "admission.min_in_progress", 4),
        latency_tolerance=as_float(settings, "admission.latency_tolerance", 2.0),
        retry_after_seconds=as_int(settings, "admission.retry_after_seconds", 1),
    )
    # Outside the rate limits and the transaction: turning a purchase away must cost less than
    # anything it would wait for, and the rate limits' Redis round trip costs ten refusals (a
    # refusal takes ~0.1 ms in the tweens, ~0.6 ms with gunicorn's and Pyramid's share of the
    # request; a limit check ~1 ms). A purchase let in holds its place only while the limits say
    # no, if they do.
    config.add_tween(
        "ticketing.admission.admission_tween_factory",
        over=("ticketing.ratelimit.rate_limit_tween_factory", "pyramid_tm.tm_tween_factory"),
        under="ticketing.tweens.request_tween_factory",
    )
