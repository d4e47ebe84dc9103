"""A connection pool that serves the threads waiting for a connection in the order they came.

SQLAlchemy's ``QueuePool`` lets a thread that finds a connection free take it, though others
wait: a thread that gives its connection back and asks again at once (a purchase between its
reservation and its confirmation) takes it again, and the waiter it woke finds the pool empty and
waits anew, at the back (sqlalchemy/sqlalchemy#7679, open). On a hot sale the pool is the gate
(production.ini: 3 connections for 80 threads), and a few unlucky purchases waited a second and
more for theirs while the median waited 0.06 s (``make bench``'s burst, 1,000 buyers). In turn,
each waits only as long as the purchases ahead of it hold their connections: on the hot row the
slowest hundredth of purchases went from 0.5 s to 0.3 s in the server. (In a burst those ahead
still hold theirs long, waiting for the GIL among the threads that turn buyers away.)
"""

import collections
import threading
import time

from sqlalchemy.pool import QueuePool
from sqlalchemy.util import queue as sqla_queue


class FairQueue(sqla_queue.Queue):
    """``QueuePool``'s queue of idle connections, whose waiting threads take them in turn: a
    thread finds one free only if no one waits; otherwise it waits behind them."""

    def __init__(self, maxsize=0, use_lifo=False):
        super().__init__(maxsize, use_lifo)
        self._waiting = collections.deque()  # a Condition for each waiting thread, in turn

    def get(self, block=True, timeout=None):
        with self.mutex:
            if not self._waiting and not self._empty():
                return self._take()
            if not block:
                raise sqla_queue.Empty
            turn = threading.Condition(self.mutex)
            self._waiting.append(turn)
            deadline = None if timeout is None else time.monotonic() + timeout
            try:
                while self._waiting[0] is not turn or self._empty():
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise sqla_queue.Empty
                    turn.wait(left)
                return self._take()
            finally:
                self._waiting.remove(turn)
                # Taken or given up, the next in line may now take what is left.
                self._wake_first()

    def put(self, item, block=True, timeout=None):
        with self.mutex:
            super().put(item, block, timeout)
            self._wake_first()

    def _take(self):
        item = self._get()
        self.not_full.notify()
        return item

    def _wake_first(self):
        if self._waiting and not self._empty():
            self._waiting[0].notify()


class FairQueuePool(QueuePool):
    """``QueuePool`` (its size, overflow, timeout and recycling as configured) with a
    :class:`FairQueue`."""

    _queue_class = FairQueue
