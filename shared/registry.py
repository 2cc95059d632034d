"""Name → model tables: one per task, the single place that knows each model's class and configs.

Every command (`train`, `eval`, `info`, the default run, predict, search) asks the task's
`ModelRegistry` for a model by name; nothing else keeps a "model name → config file" table.

>>> MODELS = ModelRegistry("fau model", config_dir=Path("fau/configs"))
>>> @MODELS.register("algrnet", configs={"tiny": "algrnet_tiny", "bp4d": "algrnet_bp4d"})
... class ALGRNet: ...
>>> MODELS.get("algrnet").cls is ALGRNet
True
>>> MODELS.get("algrnet").config_name("bp4d")
'algrnet_bp4d'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Iterable, Mapping, TypeVar

from shared.config import load_config
from shared.errors import UserError

T = TypeVar("T")

#: the config every model has: the small CPU variant the default runs and tests use
TINY = "tiny"


@dataclass(frozen=True)
class ModelEntry(Generic[T]):
    """A registered model: its class and its packaged configs by dataset (``tiny``, ``bp4d``, ``f30k`` …)."""

    name: str
    cls: Callable[..., T]
    configs: Mapping[str, str]
    config_dir: Path
    summary: str = ""

    def config_name(self, dataset: str = TINY) -> str:
        """The packaged config stem for `dataset` (a one-line error lists the datasets it has)."""
        if dataset not in self.configs:
            known = ", ".join(self.configs) or "none"
            raise UserError(f"model {self.name!r} has no config for {dataset!r} (it has: {known})")
        return self.configs[dataset]

    def config_path(self, dataset: str = TINY) -> Path:
        return self.config_dir / f"{self.config_name(dataset)}.yaml"


@dataclass
class ModelRegistry(Generic[T]):
    """A named table of models, each registered with its packaged configs (see the module docstring)."""

    kind: str
    config_dir: Path
    _entries: dict[str, ModelEntry[T]] = field(default_factory=dict)

    def register(self, name: str, configs: Mapping[str, str], summary: str = "") -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Class decorator: record `name` → class with its configs; every model has a ``tiny`` config."""
        key = name.lower()
        if TINY not in configs:
            raise ValueError(f"{self.kind} {name!r}: register a {TINY!r} config")

        def decorator(cls: Callable[..., T]) -> Callable[..., T]:
            if key in self._entries and self._entries[key].cls is not cls:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[key] = ModelEntry(key, cls, dict(configs), self.config_dir, summary)
            return cls

        return decorator

    def get(self, name: str) -> ModelEntry[T]:
        """The entry of `name`; an unknown name is a one-line error listing the known ones."""
        try:
            return self._entries[str(name).lower()]
        except KeyError:
            known = ", ".join(self.names()) or "none registered"
            raise UserError(f"--model {name!r}: unknown {self.kind} (known: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[ModelEntry[T]]:
        return [self._entries[name] for name in self.names()]

    def __contains__(self, name: str) -> bool:
        return str(name).lower() in self._entries

    def config_path(self, model: str, config: str | Path | None = None) -> Path:
        """The YAML file for `model`: its ``tiny`` config when `config` is None, else a dataset key of the
        model (``bp4d``), a packaged config name (``algrnet_bp4d``) or a file path."""
        entry = self.get(model)
        if config is None:
            return entry.config_path(TINY)
        text = str(config)
        if text in entry.configs:
            return entry.config_path(text)
        path = Path(config)
        if path.suffix in (".yaml", ".yml") or path.exists():
            if not path.is_file():
                raise UserError(f"--config {path}: no such file")
            return path
        packaged = self.config_dir / f"{text}.yaml"
        if not packaged.is_file():
            known = ", ".join(sorted(p.stem for p in self.config_dir.glob("*.yaml")))
            raise UserError(f"--config {text!r}: neither a file, a dataset of {model!r} "
                            f"({', '.join(entry.configs)}) nor a packaged config ({known})")
        return packaged

    def load_config(self, model: str, config: str | Path | None = None, overrides: Iterable[str] = ()) -> dict[str, Any]:
        """The resolved config dict of `model` (see `config_path`) with ``key=value`` overrides applied."""
        return load_config(self.config_path(model, config), overrides)

    def listing(self) -> str:
        """Two lines per model (name + summary, then its configs per dataset), for `info --list`."""
        lines = []
        for entry in self.entries():
            configs = ", ".join(f"{dataset}: {stem}" for dataset, stem in entry.configs.items())
            lines += [f"{entry.name:<10} {entry.summary}", f"{'':<10} configs: {configs}"]
        return "\n".join(lines)

    def configs(self) -> dict[str, dict[str, str]]:
        """model → {dataset: config stem}, for docs and `info --list`."""
        return {entry.name: dict(entry.configs) for entry in self.entries()}
