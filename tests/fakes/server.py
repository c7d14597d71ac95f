"""A scriptable HTTP server on 127.0.0.1, the base of the provider fakes.

A :class:`FakeServer` runs a stdlib ``ThreadingHTTPServer`` in a background thread. Every
request is recorded (method, path, headers, decoded body, arrival time) and the number of
requests in flight at once is tracked (:attr:`FakeServer.max_concurrency`). What it answers
comes, in order, from the queue filled by :meth:`FakeServer.enqueue`, then from the default
responder. Subclasses turn a text answer into their protocol's JSON.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_WORD = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """The fakes' own token count: words and punctuation marks."""
    return len(_WORD.findall(text))


@dataclass
class Reply:
    """One scripted behaviour.

    * ``text``: answer with this text in the protocol's normal 200 shape;
    * ``status``/``body``: answer with this status and JSON body (an error, say);
    * ``raw``: send these bytes as a 200 body, unparsed (a malformed response);
    * ``drop``: close the connection without answering;
    * ``delay``: wait this long first (longer than the client's timeout: a timeout);
    * ``headers``: extra response headers (``Retry-After``);
    * ``usage``: override usage fields in a 200 answer;
    * ``finish_reason``: override the finish reason of a 200 answer;
    * ``trickle``: send the body one byte at a time, this many seconds apart (a server that
      never finishes within the client's timeout).
    """

    text: str | None = None
    status: int = 200
    body: Any = None
    raw: bytes | None = None
    drop: bool = False
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str | None = None
    trickle: float = 0.0

    @classmethod
    def coerce(cls, item: Any) -> Reply:
        if isinstance(item, Reply):
            return item
        if isinstance(item, str):
            return cls(text=item)
        if isinstance(item, Mapping):
            known = {k: v for k, v in item.items() if k in cls.__dataclass_fields__}
            if isinstance(known.get("raw"), str):
                known["raw"] = known["raw"].encode()
            return cls(**known)
        raise TypeError(f"cannot make a reply from {item!r}")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    arrived: float
    """``time.monotonic()`` at arrival."""
    finished: float | None = None
    status: int | None = None
    completed: bool = False
    """True once the whole reply was written (an answer the client received in full)."""


Responder = Callable[[Any], "str | Reply | Mapping[str, Any]"]


class _HTTPServer(ThreadingHTTPServer):
    request_queue_size = 256  # batch tests open many connections at once; 5 drops SYNs


class FakeServer:
    """Base class: records, counts concurrency, pops scripted replies."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        port: int = 0,
        delay: float = 0.0,
        api_key: str | None = None,
    ) -> None:
        self.responder = responder
        self.delay = delay
        self.api_key = api_key
        """When set, requests without this key are refused with 401."""
        self.requests: list[Recorded] = []
        self.max_concurrency = 0
        self._in_flight = 0
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.on_request: Callable[[Recorded], None] | None = None
        """Called (in the server thread) as each request arrives: a subprocess fake uses it to
        append the request to a log file."""
        self._hold: Callable[[Recorded], bool] | None = None
        self._held: list[Recorded] = []
        self._held_cond = threading.Condition()
        self._released = threading.Event()
        self._released.set()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> FakeServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                server._handle(self)

            def do_POST(self) -> None:  # noqa: N802
                server._handle(self)

        self._httpd = _HTTPServer(("127.0.0.1", self._port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()  # never leave a handler thread waiting
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- scripting ------------------------------------------------------------------------
    def enqueue(self, *items: str | Reply | Mapping[str, Any]) -> None:
        """Queue behaviours for the next requests, in order (before the default responder)."""
        with self._lock:
            self._queue.extend(Reply.coerce(i) for i in items)

    # -- hold / release: deterministic timing for signal tests -----------------------------
    def hold(self, predicate: Callable[[Recorded], bool] | None = None) -> None:
        """From now on, requests matching ``predicate`` (all POSTs by default) are not
        answered until :meth:`release`; :meth:`wait_held` tells when one is waiting."""
        with self._held_cond:
            self._hold = predicate or (lambda r: r.method == "POST")
            self._released.clear()

    def release(self) -> None:
        """Answer every held request (and stop holding new ones)."""
        with self._held_cond:
            self._hold = None
            self._released.set()

    @property
    def held(self) -> list[Recorded]:
        with self._held_cond:
            return list(self._held)

    def wait_held(self, n: int = 1, timeout: float = 60.0) -> list[Recorded]:
        """Block until ``n`` requests are being held; AssertionError after ``timeout``."""
        with self._held_cond:
            ok = self._held_cond.wait_for(lambda: len(self._held) >= n, timeout)
            assert ok, f"{len(self._held)} of {n} requests held after {timeout} s"
            return list(self._held)

    def _maybe_hold(self, req: Recorded) -> None:
        with self._held_cond:
            hold = self._hold is not None and self._hold(req)
            if hold:
                self._held.append(req)
                self._held_cond.notify_all()
        if hold:
            self._released.wait()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def bodies(self, path_suffix: str = "") -> list[Any]:
        return [r.body for r in self.requests if r.path.endswith(path_suffix)]

    # -- the protocol: subclasses override ------------------------------------------------
    def precheck(self, req: Recorded) -> Reply | None:
        """A reply decided by the server's own rules (auth, unknown model...), or None."""
        return None

    def success_body(self, req: Recorded, reply: Reply) -> Any:
        raise NotImplementedError

    def handle_get(self, req: Recorded) -> Reply:
        return Reply(status=404, body={"error": {"message": f"no route {req.path}"}})

    def default_reply(self, req: Recorded) -> Reply:
        if self.responder is None:
            return Reply(status=500, body={"error": {"message": "the fake has nothing scripted",
                                                     "type": "server_error"}})
        return Reply.coerce(self.responder(req.body))

    def next_reply(self, req: Recorded) -> Reply:
        if req.method == "GET":
            return self.handle_get(req)
        pre = self.precheck(req)
        if pre is not None:
            return pre
        with self._lock:
            queued = self._queue.popleft() if self._queue else None
        return queued if queued is not None else self.default_reply(req)

    # -- plumbing ---------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        arrived = time.monotonic()
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        req = Recorded(h.command, h.path, {k.lower(): v for k, v in h.headers.items()}, body,
                       arrived)
        with self._lock:
            self.requests.append(req)
            self._in_flight += 1
            self.max_concurrency = max(self.max_concurrency, self._in_flight)
        try:
            if self.on_request is not None:
                self.on_request(req)
            self._maybe_hold(req)
            reply = self.next_reply(req)
            delay = reply.delay or self.delay
            if delay:
                time.sleep(delay)
            req.status = reply.status
            if reply.drop:
                h.close_connection = True
                h.connection.shutdown(2)
                return
            if reply.raw is not None:
                payload, ctype = reply.raw, "application/json"
            elif reply.status == 200 and reply.body is None:
                payload = json.dumps(self.success_body(req, reply)).encode()
                ctype = "application/json"
            else:
                payload, ctype = json.dumps(reply.body).encode(), "application/json"
            h.send_response(reply.status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(payload)))
            for k, v in reply.headers.items():
                h.send_header(k, str(v))
            h.end_headers()
            if reply.trickle:
                for i in range(len(payload)):
                    h.wfile.write(payload[i:i + 1])
                    h.wfile.flush()
                    time.sleep(reply.trickle)
            else:
                h.wfile.write(payload)
                h.wfile.flush()
            req.completed = True
        except (BrokenPipeError, ConnectionResetError, OSError):
            h.close_connection = True  # the client gave up (a timeout test)
        finally:
            req.finished = time.monotonic()
            with self._lock:
                self._in_flight -= 1


def serve_until_terminated(srv: FakeServer, port_file: str | None = None,
                           banner: Callable[[], str] | None = None) -> None:
    """A fake run as a process: start ``srv``, write its port to ``port_file`` atomically
    (readers never see a half-written file), print ``banner()``, serve until SIGTERM or
    Ctrl-C, then stop it."""
    srv.start()
    if port_file:
        tmp = Path(port_file + ".tmp")
        tmp.write_text(str(srv.port))
        tmp.replace(port_file)
    if banner is not None:
        print(banner(), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    srv.stop()
