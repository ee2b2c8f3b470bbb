"""What counts as a user error: the one definition ``clerc.cli.main`` turns into one line.

A user error is bad input: a missing or unreadable file, a value that does not parse, a
name that is not registered. Its message names the file, row or value, and ``clerc``
prints it as ``clerc COMMAND: message`` with exit code 2 (``--debug``: the traceback).

- ``UserError`` is the base of the harness's own input errors (``ReaderError``,
  ``CheckpointError``, ``PretrainedError``, ``UnknownNameError``...).
- ``ValueError`` and ``OSError`` raised by input checks count too: the house style is to
  raise ``ValueError`` naming the bad value, and a missing file is an ``OSError``.

Anything else (``KeyError``, ``AttributeError``, ``TypeError``, ``IndexError``...) is a
bug and is never dressed as a user error: it propagates with its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input; the message names the file, row or value and says what was expected."""


#: Exceptions ``clerc.cli.main`` reports as one line and exit code 2.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, OSError)


def is_user_error(exc: BaseException) -> bool:
    """True for bad input (see the module docstring), False for a bug."""
    return isinstance(exc, USER_ERRORS)


def describe_error(exc: BaseException) -> str:
    """One line for a user error; an OS error reads ``FILE: reason``, not ``[Errno 2] ...``."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__
