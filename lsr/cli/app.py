"""The ``lsr`` command line.

Contract (scripts outside the repo rely on these forms):
  lsr index DATASET --model NAME --output DIR [--index-type seismic|exact]
  lsr search INDEX "text" [-k 10] [--json]
  lsr eval INDEX DATASET [--metrics ...] [--json]
Errors print one ``error: ...`` line on stderr and exit with status 1 (a number out of its range
too); usage mistakes (a missing argument, an unknown option) exit with 2 (typer's convention).

This module holds the typer app, error handling, ``--version`` and ``-h``;
the commands live by group in :mod:`.search` (search, eval, ask),
:mod:`.build` (index, encode, compose, models), :mod:`.tune` (tune,
tune-hybrid) and :mod:`.train`, and the options they share in
:mod:`.options`. Nothing in lsr imports this package.
"""
import functools
import logging
import os
import sys
from contextlib import contextmanager
from typing import Annotated

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from ..errors import LsrError
from . import ask, build, check, explain, search, serve, train, tune, write
from .options import flag


class _PlainHelp:
    """Help that reads naturally: ``Usage: lsr search [OPTIONS] INDEX [QUERY]`` (no ``{INDEX}``)
    and no ``<bool>`` type on -h/--help."""

    def get_help_option(self, ctx):
        opt = super().get_help_option(ctx)
        if opt is not None:
            opt.metavar = ""
        return opt

    def collect_usage_pieces(self, ctx):
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.display_name_raw
                pieces.append((name if param.required else f"[{name}]") + ("..." if param.nargs != 1 else ""))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


class Command(_PlainHelp, TyperCommand):
    def make_context(self, info_name, args, parent=None, **extra):
        """A number out of its range (``-k 0``, ``--step 2``) is a bad value, not a usage mistake: one
        ``error:`` line and exit 1, as every other bad argument (the help still shows the range)."""
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except typer.BadParameter as e:
            if e.param is None or (getattr(e.param, "min", None) is None and getattr(e.param, "max", None) is None):
                raise
            name = "/".join(e.param.opts)
            typer.echo(f"error: {name}: {e.message}", err=True)
            raise typer.Exit(1) from None


class Group(_PlainHelp, TyperGroup):
    def collect_usage_pieces(self, ctx):
        return TyperGroup.collect_usage_pieces(self, ctx)


app = typer.Typer(cls=Group, add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="lsr: learned sparse retrieval. Encode, index, search and evaluate.")


def _show_version(value: bool) -> None:
    if value:
        from .. import __version__
        typer.echo(f"lsr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, flag("--version", "-V", callback=_show_version, is_eager=True,
                                        help="print lsr's version and exit")] = False) -> None:
    """lsr: learned sparse retrieval. Encode, index, search and evaluate."""


class _WarningLines(logging.Handler):
    """lsr's own warnings (index predates checksums, encoding restarted, float32 chosen) as ``warning:``
    lines on the stderr of the moment (typer's test runner swaps it per invocation)."""

    def emit(self, record) -> None:
        typer.echo(f"{record.levelname.lower()}: {record.getMessage()}", err=True)


def _lsr_warnings() -> None:
    log = logging.getLogger("lsr")
    if not any(isinstance(h, _WarningLines) for h in log.handlers):
        handler = _WarningLines(logging.WARNING)
        log.addHandler(handler)  # a handler found: Python's last-resort printer stays silent


def _quiet_libraries() -> None:
    """Keep stdout clean (for --json) and stderr readable: no library chatter."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # The variables above are read when those libraries are imported; in a
    # process that imported them already (tests, notebooks) switch the bars off too.
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
        sys.modules["transformers"].utils.logging.set_verbosity_error()
    # ir_datasets gives each of its loggers its own INFO level, so raising the
    # parent's level does nothing; the CLI prints via typer, not logging.
    logging.disable(logging.INFO)


@contextmanager
def _no_progress_bars():
    """--quiet: no tqdm bar from anyone while the command runs (lsr's, sentence-transformers',
    ir_datasets'); every tqdm class is a subclass of tqdm.std.tqdm, whose constructor is wrapped."""
    import tqdm.std
    cls = tqdm.std.tqdm
    original = cls.__dict__["__init__"]

    def __init__(self, *args, **kwargs):
        kwargs["disable"] = True
        original.__get__(self, cls)(*args, **kwargs)

    cls.__init__ = __init__
    try:
        yield
    finally:
        cls.__init__ = original


def handle_errors(fn):
    """Run a command: LsrError -> one ``error:`` line and exit 1; ``quiet`` switches every progress bar off."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _quiet_libraries()
        _lsr_warnings()
        try:
            if kwargs.get("quiet"):
                with _no_progress_bars():
                    return fn(*args, **kwargs)
            return fn(*args, **kwargs)
        except LsrError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None
        except OSError as e:  # the disk, not the input: full, read-only, permission, a missing folder
            where = f"{e.filename}: " if e.filename else ""
            typer.echo(f"error: {where}{e.strerror or e} (nothing half-written is left under the output's "
                       "name; free space or fix the path and rerun)", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("error: interrupted (rerun the same command to resume encoding)", err=True)
            raise typer.Exit(130) from None
    return wrapper


for _panel, _commands in (
        ("Search", {"search": search.search, "eval": search.eval_, "ask": ask.ask}),
        ("Build", {"index": build.index, "encode": build.encode, "compose": build.compose, "models": build.models,
                   "check": check.check, "info": check.info}),
        ("Change an index", {"add": write.add, "delete": write.delete, "merge": write.merge,
                             "upgrade": write.upgrade}),
        ("Tune and train", {"tune": tune.tune, "tune-hybrid": tune.tune_hybrid, "train": train.train})):
    for _name, _fn in _commands.items():
        app.command(name=_name, cls=Command, rich_help_panel=_panel)(handle_errors(_fn))
app.command(name="terms", cls=Command, rich_help_panel="Search")(handle_errors(explain.terms))
app.command(name="serve", cls=Command, rich_help_panel="Search")(handle_errors(serve.serve))


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
