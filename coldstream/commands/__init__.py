"""Subcommand implementations; ``coldstream.cli`` registers them on the typer app."""

from coldstream.commands.evaluate import evaluate, pretrain

__all__ = ["evaluate", "pretrain"]
