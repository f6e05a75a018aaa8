"""Explaining a bad spec in one line: the unknown key with a "did you mean", or the bad value with what its
field takes."""

from __future__ import annotations

import difflib
import json
import re
import typing
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from ebmctl.errors import SpecError
from ebmctl.specs.overrides import NAMED_SECTIONS, nones

M = TypeVar("M", bound=BaseModel)


def _section_model(annotation: Any, value: Any) -> type[BaseModel] | None:
    """The pydantic model a dict value is validated against (resolving discriminated unions by name)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Annotated:
        return _section_model(args[0], value)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    members = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
    if not members:
        return None
    name = value.get("name") if isinstance(value, dict) else None
    for member in members:
        if member.model_fields.get("name") and member.model_fields["name"].default == name:
            return member
    return None


def union_names(annotation: Any) -> list[str]:
    """The ``name`` values a discriminated union accepts."""
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return [a.model_fields["name"].default for a in typing.get_args(annotation) if hasattr(a, "model_fields")]


def check_keys(tree: dict[str, Any], model: type[BaseModel], prefix: str = "") -> None:
    """Raise SpecError naming the first unknown key, with a "did you mean" from the valid keys."""
    fields = model.model_fields
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if key not in fields:
            known = sorted(fields)
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
            near = f"did you mean {prefix}{close[0]}?" if close else f"valid keys here: {', '.join(known)}"
            raise SpecError(f"unknown key {path!r}", near)
        annotation = fields[key].annotation
        sub = _section_model(annotation, value)
        if key == "name" and isinstance(value, str):
            continue
        if isinstance(value, dict):
            if sub is None:
                names = union_names(annotation)
                if names:
                    raise SpecError(
                        f"unknown {path}.name {value.get('name')!r}",
                        did_you_mean(str(value.get("name")), names),
                    )
                continue
            check_keys(value, sub, prefix=f"{path}.")
        elif isinstance(value, str) and key in NAMED_SECTIONS:
            names = union_names(annotation)
            if value not in names:
                raise SpecError(f"unknown {path} {value!r}", did_you_mean(value, names))


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.4)
    return f"did you mean {close[0]!r}? choices: {', '.join(choices)}" if close else f"choices: {', '.join(choices)}"



def validated(model: type[M], tree: dict[str, Any]) -> M:
    """Validate a merged dict into ``model``, turning pydantic's report into one line."""
    check_keys(tree, model)
    try:
        return model.model_validate(nones(tree))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc, message = err["loc"], err["msg"].removeprefix("Value error, ")
        named = re.match(r"(\w+): (.*)", message) if err["type"] == "value_error" else None
        if named and _field_at(model, (*loc, named[1])) is not None:  # a section's own check that names one of its keys
            loc, message = (*loc, named[1]), named[2]
        parts = [str(p) for i, p in enumerate(loc) if not (i and loc[i - 1] in NAMED_SECTIONS and _is_union_tag(model, p))]
        where = ".".join(parts)
        key = ".".join(str(p) for p in parts[: next((i for i, p in enumerate(parts) if p.isdigit()), len(parts))])
        got = err.get("input")
        shown = "" if isinstance(got, dict) else f" (got {json.dumps(got, default=str)})"
        field = _field_at(model, loc)
        expected = _expected(field) if field is not None else None
        raise SpecError(
            f"bad value for {where or 'spec'}: {message}{shown}",
            f"{key} takes {expected}; see docs/presets.md" if expected else
            "see `ebmctl presets show NAME` for valid values, or docs/presets.md",
        ) from None


def _is_union_tag(model: type[BaseModel], part: Any) -> bool:
    tags = {n for key in NAMED_SECTIONS if key in model.model_fields
            for n in union_names(model.model_fields[key].annotation)}
    return isinstance(part, str) and part in tags


def _field_at(model: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    """The FieldInfo a pydantic error location points at (None when it points at a section or list item)."""
    node: Any = model  # a model, or a discriminated union of models whose tag comes next
    field = None
    for part in loc:
        if not isinstance(part, str):  # an item of a list: the list's field
            return field if node is None else None
        if node is None:
            return None
        if isinstance(node, type) and issubclass(node, BaseModel):
            if part not in node.model_fields:
                return None
            field = node.model_fields[part]
            node = _model_or_union(field.annotation)
        else:
            members = [m for m in typing.get_args(node) if m.model_fields["name"].default == part]
            if not members:
                return None
            node, field = members[0], None
    return field if node is None else None


def _model_or_union(annotation: Any) -> Any:
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return annotation if union_names(annotation) else None


def _expected(field: Any) -> str | None:
    """What a scalar field accepts, in words: its type, range or choices (None for anything else)."""
    annotation = field.annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = len(args) < len(typing.get_args(annotation))
    kind = args[0] if optional and len(args) == 1 else annotation
    bounds = []
    for meta in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if getattr(meta, attr, None) is not None:
                bounds.append(f"{sign} {getattr(meta, attr):_}".replace("_", ","))
    limits = f" {' and '.join(bounds)}" if bounds else ""
    if kind is bool:
        text = "true or false"
    elif kind is int:
        text = f"an integer{limits}"
    elif kind is float:
        text = f"a finite number{limits}"
    elif kind is str:
        text = "a string"
    elif typing.get_origin(kind) is Literal:
        text = "one of " + ", ".join(str(c) for c in typing.get_args(kind))
    elif typing.get_origin(kind) is tuple:
        items = typing.get_args(kind)
        what = ("integers" if items and items[0] is int else "finite numbers" if items and items[0] is float
                else "names or integers")
        text = f"a list of {what}" if Ellipsis in items else f"a list of {len(items)} {what}"
    elif typing.get_origin(kind) is list and typing.get_origin(typing.get_args(kind)[0]) is Literal:
        choices = ", ".join(f'"{c}"' for c in typing.get_args(typing.get_args(kind)[0]))
        text = f"a list of {choices} (may be empty)"
    else:
        return None
    return text + (" (or none)" if optional else "")

