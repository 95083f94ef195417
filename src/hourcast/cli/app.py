"""The ``hourcast`` command line: the typer app with every command, in the order ``--help`` lists them,
and the one error printer. The console script and ``python -m hourcast`` call ``app``.

Errors, on stderr, one line each, whatever stderr is (a terminal, a pipe or a file):

* a ``HourcastError`` or invalid ``HOURCAST_*`` settings: ``hourcast: <what is wrong>; <what to do>``,
  exit 1;
* a usage error click finds before any command runs (unknown option or command, bad or missing value):
  ``hourcast: <what is wrong>; see `hourcast <command> --help```, exit 2 (click's code for usage errors,
  so a script can tell a wrong invocation from a failed run);
* anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from hourcast.cli import data, features, model, render, serve, stack
from hourcast.compat.typeguard import skip_feast_instrumentation
from hourcast.errors import HourcastError
from hourcast.settings import Settings


def settings_error_line(error: ValidationError) -> str:
    """One line for invalid ``HOURCAST_*`` settings: each variable, its value and what is wrong."""
    problems = []
    for item in error.errors(include_url=False):
        name = "HOURCAST_" + "_".join(str(part) for part in item["loc"]).upper()
        reason = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{name}={item.get('input')!r}: {reason}")
    return "; ".join(problems) + "; fix it in the environment or .env"


def usage_error_line(error: typer.TyperException) -> str:
    """One line for a usage error click raised (typer's ``TyperException`` is the base of click's, which
    typer vendors): its message and the help to read."""
    what = " ".join(error.format_message().split()).rstrip(".")
    if what[1:2].islower():  # "No such option" -> "no such option"; "HOURCAST_..." stays
        what = what[0].lower() + what[1:]
    context = getattr(error, "ctx", None)
    return f"{what}; see `{context.command_path if context else 'hourcast'} --help`"


class HourcastGroup(TyperGroup):
    """The command group: it prints every error in the module docstring's shape, through
    ``render.error``."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        """Bare ``hourcast``: the help on stderr and exit 2, as click's ``no_args_is_help`` does."""
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            typer.echo(ctx.get_help(), err=True)
            ctx.exit(2)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HourcastError as error:
            render.error(str(error))
            ctx.exit(1)
        except ValidationError as error:
            if error.title != Settings.__name__:
                raise
            render.error(settings_error_line(error))
            ctx.exit(1)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """typer's ``main``, with click's usage errors printed as one line (typer would print click's or
        rich's block, depending on the terminal); Feast, once a command imports it, skips typeguard."""
        skip_feast_instrumentation()
        run = super().main
        if not standalone_mode:
            return run(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = run(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.TyperException as error:
            render.error(usage_error_line(error))
            sys.exit(error.exit_code)
        except typer.Abort:
            render.error("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=HourcastGroup,
    help="hourcast: next-hour close forecasts for crypto pairs.",
    no_args_is_help=True,
    rich_markup_mode=None,  # click's plain help: flags without a type column, no rich import at start-up
)
app.command()(data.backfill)
app.command()(data.ingest)
app.command("ledger")(data.show_ledger)
app.command()(data.gaps)
app.command()(data.repair)
app.command()(features.materialize)
app.command()(model.train)
app.command()(model.evaluate)
app.command()(serve.monitor)
app.command()(serve.serve)
app.command()(serve.ui)
app.command()(stack.up)
app.command("replay-exchange")(stack.replay_exchange)
app.add_typer(data.quarantine_app, name="quarantine")
app.add_typer(model.models_app, name="models")
