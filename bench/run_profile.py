"""Where a run's time went, from the run store: per stage, the calls (and re-asks: calls
beyond one per stage and file), seconds, prompt tokens processed (not reused from the KV
cache), prompt tokens reused, and tokens generated.

    python bench/run_profile.py STORE.db [RUN_ID]

The store is $PAPERCODER_DB or ~/.local/share/papercoder/papercoder.db; the run is the last
one when RUN_ID is not given. For the local model, generation dominates when processed prompt
tokens are few (the KV cache keeps the shared paper prefix).
"""

from __future__ import annotations

import sqlite3
import sys
from collections import defaultdict


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    db = sqlite3.connect(sys.argv[1])
    run = sys.argv[2] if len(sys.argv) > 2 else db.execute(
        "select run_id from exchanges where run_id is not null order by id desc limit 1"
    ).fetchone()[0]
    rows = db.execute(
        "select stage, coalesce(file, ''), latency, coalesce(prompt_tokens, 0), "
        "coalesce(cached_prompt_tokens, 0), coalesce(completion_tokens, 0), status "
        "from exchanges where run_id = ? order by id", (run,)).fetchall()
    per: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0, 0, 0, 0])
    seen: set[tuple[str, str]] = set()
    for stage, file, latency, prompt, cached, out, _status in rows:
        p = per[stage]
        p[0] += 1
        if (stage, file) in seen:
            p[1] += 1
        seen.add((stage, file))
        p[2] += latency or 0.0
        p[3] += max(prompt - cached, 0)
        p[4] += cached
        p[5] += out
    total = [sum(p[i] for p in per.values()) for i in range(6)]
    print(f"run {run}")
    print(f"{'stage':<14} {'calls':>5} {'re-asks':>7} {'seconds':>8} {'prompt new':>10} "
          f"{'reused':>7} {'generated':>9}")
    for stage, p in [*per.items(), ("total", total)]:
        print(f"{stage:<14} {p[0]:>5.0f} {p[1]:>7.0f} {p[2]:>8.1f} {p[3]:>10.0f} {p[4]:>7.0f} "
              f"{p[5]:>9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
