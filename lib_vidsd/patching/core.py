"""Reversible patches on a module tree: an undo journal per application, LIFO restore.

Every change goes through a :class:`PatchHandle`, which records how to undo it:

- forward hooks and pre-hooks (``register_forward_hook``), removed by their handle;
- an instance-level ``forward`` (never the class's), removed by deleting the instance attribute
  or putting back the instance attribute that was there;
- attributes and buffers set on an object, put back (or deleted) on restore.

Handles are listed on the root module under one namespaced attribute (:data:`MARKER`), so
:func:`restore_all` can undo whatever a crashed job left behind, and :func:`is_patched` can tell.
Restoring is idempotent; a patch name can be active only once per root (applying it again is an error).
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable
from typing import Any

import torch

from ..errors import VidsdError

log = logging.getLogger("vidsd.patching")

MARKER = "_vidsd_patches"
_MISSING = object()


class PatchError(VidsdError):
    """A patch was applied twice, or used after it was restored."""


class PatchHandle:
    """The undo journal of one named patch on one root module. Also a context manager."""

    def __init__(self, root: torch.nn.Module, name: str):
        self.root = root
        self.name = name
        self._undo: list[Callable[[], None]] = []
        self.active = True

    # --- recording changes -------------------------------------------------------------------

    def add_hook(self, module: torch.nn.Module, fn: Callable, *, pre: bool = False) -> None:
        """``module.register_forward_hook(fn)`` (or the pre-hook), removed on restore."""
        self._check()
        hook = module.register_forward_pre_hook(fn) if pre else module.register_forward_hook(fn)
        self._undo.append(hook.remove)

    def override_forward(self, module: torch.nn.Module, fn: Callable[..., Any]) -> None:
        """Give this one instance a ``forward`` of its own: ``fn(module, *args)``. The class is untouched."""
        self._check()
        self.set_attr(module, "forward", types.MethodType(fn, module))

    def set_attr(self, obj: Any, name: str, value: Any) -> None:
        """Set ``obj.name = value``; restore puts back the previous instance value or removes it.

        Buffers of a module are replaced in its ``_buffers`` so ``state_dict`` sees the new tensor
        while patched and the original object again afterwards.
        """
        self._check()
        if isinstance(obj, torch.nn.Module) and name in obj._buffers:
            old = obj._buffers[name]
            obj._buffers[name] = value
            self._undo.append(lambda: obj._buffers.__setitem__(name, old))
            return
        # straight into the instance dict: Module.__setattr__ would register modules/parameters
        old = obj.__dict__.get(name, _MISSING)
        obj.__dict__[name] = value

        def undo():
            if old is _MISSING:
                obj.__dict__.pop(name, None)
            else:
                obj.__dict__[name] = old

        self._undo.append(undo)

    def on_restore(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` when the patch is restored (in LIFO order with the other undos)."""
        self._check()
        self._undo.append(fn)

    # --- undo ----------------------------------------------------------------------------------

    def restore(self) -> None:
        """Undo everything in reverse order. Safe to call twice; every undo runs even if one fails."""
        if not self.active:
            return
        self.active = False
        errors = []
        while self._undo:
            undo = self._undo.pop()
            try:
                undo()
            except Exception as e:  # keep undoing: a half-restored UNet is the worst outcome
                errors.append(e)
        patches = self.root.__dict__.get(MARKER)
        if patches is not None:
            patches[:] = [h for h in patches if h is not self]
            if not patches:
                del self.root.__dict__[MARKER]
        if errors:
            raise PatchError(f"restoring patch {self.name!r} failed: {errors[0]}") from errors[0]

    def __enter__(self) -> PatchHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def _check(self) -> None:
        if not self.active:
            raise PatchError(f"patch {self.name!r} was already restored")


def open_patch(root: torch.nn.Module, name: str) -> PatchHandle:
    """Start a named patch on ``root``; raises :class:`PatchError` if that name is already applied."""
    patches = root.__dict__.setdefault(MARKER, [])
    if any(h.name == name for h in patches):
        raise PatchError(f"patch {name!r} is already applied to this model; restore it first")
    handle = PatchHandle(root, name)
    patches.append(handle)
    return handle


def active_patches(root: torch.nn.Module) -> list[PatchHandle]:
    return list(root.__dict__.get(MARKER, ()))


def is_patched(root: torch.nn.Module) -> bool:
    """Whether any vidsd patch is applied to ``root``."""
    return bool(root.__dict__.get(MARKER))


def restore_all(root: torch.nn.Module) -> int:
    """Undo every vidsd patch on ``root``, newest first; returns how many there were."""
    patches = active_patches(root)
    for handle in reversed(patches):
        handle.restore()
    if patches:
        log.info("restored %d leftover patch(es): %s", len(patches), ", ".join(h.name for h in patches))
    return len(patches)
