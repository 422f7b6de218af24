"""User-facing errors and exit codes: one line, no traceback, the culprit named."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Exit statuses of the ``harness`` command."""

    OK = 0
    MODEL_FAILED = 1
    USAGE = 2
    INTERRUPTED = 130


class HarnessError(Exception):
    """An error the user can fix; printed as one paragraph without a traceback."""

    exit_code: ExitCode = ExitCode.USAGE


class ConfigError(HarnessError):
    """A run configuration that does not validate."""


class PluginError(HarnessError):
    """A plugin registration that conflicts or is malformed."""


class DataError(HarnessError):
    """A data source that is missing, empty or unusable."""


class TrainingDiverged(Exception):
    """The loss became NaN or infinite; the model gets a failed row."""
