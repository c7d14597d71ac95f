"""API grounding on the recorded Transformer run: which names and keywords the code takes
from the installed packages do not exist there.

    python bench/grounding_recording.py --python VENV/bin/python [RECORDING_DIR]

VENV must hold the packages to check against, e.g. a venv with ``pip install torch==2.13.0``
(the CPU wheel this machine has) and ``pip install --no-deps torchtext`` (torchtext 0.18
pins an older torch). Prints the queries asked, the findings and the seconds taken.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from papercoder.verify.grounding import ground
from papercoder.verify.sandbox import Limits, Sandbox
from papercoder.verify.static import read_repo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verify_recording import DEFAULT_REC, replay  # noqa: E402


def main(argv: list[str]) -> int:
    if "--python" not in argv or argv.index("--python") + 1 >= len(argv):
        print("usage: grounding_recording.py --python VENV/bin/python [RECORDING_DIR]",
              file=sys.stderr)
        return 2
    i = argv.index("--python")
    python = Path(argv[i + 1])
    rest = argv[:i] + argv[i + 2:]
    rec = Path(rest[0]) if rest else DEFAULT_REC
    if not rec.is_dir() or not python.is_file():
        print(f"{rec} or {python} is missing; give the recording and a venv's python.",
              file=sys.stderr)
        return 2
    venv = python.parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        out = replay(rec, Path(tmp))
        code = read_repo(out / "repo")
        sandbox = Sandbox(limits=Limits(memory_mb=8192, cpu_seconds=600),
                          readonly=[venv, Path(sys.base_prefix), python.resolve().parent.parent])
        t0 = time.perf_counter()
        found, summary = ground(code, python, sandbox)
        secs = time.perf_counter() - t0
    print(f"{summary['queries']} queries, {summary['answered']} answered, {secs:.1f} s "
          f"(sandbox: {sandbox.isolation.sandbox})")
    for f in found:
        print(f"  {f['file']}:{f['line']} [{f['check']}{'' if f['certain'] else ' note'}] "
              f"{f['message'][:300]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
