"""The plugin hooks. Each docstring is the reference for plugin authors."""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def harness_register_colorizers(register: Callable[..., None]) -> None:
    """Register colorizers.

    Call ``register(name, target, framework=..., options=..., summary=..., takes_hints=...)``
    once per colorizer. ``target`` is where the :class:`harness.colorizer.Colorizer` subclass
    lives, as an import path ``"package.module:Class"`` that the host imports only when a run
    uses the model (so listing plugins, validating configs and planning a run never import torch
    or TensorFlow), or the class itself for a plugin that imports nothing heavy. ``framework``
    is ``"torch"``, ``"keras"`` or ``"numpy"``; ``options`` is the class's ``Options`` (a
    :class:`harness.colorizer.PluginOptions` subclass defined in a framework-free module),
    required with an import path when the colorizer takes options; ``takes_hints`` repeats the
    class's attribute, required with an import path for a user-assisted colorizer (the host
    checks that the two agree); ``summary`` is one line for ``harness plugins``. Names are
    global across all plugins: a name already taken is a failure of the plugin that registers
    it second (a built-in keeps its name), listed by ``harness plugins`` with both providers.

    A colorizer is automatic unless its class says otherwise (see :mod:`harness.colorizer`):
    with ``takes_hints = True`` it is user-assisted, and the host calls ``predict(L, hints=...)``
    once per count of the config's ``hints:`` list with hints drawn from the test ground truth,
    giving it L and hints at the evaluation size (not resized to ``data.size``: resizing a hint
    mask would lose hints); with ``uses_ground_truth`` true it is an oracle and gets
    ``predict(L, ab_true=...)``. Tables mark both kinds and rank only automatic rows.
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
