"""Small generated repositories with planted bugs, as output folders verify can read."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

from papercoder.models.scripted import ScriptedModel
from papercoder.outdir.record import Manifest
from papercoder.outdir.workspace import Workspace
from papercoder.store import Store
from papercoder.verify import Limits, VerifyOptions, VerifyResult, verify_output

SMOKE = [{"command": "python main.py --smoke", "outputs": ["results/metrics.json"]}]

MAIN = '''import argparse
import json
import os
import random

import yaml

from model import Model


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--seed", type=int, default=int(os.environ.get("SEED", "0")))
    args = p.parse_args()
    with open("config.yaml") as f:
        cfg = yaml.safe_load(f)
    random.seed(args.seed)
    width = cfg["model"]["width"]
    model = Model(width)
    loss = model.step([random.random() for _ in range(width)])
    os.makedirs("results", exist_ok=True)
    with open("results/metrics.json", "w") as f:
        json.dump({"loss": loss, "seed": args.seed}, f)


if __name__ == "__main__":
    main()
'''

MODEL = '''class Model:
    def __init__(self, width: int) -> None:
        self.weights = [0.5] * width

    def step(self, xs: list[float]) -> float:
        if len(xs) != len(self.weights):
            raise ValueError(f"shapes ({len(xs)},) and ({len(self.weights)},) not aligned")
        return sum(w * x for w, x in zip(self.weights, xs))
'''

REPRODUCE = "#!/bin/bash\nset -e\npython main.py \"$@\"\n"
CONFIG = "model:\n  width: 4\n"
REQUIREMENTS = "pyyaml>=5\n"


def good_repo() -> dict[str, str]:
    return {"main.py": MAIN, "model.py": MODEL, "reproduce.sh": REPRODUCE,
            "config.yaml": CONFIG, "requirements.txt": REQUIREMENTS}


def make_out(root: Path, files: dict[str, str], smoke: list[dict[str, Any]] | None = None) \
        -> Path:
    """An output folder as `papercoder run` leaves it: repo/, artifacts/logic.json, run.json."""
    out = root / "out"
    ws = Workspace(out)
    ws.ensure()
    for rel, text in files.items():
        ws.write_repo_file(rel, text)
    py = [f for f in files if f.endswith(".py")]
    ws.write_artifact("logic.json", json.dumps({
        "required_packages": [], "task_list": py, "shared_knowledge": "",
        "logic_analysis": [{"file": f, "notes": f"Notes on {f}.", "depends_on": []}
                           for f in py],
        "smoke_commands": SMOKE if smoke is None else smoke}))
    m = Manifest(run_id="run-verify-test", model="", status="done",
                 files={f: {"status": "written"} for f in py}, order=py)
    ws.save_manifest(m)
    return out


def edit(path: str, search: str, replace: str) -> str:
    """An answer with one SEARCH/REPLACE block (whole lines)."""
    search = search if not search or search.endswith("\n") else search + "\n"
    replace = replace if not replace or replace.endswith("\n") else replace + "\n"
    return f"The fix.\n\n{path}\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def edit_line(files: dict[str, str], path: str, old: str, new: str) -> str:
    """An edit that replaces ``old`` by ``new`` in the line of ``files[path]`` holding it."""
    line = next(x for x in files[path].splitlines(keepends=True) if old in x)
    return edit(path, line, line.replace(old, new))


def options(**kw: Any) -> VerifyOptions:
    base: dict[str, Any] = {"execute": True, "install": False, "python": Path(sys.executable),
                            "timeout": 120.0, "static_repair": False, "quiet": True,
                            "limits": Limits(memory_mb=4096, cpu_seconds=120)}
    base.update(kw)
    return VerifyOptions(**base)


def run_result(out: Path, model: ScriptedModel | None, store: Store,
               **kw: Any) -> VerifyResult:
    return asyncio.run(verify_output(out, model=model, store=store, options=options(**kw)))


def run(out: Path, model: ScriptedModel | None, store: Store, **kw: Any) -> dict[str, Any]:
    """verify's result as run.json holds it (the JSON the README documents)."""
    return run_result(out, model, store, **kw).model_dump(mode="json")


def build_wheel(dest: Path, name: str = "tinypkg", version: str = "1.0",
                body: str = "VALUE = 42\n") -> Path:
    """A minimal pure-Python wheel, so pip can install it with --no-index."""
    dest.mkdir(parents=True, exist_ok=True)
    whl = dest / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": body,
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n"}
    record = []
    for p, c in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).rstrip(b"=")
        record.append(f"{p},sha256={digest.decode()},{len(c.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(whl, "w") as z:
        for p, c in files.items():
            z.writestr(p, c)
    return whl
