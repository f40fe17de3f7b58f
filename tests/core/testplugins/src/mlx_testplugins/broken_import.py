"""A plugin whose import fails."""

import mlx_core_does_not_exist  # noqa: F401
