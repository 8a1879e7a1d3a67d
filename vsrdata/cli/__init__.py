"""The `vsrdata` command line: a thin Click shell over the library.

Every module in this package (other than those starting with `_`) defines one Click command
named `command`; they are discovered here and added to the group, so commands can be added
without touching this file. Command modules import only Click and the standard library at the
top; torch, cv2 and lmdb are imported inside the command body, so `vsrdata --help` is instant
(tested in tests/test_cli_basics.py).

Errors: library code raises `vsrdata.errors.VsrDataError`; the group turns it (and plain
OSError such as "No space left on device") into a one-line `Error: ...` and exit status 1.
A VsrDataError raised inside a torch DataLoader worker comes back re-raised with the same type
but a message of "Caught InputError in DataLoader worker process 0." plus the worker's traceback;
`one_line` keeps only the original message. `VsrDataWarning`s print as one `Warning: ...` line.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
import warnings

import click

from vsrdata import __version__
from vsrdata.core.paths import os_problem
from vsrdata.errors import VsrDataError, VsrDataWarning

# The last line of a formatted traceback: "vsrdata.errors.InputError: <message>".
_TRACEBACK_TAIL = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?(?P<type>[A-Za-z_]\w*): (?P<message>.*)$")


def one_line(exc: BaseException) -> str:
    """The user-facing message of `exc`. torch's DataLoader re-raises a worker's exception as
    `type(exc)("Caught <Type> in DataLoader worker process N.\\nOriginal Traceback ...")`; for
    that form the original message (the traceback's last line, without the type) is returned."""
    text = str(exc)
    if text.startswith("Caught ") and "\nOriginal Traceback" in text:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        match = _TRACEBACK_TAIL.match(lines[-1])
        if match and match.group("type") == type(exc).__name__:
            return match.group("message")
    return text


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, VsrDataWarning):
        click.echo(f"Warning: {message}", err=True)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


class _VsrGroup(click.Group):
    """Click group that maps library errors to one-line messages instead of tracebacks."""

    def invoke(self, ctx: click.Context):
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except VsrDataError as exc:
            flag = f" (--{exc.option.replace('_', '-')})" if exc.option else ""
            raise click.ClickException(f"{one_line(exc)}{flag}") from None
        except OSError as exc:
            raise click.ClickException(os_problem(exc)) from None


@click.group(cls=_VsrGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="vsrdata")
def main() -> None:
    """Video super-resolution data and EDVR: MATLAB-exact LR frames, LMDBs, test splits,
    training and evaluation.

    \b
    Typical pipeline:
      vsrdata extract    VIDEOS... GT_ROOT          # your footage -> REDS-style clips
      vsrdata make-lr    GT_ROOT LR_ROOT            # BI (MATLAB bicubic), BD or bd-duf x4
      vsrdata degrade    GT_ROOT LR_ROOT -r realbasicvsr  # real-world LR, replayable
      vsrdata split-test GT_ROOT datasets/NAME ...  # integer names, padded to x4
      vsrdata to-lmdb    GT_ROOT train_GT.lmdb      # BasicSR-readable, streaming
      vsrdata train --preset edvr-m ...
      vsrdata evaluate CKPT datasets/NAME

    Run `vsrdata COMMAND --help` for each command's options and an example.
    """


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        main.add_command(module.command)


_register_commands()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
