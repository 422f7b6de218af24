"""Plugin loading and the registry of colorizers, metrics and data sources.

Load order: this distribution's own entry points (the built-ins, declared in pyproject.toml
exactly as an outside package declares them), then other distributions' entry points in the
``harness`` group, then modules named in a config's ``plugins:`` list.

Environment: ``HARNESS_DISABLE_PLUGIN_AUTOLOAD=1`` skips other distributions' entry points;
``HARNESS_PLUGINS=a,b`` loads only those of them (by entry-point or distribution name);
``HARNESS_TRACE_PLUGINS=1`` prints each load and registration to stderr.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from harness import hookspecs
from harness.colorizer import Colorizer
from harness.errors import PluginError

GROUP = "harness"
HOST_DISTRIBUTION = "colorization-harness"
KINDS = ("colorizer", "metric", "dataset")
FRAMEWORKS = ("torch", "keras", "numpy")


@dataclass(frozen=True)
class Provider:
    """Where a plugin came from: module, entry point and distribution."""

    module: str
    distribution: str
    version: str
    entry_point: str | None = None

    def describe(self) -> str:
        ep = f" (entry point '{self.entry_point}')" if self.entry_point else ""
        return f"{self.distribution} {self.version}: {self.module}{ep}"


@dataclass(frozen=True)
class Entry:
    """One registered colorizer, metric or data source."""

    name: str
    kind: str
    obj: Any
    framework: str
    summary: str
    provider: Provider

    def as_row(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "framework": self.framework,
                "distribution": self.provider.distribution, "version": self.provider.version,
                "module": self.provider.module, "summary": self.summary, "error": None}


@dataclass(frozen=True)
class Failure:
    """A plugin that raised on import or registration."""

    provider: Provider
    error: str

    def as_row(self) -> dict[str, Any]:
        return {"name": self.provider.entry_point or self.provider.module, "kind": "plugin",
                "framework": None, "distribution": self.provider.distribution,
                "version": self.provider.version, "module": self.provider.module,
                "summary": None, "error": self.error}


@dataclass
class Registry:
    """Everything the loaded plugins registered, by kind and name."""

    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    failures: list[Failure] = field(default_factory=list)
    manager: pluggy.PluginManager | None = None

    def add(self, entry: Entry) -> None:
        table = self.entries[entry.kind]
        if entry.name in table:
            first = table[entry.name].provider.describe()
            raise PluginError(f"{entry.kind} '{entry.name}' is registered twice: by {first} "
                              f"and by {entry.provider.describe()}")
        table[entry.name] = entry

    def get(self, kind: str, name: str) -> Entry:
        """The entry, or a :class:`PluginError` listing what is available."""
        table = self.entries[kind]
        if name not in table:
            available = ", ".join(sorted(table)) or "none"
            raise PluginError(f"unknown {kind} '{name}'; available: {available}")
        return table[name]

    def names(self, kind: str) -> list[str]:
        return list(self.entries[kind])

    def rows(self) -> list[dict[str, Any]]:
        """Entries then failures as plain dicts (the ``harness plugins --json`` schema)."""
        rows = [e.as_row() for kind in KINDS for e in self.entries[kind].values()]
        return rows + [f.as_row() for f in self.failures]


def _trace(message: str) -> None:
    if os.environ.get("HARNESS_TRACE_PLUGINS"):
        print(f"[harness plugins] {message}", file=sys.stderr)


def _provider_for_module(name: str) -> Provider:
    top = name.split(".")[0]
    dists = md.packages_distributions().get(top, [])
    if dists:
        return Provider(name, dists[0], md.version(dists[0]))
    return Provider(name, "(local module)", "-")


def _entry_points() -> tuple[list[md.EntryPoint], list[md.EntryPoint]]:
    """The host's own entry points and the others', each sorted by name for a stable order."""
    own, others = [], []
    for ep in md.entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist else ""
        (own if dist == HOST_DISTRIBUTION else others).append(ep)
    key = lambda ep: (ep.dist.name if ep.dist else "", ep.name)  # noqa: E731
    return sorted(own, key=key), sorted(others, key=key)


def _wanted(ep: md.EntryPoint) -> bool:
    if os.environ.get("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "").strip() not in ("", "0"):
        return False
    only = os.environ.get("HARNESS_PLUGINS", "").strip()
    if not only:
        return True
    names = {n.strip() for n in only.split(",") if n.strip()}
    return ep.name in names or (ep.dist is not None and ep.dist.name in names)


def _validate_colorizer(name: str, cls: Any, framework: str) -> None:
    if not (inspect.isclass(cls) and issubclass(cls, Colorizer)):
        raise PluginError(f"colorizer '{name}' must be a subclass of harness.colorizer.Colorizer")
    if framework not in FRAMEWORKS:
        raise PluginError(f"colorizer '{name}': framework must be one of {FRAMEWORKS}")


class _Loader:
    """Imports plugin modules, registers them with pluggy and collects their registrations."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry(manager=self.pm)

    def load(self, importer: Callable[[], ModuleType], provider: Provider) -> None:
        _trace(f"loading {provider.describe()}")
        try:
            module = importer()
            if self.pm.is_registered(module):
                return
            self.pm.register(module, name=provider.entry_point or provider.module)
        except Exception as exc:  # a broken plugin never takes the host down
            self.registry.failures.append(Failure(provider, _one_line(exc)))
            return
        self._collect(module, provider)

    def _collect(self, module: ModuleType, provider: Provider) -> None:
        staged: list[Entry] = []

        def colorizer(name: str, cls: type[Colorizer], framework: str | None = None,
                      summary: str = "") -> None:
            framework = framework or getattr(cls, "framework", "numpy")
            _validate_colorizer(name, cls, framework)
            staged.append(Entry(name, "colorizer", cls, framework,
                                summary or _first_line(cls.__doc__), provider))

        def metric(m: Any) -> None:
            from harness.metrics import Metric

            if not isinstance(m, Metric):
                raise PluginError(f"{provider.module}: register() takes a harness.metrics.Metric")
            staged.append(Entry(m.name, "metric", m, m.framework, m.summary, provider))

        def dataset(name: str, factory: Callable[..., Any], summary: str = "") -> None:
            if not callable(factory):
                raise PluginError(f"data source '{name}': factory must be callable")
            staged.append(Entry(name, "dataset", factory, "numpy",
                                summary or _first_line(factory.__doc__), provider))

        hooks = {"harness_register_colorizers": colorizer, "harness_register_metrics": metric,
                 "harness_register_datasets": dataset}
        try:
            for hook_name, register in hooks.items():
                for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                    if impl.plugin is module:
                        impl.function(**{a: register for a in impl.argnames})
        except Exception as exc:
            self.registry.failures.append(Failure(provider, _one_line(exc)))
            self.pm.unregister(module)
            return
        for entry in staged:
            _trace(f"registered {entry.kind} '{entry.name}' from {provider.module}")
            self.registry.add(entry)


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if (doc or "").strip() else ""


def _one_line(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    where = f" ({os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def get_plugin_manager(modules: Iterable[str] = ()) -> Registry:
    """Load every plugin in order and return the filled registry (its ``manager`` is pluggy's).

    ``modules`` are extra importable module names, such as a config's ``plugins:`` list.
    """
    loader = _Loader()
    own, others = _entry_points()
    for ep in own + [ep for ep in others if _wanted(ep)]:
        dist = ep.dist
        provider = Provider(ep.value, dist.name if dist else "?",
                            dist.version if dist else "?", ep.name)
        loader.load(ep.load, provider)
    for name in modules:
        loader.load(lambda name=name: importlib.import_module(name), _provider_for_module(name))
    return loader.registry
