"""The `mlops` group: global options after the subcommand too, and usage errors in one line.

`mlops registry list --target local -c stage=dev` is `mlops --target local -c stage=dev
registry list`: the global options (`main_options`) given after the subcommand are moved
before it, and one given both before and after with different values is a usage error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from typer._click.exceptions import BadParameter, MissingParameter
from typer.core import TyperGroup, TyperOption

from mlops.cli.common import HELP_ASKED, usage_error

if TYPE_CHECKING:
    from typer import _click


class MainGroup(TyperGroup):
    """The `mlops` group. It takes the global options after the subcommand too (`mlops
    registry list --target local -c stage=dev`), and notes whether the subcommand's arguments
    ask for a help page, before `main_options` runs: a help page needs no config."""

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        with _one_line_usage_errors():
            return super().parse_args(ctx, self._global_options_first(ctx, args))

    def invoke(self, ctx: _click.Context) -> Any:
        with _one_line_usage_errors():  # the subcommand's options are parsed in here
            return super().invoke(ctx)

    def _global_options_first(self, ctx: _click.Context, args: list[str]) -> list[str]:
        """``args`` with the global options given after the subcommand moved before it. The
        subcommand's own options (and their values) stay where they are; nothing after
        ``--`` moves. Given both before and after with different values: a usage error."""
        ours = _options(self.get_params(ctx))
        at, before = 0, []
        while at < len(args) and (found := _option_at(ours, args, at)):
            before.append(found)
            at += len(found[1])
        command: _click.Command | None = self
        while at < len(args) and isinstance(command, TyperGroup):
            if args[at].startswith("-"):  # help, or an error click reports
                return args
            command = command.get_command(ctx, args[at])
            at += 1
        if command is None or isinstance(command, TyperGroup):
            return args
        theirs = _options(command.get_params(ctx))
        kept, after = args[:at], []
        while at < len(args):
            if args[at] == "--":
                kept += args[at:]
                break
            if found := _option_at(theirs, args, at):
                kept += found[1]
            elif found := _option_at(ours, args, at):
                option, _, value = found
                if value is None and not (option.is_flag or option.count):
                    usage_error(max(option.opts, key=len), "needs a value")
                after.append(found)
            else:
                kept.append(args[at])
            at += len(found[1]) if found else 1
        _check_not_contradicted(before, after)
        start = sum(len(tokens) for _, tokens, _ in before)
        return [*kept[:start], *(t for _, tokens, _ in after for t in tokens), *kept[start:]]

    def resolve_command(
        self, ctx: _click.Context, args: list[str]
    ) -> tuple[str | None, _click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta[HELP_ASKED] = any(arg in ctx.help_option_names for arg in rest) or (
            not rest and bool(getattr(command, "no_args_is_help", False))
        )
        return name, command, rest


@contextlib.contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    """A value typer refuses (not one of an option's choices, not a number) is reported as
    `checked` reports the others: one line naming the option, exit 2."""
    try:
        yield
    except BadParameter as exc:
        param = exc.param
        if param is None:
            raise
        argument = param.param_type_name == "argument"
        name = (param.name or "").upper() if argument else max(param.opts, key=len)
        if isinstance(exc, MissingParameter):  # a BadParameter without a message
            usage_error(name, "missing: this command requires it")
        usage_error(name, exc.message.removeprefix("Value error, "))


OptionFound = tuple[TyperOption, list[str], str | None]  # the option, its tokens, its value


def _options(params: list[_click.Parameter]) -> dict[str, TyperOption]:
    return {
        name: param
        for param in params
        if isinstance(param, TyperOption)
        for name in (*param.opts, *param.secondary_opts)
    }


def _option_at(options: dict[str, TyperOption], args: list[str], at: int) -> OptionFound | None:
    """The option of ``options`` at ``args[at]``, the tokens it takes and its value, if any:
    ``--target aws``, ``--target=aws``, ``-t aws``, ``-taws``, or a flag."""
    arg = args[at]
    if arg in options:
        option = options[arg]
        if option.is_flag or option.count:
            return option, [arg], None
        tokens = args[at : at + 2]
        return option, tokens, tokens[1] if len(tokens) == 2 else None
    name, equals, value = arg.partition("=")
    if arg.startswith("--") and equals and name in options:
        return options[name], [arg], value
    short = arg[:2]
    if not arg.startswith("--") and len(arg) > 2 and short in options:
        option = options[short]
        if not (option.is_flag or option.count):
            return option, [arg], arg[2:]
    return None


def _check_not_contradicted(before: list[OptionFound], after: list[OptionFound]) -> None:
    """An option given before and after the subcommand says the same both times (for -c: the
    same value for each key given both times)."""

    def given(found: list[OptionFound]) -> dict[str, str]:
        values = {}
        for option, _, value in found:
            if value is None:
                continue
            key = option.name or ""
            if option.multiple:  # -c key=value: one setting per key
                key = f"{key} {value.partition('=')[0].strip()}"
            values[key] = value
        return values

    first, second = given(before), given(after)
    for key in first.keys() & second.keys():
        if first[key] != second[key]:
            option = next(o for o, _, v in after if v == second[key])
            usage_error(
                max(option.opts, key=len),
                f"given before and after the subcommand with different values: "
                f"{first[key]!r} and {second[key]!r}; give it once",
            )
