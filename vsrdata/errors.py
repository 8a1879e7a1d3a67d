"""The only exceptions the CLI translates into one-line errors.

Library code raises these (never prints, never calls sys.exit); `vsrdata.cli` turns them into
`Error: <message>` on stderr and exit status 1.
"""


class VsrDataError(Exception):
    """Base class: a user-facing problem with a one-line message.

    `option` names the library parameter the fix involves (e.g. 'overwrite'); the message speaks
    in library terms and the CLI adds the matching flag (`(--overwrite)`).
    """

    def __init__(self, message: str = "", *, option: str | None = None):
        super().__init__(message)
        self.option = option

    def __reduce__(self):  # keep `option` across process pools
        return (self.__class__, self.args, {"option": self.option})


class InputError(VsrDataError):
    """Bad input data: unreadable/truncated image, wrong size, missing file, bad list entry."""


class OutputError(VsrDataError):
    """The output location cannot be used (exists and not ours, inside the source, not writable)."""


class ConfigError(VsrDataError):
    """Invalid combination of options or model configuration."""


class CheckpointError(VsrDataError):
    """A checkpoint cannot be read or does not match the model."""


class VsrDataWarning(UserWarning):
    """Something the user should know that does not stop the job (e.g. a symlink loop skipped).
    Library code issues it with `warnings.warn`; the CLI prints it as one `Warning: ...` line."""
