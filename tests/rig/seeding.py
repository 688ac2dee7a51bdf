"""Seeded construction lives in the core (the built-in tiny model uses it too)."""

from lib_vidsd.pipelines.seeding import perturb_trivial_parameters, seeded_build

__all__ = ["perturb_trivial_parameters", "seeded_build"]
