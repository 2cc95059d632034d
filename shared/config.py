"""YAML configs with dotted ``key=value`` command-line overrides.

A config file is a nested mapping.  Overrides such as ``train.lr=0.02 model.K=3`` replace leaves;
the value is parsed as YAML (so ``true``, ``1e-3``, ``[1, 2]`` work).  A key that does not exist in
the file is an error, so a typo never silently trains with the default.  A file may start from
another with ``_base: other.yaml`` (resolved relative to it); its own keys then override the base.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, TypeVar, Union

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


def resolve_config_path(name_or_path: str | Path, config_dir: Path) -> Path:
    """A YAML path as given, or a packaged config by name (``algrnet_tiny`` → ``config_dir/algrnet_tiny.yaml``)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UserError(f"--config {path}: no such file")
        return path
    packaged = config_dir / f"{name_or_path}.yaml"
    if not packaged.is_file():
        known = ", ".join(sorted(p.stem for p in config_dir.glob("*.yaml")))
        raise UserError(f"--config {name_or_path!r}: neither a file nor a packaged config ({known})")
    return packaged


def load_run_config(name_or_path: str | Path, config_dir: Path, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Load a config by path or packaged name and apply ``key=value`` overrides."""
    return load_config(resolve_config_path(name_or_path, config_dir), overrides)


# --- typed configs: a YAML section read into a (nested) dataclass ---------------------------------

C = TypeVar("C")


def bounded(default: Any = dataclasses.MISSING, *, minimum: float | None = None,
            maximum: float | None = None, doc: str = "") -> Any:
    """A dataclass field with an allowed range (checked by `from_dict`) and a one-line meaning.

    >>> @dataclasses.dataclass
    ... class Loss:
    ...     margin: float = bounded(0.2, minimum=0.0, doc="triplet margin")
    """
    metadata = {"minimum": minimum, "maximum": maximum, "doc": doc}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=metadata)
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin in (tuple, list):
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(tp: Any, value: Any, where: str, partial: bool = False) -> Any:
    """`value` checked (and converted: lists to tuples, ints to floats) against the annotation `tp`."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return copy.deepcopy(value)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where, partial)
            except UserError:
                continue
        raise UserError(f"config {where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise UserError(f"config {where}: {value!r} is not {_type_name(tp)}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where, partial)
    if origin in (tuple, list):
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config {where}: expected {_type_name(tp)}, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise UserError(f"config {where}: expected a list of {len(args)} values, got {value!r}")
            items = [_convert(a, v, f"{where}[{i}]", partial) for i, (a, v) in enumerate(zip(args, value))]
        else:
            item = args[0] if args else Any
            items = [_convert(item, v, f"{where}[{i}]", partial) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        key_tp, value_tp = typing.get_args(tp) or (Any, Any)
        if not isinstance(value, Mapping):
            raise UserError(f"config {where}: expected a mapping, got {value!r}")
        return {_convert(key_tp, k, where): _convert(value_tp, v, f"{where}.{k}", partial) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise UserError(f"config {where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"config {where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"config {where}: expected a number, got {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise UserError(f"config {where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str) or not value:
            raise UserError(f"config {where}: expected a non-empty string, got {value!r}")
        return value
    raise TypeError(f"config {where}: unsupported annotation {tp!r}")


def _check_field_range(field: dataclasses.Field, value: Any, where: str) -> None:
    minimum, maximum = field.metadata.get("minimum"), field.metadata.get("maximum")
    if minimum is None and maximum is None:
        return
    values = value if isinstance(value, (tuple, list)) else (value,)
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
                low = "-inf" if minimum is None else minimum
                high = "inf" if maximum is None else maximum
                raise UserError(f"config {where}: {v} outside [{low}, {high}]")


def from_dict(cls: type[C], data: Any, where: str = "config", partial: bool = False) -> C:
    """Build the dataclass `cls` from a config mapping, strictly.

    Every key must be a field (a typo is an error naming the dotted key), every field without a
    default must be present (``partial=True`` lets fields with defaults be omitted), values are
    checked against the annotations (bool, int, float, str, Literal choices, lists/tuples, nested
    dataclasses, mappings, ``X | None``) and against `bounded` ranges.  A class may define
    ``__post_init__`` for checks across fields; it should raise `UserError` or `ValueError`.
    """
    if not isinstance(data, Mapping):
        raise UserError(f"config {where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserError(f"config {where}: unknown key(s) {', '.join(map(repr, unknown))} "
                        f"(known: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        key = f"{where}.{name}"
        if name not in data:
            has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
            if has_default and partial:
                continue
            raise UserError(f"config {where}: missing key {name!r}")
        value = _convert(hints[name], data[name], key, partial)
        _check_field_range(field, value, key)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ValueError as err:
        raise UserError(f"config {where}: {err}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config back to plain YAML-able values (tuples become lists)."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(config)
