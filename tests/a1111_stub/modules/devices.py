"""Stands in for ``modules/devices.py``: the device models run on (the CPU here)."""

import contextlib

import torch

cpu = torch.device("cpu")
device = cpu
dtype = torch.float32


def autocast(disable=False):
    """The WebUI's mixed-precision context; the stub computes in float32 on the CPU."""
    return contextlib.nullcontext()


def without_autocast(disable=False):
    return contextlib.nullcontext()
