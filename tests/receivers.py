"""Webhook endpoints for the tests: real HTTP servers on free ports of 127.0.0.1, each in a
thread, that keep what they receive and answer as told."""

import http.server
import ssl
import threading
import time

from zope.interface import implementer

from ticketing.plugins.webhooks.targets import IHostResolver, SystemResolver


class Receiver:
    """Keeps each request (``headers`` with lower-case names, ``body``, ``at``: monotonic time)
    and answers with the next status of ``answers`` (200 when they run out), after ``delay``
    seconds; while ``held`` is set, a request waits until it is cleared."""

    def __init__(self, certificate=None):
        self.requests = []
        self.answers = []
        self.delay = 0
        self.held = threading.Event()
        self.arrived = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                headers = {name.lower(): value for name, value in self.headers.items()}
                receiver.requests.append({"headers": headers, "body": body, "at": time.monotonic()})
                receiver.arrived.set()
                while receiver.held.is_set():
                    time.sleep(0.05)
                time.sleep(receiver.delay)
                status = receiver.answers.pop(0) if receiver.answers else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up (a timeout, or a killed worker)

            def log_message(self, format, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if certificate is not None:
            # https, with a certificate (and its key) for the names it lists
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certificate, certificate.with_suffix(".key"))
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self):
        return self.server.server_port

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}/hooks/tickets"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.held.clear()
        self.server.shutdown()
        self.server.server_close()


@implementer(IHostResolver)
class NamesResolver:
    """Resolves the names it was given as told (a name that resolves to a private address, one
    that changes its answer: DNS rebinding), and the rest as the system does."""

    def __init__(self, names):
        self.names = names

    def resolve(self, host, port):
        if host in self.names:
            return list(self.names[host])
        return SystemResolver().resolve(host, port)
