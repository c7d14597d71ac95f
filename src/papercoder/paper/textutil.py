"""Small text helpers shared by the readers: cleanup, joining lines, captions, references."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

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


def hyphen_vocabulary(texts: Iterable[str]) -> set[str]:
    """Hyphenated words that occur inside lines: those keep their hyphen at a line break."""
    vocab: set[str] = set()
    for t in texts:
        for m in _HYPHEN_WORD.finditer(t.rstrip("-")):
            vocab.add(m.group(0).lower())
    return vocab


def join_lines(lines: list[str], vocab: set[str] | None = None) -> str:
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
            joined = f"{m.group(1)}-{n.group(1)}".lower()
            if vocab is not None and joined in vocab:
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
