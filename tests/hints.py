"""Hints must work for the command that printed them: every ``ebmctl ...`` command a hint spells out parses, and
every option it names on its own (``add --no-verify-checksums``) is an option of the printing command or a global
one. Used by the tests of error messages and by every fuzzing test."""

from __future__ import annotations

import re

import typer

from ebmctl.cli.main import app, command_of, hoist_global_options

STOP = ";,)`"  # a command a hint spells out ends at a token ending in one of these (or at the end)
# Words a hint may write after a command it spells out (the command ends before them).
PROSE = {"or", "and", "then", "to", "for", "with", "if", "first", "(e.g.", "e.g.", "again"}


def _group() -> typer.core.TyperGroup:
    return typer.main.get_command(app)


def _options(command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def _command(args: list[str]):
    """The click command ``args`` (global options hoisted in front) runs, and its arguments."""
    group, rest = _group(), list(args)
    while rest and rest[0].startswith("-"):
        rest = rest[1 + (rest[0] in ("--device", "--threads", "--runs-dir", "--outputs-dir", "--data-root")):]
    command = group
    while rest and isinstance(command, typer.core.TyperGroup) and rest[0] in command.commands:
        command, rest = command.commands[rest[0]], rest[1:]
    return command, rest


def command_forms(hint: str) -> list[list[str]]:
    """The ``ebmctl ...`` commands a hint spells out, as argument lists."""
    tokens, forms, i = hint.split(), [], 0
    commands = set(_group().commands)
    while i < len(tokens):
        after = tokens[i + 1].rstrip(STOP) if i + 1 < len(tokens) else ""
        if tokens[i].lstrip("`") != "ebmctl" or not (after in commands or after.startswith("-")):
            i += 1  # not a command: prose ("ebmctl never unpickles files") or the program's name alone
            continue
        form, i = [], i + 1
        while i < len(tokens) and tokens[i] not in PROSE:
            token = tokens[i]
            i += 1
            if token[-1] in STOP:
                token = token.rstrip(STOP)
                if token:
                    form.append(token)
                break
            form.append(token)
        forms.append(form)
    return forms


def _rest(ctx) -> list[str]:
    """What a group's context left for its subcommand (click keeps the subcommand's name apart)."""
    protected = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", None) or []
    return [*protected, *ctx.args]


def _parses(form: list[str]) -> str | None:
    """Why ``ebmctl FORM`` would not parse (None when it does); --help is left out, as it only prints."""
    args = hoist_global_options([a for a in form if a != "--help"])
    group = _group()
    if not [a for a in args if not a.startswith("-")]:
        return None  # `ebmctl` alone (or with global options) shows the help
    try:
        ctx = group.make_context("ebmctl", list(args), resilient_parsing=False)
        command, rest = group, _rest(ctx)
        while isinstance(command, typer.core.TyperGroup) and rest:
            name, rest = rest[0], rest[1:]
            if name not in command.commands:
                return f"no command {name!r}"
            command = command.commands[name]
            if isinstance(command, typer.core.TyperGroup) and not rest:
                return None  # a group alone shows its help (and making its context would print it)
            ctx = command.make_context(name, list(rest), parent=ctx, resilient_parsing=False)
            rest = _rest(ctx) if isinstance(command, typer.core.TyperGroup) else []
    except (typer.Exit, typer.Abort):
        return None
    except Exception as exc:  # click's usage errors: no such option, bad value, extra argument
        if type(exc).__name__ == "NoArgsIsHelpError":  # `ebmctl` or `ebmctl presets` alone: shows the help
            return None
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        return f"{type(exc).__name__}: {message}"
    return None


def hint_problems(argv: list[str], line: str) -> list[str]:
    """What in the hint of the error ``line`` printed by ``ebmctl ARGV`` the printing command could not follow."""
    match = re.search(r"\(hint: (.*)\)\s*$", line)
    if not match:
        return []
    hint = match.group(1)
    problems = []
    for form in command_forms(hint):
        why = _parses(form)
        if why is not None:
            problems.append(f"`ebmctl {' '.join(form)}` does not parse: {why}")
    spelled = " ".join(" ".join(f) for f in command_forms(hint))
    own, _ = _command(hoist_global_options(list(argv)))
    allowed = _options(own) | _options(_group())
    for option in re.findall(r"(?<![\w`-])(--[a-z][a-z0-9-]*)", hint):
        if option not in allowed and option not in spelled.split():
            problems.append(f"{option} is no option of `ebmctl {command_of(hoist_global_options(list(argv)))}`")
    return problems


def assert_hint_works(argv: list[str], line: str) -> None:
    problems = hint_problems(argv, line)
    assert not problems, f"{argv}: {line}\n" + "\n".join(problems)
