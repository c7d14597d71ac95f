"""The Python environment generated code runs in.

Default: a virtual environment at ``OUT/verify/venv`` that sees the current interpreter's
packages (``--system-site-packages`` plus a ``.pth`` file naming this interpreter's own
site-packages, so a torch installed in the user's virtualenv is reused). The repository's
requirements that are not already satisfied are installed into it with a constraints file
pinning every installed distribution, so pip can never replace the user's torch. Every pip run
is appended to ``OUT/verify/install.log``. A failed install is reported, not raised: it
becomes a finding for the debug loop.

The requirements are model-written, and building an sdist runs its code, so pip runs in the
same bubblewrap sandbox as the generated code: network allowed (pip must reach the index), the
venv the only writable folder besides a private ``/tmp`` and an empty work folder, the home
folder hidden, the environment filtered, and (as root) the ``nobody`` user. Without bwrap pip
runs as before (filtered environment and a timeout only), and ``install_sandbox: "none"`` in
run.json says so. What the venv holds is read from its metadata in this process, never by
starting the venv's interpreter outside the sandbox (an installed ``.pth`` file runs code).

Alternatives: ``python=PATH`` (an interpreter the user prepared; nothing is installed) and
``install=False`` (the current interpreter, nothing installed).
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from papercoder.errors import ConfigError
from papercoder.verify.requirements import Installed
from papercoder.verify.sandbox import ENV_ALLOW, NETWORK_ENV, NOBODY, Limits, Sandbox

PIP_TIMEOUT = 1800.0
TOOLING = {"pip", "setuptools", "wheel"}
"""Not pinned: packages such as torch require a newer setuptools than an old venv has."""


@dataclass
class Environment:
    kind: str  # "venv" | "python" | "none"
    python: Path
    installed: list[str] = field(default_factory=list)
    failure: str | None = None
    """pip's condensed output when the last install failed."""
    readonly: list[Path] = field(default_factory=list)
    """Folders the sandbox must be able to read (the venv, the base interpreter)."""
    install_sandbox: str | None = None
    """Where pip ran: "bwrap", "none" (not isolated), None (nothing installed so far)."""

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "python": str(self.python), "installed": list(self.installed),
                "install_sandbox": self.install_sandbox}


def installed_versions() -> dict[str, str]:
    """Canonical name -> version of every distribution the current interpreter sees."""
    out: dict[str, str] = {}
    for d in metadata.distributions():
        name = d.metadata["Name"] if d.metadata else None
        if name and d.version:
            out.setdefault(canonicalize_name(name), d.version)
    return out


def unsatisfied(requirements_text: str, have: dict[str, str]) -> list[str]:
    """Requirement lines of requirements.txt that the installed versions do not satisfy."""
    todo: list[str] = []
    for raw in requirements_text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            todo.append(line)  # pip will say what is wrong with it
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        version = have.get(canonicalize_name(req.name))
        if version is None or (req.specifier and not req.specifier.contains(
                version, prereleases=True)):
            todo.append(line)
    return todo


def _site_dirs() -> list[Path]:
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and site.getusersitepackages():
        dirs.append(site.getusersitepackages())
    return [Path(d) for d in dirs if Path(d).is_dir()]


def _pip_settings() -> dict[str, str]:
    """The user's PIP_* settings, secrets left out."""
    return {k: v for k, v in os.environ.items() if k.startswith("PIP_")
            and not any(s in k for s in ("TOKEN", "PASSWORD", "KEY"))}


def _pip_env() -> dict[str, str]:
    env = {k: os.environ[k] for k in (*ENV_ALLOW, *NETWORK_ENV) if k in os.environ}
    env.update(_pip_settings())
    env.update({"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": os.environ.get("HOME", "/"), "PYTHONNOUSERSITE": "1",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    return env


class EnvManager:
    """Creates the environment once and installs requirements whenever they change."""

    def __init__(self, vdir: Path, *, python: Path | None, install: bool,
                 pip_args: list[str] | None = None,
                 say: Callable[[str], None] = lambda s: None, use_bwrap: bool = True) -> None:
        self.vdir = Path(vdir).absolute()
        self.use_bwrap = use_bwrap
        self._told_unisolated = False
        self.log_path = vdir.parent / "install.log"
        self.user_python = python
        self.install = install
        self.pip_args = list(pip_args or [])
        self.say = say
        self.env: Environment | None = None
        self._have: dict[str, str] = {}

    def prepare(self) -> Environment:
        if self.env is not None:
            return self.env
        base_ro = [Path(sys.base_prefix), Path(sys.prefix), *_site_dirs(),
                   Path(sys.executable).resolve().parent.parent]
        if self.user_python is not None:
            py = Path(self.user_python).expanduser()
            if not py.is_file() or not os.access(py, os.X_OK):
                raise ConfigError(f"--python {py} is not an executable interpreter; give the "
                                  "path of a python binary.")
            self.env = Environment("python", py.absolute(), readonly=[
                py.absolute().parent.parent, py.resolve().parent.parent])
        elif not self.install:
            self.env = Environment("python", Path(sys.executable), readonly=base_ro)
        else:
            self._create()
            self.env = Environment("venv", self.vdir / "bin" / "python",
                                   readonly=[self.vdir, *base_ro])
        return self.env

    def _create(self) -> None:
        if (self.vdir / "bin" / "python").exists():
            return
        self.vdir.parent.mkdir(parents=True, exist_ok=True)
        venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=True,
                        clear=True).create(self.vdir)
        py = self.vdir / "bin" / "python"
        out = subprocess.run([str(py), "-c", "import site; print(site.getsitepackages()[0])"],
                             capture_output=True, text=True, timeout=60)
        own = Path(out.stdout.strip())
        # The current interpreter's packages come after the venv's own: reused, never copied.
        own.mkdir(parents=True, exist_ok=True)
        (own / "_papercoder_parent.pth").write_text(
            "".join(f"{d}\n" for d in _site_dirs()), encoding="utf-8")

    def _log(self, text: str) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") else text + "\n")

    def install_requirements(self, requirements_text: str) -> list[str]:
        """Install what requirements.txt needs and the environment lacks. Returns the lines
        installed; sets ``env.failure`` (and returns []) when pip fails."""
        env = self.prepare()
        env.failure = None
        if env.kind != "venv":
            return []
        if not self._have:
            self._have = self._venv_versions()
        todo = [r for r in unsatisfied(requirements_text, self._have) if r not in env.installed]
        if not todo:
            return []
        constraints = self.vdir.parent / "constraints.txt"
        pinned = {n: v for n, v in self._have.items() if n not in TOOLING}
        constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pinned.items())),
                               encoding="utf-8")
        reqs = self.vdir.parent / "requirements-to-install.txt"
        reqs.write_text("".join(f"{r}\n" for r in todo), encoding="utf-8")
        torch = f", torch {pinned['torch']} among them," if "torch" in pinned else ""
        self.say(f"Installing into {self.vdir}: {', '.join(todo)} (constrained so that the "
                 f"{len(pinned)} packages already installed{torch} are kept as they are)")
        cmd = [str(env.python), "-m", "pip", "install", "--no-input", "--prefer-binary",
               "-c", str(constraints), "-r", str(reqs), *self.pip_args]
        if _has_pip(Path(sys.executable)):
            cmd = [sys.executable, "-m", "pip", "--python", str(env.python), *cmd[3:]]
        sandbox = self._sandbox([constraints, reqs])
        where = "in the bwrap sandbox" if sandbox else "WITHOUT a sandbox"
        self._log(f"$ {' '.join(cmd)}  # {time.strftime('%Y-%m-%d %H:%M:%S')}, {where}")
        if sandbox is not None:
            env.install_sandbox = "bwrap"
            output, code = self._run_sandboxed(sandbox, cmd)
        else:
            env.install_sandbox = "none"
            if not self._told_unisolated:
                self._told_unisolated = True
                self.say("The requirements are installed WITHOUT isolation (bubblewrap is "
                         "not available): pip, and any setup.py it builds, runs with only a "
                         "filtered environment and a timeout.")
            output, code = _run_plain(cmd)
        self._log(output + f"[exit {code}]\n")
        if code != 0:
            lines = [x for x in output.splitlines() if x.strip()]
            errors = [x for x in lines if x.startswith("ERROR")] or lines[-15:]
            env.failure = "\n".join(errors[-15:])
            return []
        env.installed += todo
        self._have = self._venv_versions() or self._have
        return todo

    def own_site_packages(self) -> list[Path]:
        """The venv's own site-packages folder (what the requirements installed), when verify
        built a venv; [] for a user's interpreter or the current one."""
        if self.env is None or self.env.kind != "venv":
            return []
        own = self.vdir / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" \
            / "site-packages"
        return [own] if own.is_dir() and not own.is_symlink() else []

    def installed_packages(self) -> Installed | None:
        """Distributions the venv holds (its own read as hostile text, then the reused
        ones), for the requirement check; None when verify built no venv."""
        own = self.own_site_packages()
        return Installed.from_venv(own) if own else None

    def _venv_versions(self) -> dict[str, str]:
        """What the venv sees, read from metadata here: the venv's own site-packages first,
        then the folders it reuses (this interpreter's and the base interpreter's)."""
        own = [self.vdir / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
               / "site-packages"]
        base = [Path(sys.base_prefix) / p.relative_to(sys.prefix)
                for p in _site_dirs() if p.is_relative_to(sys.prefix)]
        paths = [str(p) for p in [*own, *_site_dirs(), *base] if p.is_dir()]
        out: dict[str, str] = {}
        for d in metadata.distributions(path=paths):
            name = d.metadata["Name"] if d.metadata else None
            if name and d.version:
                out.setdefault(canonicalize_name(name), d.version)
        return out

    def _sandbox(self, files: list[Path]) -> Sandbox | None:
        """The sandbox pip runs in, or None where bwrap is not available."""
        if not self.use_bwrap:
            return None
        env = self.prepare()
        settings = " ".join(_pip_settings().values()).split()
        readonly = [p for p in env.readonly if p != self.vdir] + files + \
            _arg_paths([*self.pip_args, *settings])
        limits = Limits(cpu_seconds=int(PIP_TIMEOUT * (os.cpu_count() or 1)), file_mb=16384,
                        output_kb=2048)
        sb = Sandbox(allow_network=True, limits=limits, readonly=readonly,
                     writable=[self.vdir], use_bwrap=True)
        return sb if sb.isolation.sandbox == "bwrap" else None

    def _run_sandboxed(self, sb: Sandbox, cmd: list[str]) -> tuple[str, int]:
        work = Path(tempfile.mkdtemp(prefix="pip-", dir=self.vdir.parent))
        drop = sb.root and sb.setpriv
        owner = (os.geteuid(), os.getegid())
        env = _pip_settings()
        env.update({"PYTHONNOUSERSITE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
        try:
            if drop:  # the sandbox user fills the venv; it is handed back afterwards
                _chown_tree(self.vdir, NOBODY, NOBODY)
                _chown_tree(work, NOBODY, NOBODY)
            r = sb.run(cmd, work, timeout=PIP_TIMEOUT, env=env)
        finally:
            if drop:
                _chown_tree(self.vdir, *owner)
            shutil.rmtree(work, ignore_errors=True)
        if r.timed_out:
            return r.output + f"\npip did not finish within {PIP_TIMEOUT:.0f} seconds", -1
        return r.output, -1 if r.exit is None else r.exit


def _run_plain(cmd: list[str]) -> tuple[str, int]:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT,
                           env=_pip_env(), stdin=subprocess.DEVNULL)
        return r.stdout + r.stderr, r.returncode
    except subprocess.TimeoutExpired:
        return f"pip did not finish within {PIP_TIMEOUT:.0f} seconds", -1
    except OSError as e:
        return f"pip could not start: {e}", -1


def _arg_paths(args: list[str]) -> list[Path]:
    """Local folders and files named in extra pip arguments (``--find-links DIR``), which
    the sandbox must be able to read."""
    found = []
    for a in args:
        for part in a.split("=", 1)[-1:] if a.startswith("--") else [a]:
            part = part.removeprefix("file://")
            if part and not part.startswith("-") and Path(part).exists():
                found.append(Path(part).absolute())
    return found


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        os.lchown(dirpath, uid, gid)
        for name in [*dirnames, *filenames]:
            try:
                os.lchown(os.path.join(dirpath, name), uid, gid)
            except OSError:
                pass


def _has_pip(python: Path) -> bool:
    try:
        import pip  # noqa: F401
    except ImportError:
        return False
    return python == Path(sys.executable)
