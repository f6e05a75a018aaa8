"""Write docs/cli.md from the Typer app and docs/presets.md from the spec models and preset files.

Run: python docs/generate.py  (tests/test_docs.py checks that the committed files are current).
"""

from __future__ import annotations

import re
import sys
import typing
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel

from ebmctl.cli.main import app
from ebmctl.recipes import RECIPES, RunSpec
from ebmctl.specs import preset_header, preset_names, preset_path

DOCS = Path(__file__).resolve().parent


def _plain(text: str | None) -> str:
    """Rich markup to plain text."""
    return re.sub(r"\[/?[a-z ]+\]", "", text or "").strip()


def _option_row(param: Any) -> str:
    names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
    if param.param_type_name == "argument":
        names = f"`{param.name.upper()}`"
    default = param.default
    shown = "" if default in (None, False, ()) or callable(default) else f"`{default}`"
    help_text = (getattr(param, "help", None) or "").replace("|", "\\|")
    return f"| {names} | {help_text} | {shown} |"


def _command_section(name: str, cmd: Any, level: int = 2) -> list[str]:
    lines = [f"{'#' * level} `ebmctl {name}`", "", _plain(cmd.help).split("\n")[0], ""]
    params = [p for p in cmd.params if p.name not in ("help",)]
    if params:
        lines += ["| option | meaning | default |", "|---|---|---|", *[_option_row(p) for p in params], ""]
    examples = [line.strip() for line in _plain(cmd.epilog).splitlines() if line.strip().startswith("ebmctl")]
    if examples:
        lines += ["Examples:", "", "```bash", *examples, "```", ""]
    return lines


def cli_reference() -> str:
    root = typer.main.get_command(app)
    lines = ["# CLI reference", "", "Generated from the app by `python docs/generate.py`; `ebmctl COMMAND --help` "
             "shows the same.", "", "## Global options (before the command)", "", "| option | meaning | default |",
             "|---|---|---|"]
    lines += [_option_row(p) for p in root.params if p.name != "help"]
    lines.append("")
    for name, cmd in root.commands.items():
        if hasattr(cmd, "commands"):
            lines += [f"## `ebmctl {name}`", "", _plain(cmd.help), ""]
            for sub_name, sub in cmd.commands.items():
                lines += _command_section(f"{name} {sub_name}", sub, level=3)
        else:
            lines += _command_section(name, cmd)
    return "\n".join(lines).rstrip() + "\n"


def _type_name(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "")
    text = re.sub(r"<class '([^']+)'>", r"\1", text)
    text = re.sub(r"Literal\[([^\]]*)\]", r"one of \1", text)
    return text.replace("NoneType", "None")


def _fields_table(model: type[BaseModel], prefix: str) -> list[str]:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name == "name":
            continue
        default = field.default if field.default_factory is None else "(section)"
        kind = _type_name(field.annotation).replace("|", "\\|")  # a union's bar would end the table cell
        lines.append(f"| `{prefix}{name}` | {kind} | `{default}` | "
                     f"{(field.description or '').replace('|', '/')} |")
    return lines


def _members(annotation: Any) -> list[type[BaseModel]]:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]


def presets_reference() -> str:
    lines = ["# Presets and spec keys", "", "Generated from the spec models and `presets/*.toml` by "
             "`python docs/generate.py`.", "", "Precedence: field defaults < the method's released-code settings < "
             "preset < `--set key=value` < dedicated options. `--set` values are TOML literals; `none` unsets an "
             "optional value.", "", "## Presets", ""]
    for name in preset_names():
        header = preset_header(preset_path(name))
        body = preset_path(name).read_text(encoding="utf-8").splitlines()[len(header):]
        lines += [f"### `{name}`", "", *[f"> {h}" if h else ">" for h in header], "", "```toml",
                  "\n".join(body).strip(), "```", ""]
    lines += ["## Method defaults (the released code's settings)", ""]
    for method, sections in ((name, recipe.defaults) for name, recipe in RECIPES.items()):
        flat = [f"`{s}.{k}` = `{v}`" for s, d in sections.items() for k, v in d.items()]
        lines += [f"- **{method}**: " + ", ".join(flat)]
    lines += ["", "## Spec keys", ""]
    lines += ["Top level:", "", "| key | type | default | meaning |", "|---|---|---|---|",
              "| `seed` | int | `0` | Seed of every random draw of the run. |",
              "| `preset` | str | `None` | Name of the preset the spec came from. |", ""]
    for section, field in RunSpec.model_fields.items():
        if section in ("seed", "preset"):
            continue
        members = _members(field.annotation)
        if members:
            for member in members:
                tag = member.model_fields["name"].default
                lines += [f"### `{section}` = `{tag}`", "", *_fields_table(member, f"{section}."), ""]
        else:
            model = field.annotation
            lines += [f"### `{section}`", "", *_fields_table(model, f"{section}."), ""]
    return "\n".join(lines).rstrip() + "\n"


def write_all(target: Path = DOCS) -> list[Path]:
    out = []
    for name, text in (("cli.md", cli_reference()), ("presets.md", presets_reference())):
        path = target / name
        path.write_text(text, encoding="utf-8")
        out.append(path)
    return out


if __name__ == "__main__":
    for path in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS):
        print(path)
