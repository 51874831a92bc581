"""What every click command shares: one-line errors with documented exit codes, shared options."""

from __future__ import annotations

import functools
import signal
import sys

import click

from argvalues.errors import ArgvaluesError, TerminateSignal

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def _on_sigterm(signum, frame):
    raise TerminateSignal()


def fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def user_errors(function):
    """Turn our exceptions into ``Error: ...`` on stderr and the exception's exit code; no traceback."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            signal.signal(signal.SIGTERM, _on_sigterm)  # unwind (and clean up) like Ctrl-C
        except ValueError:
            pass  # not the main thread (e.g. called from a test runner's worker)
        try:
            return function(*args, **kwargs)
        except ArgvaluesError as error:
            fail(str(error), error.exit_code)
        except TerminateSignal:
            fail("terminated; nothing was written to the output path", EXIT_TERMINATED)
        except KeyboardInterrupt:
            fail("interrupted; nothing was written to the output path", EXIT_INTERRUPTED)
        except BrokenPipeError:
            sys.stderr.close()
            sys.exit(0)
        except OSError as error:  # e.g. standard output on a full disk
            fail(f"cannot write: {error.strerror or error}", 6)
        except MemoryError:
            fail("out of memory; lower --batch-size", 1)

    return wrapper


def log(message: str) -> None:
    click.echo(message, err=True)
