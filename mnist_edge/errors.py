"""The only exceptions a user of mnist-edge should ever see.

Library code raises these with a message that says what to do next; the CLI turns them into one
red line and exit code 2 (a usage problem), while exit code 1 is kept for "ran fine, but a check
failed" (see :class:`ParityError`)::

    MnistEdgeError
    ├── DataError        the data set cannot be found, read or trusted
    ├── ModelLoadError   a model file is missing, corrupt, tampered with or not an MNIST classifier
    ├── InputError       images handed to the runtime have the wrong shape, dtype or range
    ├── ExportError      an export cannot be produced (bad options, unsupported combination, I/O)
    ├── MissingDependencyError  an optional framework (TensorFlow for training) is not installed
    ├── ToolchainError   a compiler, emulator or reference engine a check needs is missing or failed
    └── ParityError      an artifact is out of its accuracy tolerance against the reference
"""

from __future__ import annotations


class MnistEdgeError(Exception):
    """Base class: anything the toolkit expects to go wrong and can explain."""

    #: Exit code the CLI uses for this error.
    exit_code: int = 2


class DataError(MnistEdgeError):
    """The MNIST arrays could not be obtained from any source, or failed verification."""


class ModelLoadError(MnistEdgeError):
    """A model file is missing, truncated, corrupted, tampered with, or the wrong kind of model."""


class InputError(MnistEdgeError, ValueError):
    """Images passed to a classifier cannot be turned into valid model input."""


class ExportError(MnistEdgeError):
    """An export could not be produced."""


class ToolchainError(MnistEdgeError):
    """A C compiler, emulator or reference engine that a check needs is missing or failed."""


class MissingDependencyError(MnistEdgeError):
    """Something needs an optional dependency that is not installed (the runtime-only install has
    no TensorFlow). ``message(what)`` phrases it for a caller, e.g. a CLI command."""

    def __init__(
        self, package: str, extra: str, *, what: str = "this", detail: str = "", instead: str = ""
    ) -> None:
        self.package, self.extra, self.detail, self.instead = package, extra, detail, instead
        super().__init__(self.message(what))

    def message(self, what: str) -> str:
        """``<what> needs <package>: pip install 'mnist-edge[<extra>]'`` (``, or <instead>``)."""
        alternative = f", or {self.instead}" if self.instead else ""
        return (
            f"{what} needs {self.package}{self.detail}: pip install 'mnist-edge[{self.extra}]'{alternative}"
        )


class ParityError(MnistEdgeError):
    """An artifact's predictions are out of tolerance against the Keras reference."""

    exit_code = 1
