"""Run by A1111 when it loads the extension: installs what A1111 1.10 lacks, never torch.

A1111 runs this file in its own Python with the WebUI on ``PYTHONPATH``; ``launch.run_pip``
installs through A1111's pip settings and does nothing under ``--skip-install``.
"""

import importlib.metadata

import launch

# what the suite needs beyond A1111 1.10's requirements_versions.txt, with bounds
REQUIREMENTS = {
    "imageio-ffmpeg": ">=0.4.9,<1",
    "librosa": ">=0.10.2,<0.12",  # Keyframe animation's audio keys (onsets, loudness)
}


def _satisfied(name: str, spec: str) -> bool:
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:  # no packaging: presence is all we can check
        return True
    return SpecifierSet(spec).contains(version, prereleases=True)


def install() -> list[str]:
    """Install every missing or out-of-bounds requirement; returns the ones it asked pip for."""
    if getattr(launch.args, "skip_install", False):
        return []
    asked = []
    for name, spec in REQUIREMENTS.items():
        if not _satisfied(name, spec):
            launch.run_pip(f'install "{name}{spec}"', f"vidsd requirement: {name}{spec}")
            asked.append(name)
    return asked


install()
