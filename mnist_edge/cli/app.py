"""The typer app and the one place where errors become exit codes.

A :class:`~mnist_edge.errors.MnistEdgeError` becomes one red line and its exit code (2 for a usage
problem, 1 for a failed check), never a traceback; Click's own usage errors, seen by :func:`main`,
read the same way. A missing optional framework names the command that needs it. Command modules
register with :func:`command`. :func:`main` keeps the engines' native log lines off the terminal
for the whole run unless ``--verbose``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape

from mnist_edge.cli.render import err_console
from mnist_edge.errors import MissingDependencyError, MnistEdgeError

__all__ = ["app", "command", "data_app", "main"]

app = typer.Typer(
    name="mnist-edge",
    help="Train the classic Keras MNIST classifier and take it to the edge.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Fetch, inspect and plot the MNIST data set.", no_args_is_help=True)
app.add_typer(data_app, name="data")

F = TypeVar("F", bound=Callable[..., Any])


@app.callback()
def _options(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="Also show the engines' and frameworks' own log lines (TensorFlow, absl, LiteRT, "
            "onnxruntime), hidden by default. MNIST_EDGE_VERBOSE=1 does the same.",
        ),
    ] = False,
) -> None:
    """Train the classic Keras MNIST classifier and take it to the edge."""
    if verbose:
        from mnist_edge._quiet import loud_again

        loud_again()


def _errors_to_exit_codes(func: F, command_line: str) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MissingDependencyError as exc:  # "`mnist-edge train` needs TensorFlow: pip install ..."
            message = escape(exc.message(f"`{command_line}`"))
            err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except MnistEdgeError as exc:
            # Escaped: messages hold brackets that are not markup, e.g. pip install 'mnist-edge[serve]'.
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:
            if exc.filename is None:  # not about a path the user gave (a broken pipe, a bug): as is
                raise
            # A path that cannot be written or read after the checks passed (a full disk, a folder
            # removed meanwhile): still one line.
            where = escape(str(exc.filename))
            err_console.print(f"[bold red]error:[/] {where}: {exc.strerror}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: no partial files were left at final paths")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def command(target: typer.Typer = app, *, needs_tensorflow: bool = False, **kwargs: Any) -> Callable[[F], F]:
    """``@app.command()`` plus the error mapping; returns the function itself, undecorated.
    ``needs_tensorflow``: say so before anything runs when TensorFlow is not installed."""

    def decorate(func: F) -> F:
        group = " data" if target is data_app else ""
        command_line = f"mnist-edge{group} {kwargs.get('name', func.__name__)}"
        run = func
        if needs_tensorflow:

            @functools.wraps(func)
            def run(*args: Any, **kw: Any) -> Any:
                from mnist_edge._heavy import require

                require("tensorflow", "TensorFlow")
                return func(*args, **kw)

        target.command(**kwargs)(_errors_to_exit_codes(run, command_line))
        return func

    return decorate


def main() -> None:
    """The ``mnist-edge`` script. Click's own usage errors (an option out of range, a path that cannot
    be read) become one red line and exit code 2, like every other error, instead of a usage box."""
    from mnist_edge._quiet import quiet_terminal

    try:
        with quiet_terminal():  # engines' native log lines stay off the terminal (see --verbose)
            code = app(standalone_mode=False)
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `mnist-edge data` alone prints the help
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = escape(exc.format_message() + hint)
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("[yellow]aborted[/]")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
