"""Everything is declared in pyproject.toml; this file only adds one build step.

The wheel (``pip install .``, ``pip wheel .``, ``python -m build``) and an editable install
(``pip install -e .``) both get ``nexus_upscaler_spandrel.pth`` at the root of site-packages:
Python runs its line at start-up, which makes ``import spandrel`` register our architectures
in any program (chaiNNer's Load Model needs no edit). See ``spandrel_hook.py``.
"""

from __future__ import annotations

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "nexus_upscaler_spandrel.pth"
HERE = os.path.dirname(os.path.abspath(__file__))


class build_py_with_pth(build_py):
    """``build_py`` that also puts the ``.pth`` file at the root of the installed tree."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            # An editable wheel holds no build_lib files; setuptools' editable_wheel writes what
            # is installed as is (data, scripts) straight into the wheel it unpacks, and points
            # install_lib there.
            root = self.get_finalized_command("install").install_lib
        else:
            root = self.build_lib
        self.copy_file(os.path.join(HERE, PTH), os.path.join(root, PTH), preserve_mode=False)

    def find_package_modules(self, package: str, package_dir: str) -> list[tuple[str, str, str]]:
        # The repository root is the package: leave this build script out of it.
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if os.path.abspath(m[2]) != os.path.join(HERE, "setup.py")]

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH)]

    def get_output_mapping(self) -> dict[str, str]:
        return {**super().get_output_mapping(), os.path.join(self.build_lib, PTH): PTH}


setup(cmdclass={"build_py": build_py_with_pth})
