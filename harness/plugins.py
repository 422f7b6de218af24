"""Plugin loading and the registry of colorizers, metrics and data sources.

Load order: entry points in the ``harness`` group (this distribution's own built-ins first,
declared in pyproject.toml exactly as an outside package declares them, then other
distributions', each sorted by name), then the modules a config's ``plugins:`` list names.
Every module is registered with one pluggy manager, and each ``harness_register_*`` hook is
called once through ``pm.hook``: pluggy calls the implementations in load order, ``tryfirst``
ones before and ``trylast`` ones after the rest (so a ``trylast`` built-in comes after an
outside plugin's implementation of the same hook), and an implementation asks only for the
arguments it needs.

Registration records, it does not import: a colorizer registers the import path of its
class, and :meth:`Entry.load` imports it when a run uses it. Listing plugins and validating a
config therefore import no framework.

A plugin that fails to import, raises in a hook, registers something malformed or takes a
name already registered is listed in :attr:`Registry.failures` with its distribution and the
error; its registrations are dropped and the rest load. A built-in name cannot be taken: on a
clash with the host's own plugins the outside plugin fails; between two outside plugins, the
one pluggy calls first keeps the name.

Environment: ``HARNESS_DISABLE_PLUGIN_AUTOLOAD=1`` skips other distributions' entry points;
``HARNESS_PLUGINS=a,b`` loads only the entry points of those names or distributions, the
host's included (``colorization-harness`` names every built-in); ``HARNESS_TRACE_PLUGINS=1``
prints pluggy's trace of every hook call, and each load and registration, to stderr.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from harness import hookspecs
from harness.errors import PluginError

GROUP = "harness"
HOST_DISTRIBUTION = "colorization-harness"
KINDS = ("colorizer", "metric", "dataset")
FRAMEWORKS = ("torch", "keras", "numpy")
HOOKS = {"colorizer": "harness_register_colorizers", "metric": "harness_register_metrics",
         "dataset": "harness_register_datasets"}


@dataclass(frozen=True)
class Provider:
    """Where a plugin came from: module, entry point and distribution."""

    module: str
    distribution: str
    version: str
    entry_point: str | None = None

    @property
    def builtin(self) -> bool:
        return self.distribution == HOST_DISTRIBUTION

    def describe(self) -> str:
        ep = f" (entry point '{self.entry_point}')" if self.entry_point else ""
        return f"{self.distribution} {self.version}: {self.module}{ep}"


@dataclass(frozen=True)
class Entry:
    """One registered colorizer, metric or data source.

    ``target`` is the object itself or its import path ``"package.module:Name"``;
    :meth:`load` returns the object. A colorizer's ``options`` (its options class) and
    ``takes_hints`` are known without importing the implementation: a run is planned, and its
    framework-free parent process stays so, from the registration alone.
    """

    name: str
    kind: str
    target: Any
    framework: str
    summary: str
    provider: Provider
    options: Any = None
    takes_hints: bool = False

    def load(self) -> Any:
        """The registered object, imported on first use; a :class:`PluginError` if it fails."""
        obj = _resolve(self.target) if isinstance(self.target, str) else self.target
        if self.kind == "colorizer":
            _check_colorizer(self, obj)
        return obj

    def as_row(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "framework": self.framework,
                "distribution": self.provider.distribution, "version": self.provider.version,
                "module": self.provider.module, "summary": self.summary, "error": None}


@dataclass(frozen=True)
class Failure:
    """A plugin that failed to import or register, and why."""

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

    def get(self, kind: str, name: str) -> Entry:
        """The entry, or a :class:`PluginError` listing what is available (and what failed)."""
        table = self.entries[kind]
        if name not in table:
            available = ", ".join(sorted(table)) or "none"
            failed = ", ".join(f.provider.module for f in self.failures)
            hint = f" (plugins that failed to load: {failed})" if failed else ""
            raise PluginError(f"unknown {kind} '{name}'; available: {available}{hint}")
        return table[name]

    def names(self, kind: str) -> list[str]:
        return list(self.entries[kind])

    def rows(self) -> list[dict[str, Any]]:
        """Entries then failures as plain dicts (the ``harness plugins --json`` schema)."""
        rows = [e.as_row() for kind in KINDS for e in self.entries[kind].values()]
        return rows + [f.as_row() for f in self.failures]


@cache
def _resolve(target: str) -> Any:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise PluginError(f"'{target}': expected an import path 'package.module:Name'")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        raise PluginError(f"cannot import '{target}': {_one_line(exc)}") from exc
    return obj


def _check_colorizer(entry: Entry, cls: Any) -> None:
    from harness.colorizer import Colorizer

    where = f"colorizer '{entry.name}' ({entry.provider.describe()})"
    if not (inspect.isclass(cls) and issubclass(cls, Colorizer)):
        raise PluginError(f"{where}: {entry.target!r} is not a subclass of "
                          f"harness.colorizer.Colorizer")
    if entry.options is not None and cls.Options is not entry.options:
        raise PluginError(f"{where}: registered options {entry.options.__name__} but the class "
                          f"declares {cls.Options.__name__}; register the class's Options")
    if bool(cls.takes_hints) != entry.takes_hints:
        raise PluginError(f"{where}: the class has takes_hints = {bool(cls.takes_hints)}; "
                          f"register it with takes_hints={bool(cls.takes_hints)}")


def _trace(message: str) -> None:
    if os.environ.get("HARNESS_TRACE_PLUGINS"):
        print(f"[harness plugins] {message}", file=sys.stderr)


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if (doc or "").strip() else ""


def _one_line(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    where = f" ({os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _entry_points() -> list[md.EntryPoint]:
    """The wanted entry points: the host's own, then the others', each sorted by name."""
    own, others = [], []
    for ep in md.entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist else ""
        (own if dist == HOST_DISTRIBUTION else others).append(ep)
    if os.environ.get("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "").strip() not in ("", "0"):
        others = []
    only = {n.strip() for n in os.environ.get("HARNESS_PLUGINS", "").split(",") if n.strip()}
    key = lambda ep: (ep.dist.name if ep.dist else "", ep.name)  # noqa: E731
    return [ep for ep in sorted(own, key=key) + sorted(others, key=key)
            if not only or ep.name in only or (ep.dist is not None and ep.dist.name in only)]


def _provider_for_module(name: str) -> Provider:
    top = name.split(".")[0]
    dists = md.packages_distributions().get(top, [])
    if dists:
        return Provider(name, dists[0], md.version(dists[0]))
    return Provider(name, "(local module)", "-")


@contextmanager
def _searching(folder: Path | None) -> Iterator[None]:
    """``folder`` at the front of ``sys.path`` while a config's plugin modules import."""
    if folder is None:
        yield
        return
    entry = str(Path(folder).resolve())
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        if entry in sys.path:
            sys.path.remove(entry)


def _import_config_module(name: str, folder: Path | None) -> ModuleType:
    try:
        with _searching(folder):
            return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not name.startswith(exc.name):
            raise  # the module was found but imports something missing
        where = f"the config's folder {Path(folder).resolve()} and " if folder else ""
        raise PluginError(f"plugin module '{name}' not found; looked in {where}sys.path") from None


class _Loader:
    """Registers plugin modules with pluggy, calls the hooks, resolves failures and clashes."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        if os.environ.get("HARNESS_TRACE_PLUGINS"):
            self.pm.trace.root.setwriter(lambda text: print(f"[pluggy] {text}", end="",
                                                            file=sys.stderr))
            self.pm.enable_tracing()
        self.providers: dict[int, Provider] = {}  # id(module) -> provider
        self.modules: list[ModuleType] = []
        self.failures: list[Failure] = []

    def add(self, importer: Callable[[], ModuleType], provider: Provider) -> None:
        _trace(f"loading {provider.describe()}")
        try:
            module = importer()
        except Exception as exc:  # a broken plugin never takes the host down
            self.failures.append(Failure(provider, _one_line(exc)))
            return
        if id(module) not in self.providers:
            self.providers[id(module)] = provider
            self.modules.append(module)

    def _register_all(self) -> None:
        """Register with pluggy in reverse load order: pluggy calls the last registered first,
        so hooks run in load order (built-ins, others, config modules), as listed."""
        for module in reversed(self.modules):
            provider = self.providers[id(module)]
            try:
                self.pm.register(module, name=provider.entry_point or provider.module)
            except Exception as exc:
                self.failures.append(Failure(provider, _one_line(exc)))

    def _fail(self, module: object, error: str) -> None:
        self.failures.append(Failure(self.providers[id(module)], error))
        self.pm.unregister(module)

    def _call(self, kind: str) -> list[tuple[object, Entry]]:
        """Call one hook through pluggy; a plugin that raises fails alone and the call repeats
        without it (pluggy stops at the first exception)."""
        hook = getattr(self.pm.hook, HOOKS[kind])
        while True:
            owners = {impl.function.__code__: impl.plugin for impl in hook.get_hookimpls()}
            staged: list[tuple[object, Entry]] = []
            register = _Registrar(kind, owners, self.providers, staged)
            try:
                hook(register=register)
                return staged
            except Exception as exc:
                culprit = _raising_plugin(exc, owners)
                if culprit is None:
                    raise
                self._fail(culprit, _one_line(exc))

    def registry(self) -> Registry:
        self._register_all()
        staged = [pair for kind in KINDS for pair in self._call(kind)]
        registry = Registry(failures=self.failures)
        dropped: set[int] = set()
        while True:  # drop clashing plugins until the names left are unique
            taken: dict[tuple[str, str], tuple[object, Entry]] = {}
            clash = None
            for module, entry in staged:
                if id(module) in dropped:
                    continue
                key = (entry.kind, entry.name)
                if key not in taken:
                    taken[key] = (module, entry)
                    continue
                first_module, first = taken[key]
                if first_module is module:
                    clash = (module, f"{entry.kind} '{entry.name}' is registered twice by it")
                else:  # a built-in keeps its name; else the first registration does
                    lose_first = entry.provider.builtin and not first.provider.builtin
                    loser, keeper = (first, entry) if lose_first else (entry, first)
                    clash = (first_module if lose_first else module,
                             f"{entry.kind} '{entry.name}' is registered by both "
                             f"{loser.provider.describe()} and {keeper.provider.describe()}; "
                             f"the latter keeps it")
                break
            if clash is None:
                break
            dropped.add(id(clash[0]))
            self._fail(clash[0], f"PluginError: {clash[1]}")
        for module, entry in staged:
            if id(module) not in dropped and self.pm.is_registered(module):
                _trace(f"registered {entry.kind} '{entry.name}' from {entry.provider.module}")
                registry.entries[entry.kind][entry.name] = entry
        return registry


def _raising_plugin(exc: BaseException, owners: dict[Any, object]) -> object | None:
    """The plugin whose hook implementation the exception came through."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code in owners:
            return owners[tb.tb_frame.f_code]
        tb = tb.tb_next
    return None


class _Registrar:
    """The ``register`` argument of a hook: validates and stages one registration, attributed
    to the plugin whose hook implementation is on the call stack."""

    def __init__(self, kind: str, owners: dict[Any, object], providers: dict[int, Provider],
                 staged: list[tuple[object, Entry]]) -> None:
        self.kind, self.owners, self.providers, self.staged = kind, owners, providers, staged

    def __repr__(self) -> str:
        return f"<register {self.kind}>"

    def _owner(self) -> object:
        frame = sys._getframe(2)
        while frame is not None and frame.f_code not in self.owners:
            frame = frame.f_back
        if frame is None:
            raise PluginError("register() may only be called from a harness_register_* hook")
        return self.owners[frame.f_code]

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        module = self._owner()
        provider = self.providers[id(module)]
        entry = getattr(self, self.kind)(provider, *args, **kwargs)
        self.staged.append((module, entry))

    @staticmethod
    def colorizer(provider: Provider, name: str, target: Any, framework: str | None = None,
                  summary: str = "", options: Any = None, takes_hints: bool | None = None
                  ) -> Entry:
        from harness.colorizer import Colorizer, PluginOptions

        lazy = isinstance(target, str)
        if not lazy and not (inspect.isclass(target) and issubclass(target, Colorizer)):
            raise PluginError(f"colorizer '{name}': {target!r} must be a subclass of "
                              f"harness.colorizer.Colorizer or an import path 'module:Class'")
        framework = framework or (None if lazy else target.framework)
        if framework not in FRAMEWORKS:
            raise PluginError(f"colorizer '{name}': framework must be one of {FRAMEWORKS}")
        options = options or (PluginOptions if lazy else target.Options)
        if not (inspect.isclass(options) and issubclass(options, PluginOptions)):
            raise PluginError(f"colorizer '{name}': options must be a subclass of "
                              f"harness.colorizer.PluginOptions")
        summary = summary or ("" if lazy else _first_line(target.__doc__))
        if takes_hints is None:
            takes_hints = False if lazy else bool(target.takes_hints)
        return Entry(name, "colorizer", target, framework, summary, provider, options,
                     bool(takes_hints))

    @staticmethod
    def metric(provider: Provider, metric: Any) -> Entry:
        from harness.metrics import Metric

        if not isinstance(metric, Metric):
            raise PluginError(f"{provider.module}: register() takes a harness.metrics.Metric")
        return Entry(metric.name, "metric", metric, metric.framework, metric.summary, provider)

    @staticmethod
    def dataset(provider: Provider, name: str, factory: Callable[..., Any],
                summary: str = "") -> Entry:
        if not callable(factory):
            raise PluginError(f"data source '{name}': factory must be callable")
        return Entry(name, "dataset", factory, "numpy", summary or _first_line(factory.__doc__),
                     provider)


def load_registry(modules: Iterable[str] = (), *, config_dir: Path | None = None,
                  entry_points: bool = True) -> Registry:
    """Load the plugins and return what they registered.

    ``modules`` are extra module names, such as a config's ``plugins:`` list, imported from
    ``sys.path`` or else from ``config_dir``. ``entry_points=False`` loads only ``modules``:
    a test builds a registry from chosen plugins that way, in-process.
    """
    loader = _Loader()
    for ep in _entry_points() if entry_points else []:
        dist = ep.dist
        provider = Provider(ep.value, dist.name if dist else "?",
                            dist.version if dist else "?", ep.name)
        loader.add(ep.load, provider)
    for name in modules:
        loader.add(lambda name=name: _import_config_module(name, config_dir),
                   _provider_for_module(name))
    return loader.registry()
