"""Taking code and YAML out of free-text model answers.

How the block written into a file is chosen (:func:`extract_code`):

1. Every fenced block (```` ``` ```` or ``~~~``; an unterminated last block counts) is a
   candidate. A block is *named* when its info string (```` ```python model.py ````,
   ```` ```python title="model.py" ````) or the last non-empty line of prose before it
   (``## Code: model.py``, ``**model.py**``, ``File: `model.py` ``) names a file.
2. A block named for another file is never used. A block named for this file (the full
   path, or the base name when the name given has no folder) is used when it is the only one;
   two different ones are an ambiguity.
3. With no block named for the file, the unnamed blocks in the file's language are the
   candidates: the language comes from the extension (``.py`` python, ``.yaml`` yaml, ``.sh``
   bash/sh, ...), an untagged block counts as any language, and an extensionless file
   (``Dockerfile``, a script with a shebang) accepts a tag that agrees with its name or
   shebang. Exactly one candidate is used; none, or two or more, is a re-ask.
4. The chosen block must hold something: an empty block is a re-ask.

Every refusal is a :class:`~papercoder.errors.FormatError` whose message tells the model
what was wrong, so the re-ask can fix it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from papercoder import yamlsafe
from papercoder.errors import FormatError
from papercoder.pyparse import MAX_CODE_CHARS, MAX_INDENT_DEPTH, python_depth

_FENCE = re.compile(r"(?ms)^[ \t]*(```+|~~~+)[ \t]*([\w+#.-]*)([^\n]*)\n(.*?)^[ \t]*\1[ \t]*$")
_OPEN = re.compile(r"(?ms)^[ \t]*(```+|~~~+)[ \t]*([\w+#.-]*)([^\n]*)\n(.*)\Z")
_TOKEN = re.compile(r"[\w./+-]+")
FILE_EXTENSIONS = frozenset({
    "py", "pyi", "yaml", "yml", "sh", "bash", "json", "jsonl", "md", "txt", "toml", "cfg",
    "ini", "conf", "js", "ts", "c", "h", "cpp", "hpp", "cc", "cu", "r", "ipynb", "csv", "tsv",
    "html", "css", "xml", "rst", "go", "rs", "java", "lock", "env", "in", "mk", "sql", "jl",
    "m", "tex", "bib", "pt", "pth", "npy", "npz", "pkl", "ckpt", "onnx", "proto"})
"""Extensions that make a token in prose a file name (so "e.g." or "Sec. 3.2" never is)."""

LANG_TAGS: dict[str, frozenset[str]] = {
    ".py": frozenset({"python", "py", "python3", "py3"}),
    ".pyi": frozenset({"python", "py", "python3"}),
    ".yaml": frozenset({"yaml", "yml"}),
    ".yml": frozenset({"yaml", "yml"}),
    ".sh": frozenset({"bash", "sh", "shell", "zsh"}),
    ".bash": frozenset({"bash", "sh", "shell"}),
    ".json": frozenset({"json", "jsonc"}),
    ".md": frozenset({"markdown", "md"}),
    ".txt": frozenset({"text", "txt", "plaintext", "plain", "requirements"}),
    ".toml": frozenset({"toml"}),
    ".cfg": frozenset({"ini", "cfg", "toml", "conf"}),
    ".ini": frozenset({"ini", "cfg", "conf"}),
    ".js": frozenset({"javascript", "js"}),
    ".ts": frozenset({"typescript", "ts"}),
    ".c": frozenset({"c"}),
    ".h": frozenset({"c", "cpp", "h"}),
    ".cpp": frozenset({"cpp", "c++", "cc", "cxx"}),
    ".cu": frozenset({"cuda", "cu", "cpp", "c++"}),
    ".r": frozenset({"r"}),
    ".ipynb": frozenset({"json"}),
}
"""Fence tags accepted for a file by its extension (an untagged block is always accepted).
An extension not listed accepts its own name as a tag."""
_NAMED_FILES = {"dockerfile": frozenset({"dockerfile", "docker"}),
                "makefile": frozenset({"makefile", "make"})}
_SHEBANG_TAGS = {"python": frozenset({"python", "py", "python3"}),
                 "sh": frozenset({"bash", "sh", "shell"}),
                 "bash": frozenset({"bash", "sh", "shell"})}
_NEUTRAL = frozenset({"", "text", "plaintext", "plain", "txt"})


@dataclass
class Block:
    lang: str
    info: str
    body: str
    start: int
    end: int


def fenced_blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, body, start offset) of each fenced block; an unterminated last block counts."""
    return [(b.lang, b.body, b.start) for b in blocks_of(text)]


def blocks_of(text: str) -> list[Block]:
    blocks = [Block(m.group(2).lower(), m.group(3).strip(), m.group(4), m.start(), m.end())
              for m in _FENCE.finditer(text)]
    last_end = blocks[-1].end if blocks else 0
    tail = _OPEN.search(text, last_end)
    if tail and tail.group(1) not in tail.group(4):
        blocks.append(Block(tail.group(2).lower(), tail.group(3).strip(), tail.group(4),
                            tail.start(), len(text)))
    return blocks


def _ext(file: str) -> str:
    base = file.rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[-1].lower() if "." in base.strip(".") else ""


def accepted_tags(file: str, body: str = "") -> frozenset[str] | None:
    """The fence tags that may carry ``file``; None means any tag (nothing to tell by)."""
    ext = _ext(file)
    if ext:
        return LANG_TAGS.get(ext, frozenset({ext[1:]})) | _NEUTRAL
    base = file.rsplit("/", 1)[-1].lower()
    if base in _NAMED_FILES:
        return _NAMED_FILES[base] | _NEUTRAL
    first = body.lstrip().split("\n", 1)[0]
    if first.startswith("#!"):
        interp = re.split(r"[/\s]", first.rstrip())[-1]
        for key, tags in _SHEBANG_TAGS.items():
            if interp.startswith(key):
                return tags | _NEUTRAL
    return None


def _names_in(line: str) -> list[str]:
    return [n.strip(".") for n in _TOKEN.findall(line.replace("\\", "/"))]


def _matches(name: str, file: str) -> bool:
    name = name.strip("/").removeprefix("./")
    if name == file:
        return True
    return "/" not in name and name == file.rsplit("/", 1)[-1]


def _is_file_name(name: str) -> bool:
    """A token that names a file (not a version number, a URL or a dotted attribute)."""
    if not name or "://" in name or re.fullmatch(r"[\d.]+", name):
        return False
    base = name.rsplit("/", 1)[-1]
    if base.lower() in ("dockerfile", "makefile", "procfile"):
        return True
    stem, dot, ext = base.rpartition(".")
    return bool(dot and stem.strip(".") and ext.lower() in FILE_EXTENSIONS)


def block_name(text: str, block: Block, prev_end: int) -> list[str]:
    """The file names a block is headed with: its info string, else the last line of prose
    before it (after the previous block)."""
    info = [n for n in _names_in(block.info.replace("=", " ")) if _is_file_name(n)]
    if block.lang and _is_file_name(block.lang) and "." in block.lang:
        info.append(block.lang)
    if info:
        return info
    before = text[max(prev_end, block.start - 400):block.start]
    lines = [ln for ln in before.splitlines() if ln.strip()]
    if not lines:
        return []
    last = lines[-1].strip()
    if len(last) > 160:
        return []
    return [n for n in _names_in(last) if _is_file_name(n)]


def extract_code(text: str, file: str) -> str:
    """The code block for ``file`` in an answer (see the module docstring for the rule)."""
    blocks = blocks_of(text)
    if not blocks:
        raise FormatError(
            f"Your answer has no fenced code block. Reply with the complete content of {file} "
            "in one fenced code block.",
            user_message="the answer held no code block",
        )
    ours: list[Block] = []
    others: list[str] = []
    unnamed: list[Block] = []
    prev_end = 0
    for b in blocks:
        names = block_name(text, b, prev_end)
        prev_end = b.end
        if any(_matches(n, file) for n in names):
            ours.append(b)
        elif names:
            others.extend(n for n in names if n not in others)
        else:
            unnamed.append(b)
    ours_typed = [b for b in ours if _in_language(b, file)]
    if ours_typed:
        distinct = {b.body.strip() for b in ours_typed}
        if len(distinct) > 1:
            raise FormatError(
                f"Your answer has {len(ours_typed)} different code blocks headed {file}; send "
                f"{file} once, complete, in one fenced code block.",
                user_message=f"the answer held {len(ours_typed)} different blocks for {file}")
        return _nonempty(ours_typed[0].body, file)
    if ours:
        langs = ", ".join(sorted({b.lang for b in ours}))
        raise FormatError(
            f"The block headed {file} is marked as {langs}, but {file} needs "
            f"{_lang_words(file)}. Send {file} in its own language in one fenced block.",
            user_message=f"the block for {file} was {langs}, not {_lang_words(file)}")
    typed = [b for b in unnamed if _in_language(b, file)]
    if not typed:
        if unnamed:
            langs = ", ".join(sorted({b.lang or "untagged" for b in unnamed}))
            raise FormatError(
                f"Your answer's code is {langs}, but {file} needs {_lang_words(file)}. Send "
                f"{file} in one fenced code block in that language.",
                user_message=f"the answer's block was {langs}, not {_lang_words(file)}")
        raise FormatError(
            f"Your answer's code is headed for {', '.join(others[:4])}, not {file}. Send the "
            f"complete {file} in one fenced code block headed '## Code: {file}'.",
            user_message=f"the answer's block was for {', '.join(others[:4])}, not {file}")
    if len(typed) > 1:
        distinct_bodies = {b.body.strip() for b in typed if b.body.strip()}
        if len(distinct_bodies) > 1:
            raise FormatError(
                f"Your answer has {len(typed)} code blocks and none is headed {file}, so it is "
                f"not clear which one is the file. Send {file} alone in one fenced code block "
                f"headed '## Code: {file}'.",
                user_message=f"the answer held {len(typed)} candidate blocks for {file}")
        typed = [b for b in typed if b.body.strip()] or typed
    return _nonempty(typed[0].body, file)


def _in_language(b: Block, file: str) -> bool:
    tags = accepted_tags(file, b.body)
    return tags is None or b.lang in tags or ("." in b.lang and _is_file_name(b.lang))


def _lang_words(file: str) -> str:
    tags = accepted_tags(file)
    named = sorted(tags - _NEUTRAL) if tags else []
    return " or ".join(named[:2]) if named else "its own language"


def _nonempty(body: str, file: str) -> str:
    if not body.strip():
        raise FormatError(f"The code block for {file} is empty. Send the complete {file} in "
                          "one fenced code block.",
                          user_message=f"the code block for {file} was empty")
    if len(body) > MAX_CODE_CHARS:
        raise FormatError(f"The code for {file} is {len(body):,} characters long, far beyond "
                          "a source file; send a shorter, complete file.",
                          user_message=f"the code for {file} was {len(body):,} characters long")
    return body


def extract_yaml(text: str) -> tuple[str, Any]:
    """The YAML document of an answer (fenced or bare), parsed; must be a mapping."""
    blocks = fenced_blocks(text)
    typed = [b for lang, b, _ in blocks if lang in ("yaml", "yml")]
    candidates = typed or [b for _, b, _ in blocks] or [text]
    errors = []
    for body in candidates:
        if len(body) > MAX_CODE_CHARS or python_depth(body) > MAX_INDENT_DEPTH:
            errors.append("it is nested too deeply or too long")
            continue
        try:
            data = yamlsafe.load(body)
        except (yaml.YAMLError, RecursionError, ValueError) as e:
            errors.append(str(e).replace("\n", " ")[:200])
            continue
        if isinstance(data, dict) and data:
            return body.strip() + "\n", data
        errors.append("it is not a mapping of settings")
    raise FormatError(
        "Your config.yaml could not be used: " + (errors[0] if errors else "no YAML found")
        + ". Send the whole config.yaml in one fenced yaml block.",
        user_message="the config answer held no valid YAML mapping",
    )
