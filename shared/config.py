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


class Options:
    """Read-only view of a nested config section that records which keys were read.

    Every hyper-parameter comes from the YAML config (no hidden constructor defaults); typed
    readers give one-line errors naming the dotted key, and `finish` rejects any key nobody read,
    so a typo in a config or an override never trains silently with a default.
    """

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        if not isinstance(data, Mapping):
            raise UserError(f"config {where}: expected a mapping, got {type(data).__name__}")
        self._data, self._where = data, where
        self._used: set[str] = set()
        self._children: dict[str, Options] = {}

    @property
    def where(self) -> str:
        """Dotted path of this section, for error messages."""
        return self._where

    def has(self, key: str) -> bool:
        return key in self._data

    def raw(self, key: str) -> Any:
        """The value of `key` as written (marks it read)."""
        if key not in self._data:
            raise UserError(f"config {self._where}: missing key {key!r}")
        self._used.add(key)
        return self._data[key]

    def sub(self, key: str) -> "Options":
        """The nested section `key`."""
        if key not in self._children:
            self._children[key] = Options(self.raw(key), f"{self._where}.{key}")
        return self._children[key]

    def bool(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise UserError(f"config {self._where}.{key}: expected true/false, got {value!r}")
        return value

    def int(self, key: str, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"config {self._where}.{key}: expected an integer, got {value!r}")
        self._check_range(key, value, minimum, maximum)
        return value

    def float(self, key: str, minimum: float | None = None, maximum: float | None = None) -> float:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"config {self._where}.{key}: expected a number, got {value!r}")
        self._check_range(key, float(value), minimum, maximum)
        return float(value)

    def choice(self, key: str, choices: Iterable[str]) -> str:
        value, choices = self.raw(key), tuple(choices)
        if value not in choices:
            raise UserError(f"config {self._where}.{key}: {value!r} is not one of {', '.join(choices)}")
        return value

    def str(self, key: str, allow_none: bool = False) -> str | None:
        value = self.raw(key)
        if value is None and allow_none:
            return None
        if not isinstance(value, str) or not value:
            raise UserError(f"config {self._where}.{key}: expected a non-empty string, got {value!r}")
        return value

    def ints(self, key: str, minimum: int = 1) -> tuple[int, ...]:
        value = self.raw(key)
        if (not isinstance(value, list) or not value
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value)):
            raise UserError(f"config {self._where}.{key}: expected a list of integers >= {minimum}, got {value!r}")
        return tuple(value)

    def floats(self, key: str, length: int | None = None, minimum: float | None = None,
               maximum: float | None = None) -> tuple[float, ...]:
        value = self.raw(key)
        ok = isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if not ok or (length is not None and len(value) != length):
            size = f"{length} " if length is not None else ""
            raise UserError(f"config {self._where}.{key}: expected a list of {size}numbers, got {value!r}")
        for v in value:
            self._check_range(key, float(v), minimum, maximum)
        return tuple(float(v) for v in value)

    def mapping(self, key: str) -> dict[str, Any]:
        """A free-form mapping value (e.g. per-parameter-group lr scales), marked read as a whole."""
        value = self.raw(key)
        if not isinstance(value, Mapping):
            raise UserError(f"config {self._where}.{key}: expected a mapping, got {value!r}")
        return dict(value)

    def _check_range(self, key: str, value: float, minimum: float | None, maximum: float | None) -> None:
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise UserError(f"config {self._where}.{key}: {value} outside [{minimum}, {maximum}]")

    def finish(self) -> None:
        """Raise if any key of this section (or a nested one) was never read."""
        unused = sorted(set(self._data) - self._used)
        if unused:
            raise UserError(f"config {self._where}: unknown key(s) {', '.join(map(repr, unused))}")
        for child in self._children.values():
            child.finish()


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
