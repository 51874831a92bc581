"""What every click command shares: one-line errors with documented exit codes, shared options."""

from __future__ import annotations

import functools
import sys

import click

from argvalues.errors import ArgvaluesError

EXIT_INTERRUPTED = 130


def fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def user_errors(function):
    """Turn our exceptions into ``Error: ...`` on stderr and the exception's exit code; no traceback."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ArgvaluesError as error:
            fail(str(error), error.exit_code)
        except KeyboardInterrupt:
            fail("interrupted; nothing was written to the output path", EXIT_INTERRUPTED)
        except BrokenPipeError:
            sys.stderr.close()
            sys.exit(0)
        except MemoryError:
            fail("out of memory; lower --batch-size", 1)

    return wrapper


def log(message: str) -> None:
    click.echo(message, err=True)
