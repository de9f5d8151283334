"""Inference workers that serve ONNX snapshots of the student."""

__all__: list[str] = []
