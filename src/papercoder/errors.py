"""Typed errors.

Two families:

* :class:`PapercoderError` and subclasses are for the user. Their message is one sentence
  that says what went wrong and what to do. The CLI prints it and exits non-zero, with no
  traceback.
* :class:`FormatError` means *the model got it wrong* (bad JSON, no code block, a cycle in
  the plan). Its message is written for the model and is sent back to it as the next turn,
  a bounded number of times, before it becomes a :class:`ModelOutputError`.
"""

from __future__ import annotations


class PapercoderError(Exception):
    """An error the user can act on. ``str(err)`` is one sentence."""

    exit_code = 1


class ConfigError(PapercoderError):
    """Bad settings: unknown provider, missing key, unreadable config file."""

    exit_code = 2


class ModelError(PapercoderError):
    """A provider call failed for good (after any retries)."""


class AuthError(ModelError):
    """The provider rejected the API key."""


class UnknownModelError(ModelError):
    """The provider does not know the model name."""


class ContextOverflowError(ModelError):
    """The request does not fit in the model's context window."""


class RetriesExhaustedError(ModelError):
    """Rate limits, server errors or timeouts persisted through every retry."""


class MalformedResponseError(ModelError):
    """A provider answered (HTTP 200) with a body that is not a valid answer. ``raw`` is the
    body as it arrived, stored so that a rerun does not pay for it again."""

    def __init__(self, message: str, raw: str | None = None) -> None:
        super().__init__(message)
        self.raw = raw


class ModelOutputError(ModelError):
    """The model kept answering in a form we cannot use, after the allowed re-asks."""


class BudgetExceeded(PapercoderError):
    """The next call would take the run over ``--max-cost``."""

    exit_code = 3


class PaperError(PapercoderError):
    """The paper could not be read (bad input: exit status 2, like bad settings)."""

    exit_code = 2


class UnsafePathError(PapercoderError):
    """The model proposed a file path outside the repository or otherwise unusable."""


class OutputFolderError(ConfigError):
    """The output folder (or something in it) cannot be created, read or written."""


class LinkInOutputError(UnsafePathError):
    """A symbolic (or hard) link was found below the output folder; it is never followed."""

    exit_code = 2


class OutputBusyError(ConfigError):
    """Another papercoder process holds the output folder's lock."""


class SandboxError(PapercoderError):
    """The sandbox itself could not start (our fault or the system's, never the model's)."""


class Interrupted(BaseException):  # noqa: N818 - a signal, like KeyboardInterrupt
    """The user pressed Ctrl-C: no new model call is started. A BaseException (not an
    Exception) so that no stage mistakes it for a failed step."""


class FormatError(Exception):
    """The model's answer has the wrong form. The message is addressed to the model."""

    def __init__(self, message: str, *, user_message: str | None = None) -> None:
        super().__init__(message)
        self.user_message = user_message or message
