"""Reading the tensors of a TorchScript archive without running any of its code.

A TorchScript file (``torch.jit.save``) is a zip whose members all sit under one folder (named after
the file stem at export time): ``data.pkl`` pickles the module tree, ``data/<n>`` holds the raw bytes
of storage ``n``, ``code/`` the TorchScript program. ``torch.jit.load`` compiles and links that
program, and ``torch.load(weights_only=True)`` refuses such archives, so this module unpickles
``data.pkl`` with an allow-list instead: module classes become plain attribute holders, tensors are
rebuilt from the storage bytes, and any other global is refused before anything is called.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..errors import IncompatibleModelError

log = logging.getLogger("vidsd.interpolate.torchscript")

#: storage class names (``torch.<Name>``) to the element type of their bytes
STORAGE_DTYPES: dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
#: ``torch.jit._pickle`` helpers that only turn their argument into a list
_LIST_BUILDERS = ("build_intlist", "build_tensorlist", "build_doublelist", "build_boollist", "build_genericlist")
_DATA_PKL = re.compile(r"^([^/]+)/data\.pkl$")


@dataclass
class TorchScriptArchive:
    """What :func:`read_torchscript` found.

    ``tensors``: every tensor attribute of the module tree, in attribute-walk order, under dotted
    names (``fuse.convs.0.0.0.weight``), as stored (dtype kept, on the CPU). For modules exported by
    ``torch.jit.script`` these are exactly the keys, order and values of
    ``torch.jit.load(path).state_dict()`` (parameters and buffers; a module holding a plain tensor
    attribute would list it here too). ``code``: the text of the ``code/**.py`` members, keyed by
    their path inside the folder (``code/__torch__/interpolator.py``). ``folder``: the archive's
    top-level folder name.
    """

    tensors: OrderedDict[str, torch.Tensor]
    code: dict[str, str] = field(default_factory=dict)
    folder: str = ""


class ScriptObject:
    """Stand-in for a ``__torch__.*`` class of the archive: holds the attributes the pickle sets."""

    type_name = "__torch__"
    attributes: dict[str, Any] = {}  # replaced per instance by BUILD; read-only here

    def __setstate__(self, state: Any) -> None:
        # a module's state is its attribute dict; other state (a custom __getstate__) holds no parameters
        self.attributes = state if isinstance(state, dict) else {}


class _Storage:
    """Marker for a storage class name; ``persistent_load`` turns it into the element dtype."""

    def __init__(self, name: str):
        self.dtype = STORAGE_DTYPES[name]


def _as_list(data: Any) -> list:
    return list(data)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler of a TorchScript ``data.pkl`` that resolves only the globals such files use."""

    def __init__(self, file: io.BytesIO, storage_bytes: Callable[[str], bytes]):
        super().__init__(file)
        self._storage_bytes = storage_bytes
        self._storages: dict[str, torch.Tensor] = {}
        self._classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return self._script_class(f"{module}.{name}")
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _Storage(name)
        if module == "torch.jit._pickle" and name in _LIST_BUILDERS:
            return _as_list
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        raise IncompatibleModelError(
            f"refused to read the TorchScript archive: its data.pkl references {module}.{name}, which is not "
            "a module class, tensor or list builder (nothing was executed)"
        )

    def _script_class(self, qualified: str) -> type:
        if qualified not in self._classes:
            self._classes[qualified] = type("ScriptObject", (ScriptObject,), {"type_name": qualified})
        return self._classes[qualified]

    def persistent_load(self, pid: Any) -> torch.Tensor:
        """``('storage', <storage class>, '<key>', '<device>', <numel>)`` → a 1-D CPU tensor of the bytes."""
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _Storage)):
            raise IncompatibleModelError(f"refused to read the TorchScript archive: unknown persistent id {pid!r}")
        _, kind, key, _device, numel = pid  # the device (cpu, cuda:0) does not change the bytes
        if not isinstance(key, str) or not isinstance(numel, int):
            raise IncompatibleModelError(f"TorchScript archive: malformed storage id {pid!r}")
        if key not in self._storages:
            self._storages[key] = _storage_tensor(self._storage_bytes(key), kind.dtype, numel, key)
        return self._storages[key]


def _storage_tensor(data: bytes, dtype: torch.dtype, numel: int, key: str) -> torch.Tensor:
    """The little-endian bytes of one storage as a 1-D tensor of ``numel`` elements."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    if numel < 0 or len(data) < numel * itemsize:
        raise IncompatibleModelError(
            f"TorchScript archive: storage {key} holds {len(data)} bytes, needs {numel} x {itemsize}"
        )
    if numel == 0:
        return torch.empty(0, dtype=dtype)
    return torch.frombuffer(bytearray(data[: numel * itemsize]), dtype=dtype)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_ignored: Any) -> torch.Tensor:
    """A view of ``storage`` (``torch._utils._rebuild_tensor_v2`` / ``_rebuild_tensor`` arguments).

    ``requires_grad``, backward hooks and metadata are ignored: only values are read.
    """
    shape_ok = isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list)) and len(size) == len(stride)
    if not isinstance(storage, torch.Tensor) or not isinstance(offset, int) or not shape_ok:
        raise IncompatibleModelError("TorchScript archive: a tensor record is malformed")
    if offset < 0 or min((*size, *stride), default=0) < 0:
        raise IncompatibleModelError(f"TorchScript archive: tensor {list(size)} has a negative offset or stride")
    if all(size) and offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) >= storage.numel():
        raise IncompatibleModelError(f"TorchScript archive: tensor {list(size)} lies outside its storage")
    return storage.as_strided(tuple(size), tuple(stride), offset)


def _find_folder(names: list[str], path: str) -> str:
    folders = [m.group(1) for m in map(_DATA_PKL.match, names) if m is not None]
    if len(folders) != 1:
        found = "none" if not folders else ", ".join(f"{f}/data.pkl" for f in folders)
        raise IncompatibleModelError(f"{os.path.basename(path)}: expected one <folder>/data.pkl, found {found}")
    return folders[0]


def _check_byteorder(archive: zipfile.ZipFile, folder: str, path: str) -> None:
    name = f"{folder}/byteorder"
    if name in archive.namelist() and archive.read(name).strip() not in (b"", b"little"):
        raise IncompatibleModelError(f"{os.path.basename(path)}: big-endian TorchScript archives are not supported")


def _collect(obj: ScriptObject, prefix: str, out: OrderedDict[str, torch.Tensor], seen: set[int]) -> None:
    """Tensors under dotted names, depth first in attribute order (a module's parameters come first)."""
    seen.add(id(obj))  # a crafted pickle can make a module its own child
    for name, value in obj.attributes.items():
        if isinstance(value, torch.Tensor):
            out[prefix + name] = value
        elif isinstance(value, ScriptObject) and id(value) not in seen:
            _collect(value, f"{prefix}{name}.", out, seen)


def _unpickle(data: bytes, storage_bytes: Callable[[str], bytes], path: str) -> Any:
    try:
        return _RestrictedUnpickler(io.BytesIO(data), storage_bytes).load()
    except IncompatibleModelError:
        raise
    except Exception as e:  # a damaged or hostile pickle can fail in many ways; none may escape unexplained
        raise IncompatibleModelError(f"{os.path.basename(path)}: data.pkl is not a readable module pickle ({e})") from e


def is_torchscript_archive(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a zip with one ``<folder>/data.pkl`` and a ``<folder>/code/`` program."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    folders = {m.group(1) for m in map(_DATA_PKL.match, names) if m is not None}
    return len(folders) == 1 and any(n.startswith(f"{next(iter(folders))}/code/") for n in names)


def read_torchscript(path: str | os.PathLike) -> TorchScriptArchive:
    """The tensors and code texts of the TorchScript archive at ``path``, executing nothing.

    Raises :class:`~lib_vidsd.errors.IncompatibleModelError` for a file that is not such an archive
    or whose ``data.pkl`` references anything outside the allow-list (module classes, tensor
    rebuilding, storage types, list builders, ``collections.OrderedDict``); the message names the
    refused global. Storage bytes are read as little-endian (the only order torch writes).
    """
    path = os.fspath(path)
    if not zipfile.is_zipfile(path):
        raise IncompatibleModelError(f"{os.path.basename(path)}: not a TorchScript archive (not a zip file)")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        folder = _find_folder(names, path)
        members = set(names)
        _check_byteorder(archive, folder, path)

        def storage_bytes(key: str) -> bytes:
            member = f"{folder}/data/{key}"
            if member not in members:
                raise IncompatibleModelError(f"{os.path.basename(path)}: storage {member} is missing")
            return archive.read(member)

        root = _unpickle(archive.read(f"{folder}/data.pkl"), storage_bytes, path)
        code = {
            n[len(folder) + 1 :]: archive.read(n).decode("utf-8")
            for n in names
            if n.startswith(f"{folder}/code/") and n.endswith(".py")
        }
    if not isinstance(root, ScriptObject):
        raise IncompatibleModelError(
            f"{os.path.basename(path)}: data.pkl holds a {type(root).__name__}, not a TorchScript module"
        )
    tensors: OrderedDict[str, torch.Tensor] = OrderedDict()
    _collect(root, "", tensors, set())
    log.debug("%s: %d tensors under %s/", os.path.basename(path), len(tensors), folder)
    return TorchScriptArchive(tensors=tensors, code=code, folder=folder)
