"""Which pip distributions a repository's imports need, and whether its requirements have them.

Import names map to distributions through the packaged table (``data/import_names.yaml``,
for packages that may not be installed) and the installed distributions' own metadata
(``importlib.metadata``). Standard-library modules (``sys.stdlib_module_names``), modules of
the repository (anywhere in it) and availability-guarded imports (``try/except ImportError``,
``if is_x_available():``, ``if TYPE_CHECKING:``) are left out.

A missing requirement is *certain* only when the import's distribution is known, is not a
known PyPI trap (``data/pypi_traps.yaml``: apex, clip, models, ...) and nothing the
requirements install brings it in, counting transitive dependencies from installed metadata
or ``data/requires.yaml``. When a requirement's dependencies are unknown, it is a note.

After verify has installed the requirements into its venv (``Installed.from_venv``), the
dependencies are those of what the venv really holds: its own site-packages are read as
hostile text (``*.dist-info/METADATA`` ``Requires-Dist``, ``top_level.txt``, ``RECORD``;
bounded, no link followed, nothing imported), everything installed there counts as brought in
by the requirements, extras asked for (``pkg[extra]``) count, and the packaged table is no
longer consulted: a requirement the venv does not hold leaves the findings as notes.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from papercoder import yamlsafe
from papercoder.pyparse import parse_python

Finding = dict[str, Any]


def _data(name: str) -> Any:
    text = resources.files("papercoder.verify").joinpath(f"data/{name}").read_text(
        encoding="utf-8")
    return yaml.safe_load(text) or {}


def _toml(text: str) -> dict[str, Any] | None:
    """A pyproject.toml's tables; None when it is not TOML or Python is older than 3.11 (no
    TOML reader in the standard library)."""
    if sys.version_info >= (3, 11):
        import tomllib

        try:
            return tomllib.loads(text)
        except ValueError:  # TOMLDecodeError is a ValueError
            return None
    return None


@lru_cache(maxsize=1)
def import_table() -> dict[str, list[str]]:
    return {str(k): [str(x) for x in v] for k, v in _data("import_names.yaml").items()}


@lru_cache(maxsize=1)
def pypi_traps() -> dict[str, str]:
    return {str(k): str(v) for k, v in _data("pypi_traps.yaml").items()}


@lru_cache(maxsize=1)
def requires_table() -> dict[str, list[str]]:
    return {canonicalize_name(str(k)): [canonicalize_name(str(x)) for x in (v or [])]
            for k, v in _data("requires.yaml").items()}


def decode_text(raw: bytes) -> str | None:
    """Text of a file in any common encoding: UTF-8 (with or without BOM), UTF-16/32 with a
    BOM (what ``pip freeze >`` writes in PowerShell), or UTF-16 without one. None if binary."""
    boms = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"),
            (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
    for bom, enc in boms:
        if raw.startswith(bom):
            try:
                return raw.decode(enc)
            except UnicodeDecodeError:
                return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if len(raw) >= 4 and raw[1::2].count(0) > len(raw) // 4:  # UTF-16-LE text without BOM
        try:
            return raw.decode("utf-16-le")
        except UnicodeDecodeError:
            return None
    return None


class Installed:
    """Installed distributions (of the current interpreter, or of given site-packages
    folders): which provide a top-level module, and what each requires (unconditionally, and
    per extra)."""

    def __init__(self, paths: list[str] | None = None) -> None:
        self.modules: dict[str, list[str]] = {}
        self.requires: dict[str, list[str]] = {}
        self.extras: dict[str, dict[str, list[str]]] = {}
        self.own: set[str] = set()
        """Distributions in a verify venv's own site-packages: the requirements put them
        there (the venv starts empty)."""
        self.venv = False
        try:
            dists = list(metadata.distributions(path=paths) if paths is not None
                         else metadata.distributions())
        except Exception:  # noqa: BLE001 - broken metadata must not stop the checks
            dists = []
        for d in dists:
            try:
                name = canonicalize_name(d.metadata["Name"] or "")
                reqs = d.requires or []
                top = (d.read_text("top_level.txt") or "").split()
                files = d.files or []
            except Exception:  # noqa: BLE001
                continue
            if not name:
                continue
            self._add(name, reqs, top, ["/".join(f.parts) for f in files])

    def _add(self, name: str, reqs: Iterable[str], top: Iterable[str],
             files: Iterable[str]) -> None:
        if name in self.requires:  # the first folder that has a distribution wins
            return
        deps: list[str] = []
        extras: dict[str, list[str]] = {}
        for r in reqs:
            try:
                req = Requirement(r)
            except InvalidRequirement:
                continue
            marker = str(req.marker) if req.marker is not None else ""
            dep = canonicalize_name(req.name) + (
                "[" + ",".join(sorted(canonicalize_name(e) for e in req.extras)) + "]"
                if req.extras else "")
            if "extra" in marker:
                for extra in _EXTRA_MARKER.findall(marker):
                    extras.setdefault(canonicalize_name(extra), []).append(dep)
                continue
            deps.append(dep)  # other markers: counted (fewer findings)
        self.requires[name] = deps
        self.extras[name] = extras
        tops = {t for t in top if t.isidentifier()}
        for f in files:
            head = f.split("/", 1)[0]
            if not head or head.endswith((".dist-info", ".egg-info")) or \
                    head in ("..", "__pycache__"):
                continue
            head = head[:-3] if head.endswith(".py") else head.split(".", 1)[0] \
                if head.endswith(".so") else head
            if head.isidentifier():
                tops.add(head)
        for t in tops:
            if name not in self.modules.setdefault(t, []):
                self.modules[t].append(name)

    @classmethod
    def from_venv(cls, own: list[Path], base: Installed | None = None) -> Installed:
        """What a verify venv holds: its own site-packages folders read as hostile text (the
        requirements' setup code wrote them; nothing of theirs is imported or run), then the
        distributions it reuses (``base``, by default the current interpreter's)."""
        out = cls(paths=[])
        out.venv = True
        for folder in own:
            for name, reqs, top, files in read_site_packages(folder):
                out._add(name, reqs, top, files)
                out.own.add(name)
        base = base if base is not None else current_installed()
        for name in base.requires:
            if name not in out.requires:
                out.requires[name] = base.requires[name]
                out.extras[name] = base.extras.get(name, {})
        for mod, names in base.modules.items():
            for n in names:
                if n not in out.modules.setdefault(mod, []):
                    out.modules[mod].append(n)
        return out


_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']{1,100})["']""")
MAX_META_BYTES = 1_000_000
MAX_DISTS = 5000


def _read_bounded(path: Path, limit: int = MAX_META_BYTES) -> str:
    """A metadata file's text: no links followed, at most ``limit`` bytes, bad bytes
    replaced; "" when it cannot be read."""
    try:
        if path.is_symlink() or not path.is_file():
            return ""
        with path.open("rb") as f:
            return f.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _headers(text: str, names: tuple[str, ...]) -> dict[str, list[str]]:
    """Values of the given headers of an email-style metadata file (up to the first blank
    line; continuation lines ignored)."""
    out: dict[str, list[str]] = {n: [] for n in names}
    for line in text.splitlines()[:20_000]:
        if not line.strip():
            break
        key, sep, value = line.partition(":")
        if sep and key in out and len(value) < 2000:
            out[key].append(value.strip())
    return out


def _egg_requires(text: str) -> list[str]:
    """``requires.txt`` of an .egg-info: unconditional lines, then ``[extra]`` sections
    (turned into ``; extra == "x"`` markers) and ``[:marker]`` sections (counted)."""
    out: list[str] = []
    section = ""
    for line in text.splitlines()[:5000]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].split(":", 1)[0].strip()
            continue
        out.append(f'{line} ; extra == "{section}"' if section else line)
    return out


def read_site_packages(folder: Path) -> list[tuple[str, list[str], list[str], list[str]]]:
    """(name, Requires-Dist lines, top_level.txt names, RECORD paths) of each distribution
    in a site-packages folder, read as hostile text within bounds."""
    out: list[tuple[str, list[str], list[str], list[str]]] = []
    try:
        entries = sorted(folder.iterdir())[:100_000]
    except OSError:
        return out
    for d in entries:
        if len(out) >= MAX_DISTS:
            break
        if d.is_symlink() or not d.is_dir() or not d.name.endswith((".dist-info",
                                                                    ".egg-info")):
            continue
        egg = d.name.endswith(".egg-info")
        meta = _headers(_read_bounded(d / ("PKG-INFO" if egg else "METADATA")),
                        ("Name", "Requires-Dist"))
        name = canonicalize_name(meta["Name"][0]) if meta["Name"] else ""
        if not name or len(name) > 200:
            continue
        reqs = _egg_requires(_read_bounded(d / "requires.txt")) if egg else \
            meta["Requires-Dist"]
        top = _read_bounded(d / "top_level.txt", 100_000).split()[:1000]
        record = _read_bounded(d / ("installed-files.txt" if egg else "RECORD"), 5_000_000)
        files = [ln.split(",", 1)[0].strip() for ln in record.splitlines()[:100_000]]
        out.append((name, reqs[:2000], top, files))
    return out


@lru_cache(maxsize=1)
def current_installed() -> Installed:
    return Installed()


def distributions_for(module: str, installed: Installed | None = None) -> tuple[list[str], bool]:
    """Canonical distribution names that may provide top-level ``module`` (never empty), and
    whether that is known (from the table or installed metadata) rather than guessed."""
    inst = installed or current_installed()
    known = list(import_table().get(module, [])) + inst.modules.get(module, [])
    names = [*known, module]  # most packages share their import name
    out: list[str] = []
    for n in names:
        c = canonicalize_name(n)
        if c not in out:
            out.append(c)
    return out, bool(known)


def local_modules(files: Mapping[str, str] | list[str]) -> set[str]:
    """Names the repository itself provides as modules or packages, at any depth (a script
    in a folder imports its siblings by their bare name)."""
    out: set[str] = set()
    for f in files:
        parts = f.split("/")
        if f.endswith(".py"):
            out.add(parts[-1][:-3])
        for folder in parts[:-1]:
            if f.endswith(".py"):
                out.add(folder)
    return out


_GUARD_CALL = re.compile(r"available|find_spec|find_loader|importable|has_|installed",
                         re.IGNORECASE)


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """An import under ``try: ... except ImportError`` (or a bare/Exception handler), or under
    an ``if`` that tests availability, ``TYPE_CHECKING``, the platform or the version."""
    cur = node
    while cur in parents:
        par = parents[cur]
        if isinstance(par, ast.Try) and cur in par.body:
            for h in par.handlers:
                names = [h.type] if not isinstance(h.type, ast.Tuple) else list(h.type.elts)
                if h.type is None or any(isinstance(t, ast.Name) and t.id in (
                        "ImportError", "ModuleNotFoundError", "Exception", "BaseException")
                        for t in names):
                    return True
        if isinstance(par, ast.If):
            test = ast.unparse(par.test) if hasattr(ast, "unparse") else ""
            if _GUARD_CALL.search(test) or any(w in test for w in (
                    "TYPE_CHECKING", "sys.platform", "platform", "version_info", "os.name",
                    "importlib", "sys.modules")):
                return True
        cur = par
    return False


def imported_modules(source: str) -> list[tuple[str, int]]:
    """(top-level module, line) of each absolute, unguarded import in ``source``."""
    try:
        tree = parse_python(source)
    except SyntaxError:
        return []
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            mods = [node.module]
        else:
            continue
        if _guarded(node, parents):
            continue
        out += [(m.split(".")[0], node.lineno) for m in mods]
    return sorted(out, key=lambda x: x[1])


@dataclass
class Requirements:
    """What a repository's dependency declarations name."""
    names: set[str] = field(default_factory=set)
    bad: list[tuple[str, int, str]] = field(default_factory=list)
    """(file, line, text) of lines pip cannot read."""
    unnamed: list[str] = field(default_factory=list)
    """URL or path requirements whose distribution name is not written (unknown content)."""
    conda: list[str] = field(default_factory=list)
    """Requirements files that are conda exports."""
    extras: dict[str, set[str]] = field(default_factory=dict)
    """Extras asked for (``transformers[torch]``), by canonical name."""
    sources: list[str] = field(default_factory=list)


_CONDA_ENV = re.compile(r"^dependencies:\s*$", re.MULTILINE)
_CONDA_ENV_HEAD = re.compile(r"^(channels|name):", re.MULTILINE)
_EGG = re.compile(r"[#&]egg=([A-Za-z0-9][A-Za-z0-9._-]*)")
_CONDA_LINE = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9._-]*)=[^=\s]+(=[^=\s]+)?$")
_URL = re.compile(r"^(git|hg|svn|bzr)\+|^[a-z]+://|^file:|^\.{0,2}/|\.(whl|zip|tar\.gz|tgz)$",
                  re.IGNORECASE)


def _is_conda_export(lines: list[str]) -> bool:
    text = "\n".join(lines[:5])
    if "conda create" in text or "@EXPLICIT" in text or "platform: " in text:
        return True
    specs = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    conda = [ln for ln in specs if _CONDA_LINE.match(ln.strip()) and "==" not in ln]
    return len(specs) >= 3 and len(conda) >= 0.6 * len(specs)


def parse_requirements(text: str, file: str = "requirements.txt",
                       into: Requirements | None = None,
                       files: Mapping[str, str] | None = None, depth: int = 0) -> Requirements:
    """Names a requirements file requires (following ``-r`` includes within ``files``)."""
    req = into or Requirements()
    req.sources.append(file)
    # Joined continuation lines, with their first line number.
    lines: list[tuple[int, str]] = []
    buf, start = "", 0
    for i, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = i
        if raw.endswith("\\"):
            buf += raw[:-1] + " "
            continue
        lines.append((start, buf + raw))
        buf = ""
    if buf:
        lines.append((start, buf))
    if _is_conda_export([s for _, s in lines]):
        req.conda.append(file)
        for _, s in lines:
            m = _CONDA_LINE.match(s.strip()) or re.match(r"^([A-Za-z0-9_][\w.-]*)", s.strip())
            if m and not s.strip().startswith(("#", "@", "http")):
                req.names.add(canonicalize_name(m.group(1)))
        return req
    for lineno, raw in lines:
        line = re.split(r"(^|\s)#", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            opt, _, rest = line.partition(" ")
            if "=" in opt and opt.startswith("--"):
                opt, _, rest = line.partition("=")
            rest = rest.strip()
            if opt in ("-r", "--requirement", "-c", "--constraint"):
                if opt in ("-r", "--requirement") and files is not None and depth < 5:
                    base = file.rsplit("/", 1)[0] + "/" if "/" in file else ""
                    target = (base + rest).replace("/./", "/").lstrip("./") if not \
                        rest.startswith("/") else rest
                    if target in files:
                        parse_requirements(files[target], target, req, files, depth + 1)
                    else:
                        req.unnamed.append(line)
                continue
            if opt in ("-e", "--editable"):
                m = _EGG.search(rest)
                if m:
                    req.names.add(canonicalize_name(m.group(1)))
                elif rest not in (".", "./"):
                    req.unnamed.append(line)
                continue
            continue  # other pip options (--index-url, -f, --pre, ...): not ours to judge
        line = re.sub(r"\s+--?[a-z][\w-]*(=\S+|\s+\S+)?", "", line)  # per-line --hash=...
        m = _EGG.search(line)
        if m:
            req.names.add(canonicalize_name(m.group(1)))
            continue
        if _URL.search(line.split(";")[0].strip()):
            if line.strip() not in (".", "./"):
                req.unnamed.append(line)
            continue
        try:
            parsed = Requirement(line)
            name = canonicalize_name(parsed.name)
            req.names.add(name)
            if parsed.extras:
                req.extras.setdefault(name, set()).update(
                    canonicalize_name(e) for e in parsed.extras)
        except InvalidRequirement:
            if "${" in line:
                req.unnamed.append(line)
                continue
            req.bad.append((file, lineno, line))
            m2 = re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*", line)
            if m2:
                req.names.add(canonicalize_name(m2.group(0)))
    return req


def _literal_strings(node: ast.AST) -> list[str]:
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and
                isinstance(e.value, str)]
    return []


def declared_requirements(code: Mapping[str, str]) -> tuple[Requirements, bool]:
    """Every dependency declaration of the repository: requirements*.txt files (any folder),
    setup.py ``install_requires``, pyproject ``[project] dependencies``, setup.cfg and
    conda environment files (environment.yml, or any YAML file with ``name:``/``channels:``
    and ``dependencies:``, such as a ``requirements.yaml``); and whether there is any
    declaration at all."""
    req = Requirements()
    found = False
    for f in sorted(code):
        base = f.rsplit("/", 1)[-1].lower()
        if base.endswith(".txt") and "requirement" in base:
            found = True
            parse_requirements(code[f], f, req, code)
        elif base == "setup.py":
            found = True
            try:
                tree = parse_python(code[f])
            except SyntaxError:
                req.unnamed.append(f)
                continue
            got = False
            for node in ast.walk(tree):
                if isinstance(node, ast.keyword) and node.arg in ("install_requires",
                                                                  "requires"):
                    vals = _literal_strings(node.value)
                    if not vals and not isinstance(node.value, (ast.List, ast.Tuple)):
                        req.unnamed.append(f"{f}: install_requires is computed")
                    for v in vals:
                        parse_requirements(v, f, req)
                    got = True
            if not got and "install_requires" in code[f]:
                req.unnamed.append(f"{f}: install_requires is computed")
        elif base == "pyproject.toml":
            data = _toml(code[f])
            if data is None:
                req.unnamed.append(f)
                continue
            deps = (data.get("project") or {}).get("dependencies")
            poetry = ((data.get("tool") or {}).get("poetry") or {}).get("dependencies")
            if isinstance(deps, list):
                found = True
                for v in deps:
                    if isinstance(v, str):
                        parse_requirements(v, f, req)
            if isinstance(poetry, dict):
                found = True
                req.names.update(canonicalize_name(str(k)) for k in poetry)
        elif base == "setup.cfg" and "install_requires" in code[f]:
            found = True
            m = re.search(r"install_requires\s*=\s*\n((?:[ \t]+\S.*\n?)+)", code[f])
            for v in (m.group(1).splitlines() if m else []):
                parse_requirements(v.strip(), f, req)
        elif base in ("environment.yml", "environment.yaml", "env.yml", "conda.yaml") or (
                base.endswith((".yml", ".yaml")) and _CONDA_ENV.search(code[f]) and
                _CONDA_ENV_HEAD.search(code[f])):  # a conda environment by another name
            found = True
            try:
                data = yamlsafe.load(code[f])
            except (yaml.YAMLError, RecursionError):
                continue
            for dep in (data or {}).get("dependencies", []) if isinstance(data, dict) else []:
                if isinstance(dep, str):
                    m = re.match(r"^(?:[\w-]+::)?([A-Za-z0-9_][\w.-]*)", dep)
                    if m:
                        req.names.add(canonicalize_name(m.group(1)))
                elif isinstance(dep, dict) and isinstance(dep.get("pip"), list):
                    for v in dep["pip"]:
                        if isinstance(v, str):
                            parse_requirements(v, f, req)
    return req, found


def _test_file(f: str) -> bool:
    base = f.rsplit("/", 1)[-1]
    return base.startswith("test_") or base.endswith("_test.py") or any(
        part in ("tests", "test", "testing") for part in f.split("/")[:-1])


def closure(names: Iterable[str], installed: Installed,
            extras: Mapping[str, set[str]] | None = None) -> tuple[set[str], bool]:
    """Distributions installed by ``names`` (with the ``extras`` asked for) and their
    dependencies, and whether every dependency list was known."""
    table = requires_table()
    top = set(names)
    todo: list[tuple[str, frozenset[str]]] = [
        (n, frozenset((extras or {}).get(n, set()))) for n in top]
    seen: set[tuple[str, frozenset[str]]] = set()
    complete = True
    while todo:
        n, want = todo.pop()
        if (n, want) in seen or len(seen) > 100_000:
            continue
        seen.add((n, want))
        if n in installed.requires:
            deps = list(installed.requires[n])
            for e in want:
                deps += installed.extras.get(n, {}).get(e, [])
            for dep in deps:
                name, _, rest = dep.partition("[")
                todo.append((name, frozenset(x for x in rest.rstrip("]").split(",") if x)))
        elif n in table and not installed.venv:
            todo += [(d, frozenset()) for d in table[n]]
        elif n in top:
            complete = False  # (the table's lists are closed: their members count as known)
    return {n for n, _ in seen}, complete


def missing_requirements(code: Mapping[str, str], requirements_text: str | None = None, *,
                         installed: Installed | None = None) -> list[Finding]:
    """Findings for third-party imports that the repository's requirements do not cover.

    ``requirements_text`` overrides ``requirements.txt`` (kept for callers that pass it)."""
    files = dict(code)
    if requirements_text is not None:
        files["requirements.txt"] = requirements_text
    inst = installed or current_installed()
    local = local_modules(list(files))
    req, declared = declared_requirements(files)
    findings: list[Finding] = []

    def add(file: str, line: int | None, message: str, certain: bool) -> None:
        findings.append({"file": file, "line": line, "check": "requirement",
                         "kind": "requirement", "certain": certain, "message": message})

    for f in req.conda:
        add(f, 1, f"{f} is a conda environment export (name=version=build lines), which pip "
            "cannot install: write pip requirements (name==version), or ship it as "
            "environment.yml", True)
    for f, lineno, line in req.bad:
        add(f, lineno, f"'{line}' is not a valid pip requirement", True)
    have, complete = closure(req.names, inst, req.extras)
    have |= inst.own  # in a verify venv, what the requirements installed
    complete = complete and not req.unnamed and not req.conda
    missing: dict[str, tuple[str, int, list[str], bool]] = {}
    for f in sorted(files):
        if not f.endswith(".py") or f.rsplit("/", 1)[-1] in ("setup.py", "conftest.py"):
            continue
        for mod, lineno in imported_modules(files[f]):
            if mod in missing or mod in local or mod in sys.stdlib_module_names or \
                    mod == "__future__":
                continue
            dists, known = distributions_for(mod, inst)
            if any(d in have for d in dists):
                continue
            missing[mod] = (f, lineno, dists, known)
    if not declared:
        if missing:
            first = min(missing.values(), key=lambda v: (v[0], v[1]))
            mods = sorted(missing)
            add(first[0], first[1], "the repository has no requirements.txt (nor setup.py, "
                "pyproject.toml or environment.yml) but imports third-party packages: "
                + ", ".join(mods[:20]) + ("..." if len(mods) > 20 else ""), True)
        return findings
    for mod, (f, lineno, dists, known) in missing.items():
        trap = pypi_traps().get(mod)
        head = f"imports {mod}, but the requirements list no package that provides it"
        if trap:
            add(f, lineno, f"{head} ({trap})", False)
        elif not complete:
            add(f, lineno, f"{head} (add {dists[0]}), unless a requirement whose dependencies "
                "are not known here installs it", False)
        elif mod in ("setuptools", "pkg_resources", "pip", "wheel", "distutils") or \
                _test_file(f):
            add(f, lineno, f"{head} (add {dists[0]}); "
                + ("a test-only dependency" if _test_file(f) else
                   "many environments have it anyway"), False)
        elif not known:
            add(f, lineno, f"{head} (which distribution provides it is not known here: add "
                f"{dists[0]} only if that PyPI package is the one meant)", True)
        else:
            add(f, lineno, f"{head} (add {dists[0]})", True)
    return findings
