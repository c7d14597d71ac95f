"""Static checks on real repositories: per check, the certain findings and the notes.

    python bench/static_precision.py DIR... [--show] [--json]

Each DIR is a repository folder (fetched for measuring; never committed). ``--show`` prints
every certain finding (to judge by hand), ``--json`` every finding as JSON Lines. The checks
are those `papercoder verify PATH` runs on any repository (papercoder's own reproduce.sh
contract is left out). A last line says how far the Hydra config judgement reaches:
``@hydra.main`` functions, how many have their config folder in the repository and a fully
modelled composition (only those can give certain config findings), and the key paths read.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

from papercoder.verify.static import hydra_reach, read_repo, run_static


def main(argv: list[str]) -> int:
    show = "--show" in argv
    as_json = "--json" in argv
    dirs = [Path(a) for a in argv if not a.startswith("--")]
    if not dirs:
        print("usage: static_precision.py DIR... [--show] [--json]", file=sys.stderr)
        return 2
    certain: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    files = lines = 0
    hydra: Counter[str] = Counter()
    t0 = time.perf_counter()
    for d in dirs:
        if not d.is_dir():
            print(f"{d} is not a folder; give repository folders.", file=sys.stderr)
            return 2
        code = read_repo(d)
        py = [f for f in code if f.endswith(".py")]
        files += len(py)
        lines += sum(code[f].count("\n") for f in py)
        found = run_static(code, reproduce=False)
        hydra.update(hydra_reach(code))
        for f in found:
            (certain if f["certain"] else notes)[f["check"]] += 1
            if as_json:
                print(json.dumps({"repo": d.name, **{k: f[k] for k in (
                    "file", "line", "check", "certain", "message")}}))
            elif show and f["certain"]:
                print(f"{d.name}/{f['file']}:{f['line']} [{f['check']}] {f['message']}")
    secs = time.perf_counter() - t0
    print(f"{len(dirs)} repositories, {files} Python files, {lines} lines, {secs:.1f} s")
    print(f"{'check':<14}{'certain':>9}{'notes':>8}")
    for check in sorted(set(certain) | set(notes)):
        print(f"{check:<14}{certain[check]:>9}{notes[check]:>8}")
    if hydra["functions"]:
        print(f"Hydra: {hydra['functions']} @hydra.main function(s), {hydra['config_found']} "
              f"with their config folder in the repository, {hydra['fully_modelled']} with "
              f"the composition fully modelled (certain findings possible); "
              f"{hydra['reads']} key path(s) read from their argument")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
