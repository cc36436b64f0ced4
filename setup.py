"""Package layout that pyproject.toml cannot express: ``assets/`` is installed as the package ``imer_assets``.

Everything else (metadata, dependencies, entry points) is in pyproject.toml.
"""

from setuptools import find_packages, setup

ASSET_FILES = ["*.task", "*.md", "models/live_*.pt", "models/face_net.pt", "models/text_net.pt", "demo/*.mp4",
               "demo/*.md"]

setup(
    packages=[*find_packages(include=["imer_core*", "training*", "app*"]), "imer_assets"],
    package_dir={"imer_assets": "assets"},
    package_data={"training": ["configs/*.toml"], "imer_assets": ASSET_FILES},
)
