"""The `vsrdata` command line: a thin Click shell over the library.

Every module in this package (other than those starting with `_`) defines one Click command
named `command`; they are discovered here and added to the group, so commands can be added
without touching this file. Command modules import only Click and the standard library at the
top; torch, cv2 and lmdb are imported inside the command body, so `vsrdata --help` is instant
(tested in tests/test_cli_basics.py).

Errors: library code raises `vsrdata.errors.VsrDataError`; the group turns it (and plain
OSError such as "No space left on device") into a one-line `Error: ...` and exit status 1.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from vsrdata import __version__
from vsrdata.errors import VsrDataError


class _VsrGroup(click.Group):
    """Click group that maps library errors to one-line messages instead of tracebacks."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VsrDataError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
            raise click.ClickException(f"{exc.strerror or exc}{where}") from None


@click.group(cls=_VsrGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="vsrdata")
def main() -> None:
    """Video super-resolution data and EDVR: MATLAB-exact LR frames, LMDBs, test splits,
    training and evaluation.

    \b
    Typical pipeline:
      vsrdata extract    VIDEOS... GT_ROOT          # your footage -> REDS-style clips
      vsrdata make-lr    GT_ROOT LR_ROOT            # BI (MATLAB bicubic) or BD x4
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
