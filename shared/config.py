"""YAML configs with dotted ``key=value`` command-line overrides.

A config file is a nested mapping.  Overrides such as ``train.lr=0.02 model.K=3`` replace leaves;
the value is parsed as YAML (so ``true``, ``1e-3``, ``[1, 2]`` work).  A key that does not exist in
the file is an error, so a typo never silently trains with the default.  A file may start from
another with ``_base: other.yaml`` (resolved relative to it); its own keys then override the base.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from shared.errors import UserError

BASE_KEY = "_base"


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` / ``5E+4`` as floats (YAML 1.1 wants a dot)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _parse(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read one YAML mapping, resolving a `_base` chain; one-line errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config {path}: no such file")
    try:
        data = _parse(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"config {path}{where}: not valid YAML") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"config {path}: top level must be a mapping, got {type(data).__name__}")
    base_name = data.pop(BASE_KEY, None)
    if base_name is None:
        return data
    base = load_yaml(path.parent / base_name)
    return merge(base, data, source=str(path), strict=False)


def merge(base: Mapping[str, Any], update: Mapping[str, Any], source: str = "", strict: bool = True) -> dict[str, Any]:
    """Deep-merge `update` into a copy of `base`; with `strict`, unknown keys are errors."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if key in out and isinstance(out[key], dict) and isinstance(value, Mapping):
            out[key] = merge(out[key], value, source=f"{source}.{key}" if source else key, strict=strict)
        elif strict and key not in out:
            raise UserError(f"{source or 'config'}: unknown key {key!r}")
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into (["a", "b", "c"], parsed value)."""
    if "=" not in text:
        raise UserError(f"override {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"override {text!r}: empty key")
    try:
        value = _parse(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(config: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of `config` with each dotted override applied; unknown keys raise `UserError`."""
    out = copy.deepcopy(dict(config))
    for text in overrides:
        keys, value = parse_override(text)
        node: Any = out
        for depth, key in enumerate(keys):
            if not isinstance(node, dict) or key not in node:
                where = ".".join(keys[: depth + 1])
                raise UserError(f"override {text!r}: unknown config key {where!r}")
            if depth == len(keys) - 1:
                node[key] = value
            else:
                node = node[key]
    return out


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Load a YAML config and apply ``key=value`` overrides."""
    return apply_overrides(load_yaml(path), overrides)


def dump_config(config: Mapping[str, Any]) -> str:
    """Serialise a config back to YAML (key order kept)."""
    return yaml.safe_dump(dict(config), sort_keys=False)
