"""Small text helpers shared by the readers: cleanup, joining lines, captions, references."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

# TeX sets some accents as a separate spacing glyph before the letter ("Hyv¨arinen").
_SPACING_ACCENTS = {"¨": "\u0308", "´": "\u0301", "`": "\u0300", "ˆ": "\u0302", "˜": "\u0303",
                    "ˇ": "\u030c", "˚": "\u030a", "¯": "\u0304", "˝": "\u030b", "˙": "\u0307"}
_ACCENT_BEFORE = re.compile("([" + "".join(_SPACING_ACCENTS) + r"])\s?([A-Za-zıȷ])")
# A cedilla or ogonek is set after its letter ("Gonc¸alves").
_ACCENT_AFTER = re.compile(r"([A-Za-z])\s?([¸˛])")
_CAPTION = re.compile(r"^\s*(\*\*)?(figure|fig\.|table|tab\.)\s*([A-Z]?\d+|[IVX]+)\s*[.:|]",
                      re.I)
_HYPHEN_WORD = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)+")


def clean(text: str) -> str:
    """Unicode cleanup for extracted text: ligatures, spacing accents, odd spaces."""
    text = _ACCENT_BEFORE.sub(lambda m: m.group(2).replace("ı", "i").replace("ȷ", "j")
                              + _SPACING_ACCENTS[m.group(1)], text)
    text = _ACCENT_AFTER.sub(lambda m: m.group(1) + ("\u0327" if m.group(2) == "¸"
                                                      else "\u0328"), text)
    text = unicodedata.normalize("NFC", text)
    out = []
    for ch in text:
        if "\ufb00" <= ch <= "\ufb06":  # ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ
            out.append(unicodedata.normalize("NFKC", ch))
        elif ch in "\u00a0\u2009\u200a\u2002\u2003\u202f":
            out.append(" ")
        elif ch in "\u00ad\u200b\ufeff":
            continue
        else:
            out.append(ch)
    return "".join(out)


@dataclass
class Vocabulary:
    """What a document spells elsewhere: decides hyphens at line ends."""

    hyphenated: set[str] = field(default_factory=set)
    """Hyphenated words found inside lines ("fine-tuning")."""
    words: set[str] = field(default_factory=set)
    """Plain words found away from line-end hyphens."""


_WORD = re.compile(r"[A-Za-z]+")


def hyphen_vocabulary(texts: Iterable[str]) -> Vocabulary:
    vocab = Vocabulary()
    after_hyphen = False
    for t in texts:
        body = t.strip()
        if after_hyphen:  # the rest of a word broken on the previous line
            body = re.sub(r"^[A-Za-z]+", "", body)
        after_hyphen = body.endswith("-")
        if after_hyphen:
            body = re.sub(r"[A-Za-z]+-$", "", body)
        for m in _HYPHEN_WORD.finditer(body):
            parts = m.group(0).lower().split("-")
            for i in range(len(parts) - 1):
                for j in range(i + 2, len(parts) + 1):
                    vocab.hyphenated.add("-".join(parts[i:j]))
        vocab.words.update(w.lower() for w in _WORD.findall(body))
    return vocab


def _keep_hyphen(left: str, right: str, rest: str, vocab: Vocabulary | None) -> bool:
    if vocab is None:
        return False
    lo, ro = left.lower(), right.lower()
    if lo + ro in vocab.words:
        return False  # the document spells it as one word elsewhere
    if f"{lo}-{ro}" in vocab.hyphenated or rest.startswith("-"):
        return True  # a compound ("fine-tuning", "English-to-German")
    return len(lo) > 2 and len(ro) > 2 and lo in vocab.words and ro in vocab.words


def join_lines(lines: list[str], vocab: Vocabulary | None = None) -> str:
    """Join the lines of a paragraph, undoing end-of-line hyphenation."""
    out = ""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if not out:
            out = line
            continue
        m = re.search(r"([A-Za-z]+)-$", out)
        n = re.match(r"([a-z][A-Za-z]*)", line)
        if m and n:
            if _keep_hyphen(m.group(1), n.group(1), line[n.end():], vocab):
                out = out + line
            else:
                out = out[:-1] + line
        else:
            out = out + " " + line
    return out


def is_caption(text: str) -> str | None:
    """'figure' or 'table' when the text starts like a caption."""
    m = _CAPTION.match(text)
    if not m:
        return None
    return "table" if m.group(2).lower().startswith("tab") else "figure"


_REF_START = re.compile(r"^\s*(\[\d+\]|\d{1,3}\.\s|\(\d+\))")


def split_references(lines: list[tuple[str, float, bool]]) -> list[str]:
    """Split a reference list into entries.

    ``lines`` are (text, left x, starts a new block) in reading order. Entries start with a
    label like ``[12]``, or at the left edge when the following lines hang indented, or
    after a vertical gap.
    """
    if not lines:
        return []
    labelled = sum(1 for t, _, _ in lines if _REF_START.match(t))
    entries: list[list[str]] = []
    if labelled >= max(3, len(lines) // 6):
        for t, _, _ in lines:
            if _REF_START.match(t) or not entries:
                entries.append([t])
            else:
                entries[-1].append(t)
    else:
        xs = sorted(x for _, x, _ in lines)
        edge = xs[len(xs) // 10]
        hanging = sum(1 for _, x, _ in lines if x > edge + 4) >= len(lines) // 4
        for t, x, new_block in lines:
            starts = new_block or (hanging and x <= edge + 2)
            # A column's left edge differs: a line far left of the edge starts a column.
            if starts or not entries:
                entries.append([t])
            else:
                entries[-1].append(t)
    vocab = hyphen_vocabulary(t for t, _, _ in lines)
    return [e for e in (join_lines(x, vocab) for x in entries) if e.strip()]
