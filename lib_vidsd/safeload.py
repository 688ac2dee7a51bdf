"""Reading weight files without running code from them."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from .errors import IncompatibleModelError


def load_tensor_file(path: Path, what: str = "PyTorch") -> Any:
    """What a weight file holds, on the CPU: a ``.safetensors`` file's tensors, or the object of a
    pickled file rebuilt by ``torch.load(weights_only=True)`` (tensors and plain containers only;
    anything else is refused). Unreadable files raise :class:`IncompatibleModelError`; ``what``
    names the kind of file in the message."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as e:  # safetensors raises its own SafetensorError for a bad header
            raise IncompatibleModelError(f"{path.name}: not a readable safetensors file ({e})") from e
    import torch

    try:
        # torch.serialization.load is torch.load itself; called by this name because A1111 swaps the
        # torch.load attribute for a checker that refuses files saved by newer torch versions.
        # weights_only=True is what keeps it safe: only tensors and plain containers are rebuilt.
        return torch.serialization.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise IncompatibleModelError(
            f"{path.name}: refused to unpickle it; it holds more than tensors ({e}). "
            "Convert it to .safetensors with a tool you trust."
        ) from e
    except (RuntimeError, EOFError, OSError) as e:
        raise IncompatibleModelError(f"{path.name}: not a readable {what} file ({e})") from e
