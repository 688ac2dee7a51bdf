"""Where the shared reference fixtures live, and skipping when they are absent.

The fixtures sit beside the project, at ``<repo>/../shared/fixtures`` (CI has them there too); they
are never copied into the repository.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"


def fixture_path(relative: str) -> Path | None:
    """``SHARED_FIXTURES / relative`` if that file or folder exists, else ``None``."""
    path = SHARED_FIXTURES / relative
    return path if path.exists() else None


def require_fixture(relative: str) -> Path:
    """Like :func:`fixture_path`, but skips the calling test (with the reason) when it is absent."""
    path = fixture_path(relative)
    if path is None:
        import pytest

        pytest.skip(f"shared fixture not found: {SHARED_FIXTURES / relative} (needs ../shared beside the repo)")
    return path
