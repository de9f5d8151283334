"""The learning core: teacher, student, trainer, baselines, evaluation (issue 3, in progress)."""

__all__: list[str] = []
