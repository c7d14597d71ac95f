"""Checking the file paths a model proposes, and the one way to touch the output folder.

Every read and write under OUT goes through the functions below. The root they are given
(OUT as the user named it) is trusted and may itself be a link; below it no symbolic link is
ever followed: each component is opened relative to its parent's file descriptor with
``O_NOFOLLOW``, so a link planted anywhere below the root, or swapped in during the run, is
refused with :class:`LinkInOutputError` naming it. Files are replaced atomically through a
temporary file created exclusively (``O_CREAT | O_EXCL``) under a random name, and a file
with another hard link is never read or appended to (its content would come from, or go to,
a file outside OUT).
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
import secrets
import stat
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from papercoder.errors import (
    LinkInOutputError,
    OutputFolderError,
    PapercoderError,
    UnsafePathError,
)

_DRIVE = re.compile(r"^[A-Za-z]:")
_RESERVED_WIN = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                 *(f"lpt{i}" for i in range(1, 10))}
MAX_PATH_LEN = 200


def clean_path(raw: str) -> str:
    """A model-proposed path, normalized, or UnsafePathError naming it."""
    if not isinstance(raw, str):
        raise UnsafePathError(f"The plan names a file path that is not text ({raw!r}); "
                              "fix the plan's file list and rerun.")
    p = raw.strip().strip("`'\"").replace("\\", "/")
    shown = repr(raw)
    if not p:
        raise UnsafePathError("The plan names an empty file path; fix the plan's file list.")
    if p.endswith("/") or p.endswith("/.") or p in (".", ".."):
        raise UnsafePathError(f"The plan's file path {shown} names a folder, not a file; list "
                              "the files inside it instead.")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in p):
        raise UnsafePathError(f"The plan's file path {shown} contains control characters; "
                              "it was refused and nothing was written.")
    if "\ufffd" in p:
        raise UnsafePathError(f"The plan's file path {shown} holds characters that could not be "
                              "decoded; use plain file names.")
    if p.startswith("/") or p.startswith("~") or _DRIVE.match(p) or p.startswith("//"):
        raise UnsafePathError(f"The plan's file path {shown} is absolute; only paths inside "
                              "the repository are allowed, and nothing was written.")
    parts = [x for x in p.split("/") if x not in ("", ".")]
    if any(x == ".." for x in parts):
        raise UnsafePathError(f"The plan's file path {shown} climbs out of the repository "
                              "with '..'; it was refused and nothing was written.")
    if not parts:
        raise UnsafePathError(f"The plan's file path {shown} names no file; fix the file list.")
    if parts[0].startswith("~"):  # "./~/x" is "~/x" once normalized: a home folder
        raise UnsafePathError(f"The plan's file path {shown} is absolute; only paths inside "
                              "the repository are allowed, and nothing was written.")
    norm = posixpath.join(*parts)
    if len(norm) > MAX_PATH_LEN or any(len(x) > 100 for x in parts):
        raise UnsafePathError(f"The plan's file path {shown} is too long; fix the file list.")
    for x in parts:
        if x.split(".")[0].lower() in _RESERVED_WIN or x.endswith((" ", ".")) or ":" in x:
            raise UnsafePathError(f"The plan's file path {shown} uses a reserved or invalid "
                                  "name; fix the file list.")
        if x == ".git":
            raise UnsafePathError(f"The plan's file path {shown} writes into .git; refused.")
    return norm


def check_file_list(paths: Iterable[str], reserved: Iterable[str] = ()) -> list[str]:
    """Clean every path and refuse folder-like names, names that differ only in case, and
    file/folder clashes. ``reserved`` are names the program writes itself: a path equal to
    one of them is kept, a path that differs from one only in case is refused."""
    out: list[str] = []
    seen: dict[str, str] = {}
    for raw in paths:
        p = clean_path(raw)
        key = p.lower()
        if key in seen:
            if seen[key] == p:
                continue  # the same file twice is harmless
            raise UnsafePathError(f"The plan names both {seen[key]!r} and {p!r}, which clash on "
                                  "case-insensitive file systems; fix the file list.")
        seen[key] = p
        out.append(p)
    for r in reserved:
        if r.lower() in seen and seen[r.lower()] != r:
            raise UnsafePathError(f"The plan names {seen[r.lower()]!r}, which clashes with the "
                                  f"{r!r} papercoder writes itself; fix the file list.")
    lowered = {p.lower() for p in out}
    for p in out:
        parts = p.lower().split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in lowered:
                raise UnsafePathError(f"The plan uses {'/'.join(p.split('/')[:i])!r} both as a "
                                      f"file and as a folder (in {p!r}); fix the file list.")
    return out


MAX_READ = 64 * 1024 * 1024
"""The largest file read back from OUT (a larger one is refused, never loaded)."""

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
_LINK_ERRNOS = {errno.ELOOP, errno.EMLINK}  # O_NOFOLLOW on a link: ELOOP (EMLINK on BSD)


class _FolderNotFile(OutputFolderError):
    """A folder stands where a file is needed."""


def _folder_error(root: Path, parts: list[str]) -> _FolderNotFile:
    return _FolderNotFile(f"{_shown(root, parts)} is a folder where a file is needed; move it "
                          "aside and rerun.")


def _parts(rel: str) -> list[str]:
    return clean_path(rel).split("/")


def _shown(root: Path, parts: list[str]) -> str:
    return str(Path(root, *parts))


def _link_error(root: Path, parts: list[str], hard: bool = False) -> LinkInOutputError:
    what = "a hard link shared with a file elsewhere" if hard else "a symbolic link"
    return LinkInOutputError(
        f"{_shown(root, parts)} is {what}; papercoder never follows links inside the output "
        "folder, so remove it (or choose another output folder with -o) and rerun.")


def _os_error(e: OSError, root: Path, parts: list[str], doing: str) -> OutputFolderError:
    reason = e.strerror or type(e).__name__
    return OutputFolderError(f"Cannot {doing} {_shown(root, parts)} ({reason}); fix the output "
                             "folder or choose another one with -o.")


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def create_root(root: Path) -> None:
    """Create the trusted root folder (OUT) and its parents, or raise one sentence saying
    why it cannot be: a file in the way, no permission, a system folder."""
    root = Path(root)
    if root.is_dir():
        return
    if root.exists() or root.is_symlink():
        raise OutputFolderError(f"The output path {root} is not a folder; give a folder "
                                "with -o.")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except NotADirectoryError:
        blocker = next((a for a in root.parents if a.exists() and not a.is_dir()), root.parent)
        raise OutputFolderError(f"The output folder {root} cannot be created because {blocker} "
                                "is a file; choose another folder with -o.") from None
    except FileExistsError:
        raise OutputFolderError(f"The output path {root} is not a folder; give a folder "
                                "with -o.") from None
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise OutputFolderError(f"The output folder {root} cannot be created ({reason}); "
                                "choose a folder you can write to with -o.") from None


def _open_root(root: Path, create: bool) -> int | None:
    if create:
        create_root(root)
    try:
        return os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    except FileNotFoundError:
        if create:
            raise OutputFolderError(f"The output folder {root} disappeared during the run; "
                                    "rerun to resume.") from None
        return None
    except NotADirectoryError:
        raise OutputFolderError(f"The output path {root} is not a folder; give a folder "
                                "with -o.") from None
    except OSError as e:
        raise _os_error(e, root, [], "open") from None


def _open_dir(root: Path, parts: list[str], create: bool) -> int | None:
    """A descriptor of root/parts..., opened without following any link below ``root``;
    None when something is missing and ``create`` is false. The caller closes it."""
    fd = _open_root(root, create)
    if fd is None:
        return None
    try:
        for i, name in enumerate(parts):
            try:
                nfd = os.open(name, _DIR, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    os.close(fd)
                    return None
                try:
                    os.mkdir(name, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass  # made by someone else meanwhile; opened below without following
                except OSError as e:
                    raise _os_error(e, root, parts[: i + 1], "create the folder") from None
                nfd = _open_next(fd, name, root, parts[: i + 1])
            except OSError as e:
                raise _classify(e, fd, name, root, parts[: i + 1]) from None
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def _open_next(fd: int, name: str, root: Path, shown: list[str]) -> int:
    try:
        return os.open(name, _DIR, dir_fd=fd)
    except OSError as e:
        raise _classify(e, fd, name, root, shown) from None


def _classify(e: OSError, dir_fd: int, name: str, root: Path,
              shown: list[str]) -> PapercoderError:
    if e.errno in _LINK_ERRNOS or _is_link(dir_fd, name):
        return _link_error(root, shown)
    if e.errno == errno.ENOTDIR:
        return OutputFolderError(f"{_shown(root, shown)} is a file where a folder is needed; "
                                 "move it aside and rerun.")
    return _os_error(e, root, shown, "open")


def _open_file(root: Path, rel: str, flags: int, *, create_dirs: bool,
               mode: int = 0o666) -> int | None:
    """A descriptor of the regular file root/rel opened with ``flags`` (never through a
    link, never a FIFO or device); None when it or a folder on the way is missing."""
    parts = _parts(rel)
    dfd = _open_dir(root, parts[:-1], create_dirs)
    if dfd is None:
        return None
    try:
        try:
            fd = os.open(parts[-1], flags | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK, mode,
                         dir_fd=dfd)
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise _folder_error(root, parts) from None
        except OSError as e:
            if e.errno in _LINK_ERRNOS or _is_link(dfd, parts[-1]):
                raise _link_error(root, parts) from None
            raise _os_error(e, root, parts, "open") from None
    finally:
        os.close(dfd)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise _folder_error(root, parts)
        if not stat.S_ISREG(st.st_mode):
            raise OutputFolderError(f"{_shown(root, parts)} is not a regular file; remove it "
                                    "and rerun.")
        if st.st_nlink > 1:
            raise _link_error(root, parts, hard=True)
        os.set_blocking(fd, True)
        return fd
    except BaseException:
        os.close(fd)
        raise


def resolve_inside(root: Path, rel: str) -> Path:
    """The absolute path of ``rel`` under ``root``, refusing a path that climbs out and any
    symbolic link already on disk below ``root`` (LinkInOutputError names it)."""
    parts = _parts(rel)
    dfd = _open_dir(root, parts[:-1], create=False)
    if dfd is not None:
        try:
            if _is_link(dfd, parts[-1]):
                raise _link_error(root, parts)
        finally:
            os.close(dfd)
    return Path(root).resolve() / "/".join(parts)


def write_inside(root: Path, rel: str, content: str | bytes) -> Path:
    """Replace (or create) the file ``rel`` under ``root`` atomically: the content goes to
    an exclusively created temporary file beside it, which is then renamed over it. Folders
    on the way are created; no link below ``root`` is followed or replaced."""
    parts = _parts(rel)
    data = content if isinstance(content, bytes) else content.encode("utf-8", "backslashreplace")
    dfd = _open_dir(root, parts[:-1], create=True)
    assert dfd is not None
    name = parts[-1]
    try:
        if _is_link(dfd, name):
            raise _link_error(root, parts)
        tmp = f".{name[:100]}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC,
                         0o666, dir_fd=dfd)
        except OSError as e:
            raise _os_error(e, root, parts[:-1] + [tmp], "create") from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException as e:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
            if isinstance(e, IsADirectoryError) or (isinstance(e, OSError) and e.errno in (
                    errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST)):
                raise _folder_error(root, parts) from None
            if isinstance(e, OSError):
                raise _os_error(e, root, parts, "write") from None
            raise
    finally:
        os.close(dfd)
    return Path(root).resolve() / "/".join(parts)


def read_inside(root: Path, rel: str, *, max_bytes: int = MAX_READ) -> str | None:
    """The text of the regular file ``rel`` under ``root``, or None when there is none
    (missing, or a folder). A link on the way is refused (LinkInOutputError), never
    followed; undecodable bytes are replaced."""
    try:
        fd = _open_file(root, rel, os.O_RDONLY, create_dirs=False)
    except _FolderNotFile:
        return None
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise _os_error(e, root, _parts(rel), "read") from None
    if len(data) > max_bytes:
        raise OutputFolderError(f"{_shown(root, _parts(rel))} is larger than {max_bytes} "
                                "bytes; it was not read.")
    return data.decode("utf-8", "replace")


def mkdir_inside(root: Path, rel: str) -> Path:
    """Create the folder ``rel`` (and those on the way) under ``root``, following no link."""
    parts = _parts(rel)
    fd = _open_dir(root, parts, create=True)
    assert fd is not None
    os.close(fd)
    return Path(root).resolve() / "/".join(parts)


def remove_inside(root: Path, rel: str) -> bool:
    """Remove the file ``rel`` under ``root`` if it is there (a link in the way is refused).
    True when something was removed."""
    parts = _parts(rel)
    dfd = _open_dir(root, parts[:-1], create=False)
    if dfd is None:
        return False
    try:
        if _is_link(dfd, parts[-1]):
            raise _link_error(root, parts)
        try:
            os.unlink(parts[-1], dir_fd=dfd)
        except FileNotFoundError:
            return False
        except IsADirectoryError:
            return False
        except OSError as e:
            if e.errno in (errno.EISDIR, errno.EPERM):
                return False
            raise _os_error(e, root, parts, "remove") from None
        return True
    finally:
        os.close(dfd)


def open_fd_inside(root: Path, rel: str, flags: int = os.O_RDWR | os.O_CREAT) -> int:
    """A raw descriptor of the regular file ``rel`` under ``root`` (created when ``flags``
    has O_CREAT), never opened through a link. The caller closes it."""
    fd = _open_file(root, rel, flags, create_dirs=bool(flags & os.O_CREAT))
    if fd is None:
        raise OutputFolderError(f"{_shown(root, _parts(rel))} does not exist.")
    return fd


def open_inside(root: Path, rel: str, mode: str = "a") -> IO[str]:
    """A text stream on the file ``rel`` under ``root``: "a" appends (a log), "w" truncates,
    "r" reads. Opened without following links; a hard-linked file is refused."""
    flags = {"a": os.O_WRONLY | os.O_APPEND | os.O_CREAT,
             "w": os.O_WRONLY | os.O_CREAT, "r": os.O_RDONLY}[mode]
    fd = open_fd_inside(root, rel, flags)
    if mode == "w":
        os.ftruncate(fd, 0)
    return os.fdopen(fd, mode, encoding="utf-8", errors="backslashreplace")
