"""A small generic registry: named entries filled by decorators, one instance per concern."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["Registry", "DuplicateEntryError", "LazyModule"]

T = TypeVar("T")


class DuplicateEntryError(ValueError):
    """Raised when a name is registered twice in the same registry."""


class LazyModule:
    """A module path that is imported on first use, so registries stay cheap to build."""

    def __init__(self, dotted_path: str) -> None:
        self.dotted_path = dotted_path
        self._module: object | None = None

    def load(self) -> object:
        """Import (once) and return the module."""
        if self._module is None:
            self._module = importlib.import_module(self.dotted_path)
        return self._module


class Registry(Generic[T]):
    """Named entries of one kind (frontends, op converters, passes, targets).

    `@registry.register("Name")` registers the decorated object; lookups of a
    missing name raise KeyError listing what exists.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T | None = None) -> Callable[[T], T] | T:
        """Register `entry` under `name`, or return a decorator that does."""
        if entry is not None:
            self._add(name, entry)
            return entry

        def decorator(obj: T) -> T:
            self._add(name, obj)
            return obj

        return decorator

    def _add(self, name: str, entry: T) -> None:
        if name in self._entries:
            raise DuplicateEntryError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = entry

    def get(self, name: str) -> T:
        """The entry registered as `name`; KeyError lists the known names."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise KeyError(f"unknown {self.kind} '{name}' (known: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) pairs in registration order."""
        return list(self._entries.items())

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._entries)
