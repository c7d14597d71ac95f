"""Taking code and YAML out of free-text model answers."""

from __future__ import annotations

import ast
import re
from typing import Any

import yaml

from papercoder.errors import FormatError

_FENCE = re.compile(r"(?ms)^[ \t]*(```+|~~~+)[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$")
_LANG = {".py": ("python", "py", "python3"), ".yaml": ("yaml", "yml"), ".yml": ("yaml", "yml"),
         ".sh": ("bash", "sh", "shell"), ".json": ("json",), ".md": ("markdown", "md"),
         ".txt": ("text", "txt", "")}


def fenced_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, body, start offset) of each fenced block; an unterminated last block counts."""
    blocks = [(m.group(2).lower(), m.group(3), m.start()) for m in _FENCE.finditer(text)]
    last_end = max((m.end() for m in _FENCE.finditer(text)), default=0)
    tail = re.search(r"(?ms)^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*)\Z", text[last_end:])
    if tail and "```" not in tail.group(2):
        blocks.append((tail.group(1).lower(), tail.group(2), last_end + tail.start()))
    return blocks


def extract_code(text: str, file: str) -> str:
    """The code block for ``file`` in an answer. No block is a FormatError: prose is never
    written into a source file."""
    blocks = fenced_blocks(text)
    if not blocks:
        raise FormatError(
            f"Your answer has no fenced code block. Reply with the complete content of {file} "
            "in one fenced code block.",
            user_message="the answer held no code block",
        )
    ext = "." + file.rsplit(".", 1)[-1] if "." in file else ""
    langs = _LANG.get(ext, ())
    name = file.rsplit("/", 1)[-1]
    # A block introduced by a heading that names the file wins ("## Code: model.py").
    for lang, body, start in blocks:
        lines_before = [ln for ln in text[max(0, start - 300):start].splitlines() if ln.strip()]
        if lines_before and name in lines_before[-1]:
            return body
        if lang in (name, file):
            return body
    typed = [b for lang, b, _ in blocks if lang in langs]
    pool = typed or [b for _, b, _ in blocks]
    return max(pool, key=len)


def check_python(code: str, file: str) -> None:
    if not file.endswith(".py"):
        return
    try:
        ast.parse(code)
    except SyntaxError as e:
        raise FormatError(
            f"The code for {file} does not parse: {e.msg} at line {e.lineno}"
            + (f": {e.text.strip()!r}" if e.text else "")
            + f". Send the complete corrected {file} in one fenced code block.",
            user_message=f"the code for {file} does not parse ({e.msg}, line {e.lineno})",
        ) from None


def extract_yaml(text: str) -> tuple[str, Any]:
    """The YAML document of an answer (fenced or bare), parsed; must be a mapping."""
    blocks = fenced_blocks(text)
    typed = [b for lang, b, _ in blocks if lang in ("yaml", "yml")]
    candidates = typed or [b for _, b, _ in blocks] or [text]
    errors = []
    for body in candidates:
        try:
            data = yaml.safe_load(body)
        except yaml.YAMLError as e:
            errors.append(str(e).replace("\n", " "))
            continue
        if isinstance(data, dict) and data:
            return body.strip() + "\n", data
        errors.append("it is not a mapping of settings")
    raise FormatError(
        "Your config.yaml could not be used: " + (errors[0] if errors else "no YAML found")
        + ". Send the whole config.yaml in one fenced yaml block.",
        user_message="the config answer held no valid YAML mapping",
    )
