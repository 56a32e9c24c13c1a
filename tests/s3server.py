"""A real S3-compatible server on 127.0.0.1 (moto's server mode), for remote mirror tests.

moto's WSGI application is served by werkzeug on a free loopback port in a thread; every
request is recorded (method, path, Range header) so that tests can assert what was read.
The server stops when the ``with`` block ends.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


class S3Server:
    """moto's S3 on 127.0.0.1:<free port>, recording requests."""

    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import WSGIRequestHandler, make_server

        try:  # moto 5.2.5+: keeps underscores in S3 metadata header names (mnistkit sends none)
            from moto.moto_server.werkzeug_app import MotoRequestHandler as handler
        except ImportError:  # older moto 5 (the declared floor): werkzeug's own handler serves as well
            handler = WSGIRequestHandler

        app = DomainDispatcherApplication(create_backend_app)
        self.requests: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()

        #: Faults: path -> Drop; a GET of that path whose Range starts with ``drop.range`` sends
        #: ``drop.after`` bytes of its body and then breaks the connection, ``drop.times`` times.
        self.drop: dict[str, Drop] = {}

        def recording(environ, start_response):
            cut = None
            with self.lock:
                method, path, rng = environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), environ.get("HTTP_RANGE")
                self.requests.append((method, path, rng))
                fault = self.drop.get(path)
                if method == "GET" and fault and fault.times > 0 and (rng or "").startswith(fault.range):
                    fault.times -= 1
                    cut = fault.after
            body = app(environ, start_response)
            return body if cut is None else _cut(body, cut)

        self.httpd = make_server("127.0.0.1", 0, recording, threaded=True, request_handler=_Quiet(handler))
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def gets(self, path: str) -> list[str | None]:
        """The Range header of every GET of ``path`` (None for a whole-object GET)."""
        with self.lock:
            return [rng for method, p, rng in self.requests if method == "GET" and p == path]

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset API), and the request log."""
        import requests

        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()
        with self.lock:
            self.requests.clear()

    def __enter__(self) -> S3Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@dataclass
class Drop:
    """A fault: break off GETs of one object (see :attr:`S3Server.drop`)."""

    range: str = "bytes="
    times: int = 1
    after: int = 0


class BrokenOff(ConnectionError):
    """Raised in the middle of a response body: the server closes the connection there."""


def _cut(body, limit: int):
    sent = 0
    for piece in body:
        if sent + len(piece) > limit:
            yield piece[: limit - sent]
            raise BrokenOff(f"dropped after {limit} bytes")
        sent += len(piece)
        yield piece


def _Quiet(handler):
    class Quiet(handler):
        def log_request(self, *args, **kwargs):  # keep test output clean
            pass

    return Quiet


def s3_env(url: str) -> dict[str, str]:
    """Environment for botocore/s3fs to use the loopback server with dummy credentials, never AWS itself."""
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask the instance metadata service for credentials
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/mnistkit-tests/credentials",
        "AWS_CONFIG_FILE": "/nonexistent/mnistkit-tests/config",
    }
