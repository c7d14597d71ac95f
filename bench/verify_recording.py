"""Verify on the recorded Transformer run, and the cost of the sandbox itself.

1. Replays ../shared/recordings/transformer-claude-3-7-sonnet through the pipeline and runs
   the static checks on the repository it writes; prints the findings.
2. Where torch is importable (``pip install torch==2.13.0`` with a constraints file gives a
   CPU build here), runs the smoke mode in the sandbox without repair (the recording predates
   smoke mode) and prints what failed first.
3. Runs a trivial script directly and through the sandbox; prints wall time and peak memory.

Usage: python bench/verify_recording.py [RECORDING_DIR] [--no-smoke]
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from papercoder.models.scripted import ScriptedModel
from papercoder.pipeline import RunOptions, run_pipeline
from papercoder.store import Store
from papercoder.verify import VerifyOptions, verify_output
from papercoder.verify.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REC = ROOT.parent / "shared" / "recordings" / "transformer-claude-3-7-sonnet"
if not DEFAULT_REC.is_dir():
    DEFAULT_REC = Path("/work/shared/recordings/transformer-claude-3-7-sonnet")
PAPER = DEFAULT_REC.parents[1] / "papers" / "transformer" / "paper.tex"

MEASURE = r"""
import json, os, resource, subprocess, sys, time
spec = json.loads(sys.argv[1])

def limits():
    os.setsid()
    for name, value in spec["limits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))

t = time.perf_counter()
r = subprocess.run(spec["argv"], cwd=spec["cwd"], env=spec["env"], capture_output=True,
                   preexec_fn=limits if spec["limits"] else None)
assert r.returncode == 0, r.stdout + r.stderr
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
      r.stdout.decode().split()[-1])
"""


def replay(rec: Path, tmp: Path) -> Path:
    out = tmp / "out"
    opts = RunOptions(paper=str(PAPER), out=out, quiet=True)
    run_pipeline(opts, model=ScriptedModel.from_recording(rec), store=Store(tmp / "s.db"))
    return out


def static(out: Path, tmp: Path) -> None:
    started = time.perf_counter()
    v = asyncio.run(verify_output(out, model=None, store=Store(tmp / "s.db"),
                                  options=VerifyOptions(execute=False, quiet=True))).to_dict()
    secs = time.perf_counter() - started
    findings = v["static"]["findings"]
    lines = sum(len(p.read_text().splitlines()) for p in (out / "repo").glob("*.py"))
    print(f"## Static checks on the recorded repository ({lines} lines of Python, "
          f"{secs:.2f}s)\n")
    print(f"{len(findings)} finding(s):")
    for f in findings:
        where = f"{f['file']}:{f['line']}" if f["line"] else f["file"]
        print(f"  - {where:<22} [{f['kind']}] {f['message']}")
    print()


def smoke(out: Path, tmp: Path) -> None:
    print("## Smoke mode without repair (torch found)\n")
    opts = VerifyOptions(execute=True, quiet=True, debug_rounds=0, static_repair=False,
                         timeout=300)
    started = time.perf_counter()
    v = asyncio.run(verify_output(out, model=None, store=Store(tmp / "s.db"),
                                  options=opts)).to_dict()
    secs = time.perf_counter() - started
    env, iso, sm = v["environment"], v["isolation"], v["smoke"]
    print(f"environment: {env['kind']} ({env['python']}); installed: "
          f"{', '.join(env['installed']) or 'nothing'}")
    print(f"isolation: sandbox={iso['sandbox']} network={iso['network']} user={iso.get('user')}")
    for c in sm["commands"]:
        print(f"  $ {c['cmd']}  (seed {c['seed']}) -> exit {c['exit']}, outputs ok: "
              f"{c['outputs_ok']}, {c['seconds']}s")
    print(f"passed: {sm['passed']}  ({secs:.1f}s in all)")
    f = sm.get("failure")
    if f:
        print(f"failed first: {f['command']} [{f['kind']}]")
        tail = [x for x in f["output_tail"].splitlines() if x.strip()][-8:]
        print("  " + "\n  ".join(tail))
    print()


def overhead(tmp: Path) -> None:
    src = tmp / "trivial-src"
    src.mkdir()
    (src / "hello.py").write_text("import resource\n"
                                  "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    sb = Sandbox(readonly=[Path(sys.prefix), Path(sys.base_prefix),
                           Path(sys.executable).resolve().parents[1]])
    work = sb.prepare_copy(src, tmp / "trivial")  # a work copy owned by the sandbox user
    mb = 1024 * 1024
    lim = sb.limits
    specs = {
        "direct": {"argv": [sys.executable, "hello.py"], "cwd": str(work), "limits": {},
                   "env": {"PATH": "/usr/bin:/bin"}},
        # exactly what Sandbox.run starts, launched from an equally small process
        "sandbox": {"argv": sb._wrap([sys.executable, "hello.py"], work), "cwd": str(work),
                    "env": sb.environment(work, Path(sys.executable), {}),
                    "limits": {"RLIMIT_AS": lim.memory_mb * mb, "RLIMIT_CPU": lim.cpu_seconds,
                               "RLIMIT_FSIZE": lim.file_mb * mb,
                               "RLIMIT_NPROC": lim.processes}},
    }
    rows = {}
    for mode, spec in specs.items():
        times, peaks, own = [], [], []
        for _ in range(7):
            r = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(spec)],
                               capture_output=True, text=True, check=True)
            t, peak, mine = r.stdout.split()
            times.append(float(t))
            peaks.append(int(peak))
            own.append(int(mine))
        rows[mode] = (statistics.median(times), max(peaks), max(own))
    print(f"## Sandbox overhead around a trivial script ({sb.describe()})\n")
    print(f"{'':<10}{'wall (median of 7)':>20}{'peak RSS, script':>18}"
          f"{'peak RSS, any process waited for':>34}")
    for mode, (t, peak, mine) in rows.items():
        print(f"{mode:<10}{t * 1000:>17.1f} ms{mine / 1024:>15.1f} MB{peak / 1024:>31.1f} MB")
    d, s = rows["direct"][0], rows["sandbox"][0]
    from papercoder.verify import sandbox as sandbox_module

    sandbox_module._probe.cache_clear()
    started = time.perf_counter()
    Sandbox()
    probe = time.perf_counter() - started
    print(f"\noverhead: +{(s - d) * 1000:.1f} ms per command (bwrap, setpriv, limits, capped "
          f"capture); detecting the isolation once per verify run: {probe * 1000:.0f} ms\n")


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    rec = Path(args[0]) if args else DEFAULT_REC
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if rec.is_dir() and PAPER.is_file():
            out = replay(rec, tmp)
            static(out, tmp)
            if "--no-smoke" in sys.argv:
                pass
            elif importlib.util.find_spec("torch") is None:
                print("## Smoke mode: skipped (torch is not installed; `pip install "
                      "torch==2.13.0 -c constraints.txt` gives a CPU build)\n")
            else:
                smoke(out, tmp)
                print("requirements.txt:", " ".join((out / "repo" / "requirements.txt")
                                                    .read_text().split()), "\n")
        else:
            print(f"(no recording at {rec}; static checks and smoke run skipped)\n")
        overhead(tmp)


if __name__ == "__main__":
    main()
