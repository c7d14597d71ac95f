"""What the safe output-folder API costs next to plain pathlib calls.

Every write under OUT walks the folders with O_NOFOLLOW descriptors and replaces the file
through an exclusively created temporary file; every read opens without following links and
checks the file is a regular, singly linked file. This prints the time per call of each,
against ``Path.write_text``/``Path.read_text``, for a file 3 folders deep, plus the time to
take and release the OUT lock.

Usage: python bench/safe_fs.py [N]
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from papercoder.outdir.lock import out_lock
from papercoder.outdir.paths import read_inside, write_inside


def per_call(fn: Callable[[int], object], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    text = "x = 1\n" * 500  # a 3 KB source file
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rel = "repo/pkg/sub/mod.py"
        plain = root / "plain" / rel
        plain.parent.mkdir(parents=True)
        rows = [
            ("write, pathlib (not atomic)", per_call(lambda i: plain.write_text(text), n)),
            ("write_inside (atomic, no links)", per_call(lambda i: write_inside(root, rel,
                                                                                text), n)),
            ("read, pathlib", per_call(lambda i: plain.read_text(), n)),
            ("read_inside (no links)", per_call(lambda i: read_inside(root, rel), n)),
        ]

        def lock(i: int) -> None:
            with out_lock(root):
                pass

        rows.append(("out_lock take + release", per_call(lock, n)))
    print(f"{'operation':34} {'us per call':>12}   (n={n}, file 3 folders deep, 3 KB)")
    for name, us in rows:
        print(f"{name:34} {us:12.1f}")


if __name__ == "__main__":
    main()
