"""The core's small exception hierarchy.

Every error a user can cause (bad config, unknown plugin, unreadable data, ...) is an
``MlxError``: the CLI prints its message as one line on stderr and exits with its
``exit_code`` (2 for usage and input errors), without a traceback unless ``--verbose``.
Plugins raise these (or subclasses) for bad input; any other exception is treated as a bug.
"""

from __future__ import annotations


class MlxError(Exception):
    """Base class: a problem the user can fix. ``str(err)`` is the one line shown."""

    exit_code: int = 2


class UsageError(MlxError):
    """Wrong command-line usage: unknown plugin, unknown stage, bad flag value."""


class ConfigError(MlxError):
    """A config file or ``--set`` override that does not validate against the plugin's config."""


class DataError(MlxError):
    """Input data (a file, a folder, a record) that a plugin cannot read or that breaks its rules."""


class PluginError(MlxError):
    """A plugin that is broken, incompatible or unavailable on this machine."""


class DeviceError(MlxError):
    """A requested device that this machine does not have."""


class RunError(MlxError):
    """A run directory that is missing, of another plugin, locked by another run, or unreadable."""


class StageFailed(MlxError):
    """A stage that ran and failed a check of its own (e.g. an export parity check)."""

    exit_code = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill PID``): handled like Ctrl-C (the stage is marked interrupted), named as such."""


class Pruned(MlxError):
    """A sweep's pruner stopped this trial's run early: its intermediate metric was not promising.
    The run (and its stage) is recorded ``pruned``; exit code 3 tells it from a failure."""

    exit_code = 3


class Interrupted(MlxError):
    """A command stopped by Ctrl-C or SIGTERM; ``str(err)`` is the line the CLI prints (``interrupted``
    or ``terminated (SIGTERM)``), exit code 130. The CLI raises it in place of the
    ``KeyboardInterrupt``, which typer would otherwise turn into a silent exit 130 of its own."""

    exit_code = 130
