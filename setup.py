"""Build hook: a wheel carries what mmlab reads at run time inside the package.

The notebooks, the reference profile and dataset, the cited background documents and the C reference
program stay where a reader of
the repository looks for them (notebooks/, data/reference/, benchmarks/), edited in one place; building
copies them to mmlab/_resources/, where mmlab.core.paths finds them when no source tree is beside the
package. Everything else is declared in pyproject.toml.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
RESOURCES = {"notebooks": ("*.ipynb",), "data/reference": ("*.json", "runs/*/*.json", "runs/*/*.parquet"),
             "data/sources": ("*.md",), "benchmarks": ("mlock_ref.c",)}


class BuildWithResources(build_py):
    def run(self):
        super().run()
        if self.editable_mode:  # an editable install reads the source tree itself
            return
        target = Path(self.build_lib) / "mmlab" / "_resources"
        for folder, patterns in RESOURCES.items():
            for pattern in patterns:
                for src in sorted((HERE / folder).glob(pattern)):
                    dst = target / folder / src.relative_to(HERE / folder)
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dst)


setup(cmdclass={"build_py": BuildWithResources})
