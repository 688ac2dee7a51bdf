"""Standalone runners on diffusers models (what the CLI calls), and the tiny built-in model."""
