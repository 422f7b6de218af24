"""The plugin hooks. Each docstring is the reference for plugin authors."""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def harness_register_colorizers(register: Callable[..., None]) -> None:
    """Register colorizers.

    Call ``register(name, cls, framework=..., summary=...)`` once per colorizer. ``cls`` is a
    subclass of :class:`harness.colorizer.Colorizer`; ``framework`` is ``"torch"``, ``"keras"``
    or ``"numpy"``; ``summary`` is one line for ``harness plugins``. Names are global across
    all plugins; registering a taken name is an error that names both providers.
    """


@hookspec
def harness_register_metrics(register: Callable[..., None]) -> None:
    """Register metrics.

    Call ``register(metric)`` with a :class:`harness.metrics.Metric`, which declares its
    direction, granularity (per image or per dataset), unit and citation beside the function
    that computes it.
    """


@hookspec
def harness_register_datasets(register: Callable[..., None]) -> None:
    """Register data sources.

    Call ``register(name, factory, summary=...)``. ``factory(options) -> list[ImageSource]``
    lists the images of the source (see :mod:`harness.data.sources`); the shared loader decodes,
    splits, caches and serves them identically for every model.
    """
