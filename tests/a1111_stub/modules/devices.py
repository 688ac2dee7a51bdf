"""Stands in for ``modules/devices.py``: the device models run on (the CPU here)."""

import torch

cpu = torch.device("cpu")
device = cpu
dtype = torch.float32
