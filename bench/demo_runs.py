"""How often the offline demo finishes: `papercoder run examples/tiny-sgd-paper.md -m local`
with N sampling seeds (PAPERCODER_LOCAL_SEED), each with a fresh run store and output folder.
Prints per run: seed, status, files written, exit status, seconds, calls; then the count of
runs ending `done`.

    .venv/bin/python bench/demo_runs.py [--runs 10] [--first-seed 1] [--paper PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--paper", default=str(ROOT / "examples" / "tiny-sgd-paper.md"))
    ap.add_argument("--timeout", type=float, default=1800.0)
    args = ap.parse_args()
    exe = shutil.which("papercoder", path=str(Path(sys.executable).parent))
    if exe is None:
        print("papercoder is not installed next to this Python")
        return 1
    done = 0
    print(f"{'seed':>4} {'status':<8} {'files':>5} {'exit':>4} {'seconds':>7} {'calls':>5}  load")
    for seed in range(args.first_seed, args.first_seed + args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items()
                   if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
            env.update(PAPERCODER_DB=str(Path(tmp) / "store.db"),
                       PAPERCODER_LOCAL_SEED=str(seed))
            out = Path(tmp) / "out"
            started = time.perf_counter()
            try:
                r = subprocess.run([exe, "run", args.paper, "-o", str(out), "-m", "local"],
                                   env=env, capture_output=True, text=True,
                                   timeout=args.timeout)
                code = r.returncode
            except subprocess.TimeoutExpired:
                code = -1
            wall = time.perf_counter() - started
            status, files, calls = "timeout" if code == -1 else "?", "?", "?"
            manifest = out / "run.json"
            if manifest.is_file():
                m = json.loads(manifest.read_text())
                status = m.get("status", "?")
                fs = m.get("files", {})
                ok = sum(1 for f in fs.values() if isinstance(f, dict)
                         and f.get("status") == "written")
                files = f"{ok}/{len(fs)}"
                calls = str(m.get("totals", {}).get("calls", "?"))
            done += status == "done"
            load = " ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"{seed:>4} {status:<8} {files:>5} {code:>4} {wall:>7.0f} {calls:>5}  {load}",
                  flush=True)
    print(f"done: {done} of {args.runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
