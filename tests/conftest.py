"""Shared pytest fixtures: the A1111 contract stub on ``sys.path`` and tiny seeded models."""

from __future__ import annotations

import copy
import os

import pytest

from tests.rig import a1111 as rig_a1111

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be downloaded at test time
rig_a1111.install_stub()


@pytest.fixture(scope="session")
def _pristine_ldm_unet():
    from tests.rig.ldm import build_ldm_unet

    return build_ldm_unet(seed=0)


@pytest.fixture
def ldm_unet(_pristine_ldm_unet):
    """A fresh copy of the tiny seeded ldm UNet (``tests.rig.ldm.build_ldm_unet(seed=0)``)."""
    return copy.deepcopy(_pristine_ldm_unet)


@pytest.fixture
def a1111(tmp_path, ldm_unet):
    """The A1111 stub reset to a fresh WebUI, outputs under ``tmp_path``, ``shared.sd_model`` a
    ``TinySdModel`` over ``ldm_unet``. Yields the ``modules`` package; reset again afterwards."""
    rig_a1111.reset_stub(tmp_path / "outputs")
    import modules
    from modules import shared

    shared.sd_model = rig_a1111.TinySdModel(ldm_unet).eval()
    yield modules
    rig_a1111.reset_stub(tmp_path / "outputs")
