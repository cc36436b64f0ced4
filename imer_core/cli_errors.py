"""How the command-line tools report an exception: one line for a user error, the traceback for a bug.

A *user error* is something the user can fix from the message alone: a file
that cannot be opened, or an error that this project's own code raised on
purpose (a ``raise`` statement in :mod:`imer_core`, :mod:`training` or
:mod:`app`: an unknown config key, a checkpoint that does not fit, ...).
Anything else — an exception from inside a library, a ``KeyError`` from a
dictionary lookup, an ``AttributeError`` — is an *internal error*: the tools
print ``internal error`` with the full traceback and ask for a report, so a
bug is never disguised as a one-line message.  ``--debug`` prints the
traceback of every error.
"""

from __future__ import annotations

import ast
import functools
import linecache
import sys
import traceback
from pathlib import Path
from typing import TextIO

#: The packages whose deliberate ``raise`` statements are user errors.
OWN_PACKAGES: tuple[str, ...] = ("imer_core", "training", "app")
#: Exit codes: a user error (as argparse's usage errors), an internal error.
EXIT_USER_ERROR, EXIT_INTERNAL_ERROR = 2, 3
_FILE_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
_NEVER_USER = (NotImplementedError, AssertionError)
_ROOT = Path(__file__).resolve().parents[1]


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a user error (see the module docstring)."""
    if isinstance(exc, _FILE_ERRORS):
        return True
    if not isinstance(exc, Exception) or isinstance(exc, _NEVER_USER):
        return False
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = tb.tb_frame.f_code.co_filename
    return _is_own(filename) and _is_raise_statement(filename, tb.tb_lineno)


def _is_own(filename: str) -> bool:
    try:
        relative = Path(filename).resolve().relative_to(_ROOT)
    except ValueError:
        return False
    return bool(relative.parts) and relative.parts[0] in OWN_PACKAGES


def _is_raise_statement(filename: str, lineno: int) -> bool:
    """The statement at ``lineno`` of ``filename`` is a ``raise`` (any line of a multi-line one)."""
    return lineno in _raise_lines(filename)


@functools.lru_cache(maxsize=32)
def _raise_lines(filename: str) -> frozenset[int]:
    """Line numbers covered by the ``raise`` statements of a source file (empty when it cannot be parsed)."""
    try:
        tree = ast.parse("".join(linecache.getlines(filename)), filename)
    except (SyntaxError, ValueError):
        return frozenset()
    return frozenset(line for node in ast.walk(tree) if isinstance(node, ast.Raise)
                     for line in range(node.lineno, (node.end_lineno or node.lineno) + 1))


def user_message(exc: BaseException) -> str:
    """The one-line text of a user error (a ``KeyError``'s message without the quotes it adds)."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc) or type(exc).__name__


def report_error(exc: BaseException, prog: str, debug: bool = False, out: TextIO | None = None) -> int:
    """Print ``exc`` for a command-line user and return the exit code.

    A user error is one line (``prog: error: message``) — with ``debug``, its
    traceback first; an internal error is ``prog: internal error ...`` with
    the traceback, always.
    """
    out = sys.stderr if out is None else out
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if is_user_error(exc):
        if debug:
            print(trace, end="", file=out)
        print(f"{prog}: error: {user_message(exc)}", file=out)
        return EXIT_USER_ERROR
    print(trace, end="", file=out)
    print(f"{prog}: internal error ({type(exc).__name__}: {exc}). This is a bug: please report it with the "
          "traceback above.", file=out)
    return EXIT_INTERNAL_ERROR
