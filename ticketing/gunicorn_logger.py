"""gunicorn's logger (``logger_class`` in gunicorn.conf.py), building access-log lines only when
they go somewhere.

``gunicorn --paste INI`` hands gunicorn the ini as its log config, and gunicorn then builds every
request's access-log line, even when no handler will write it: 2.4% of a worker's CPU under
``make bench``. production.ini gives ``gunicorn.access`` no handler (the proxy in front keeps the
access log, and the app logs its own errors with their request ids); ``--access-logfile -`` (or
an ini handler for ``gunicorn.access``) turns the lines on again.
"""

from gunicorn import glogging


class Logger(glogging.Logger):
    def access(self, resp, req, environ, request_time):
        if self.access_log.hasHandlers():
            super().access(resp, req, environ, request_time)
