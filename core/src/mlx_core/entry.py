"""The ``mlx`` console script. The two commands people run most often to look around,
``mlx --version`` and ``mlx plugins list [--json]``, are answered without importing typer or
the runner (see benchmarks/core.py); everything else goes to the typer app in :mod:`mlx_core.cli`.
"""

from __future__ import annotations

import sys


def main() -> None:
    argv = tuple(sys.argv[1:])
    if argv == ("--version",):
        from .listing import version_line

        print(version_line())
        return
    if argv in {("plugins", "list"), ("plugins", "list", "--json")}:
        from .errors import MlxError
        from .listing import console, list_plugins

        try:
            list_plugins(as_json="--json" in argv)
        except MlxError as exc:  # e.g. a malformed MLX_LOAD_PLUGINS
            console(stderr=True).print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
            raise SystemExit(exc.exit_code) from None
        return
    from .cli import main as full

    full()
