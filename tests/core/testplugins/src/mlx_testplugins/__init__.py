"""Test plugins for the mlx core; one module per plugin."""
