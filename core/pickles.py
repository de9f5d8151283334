"""Reading coldstream's own pickled files (checkpoints) after a module moved.

``torch.load(path, pickle_module=core.pickles, weights_only=False)`` finds a class under its
new module when the file names the old one (:data:`MOVED`), so checkpoints written before a
move still load.
"""

from __future__ import annotations

import pickle
from typing import IO, Any

__all__ = ["MOVED", "Unpickler", "load"]

#: old module -> the module that holds its classes now
MOVED = {"streams.records": "core.records"}


class Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return super().find_class(MOVED.get(module, module), name)


def load(file: IO[bytes], **kwargs: Any) -> Any:
    return Unpickler(file, **kwargs).load()
