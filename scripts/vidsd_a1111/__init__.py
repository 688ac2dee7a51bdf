"""The A1111 layer of vidsd: binding tables, UI builders, per-job glue, routes.

Imported by the ``scripts/vidsd_*.py`` entry points (A1111 executes only the top-level files of
``scripts/``). Everything that computes lives in ``lib_vidsd``; this package translates between
A1111's objects and the core.
"""
