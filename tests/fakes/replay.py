"""A loopback OpenAI-compatible server that replays a recorded run with realistic latency,
optionally enforcing a rate limit like a provider does.

Each answer takes ``ttft + tokens / rate`` seconds (a time to first token plus a generation
rate, applied to the recorded answer's length in the fakes' token count). With ``limit`` and
``window``, a request arriving when ``limit`` requests were admitted in the last ``window``
seconds is answered 429 with a ``Retry-After`` header (a sliding window, as providers
enforce requests per minute).

In-process: ``ReplayServer(recording, ttft=..., rate=...)``. As a process (so the client's
CPU time is its own)::

    python -m tests.fakes.replay RECORDING --port-file F [--ttft S] [--rate TOK_PER_S]
        [--limit N --window S] [--log REQ.jsonl]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from tests.pipeline_helpers import answer_for_messages

from .openai_server import FakeOpenAIServer
from .server import Recorded, Reply, count_tokens, serve_until_terminated

PLANNING = {"plan": "1_overall_plan.md", "architecture": "2_architecture.txt",
            "logic": "3_logic_design.txt", "config": "4_config.txt"}


def load_recording(rec: Path) -> dict[str, str]:
    """The recorded answers keyed like the scripted model's script (``plan``,
    ``analysis:<file>``, ``coding:<file>``)."""
    script = {step: (rec / "planning" / name).read_text(encoding="utf-8")
              for step, name in PLANNING.items()}
    for f in (rec / "analysis").glob("*.md"):
        script[f"analysis:{f.name[:-3]}"] = f.read_text(encoding="utf-8")
    for f in (rec / "coding").glob("*.txt"):
        script[f"coding:{f.name[:-4]}"] = f.read_text(encoding="utf-8")
    return script


def latency(text: str, ttft: float, rate: float) -> float:
    return ttft + count_tokens(text) / rate


class ReplayServer(FakeOpenAIServer):
    def __init__(self, recording: Path | dict[str, str], *, ttft: float = 0.0,
                 rate: float = 1e9, limit: int | None = None, window: float = 60.0,
                 port: int = 0) -> None:
        self.script = recording if isinstance(recording, dict) else load_recording(recording)
        self.ttft, self.rate = ttft, rate
        self.limit, self.window = limit, window
        self._admitted: deque[float] = deque()
        self.throttled: list[float] = []
        """Arrival times (monotonic) of the requests answered 429."""
        self.admitted_times: list[float] = []
        super().__init__(self._respond, port=port)

    def _respond(self, body: Any) -> Reply:
        text = answer_for_messages(list(body.get("messages") or []), **self.script)
        return Reply(text=text, delay=latency(text, self.ttft, self.rate))

    def precheck(self, req: Recorded) -> Reply | None:
        pre = super().precheck(req)
        if pre is not None or self.limit is None:
            return pre
        now = req.arrived
        with self._lock:
            while self._admitted and self._admitted[0] <= now - self.window:
                self._admitted.popleft()
            if len(self._admitted) >= self.limit:
                wait = self._admitted[0] + self.window - now
                self.throttled.append(now)
                return self._error(429, "Rate limit reached for requests.", type_="requests",
                                   code="rate_limit_exceeded",
                                   headers={"Retry-After": str(max(1, math.ceil(wait)))})
            self._admitted.append(now)
            self.admitted_times.append(now)
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("recording", type=Path)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--ttft", type=float, default=0.0)
    ap.add_argument("--rate", type=float, default=1e9)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--window", type=float, default=60.0)
    ap.add_argument("--log", help="write a JSON line per request (arrival, status, and the "
                    "client's x-bench-admitted stamp)")
    args = ap.parse_args(argv)
    srv = ReplayServer(args.recording, ttft=args.ttft, rate=args.rate, limit=args.limit,
                       window=args.window)
    serve_until_terminated(srv, args.port_file)
    if args.log:
        with open(args.log, "w", encoding="utf-8") as f:
            for r in list(srv.requests):
                if r.method == "POST":
                    try:  # a benchmark's client stamps when its limiter let it go
                        admitted = float(r.headers.get("x-bench-admitted", ""))
                    except ValueError:
                        admitted = None
                    f.write(json.dumps({"arrived": r.arrived, "finished": r.finished,
                                        "status": r.status, "admitted": admitted}) + "\n")
    return 0


def start_process(recording: Path, workdir: Path, *extra: str) -> tuple[Any, str]:
    """Start the server as a subprocess; returns (process, base URL)."""
    import os
    import subprocess

    root = Path(__file__).resolve().parents[2]
    port_file = workdir / "replay.port"
    port_file.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), str(root / "src")]))
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.replay", str(recording),
                             "--port-file", str(port_file), *extra], cwd=root, env=env)
    deadline = time.monotonic() + 60
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the replay server did not start")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text().strip()}/v1"


if __name__ == "__main__":
    sys.exit(main())
