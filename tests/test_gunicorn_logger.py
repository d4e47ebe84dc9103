"""gunicorn's logger builds access-log lines only when something will write them."""

import datetime as dt
from pathlib import Path

from gunicorn.config import Config

from ticketing.gunicorn_logger import Logger

PRODUCTION_INI = str(Path(__file__).resolve().parent.parent / "production.ini")


class CountingLogger(Logger):
    built = 0

    def atoms(self, resp, req, environ, request_time):
        self.built += 1
        return super().atoms(resp, req, environ, request_time)


class Response:
    status = "201 Created"
    headers = []
    sent = 120
    response_length = 120


class Request:
    headers = []
    uri = "/api/events"
    path = "/api/events"
    query = ""
    method = "POST"
    version = (1, 1)
    peer_addr = ("127.0.0.1", 5000)


def log_one_request(config):
    logger = CountingLogger(config)
    environ = {
        "REMOTE_ADDR": "127.0.0.1",
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/api/events",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    logger.access(Response(), Request(), environ, dt.timedelta(milliseconds=3))
    return logger


def test_no_line_is_built_when_the_ini_gives_the_access_log_no_handler():
    config = Config()
    config.set("logconfig", PRODUCTION_INI)  # what `gunicorn --paste` does

    assert log_one_request(config).built == 0


def test_an_access_logfile_gets_its_lines(tmp_path):
    config = Config()
    config.set("logconfig", PRODUCTION_INI)
    config.set("accesslog", str(tmp_path / "access.log"))

    assert log_one_request(config).built == 1
    assert '"POST /api/events HTTP/1.1" 201' in (tmp_path / "access.log").read_text()
