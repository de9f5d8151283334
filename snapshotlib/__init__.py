"""The snapshot format, its verification and the versioned store, shared by the exporter (which
writes snapshots of a student) and ``coldstream serve`` (which reads them).

- :mod:`snapshotlib.tables`: what a snapshot holds (item and user tables, the co-occurrence
  memory) and reading it back;
- :mod:`snapshotlib.graph`: the ONNX scoring graph;
- :mod:`snapshotlib.store`: versions, the ``LATEST`` pointer, atomic writes, verification;
- :mod:`snapshotlib.exceptions`: :class:`~snapshotlib.exceptions.SnapshotError`.

The directory layout and the manifest are described in :mod:`exporters.snapshot` and
``docs/design.md``.
"""
