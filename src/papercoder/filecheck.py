"""Checking a generated file by its kind before it is written.

Python must parse, YAML and JSON must load, shell must pass ``bash -n``. A file without an
extension is judged by its content: a shebang names its interpreter, and text that looks like
Python is parsed as Python. A file that fails raises :class:`FormatError` (sent back to the
model, then recorded as failed); nothing is executed.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess

import yaml

from papercoder import yamlsafe
from papercoder.errors import FormatError
from papercoder.pyparse import parse_python

LANGS = {".py": "python", ".sh": "bash", ".yaml": "yaml", ".yml": "yaml", ".json": "json",
         ".md": "markdown", ".txt": "text", ".toml": "toml", ".cfg": "ini"}


def lang_of(file: str) -> str:
    return LANGS.get("." + file.rsplit(".", 1)[-1] if "." in file else "", "text")


NOT_REQUIREMENTS = {"pip", "setuptools", "wheel", "python", "python3", "cpython", "pypy"}
"""Installer tooling and the interpreter itself: never lines of requirements.txt."""


def _stdlib() -> frozenset[str]:
    import sys

    names = getattr(sys, "stdlib_module_names", None)  # Python 3.10+
    return frozenset(names or ())


def requirements(packages: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(pip requirement lines, entries that are not requirement specs, entries left out
    because they are pip itself, the standard library or Python)."""
    ok, bad, dropped = [], [], []
    spec = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[\w,.-]+\])?\s*([<>=!~]=?\s*[\w.*+!-]+"
                      r"(\s*,\s*[<>=!~]=?\s*[\w.*+!-]+)*)?$")
    stdlib = _stdlib()
    for raw in packages:
        s = raw.strip().strip("`'\"")
        if not s or s.lower().startswith(("no ", "none")):
            continue
        if not spec.match(s):
            bad.append(s)
            continue
        name = re.split(r"[\[<>=!~\s]", s, maxsplit=1)[0]
        if name.lower() in NOT_REQUIREMENTS or name in stdlib or name.lower() in stdlib:
            dropped.append(s)
            continue
        ok.append(s)
    return sorted(set(ok), key=str.lower), bad, dropped


log = logging.getLogger("papercoder")

SHELL_EXT = (".sh", ".bash")
YAML_EXT = (".yaml", ".yml")
# Extensionless names whose content is not a program we can check.
OPAQUE_NAMES = {"Makefile", "Dockerfile", "LICENSE", "Procfile", "Vagrantfile", "CODEOWNERS",
                "AUTHORS", "NOTICE", "COPYING"}
_PY_LINE = re.compile(r"^(?:import \w|from [\w.]+ import |def \w+\s*\(|class \w+[:(]|"
                      r"if __name__ == )", re.M)


def kind_of(file: str, code: str) -> str:
    """python, yaml, json, shell or other: from the extension, else from the content."""
    name = file.rsplit("/", 1)[-1]
    if "." in name.lstrip("."):
        ext = "." + name.rsplit(".", 1)[-1].lower()
        if ext in (".py", ".pyw"):
            return "python"
        if ext in YAML_EXT:
            return "yaml"
        if ext == ".json":
            return "json"
        if ext in SHELL_EXT:
            return "shell"
        return "other"
    if name in OPAQUE_NAMES:
        return "other"
    first = code.lstrip("\ufeff").split("\n", 1)[0]
    if first.startswith("#!"):
        if "python" in first:
            return "python"
        if re.search(r"\b(ba|da|k|z)?sh\b", first):
            return "shell"
        return "other"
    if _PY_LINE.search(code):
        return "python"
    return "other"


def _fail(file: str, what: str) -> FormatError:
    return FormatError(
        f"The content for {file} is not valid: {what}. Send the complete corrected {file} in "
        "one fenced code block.",
        user_message=f"{file} is not valid ({what})",
    )


def check_python(code: str, file: str) -> None:
    """FormatError (sent back to the model) when ``code`` does not parse as Python; parsing is
    bounded, so never a RecursionError, and the tree is one pyflakes can walk."""
    try:
        parse_python(code)
    except SyntaxError as e:
        at = f" at line {e.lineno}" if e.lineno else ""
        raise FormatError(
            f"The code for {file} does not parse as Python: {e.msg}{at}"
            + (f": {e.text.strip()[:120]!r}" if e.text else "")
            + f". Send the complete corrected {file} in one fenced code block.",
            user_message=f"the code for {file} does not parse ({e.msg}"
            + (f", line {e.lineno})" if e.lineno else ")"),
        ) from None


def check_file(code: str, file: str) -> str:
    """Raise FormatError when ``code`` is not a valid file of its kind; return the kind."""
    kind = kind_of(file, code)
    if kind == "python":
        check_python(code, file)
    elif kind == "yaml":
        try:
            yamlsafe.load(code)
        except yaml.YAMLError as e:
            raise _fail(file, "YAML that does not load: " + " ".join(str(e).split())[:200]) \
                from None
        except RecursionError:
            raise _fail(file, "YAML that does not load: nested too deeply") from None
    elif kind == "json":
        try:
            json.loads(code)
        except ValueError as e:
            raise _fail(file, f"JSON that does not load: {e}") from None
        except RecursionError:
            raise _fail(file, "JSON that does not load: nested too deeply") from None
    elif kind == "shell":
        bash = shutil.which("bash")
        if bash is None:
            log.info("%s: shell syntax not checked (bash is not installed)", file)
            return kind
        try:
            r = subprocess.run([bash, "-n"], input=code, capture_output=True, text=True,
                               timeout=60, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
        except (OSError, subprocess.TimeoutExpired) as e:
            log.info("%s: shell syntax not checked (%s)", file, e)
            return kind
        if r.returncode != 0:
            msg = " ".join(r.stderr.replace("bash: ", "").split())[:200]
            raise _fail(file, f"shell that does not pass bash -n: {msg}")
    return kind
