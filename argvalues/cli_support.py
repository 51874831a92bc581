"""What every click command shares: one-line errors with documented exit codes, shared options."""

from __future__ import annotations

import functools
import signal
import sys

import click

from argvalues.errors import ArgvaluesError, TerminateSignal

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Command(click.Command):
    """A click command whose bad option values (out of range, not a choice) exit 1, as the README's
    exit codes say; click's own code for them is 2, which stays for usage errors (an unknown
    option, a missing argument)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.BadParameter as error:
            if not isinstance(error, click.MissingParameter):
                error.exit_code = 1
            raise


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
