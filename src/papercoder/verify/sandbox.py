"""Running generated code: a fresh work copy, limits, an allow-listed environment, isolation.

Layers, each used where the system allows it and recorded in run.json:

* a new session and process group, killed as a whole on timeout (``killpg``);
* resource limits set in the child before exec (``setrlimit``): address space, CPU time,
  file size, number of processes. ``RLIMIT_NPROC`` counts processes per user and root is
  exempt, so when papercoder runs as root the child drops to the ``nobody`` user first
  (its work copy is handed to that user) and the process limit holds;
* an environment built from an allow-list: API keys, tokens and other secrets of the parent
  are never passed on;
* bubblewrap (``bwrap``): the file system read-only except the work copy and a private
  ``/tmp``, the home folder hidden, a new PID namespace (everything dies with the sandbox)
  and, by default, a new network namespace with no interfaces but loopback;
* without bwrap, ``unshare -n`` gives the network namespace when running as root.

Output is captured into a bounded buffer (head and tail kept).
"""

from __future__ import annotations

import os
import pwd
import resource
import select
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from papercoder.errors import SandboxError

ENV_ALLOW = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "CUDA_VISIBLE_DEVICES",
             "NVIDIA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
NETWORK_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
               "no_proxy", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
NOBODY = 65534


@dataclass
class Limits:
    memory_mb: int = 8192
    """Address space (RLIMIT_AS). Importing torch reserves a few GB of address space."""
    cpu_seconds: int = 1200
    file_mb: int = 1024
    processes: int = 512
    """Processes and threads (RLIMIT_NPROC) of the sandbox user."""
    output_kb: int = 512
    """Captured output kept: the first quarter and the last three quarters."""


@dataclass
class RunResult:
    exit: int | None
    output: str
    seconds: float
    timed_out: bool
    truncated: bool


@dataclass
class Isolation:
    sandbox: str = "none"  # "bwrap" | "none"
    network: str = "none-isolation"  # "namespace" | "none-isolation" | "allowed"
    user: str = ""
    limits: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _gpu_devices() -> list[str]:
    return sorted(str(p) for p in Path("/dev").glob("nvidia*")) + \
        (["/dev/dri"] if Path("/dev/dri").is_dir() else [])


def _is_root() -> bool:
    return os.geteuid() == 0


@lru_cache(maxsize=8)
def _probe(args: tuple[str, ...]) -> bool:
    """Whether a wrapper command works here (runs ``true`` through it)."""
    try:
        r = subprocess.run(list(args) + ["true"], capture_output=True, timeout=30,
                           env={"PATH": "/usr/bin:/bin"})
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _user_processes(uid: int) -> int:
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat(f"/proc/{d}").st_uid == uid:
                    n += len(os.listdir(f"/proc/{d}/task"))
            except OSError:
                continue
    return n


INSIDE = "/tmp/work"
"""Where the work copy appears inside bwrap (on the sandbox's private /tmp)."""
SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
           "--bounding-set=-all", "--"]


def _traversable(path: Path) -> bool:
    """Whether the nobody user can reach ``path`` (every parent searchable by others)."""
    for parent in [path, *path.parents]:
        try:
            st = parent.stat()
        except OSError:
            return False
        if st.st_uid != NOBODY and not st.st_mode & 0o001:
            return False
    return True


def _traversable_dir(path: Path) -> bool:
    """Whether the nobody user may pass through the folder ``path`` itself."""
    try:
        st = path.stat()
    except OSError:
        return True  # nothing to bind below it anyway
    return st.st_uid == NOBODY or bool(st.st_mode & 0o001)


class Sandbox:
    """Runs commands in work copies with the isolation this system allows."""

    def __init__(self, *, allow_network: bool = False, limits: Limits | None = None,
                 readonly: list[Path] | None = None, use_bwrap: bool = True,
                 writable: list[Path] | None = None) -> None:
        self.limits = limits or Limits()
        self.allow_network = allow_network
        # bwrap resolves relative source paths against its own root, never our folder.
        self.readonly = [Path(p).absolute() for p in (readonly or [])]
        self.writable = [Path(p).absolute() for p in (writable or [])]
        """Folders bound writable at their own path (bwrap only), e.g. a venv being filled."""
        self.bwrap = shutil.which("bwrap") if use_bwrap else None
        self.root = _is_root()
        self.isolation = self._detect()
        self._base_procs = 0

    # -- what this system allows ----------------------------------------------------------
    def _bwrap_base(self) -> list[str]:
        assert self.bwrap
        args = [self.bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                "--perms", "01777", "--tmpfs", "/tmp", "--unshare-pid", "--unshare-ipc",
                "--unshare-uts", "--die-with-parent", "--new-session"]
        if not self.allow_network:
            args.append("--unshare-net")
        for dev in _gpu_devices():
            args += ["--dev-bind", dev, dev]
        return args

    def _detect(self) -> Isolation:
        iso = Isolation()
        self.setpriv = self.root and shutil.which("setpriv") is not None
        if self.bwrap and not _probe(tuple(self._bwrap_base())):
            iso.notes.append("bwrap is installed but cannot create namespaces here")
            self.bwrap = None
        if self.bwrap:
            iso.sandbox = "bwrap"
            iso.network = "allowed" if self.allow_network else "namespace"
        elif self.allow_network:
            iso.network = "allowed"
        elif self.root and shutil.which("unshare") and _probe(("unshare", "-n", "--")):
            iso.network = "namespace"
        if self.root and not self.setpriv:
            iso.notes.append("setpriv is missing: the sandbox runs as root, so the process "
                             "limit is not enforced")
        drops = self.root and self.setpriv
        iso.user = "nobody" if drops else pwd.getpwuid(os.geteuid()).pw_name
        lim = asdict(self.limits)
        lim["processes_enforced"] = not self.root or drops
        self.limit_memory = not any(d.startswith("/dev/nvidia") for d in _gpu_devices())
        if not self.limit_memory:
            iso.notes.append("GPUs found: no address-space limit, since CUDA reserves far "
                             "more address space than it uses")
        lim["memory_enforced"] = self.limit_memory
        iso.limits = lim
        return iso

    def describe(self) -> str:
        i = self.isolation
        return f"sandbox: {i.sandbox}, network: {i.network}, user: {i.user}"

    # -- one run ---------------------------------------------------------------------------
    def prepare_copy(self, src: Path, dest: Path) -> Path:
        """A fresh copy of ``src`` at ``dest`` (links left out), owned by the sandbox user."""
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(src, dest, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", ".git"))
        for p in [dest, *dest.rglob("*")]:
            if p.is_symlink():
                p.unlink()  # a link could point outside the copy
        if not self.bwrap:
            (dest / ".tmp").mkdir(exist_ok=True)
        if self.root and self.setpriv:
            for p in [dest, *dest.rglob("*")]:
                os.lchown(p, NOBODY, NOBODY)
        return dest

    def inside(self, work: Path) -> str:
        """The work copy's path as the sandboxed program sees it."""
        return INSIDE if self.bwrap else str(work)

    def environment(self, work: Path, python_bin: Path | None, extra: dict[str, str]) \
            -> dict[str, str]:
        env = {k: os.environ[k] for k in ENV_ALLOW if k in os.environ}
        if self.allow_network:
            env.update({k: os.environ[k] for k in NETWORK_ENV if k in os.environ})
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        if python_bin is not None:
            path = f"{python_bin.parent}:{path}"
            if (python_bin.parent.parent / "pyvenv.cfg").exists():
                env["VIRTUAL_ENV"] = str(python_bin.parent.parent)
        home = self.inside(work)
        env.update({"PATH": path, "HOME": home,
                    "TMPDIR": "/tmp" if self.bwrap else f"{home}/.tmp",
                    "LANG": env.get("LANG", "C.UTF-8"),
                    "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
                    "MPLBACKEND": "Agg", "TERM": "dumb", "NO_COLOR": "1",
                    "HF_HUB_OFFLINE": "0" if self.allow_network else "1",
                    "TRANSFORMERS_OFFLINE": "0" if self.allow_network else "1",
                    "WANDB_MODE": "offline"})
        env.update(extra)
        return env

    def _drops_without_bwrap(self, work: Path, python_bin: Path | None) -> bool:
        """Without bwrap, root drops to nobody (setpriv) when nobody can reach both the
        work copy and the interpreter; otherwise the process limit cannot hold (said)."""
        if not (self.root and self.setpriv and not self.bwrap):
            return False
        ok = _traversable(work) and (python_bin is None or _traversable(python_bin.resolve()))
        if not ok:
            note = ("the nobody user cannot reach the work copy or the interpreter, so the "
                    "code runs as root and the process limit is not enforced")
            if note not in self.isolation.notes:
                self.isolation.notes.append(note)
            self.isolation.limits["processes_enforced"] = False
            self.isolation.user = "root"
        return ok

    def _hidden(self, binds: list[Path]) -> list[Path]:
        """Folders covered by an empty tmpfs: the home folder (secrets in dotfiles stay
        hidden) and, when the sandbox user is nobody, every folder nobody cannot pass on the
        way to a bound path (e.g. ``/root`` holding ``/root/.pyenv``, whoever owns HOME).
        The bound paths are then made reachable through folders created on that tmpfs."""
        tops: list[Path] = []
        home = Path.home()
        if home != Path("/") and home.exists():
            tops.append(home.absolute())
        if self.root and self.setpriv:
            for p in binds:
                blocked = [a for a in reversed(p.parents) if a != Path("/")
                           and not _traversable_dir(a)]
                if blocked:
                    tops.append(blocked[0])
        tmp = Path("/tmp")  # already a tmpfs of its own
        tops = [t for t in tops if t != tmp and tmp not in t.parents]
        return [t for t in dict.fromkeys(tops) if not any(o in t.parents for o in tops)]

    def _wrap(self, argv: list[str], work: Path, python_bin: Path | None = None) -> list[str]:
        if self.bwrap:
            args = self._bwrap_base()
            binds = [("--ro-bind", p) for p in dict.fromkeys(self.readonly) if p.exists()]
            binds += [("--bind", p) for p in dict.fromkeys(self.writable) if p.exists()]
            hidden = [Path("/tmp")]
            for top in self._hidden([p for _, p in binds]):
                args += ["--perms", "0755", "--tmpfs", str(top)]
                hidden.append(top)
            made: set[Path] = set()
            for how, ro in binds:
                # Folders bwrap creates on its own tmpfs would be private to root.
                for top in hidden:
                    if top in ro.parents:
                        for anc in reversed([a for a in ro.parents if top in a.parents]):
                            if anc not in made:
                                made.add(anc)
                                args += ["--perms", "0755", "--dir", str(anc)]
                args += [how, str(ro), str(ro)]
            args += ["--bind", str(work), INSIDE, "--chdir", INSIDE, "--"]
            return args + (SETPRIV if self.root and self.setpriv else []) + argv
        if self._drops_without_bwrap(work, python_bin):
            argv = SETPRIV + argv
        if not self.allow_network and self.isolation.network == "namespace":
            return ["unshare", "-n", "--"] + argv
        return argv

    def _preexec_for(self):  # noqa: ANN202
        lim = self.limits
        nproc = lim.processes + self._base_procs
        limit_memory = self.limit_memory

        def preexec() -> None:
            os.setsid()
            mb = 1024 * 1024
            for res, value in ((resource.RLIMIT_AS, lim.memory_mb * mb if limit_memory
                                else None),
                               (resource.RLIMIT_CPU, lim.cpu_seconds),
                               (resource.RLIMIT_FSIZE, lim.file_mb * mb),
                               (resource.RLIMIT_CORE, 0),
                               (resource.RLIMIT_NPROC, nproc)):
                if value is not None:
                    resource.setrlimit(res, (value, value))

        return preexec

    def run(self, argv: list[str], work: Path, *, timeout: float,
            python_bin: Path | None = None, env: dict[str, str] | None = None) -> RunResult:
        """Run ``argv`` in ``work`` (a prepared copy) and wait at most ``timeout`` seconds."""
        work = Path(work).absolute()
        if python_bin is not None:
            python_bin = Path(python_bin).absolute()
        full_env = self.environment(work, python_bin, env or {})
        self._base_procs = 0 if self.root else _user_processes(os.geteuid())
        buf = _Capped(self.limits.output_kb * 1024)
        started = time.perf_counter()
        wrapped = self._wrap(argv, work, python_bin)
        status_r, status_w = os.pipe() if self.bwrap else (-1, -1)
        if self.bwrap:  # bwrap writes the child's pid here once the sandbox stands
            wrapped[1:1] = ["--json-status-fd", str(status_w)]
        try:
            proc = subprocess.Popen(wrapped, cwd=work, env=full_env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, preexec_fn=self._preexec_for(),
                                    close_fds=True,
                                    pass_fds=(status_w,) if self.bwrap else ())
        except OSError as e:
            if self.bwrap:
                os.close(status_r)
                os.close(status_w)
            return RunResult(exit=None, output=f"could not start {argv[0]}: {e}", seconds=0.0,
                             timed_out=False, truncated=False)
        if self.bwrap:
            os.close(status_w)
        assert proc.stdout is not None
        reader = threading.Thread(target=buf.drain, args=(proc.stdout,), daemon=True)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _kill_group(proc.pid)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        buf.stop.set()
        reader.join(timeout=10)
        proc.stdout.close()
        if self.bwrap:
            status = _read_all(status_r)
            if b"child-pid" not in status and not timed_out:
                said = [x.strip() for x in buf.text().splitlines() if x.strip()]
                why = f" ({said[-1][:300]})" if said else ""
                raise SandboxError(f"The sandbox could not start{why}, so nothing was run; "
                                   "this is a fault of papercoder or of this system, not of "
                                   "the generated code: please report it.")
        seconds = time.perf_counter() - started
        code = None if timed_out else proc.returncode
        output = buf.text().replace(INSIDE + "/", "").replace(str(work) + "/", "")
        return RunResult(exit=code, output=output, seconds=seconds, timed_out=timed_out,
                         truncated=buf.dropped > 0)


def _read_all(fd: int) -> bytes:
    """Everything left in a pipe whose writers are gone (then closes it)."""
    data = b""
    try:
        os.set_blocking(fd, False)  # a writer left inside a dead sandbox must not hang us
        while chunk := os.read(fd, 4096):
            data += chunk
    except OSError:
        pass
    finally:
        os.close(fd)
    return data


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Capped:
    """Keeps the first quarter and the last three quarters of ``cap`` bytes of a stream."""

    def __init__(self, cap: int) -> None:
        self.head_cap = cap // 4
        self.tail_cap = cap - self.head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0
        self.stop = threading.Event()

    def drain(self, stream: Any) -> None:
        fd = stream.fileno()
        while True:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                if self.stop.is_set():
                    break
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            room = self.head_cap - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            self.tail += chunk
            if len(self.tail) > self.tail_cap:
                cut = len(self.tail) - self.tail_cap
                self.dropped += cut
                del self.tail[:cut]

    def text(self) -> str:
        mid = f"\n[... {self.dropped} bytes of output left out ...]\n" if self.dropped else ""
        return (bytes(self.head).decode("utf-8", "replace") + mid
                + bytes(self.tail).decode("utf-8", "replace"))
