"""Snapshots, metrics and evaluation reports (issues 3 to 6)."""

__all__: list[str] = []
