"""Speed and memory of the embedded local model on this machine.

Prints: load time; prompt tokens per second; generation tokens per second with and without a
JSON-schema grammar; the speedup when a long prefix is reused from the KV cache; peak memory;
and the wall time of ``papercoder run`` on an example paper with ``-m local``.

    .venv/bin/python bench/local_model.py [--skip-run]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

from papercoder.models.local import LocalModel

ROOT = Path(__file__).resolve().parents[1]


class Task(BaseModel):
    name: str
    description: str
    depends_on: list[str]


class Plan(BaseModel):
    goal: str
    tasks: list[Task]


def _paper(n: int) -> str:
    return "\n".join(f"In section {i} we train the model with learning rate 0.{i % 9 + 1} and "
                     f"report an accuracy of {50 + i % 40}.{i % 10} percent." for i in range(n))


def _rates(model: LocalModel, what: str) -> None:
    t = model.last_timings
    print(f"{what}: prompt {t.get('prompt_n', 0)} tokens at {t.get('prompt_per_second', 0):.0f}"
          f" tokens/s, {t.get('cache_n', 0)} reused; generated {t.get('predicted_n', 0)} tokens"
          f" at {t.get('predicted_per_second', 0):.0f} tokens/s")


def measure(model: LocalModel) -> None:
    # Prompt processing: a long prompt, nothing reused (a fresh first line), one token out.
    model.generate([{"role": "user", "content": "A. " + _paper(100) + "\nSummarise."}],
                   max_tokens=1)
    _rates(model, "prompt processing")
    story = [{"role": "user", "content": "B. Write a long story about a lighthouse keeper."}]
    model.generate(story, max_tokens=256, temperature=0.7)
    _rates(model, "generation, free text")
    ask = [{"role": "user", "content": "C. Plan the tasks to reproduce a paper on SGD for "
                                       "linear regression, with dependencies."}]
    js = model.generate(ask, schema=Plan, max_tokens=256)
    _rates(model, f"generation, JSON grammar (valid: {js.parsed is not None})")
    code = model.generate([{"role": "user", "content": "D. Write main.py: SGD for linear "
                            "regression."}], max_tokens=400, code_file="main.py")
    _rates(model, f"generation, Python grammar ({len(code.text.splitlines())} lines)")
    # KV-cache reuse: the paper is resent with every question, as the pipeline does.
    paper = [{"role": "system", "content": _paper(150)}]
    first = model.generate([*paper, {"role": "user", "content": "What is in section 3?"}],
                           max_tokens=8)
    second = model.generate([*paper, {"role": "user", "content": "What is in section 7?"}],
                            max_tokens=8)
    print(f"shared {first.usage.prompt_tokens}-token prefix: first call {first.latency:.2f} s, "
          f"second call {second.latency:.2f} s ({second.usage.cached_prompt_tokens} tokens "
          f"reused) = {first.latency / second.latency:.1f}x faster")


def example_run(timeout: float) -> None:
    papers = sorted(p for p in (ROOT / "examples").glob("*") if p.suffix in (".md", ".pdf")
                    or p.is_dir())
    exe = shutil.which("papercoder", path=str(Path(sys.executable).parent))
    has_run = exe is not None and subprocess.run(
        [exe, "run", "--help"], capture_output=True).returncode == 0
    if not papers or not has_run:
        print("example run: pipeline not available")
        return
    paper = papers[0]
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items()
               if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
        env["PAPERCODER_DB"] = str(Path(tmp) / "store.db")
        started = time.perf_counter()
        try:
            done = subprocess.run([exe, "run", str(paper), "-o", str(Path(tmp) / "out"),
                                   "-m", "local"], env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"example run ({paper.name}): still running after {timeout:.0f} s, stopped")
            return
        wall = time.perf_counter() - started
        last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or [""]
        state = "ok" if done.returncode == 0 else f"exit {done.returncode}: {last[0][:200]}"
        print(f"example run ({paper.name}, -m local): {wall:.1f} s wall ({state})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-run", action="store_true", help="skip the example pipeline run")
    ap.add_argument("--run-timeout", type=float, default=3600.0)
    args = ap.parse_args()

    model = LocalModel()
    started = time.perf_counter()
    model.load()
    print(f"model: {model.path.name} ({model.path.stat().st_size / 2**20:.0f} MiB, "
          f"context {model.context_window}, {model.threads} threads of {os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.1f})")
    print(f"load time: {time.perf_counter() - started:.2f} s")
    measure(model)
    model.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS of this process): {peak:.0f} MiB")
    if not args.skip_run:
        example_run(args.run_timeout)


if __name__ == "__main__":
    main()
