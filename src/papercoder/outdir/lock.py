"""One run per output folder: an advisory lock on ``OUT/.papercoder.lock``.

The lock is an ``flock`` on that file, held for as long as a command writes OUT. The kernel
drops it when the holder exits, however it exits, so a lock left by a dead process (kill -9,
a crash, a power cut) is simply taken over by the next run; the file only says who holds it
(pid, command, start time) so a refused run can name the holder. Nested use in one process
(the pipeline calling another stage that also locks OUT) shares the one lock.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from papercoder.console import safe
from papercoder.errors import OutputBusyError
from papercoder.outdir.paths import open_fd_inside

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".papercoder.lock"

_held: set[tuple[int, int]] = set()
"""(device, inode) of the lock files this process holds."""
_mine: ContextVar[frozenset[tuple[int, int]]] = ContextVar("papercoder_out_locks",
                                                           default=frozenset())
"""The lock files the current context (task, thread) holds: it may lock them again."""
_guard = threading.Lock()


def holder(out: Path) -> dict | None:
    """What the lock file says about its holder (pid, command, started), if anything."""
    try:
        fd = open_fd_inside(Path(out), LOCK_NAME, os.O_RDONLY)
    except Exception:  # noqa: BLE001 - missing or unusable: nobody to name
        return None
    try:
        raw = os.pread(fd, 4096, 0)
    finally:
        os.close(fd)
    try:
        info = json.loads(raw.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return None
    return info if isinstance(info, dict) else None


def _command() -> str:
    first = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    name = first.parent.name if first.name == "__main__.py" else first.name
    return " ".join([name, *sys.argv[1:]])[:300]


def _busy(out: Path) -> OutputBusyError:
    info: dict | None = None
    for _ in range(40):  # the holder writes its name right after taking the lock
        info = holder(out)
        if info and info.get("pid"):
            break
        time.sleep(0.05)
    if info and info.get("pid"):
        who = f"process {int(info['pid'])}"
        if info.get("command"):
            who += f" ({safe(str(info['command']))[:200]})"
    else:
        who = "another process"
    return OutputBusyError(f"The output folder {out} is in use by papercoder {who}; wait for "
                           "it to finish, or choose another output folder with -o.")


@contextmanager
def out_lock(out: Path, command: str | None = None) -> Iterator[dict | None]:
    """Hold OUT's lock for the duration; OutputBusyError (naming the holder) if another
    process, or another task or thread of this one, has it. Code running inside the holder
    (a stage the run calls, in the same task or a task it started) may take it again.
    OUT must exist. Yields what the lock file said about a holder that is gone (its lock
    was taken over), else None."""
    out = Path(out)
    if fcntl is None:  # pragma: no cover
        yield None
        return
    fd = open_fd_inside(out, LOCK_NAME, os.O_RDWR | os.O_CREAT)
    st = os.fstat(fd)
    key = (st.st_dev, st.st_ino)
    if key in _mine.get():  # nested inside the holder: it already has the lock
        os.close(fd)
        yield None
        return
    with _guard:
        taken = key in _held  # by another task or thread of this process
        if not taken:
            _held.add(key)
    if taken:
        os.close(fd)
        raise _busy(out)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(out) from None
        except OSError:  # a file system without locks (rare): run unlocked
            fd_locked = False
        else:
            fd_locked = True
        stale = _take(fd) if fd_locked else None
        if fd_locked:
            info = {"pid": os.getpid(), "command": command or _command(),
                    "started": time.time()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8", "backslashreplace"), 0)
        token = _mine.set(_mine.get() | {key})
        try:
            yield stale
        finally:
            _mine.reset(token)
            if fd_locked:
                os.ftruncate(fd, 0)
    finally:
        with _guard:
            _held.discard(key)
        os.close(fd)  # closing drops the flock


def _take(fd: int) -> dict | None:
    """What a lock file we just took says about its previous holder (gone), if anything."""
    previous = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    if not previous:
        return None
    try:
        stale = json.loads(previous)
    except (ValueError, RecursionError):
        stale = None
    return stale if isinstance(stale, dict) else {"note": previous[:300]}
