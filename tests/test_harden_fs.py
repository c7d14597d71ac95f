"""Hardening, the output folder: no link below OUT is followed, nothing outside OUT changes,
and output folders that cannot be used end in one sentence with exit status 2."""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from papercoder.cli import app
from papercoder.errors import LinkInOutputError, OutputFolderError, UnsafePathError
from papercoder.outdir.paths import (
    clean_path,
    mkdir_inside,
    open_inside,
    read_inside,
    remove_inside,
    resolve_inside,
    write_inside,
)
from papercoder.store import Store
from tests import pipeline_helpers as ph

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
SECRET = "canary-secret-7f3a9c: must never reach OUT, the model or the store"


def tree_digest(folder: Path) -> dict[str, str]:
    """Every entry below ``folder`` (links not followed) with a hash of what it is."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(folder))
            st_ = p.lstat()
            if stat.S_ISLNK(st_.st_mode):
                out[rel] = "link:" + os.readlink(p)
            elif stat.S_ISDIR(st_.st_mode):
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() + f":{st_.st_mtime_ns}"
    return out


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A folder beside OUT that nothing may touch."""
    c = tmp_path / "canary"
    (c / "dir").mkdir(parents=True)
    (c / "secret.txt").write_text(SECRET + "\n")
    (c / "dir" / "inner.txt").write_text(SECRET + " (inner)\n")
    return c


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def assert_one_sentence(r: Result, code: int) -> str:
    out = r.output.strip()
    assert r.exit_code == code, out
    assert "Traceback" not in out, out
    assert out.startswith("Error: ") and "\n" not in out, out
    return out


# -- symlink placements -------------------------------------------------------------------
# Every place a run reads or writes, linked to a file, to a folder, or dangling (a link
# whose target does not exist yet: following it would create a file beside OUT).
DIRS = ["repo", "artifacts", "artifacts/analysis", "artifacts/coding"]
FILES = (["run.json", "papercoder.log", ".papercoder.lock", "artifacts/plan.md",
          "artifacts/architecture.json", "artifacts/logic.json", "artifacts/config.yaml",
          "repo/README.md", "repo/config.yaml", "repo/requirements.txt"]
         + [f"repo/{f}" for f in ph.FILES]
         + [f"artifacts/analysis/{f}.md" for f in ph.FILES]
         + [f"artifacts/coding/{f}.md" for f in ph.FILES])
TMPS = ["repo/.main.py.tmp", "artifacts/.plan.md.tmp", ".run.json.tmp",
        "artifacts/coding/.main.py.md.tmp"]
TARGETS = {"file": "secret.txt", "dir": "dir", "dangling": "created-through-a-link.txt"}
CASES = [(loc, kind) for loc in DIRS + FILES + TMPS for kind in TARGETS]


@pytest.mark.parametrize(("location", "kind"), CASES,
                         ids=[f"{loc}->{kind}" for loc, kind in CASES])
def test_link_in_out_is_refused_or_harmless(tmp_path: Path, canary: Path, location: str,
                                            kind: str) -> None:
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    link = out / location
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(canary / TARGETS[kind])
    before = tree_digest(canary)
    r = cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")
    assert tree_digest(canary) == before, "something beside OUT changed"
    assert not (canary / TARGETS["dangling"]).exists()
    if location in TMPS:
        # temporary files have fresh random names: an old link is never written through
        assert r.exit_code == 0, r.output
        assert json.loads((out / "run.json").read_text())["status"] == "done"
        assert link.is_symlink()
    else:
        msg = assert_one_sentence(r, 2)
        assert "symbolic link" in msg and str(link) in msg.replace("\n", "")
    assert SECRET not in r.output
    store = Store(tmp_path / "store.db")
    assert all(SECRET not in json.dumps(x.request) for x in store.exchanges())


@pytest.mark.parametrize("kind", ["file", "hardlink"])
@pytest.mark.parametrize("victim", ["model.py", "main.py"])
def test_repo_file_replaced_by_a_link_on_resume_is_never_read(tmp_path: Path, canary: Path,
                                                              kind: str, victim: str) -> None:
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    args = ["run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q"]
    assert cli(*args).exit_code == 0
    store = Store(tmp_path / "store.db")
    n_before = len(store.exchanges())
    target = out / "repo" / victim
    target.unlink()
    if kind == "file":
        target.symlink_to(canary / "secret.txt")
    else:
        os.link(canary / "secret.txt", target)
    before = tree_digest(canary)
    r = cli(*args, "--from", "coding")
    msg = assert_one_sentence(r, 2)
    assert str(target) in msg and "link" in msg
    assert tree_digest(canary) == before
    assert all(SECRET not in json.dumps(x.request) for x in store.exchanges()[n_before:])


def test_link_in_out_through_the_installed_cli_subprocess(tmp_path: Path,
                                                          canary: Path) -> None:
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "papercoder.log").symlink_to(canary / "secret.txt")
    before = tree_digest(canary)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run([sys.executable, "-m", "papercoder", "run", str(paper), "-m",
                           f"scripted:{script}", "-o", str(out), "-q"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.startswith("Error: ") and "papercoder.log" in done.stderr
    assert tree_digest(canary) == before


def test_out_itself_may_be_a_link_the_user_chose(tmp_path: Path) -> None:
    paper, script = ph.write_fixture(tmp_path)
    real = tmp_path / "real-out"
    real.mkdir()
    (tmp_path / "out").symlink_to(real)
    r = cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(tmp_path / "out"), "-q")
    assert r.exit_code == 0, r.output
    assert (real / "repo" / "main.py").read_text() == ph.CODE["main.py"]


# -- output folders that cannot be used ----------------------------------------------------
def _unusable(tmp_path: Path, case: str) -> Path:
    if case == "proc":
        return Path("/proc/papercoder-test/out")
    if case == "sys":
        return Path("/sys/papercoder-test/out")
    if case == "parent-is-file":
        (tmp_path / "afile").write_text("x")
        return tmp_path / "afile" / "sub" / "out"
    if case == "out-is-file":
        (tmp_path / "outfile").write_text("x")
        return tmp_path / "outfile"
    if case == "dangling-out":
        (tmp_path / "dangling").symlink_to(tmp_path / "afile" / "nowhere")
        (tmp_path / "afile").write_text("x")
        return tmp_path / "dangling"
    if case == "no-permission":
        if os.geteuid() == 0:
            pytest.skip("root ignores folder permissions")
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        return locked / "out"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["proc", "sys", "parent-is-file", "out-is-file",
                                  "dangling-out", "no-permission"])
@pytest.mark.parametrize("command", ["run", "plan"])
def test_output_folder_that_cannot_be_created(tmp_path: Path, case: str, command: str) -> None:
    if case in ("proc", "sys") and not Path(f"/{case}").is_dir():
        pytest.skip(f"/{case} is absent here")
    paper, script = ph.write_fixture(tmp_path)
    out = _unusable(tmp_path, case)
    r = cli(command, str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")
    msg = assert_one_sentence(r, 2)
    assert "output" in msg and "-o" in msg


def test_output_folder_errors_through_a_subprocess(tmp_path: Path) -> None:
    paper, script = ph.write_fixture(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    for out in ("/proc/papercoder-test/out", str(tmp_path / "paper.md" / "out")):
        done = subprocess.run([sys.executable, "-m", "papercoder", "run", str(paper), "-m",
                               f"scripted:{script}", "-o", out, "-q"],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("Error: ")


# -- the API itself ------------------------------------------------------------------------
def test_write_inside_refuses_a_link_at_every_depth(tmp_path: Path, canary: Path) -> None:
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    for depth, rel in enumerate(["a", "a/b", "a/b/c.txt"]):
        p = root / rel
        if p.is_dir():
            os.rename(p, tmp_path / f"moved{depth}")
        p.symlink_to(canary / ("dir" if depth < 2 else "secret.txt"))
        with pytest.raises(LinkInOutputError, match="symbolic link"):
            write_inside(root, "a/b/c.txt", "x")
        with pytest.raises(LinkInOutputError):
            read_inside(root, "a/b/c.txt")
        with pytest.raises(LinkInOutputError):
            resolve_inside(root, "a/b/c.txt")
        with pytest.raises(LinkInOutputError):
            remove_inside(root, "a/b/c.txt")
        p.unlink()
        if depth < 2:
            os.rename(tmp_path / f"moved{depth}", p)
    assert (canary / "secret.txt").read_text() == SECRET + "\n"


def test_read_inside_refuses_fifos_hard_links_and_huge_files(tmp_path: Path,
                                                            canary: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / "pipe")
    with pytest.raises(OutputFolderError, match="not a regular file"):
        read_inside(root, "pipe")  # must not block waiting for a writer
    os.link(canary / "secret.txt", root / "hard.txt")
    with pytest.raises(LinkInOutputError, match="hard link"):
        read_inside(root, "hard.txt")
    with pytest.raises(LinkInOutputError, match="hard link"):
        open_inside(root, "hard.txt", "a")
    (root / "big.txt").write_bytes(b"x" * 2000)
    with pytest.raises(OutputFolderError, match="larger"):
        read_inside(root, "big.txt", max_bytes=1000)
    assert read_inside(root, "missing.txt") is None
    assert read_inside(root, "missing/dir/x.txt") is None
    mkdir_inside(root, "d")
    assert read_inside(root, "d") is None
    (root / "latin1.txt").write_bytes(b"caf\xe9")
    assert read_inside(root, "latin1.txt") == "caf\ufffd"
    assert (canary / "secret.txt").read_text() == SECRET + "\n"


def test_write_inside_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_inside(root, "pkg/mod.py", "one\n")
    write_inside(root, "pkg/mod.py", "two \udc80 surrogate\n")
    assert (root / "pkg" / "mod.py").read_text() == "two \\udc80 surrogate\n"
    assert sorted(os.listdir(root / "pkg")) == ["mod.py"]
    (root / "pkg" / "sub").mkdir()
    with pytest.raises(OutputFolderError, match="is a folder"):
        write_inside(root, "pkg/sub", "x")
    assert sorted(os.listdir(root / "pkg")) == ["mod.py", "sub"]
    (root / "afile").write_text("x")
    with pytest.raises(OutputFolderError, match="is a file where a folder"):
        write_inside(root, "afile/x.py", "x")


def test_the_log_appends_without_following_links(tmp_path: Path, canary: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with open_inside(root, "papercoder.log", "a") as f:
        f.write("line 1\n")
    with open_inside(root, "papercoder.log", "a") as f:
        f.write("line 2 \ud800\n")
    assert (root / "papercoder.log").read_text() == "line 1\nline 2 \\ud800\n"
    (root / "other.log").symlink_to(canary / "secret.txt")
    with pytest.raises(LinkInOutputError):
        open_inside(root, "other.log", "a")
    assert (canary / "secret.txt").read_text() == SECRET + "\n"


# -- properties ----------------------------------------------------------------------------
SEGMENT = st.sampled_from(["a", "b.py", "..", ".", "", "~", "C:", "\\", "con", ".git", " ",
                           "x\x00", "\x1b[2J", "\u202e", "a b", "é", "pkg", "..."])
RAW = st.one_of(
    st.text(max_size=80),
    st.lists(SEGMENT, max_size=8).map("/".join),
    st.lists(SEGMENT, max_size=8).map("\\".join),
    st.tuples(st.sampled_from(["", "/", "//", "~/", "C:\\", "./", "../"]),
              st.lists(SEGMENT, max_size=6).map("/".join)).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(RAW)
def test_clean_path_never_returns_an_escape(raw: str) -> None:
    try:
        p = clean_path(raw)
    except UnsafePathError:
        return
    assert p and not p.startswith(("/", "~")) and "\\" not in p
    assert posixpath.normpath(p) == p
    parts = p.split("/")
    assert ".." not in parts and "." not in parts and "" not in parts
    assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in p)
    assert ":" not in p and ".git" not in parts
    assert clean_path(p) == p  # idempotent


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(RAW, st.lists(st.sampled_from(["a", "a/b", "pkg", "b.py", "pkg/x"]), max_size=3))
def test_resolve_inside_never_leaves_root(tmp_path: Path, raw: str, links: list[str]) -> None:
    root = tmp_path / "prop-root"
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    root.mkdir(exist_ok=True)
    made = []
    for rel in links:  # links planted in the root, pointing outside
        p = root / rel
        if p.parent.is_dir() and not p.parent.is_symlink() and not os.path.lexists(p):
            p.symlink_to(outside)
            made.append(p)
    try:
        try:
            target = resolve_inside(root, raw)
        except UnsafePathError:
            return
        base = root.resolve()
        assert target == base / clean_path(raw)
        assert os.path.realpath(target).startswith(str(base) + os.sep)
    finally:
        for p in made:
            p.unlink()
