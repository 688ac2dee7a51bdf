"""Test double for the ``modules`` package of AUTOMATIC1111's WebUI v1.10.

It carries the names, call signatures and hook order that vidsd's ``scripts/`` depend on, with
bodies written for the tests. Each submodule's docstring says which WebUI file it stands in for
and what it leaves out. See ``tests/a1111_stub/README.md``.
"""
