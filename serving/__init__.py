"""Inference workers that serve ONNX snapshots of the student (issue 5: not built yet)."""

__all__: list[str] = []
