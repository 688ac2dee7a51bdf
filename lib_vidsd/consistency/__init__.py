"""Temporal consistency helpers: colour matching against a reference frame."""

from .color import match_histograms_lab

__all__ = ["match_histograms_lab"]
