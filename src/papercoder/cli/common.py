"""What every command shares: the run store chosen with ``--db``, errors as one sentence.

The root callback records the global options of this invocation (a context variable, set
anew by every invocation); a command reads them through :func:`db_path` / :func:`open_store`,
so no command module imports the one that registers it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.text import Text

from papercoder.config import default_db_path
from papercoder.console import error, plain
from papercoder.errors import Interrupted, PapercoderError

if TYPE_CHECKING:
    from papercoder.store import Store

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class CliSettings:
    """The options given before the command (``papercoder --db PATH run ...``)."""

    db: Path | None = None


_SETTINGS: ContextVar[CliSettings | None] = ContextVar("papercoder_cli_settings",
                                                       default=None)


def use_settings(s: CliSettings) -> None:
    """Called by the root callback, before the command runs."""
    _SETTINGS.set(s)


def settings() -> CliSettings:
    return _SETTINGS.get() or CliSettings()


def guarded(fn: F) -> F:
    """Turn library errors into one sentence and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PapercoderError as e:
            error(str(e))
            raise typer.Exit(e.exit_code) from None
        except (KeyboardInterrupt, Interrupted):
            error("Interrupted; rerun the same command to resume, answered calls are cached.")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def cells(*values: Any) -> list[Text]:
    """Table cells shown literally: never markup, never an escape sequence."""
    return [v if isinstance(v, Text) else plain("" if v is None else v) for v in values]


def db_path() -> Path:
    db = settings().db
    return Path(db) if db else default_db_path()


def open_store() -> Store:
    from papercoder.store import Store

    return Store(db_path())
