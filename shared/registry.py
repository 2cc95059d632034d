"""Name → class registries, so `--model algrnet` or `--model 3shnet` resolves in one place per task."""

from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

from shared.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of classes (or factories) filled by the `register` decorator.

    >>> MODELS = Registry("fau model")
    >>> @MODELS.register("algrnet")
    ... class ALGRNet: ...
    >>> MODELS.get("algrnet") is ALGRNet
    True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        key = name.lower()

        def decorator(obj: Callable[..., T]) -> Callable[..., T]:
            if key in self._entries and self._entries[key] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[key] = obj
            return obj

        return decorator

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._entries[name.lower()]
        except KeyError:
            known = ", ".join(self.names()) or "none registered"
            raise UserError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def create(self, name: str, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._entries
