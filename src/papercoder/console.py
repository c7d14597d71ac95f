"""The one console all user-facing output goes through.

Text that came from outside (a path, a file name, model or server text, an error message
quoting any of them) is never interpreted: it goes through :func:`safe`, which makes control
characters and terminal escape sequences visible instead of acting on the terminal, and it is
printed as a rich ``Text`` (or with ``markup=False``), so ``[bold]``, ``[/]`` or
``papercoder[pymupdf]`` are shown as written. Our own fixed strings may use markup.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

from papercoder.textsafe import safe

__all__ = ["console", "err_console", "plain", "safe", "styled"]

console = Console(highlight=False, emoji=False)
err_console = Console(stderr=True, highlight=False, emoji=False)


def plain(text: Any, style: str = "", *, newlines: bool = True) -> Text:
    """Untrusted text as a rich Text: never markup, never an escape sequence."""
    return Text(safe(text, newlines=newlines), style=style)


def styled(*parts: Any) -> Text:
    """A line built from pieces: ``"text"`` (untrusted, shown literally) or
    ``("text", "style")``. Neither is ever read as markup."""
    out = Text()
    for part in parts:
        if isinstance(part, tuple):
            out.append(safe(part[0]), style=part[1])
        else:
            out.append(safe(part))
    return out


def error(message: Any) -> None:
    err_console.print(styled(("Error:", "bold red"), " ", message), soft_wrap=True)


def warn(message: Any) -> None:
    err_console.print(styled(("Warning:", "yellow"), " ", message), soft_wrap=True)


def info(message: Any) -> None:
    err_console.print(plain(message), soft_wrap=True)
