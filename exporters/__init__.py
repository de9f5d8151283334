"""Snapshots, metrics and evaluation reports."""

__all__: list[str] = []
