"""Register our architectures with spandrel whenever spandrel is imported, by any program.

chaiNNer (and any other host) loads models with ``spandrel.ModelLoader`` and has no plugin
mechanism, so a host cannot be asked to call ``register_with_spandrel()``. Instead the wheel
installs ``nexus_upscaler_spandrel.pth`` into site-packages (see ``setup.py``); Python runs its
one line at start-up, which calls :func:`install`. That only puts a finder on ``sys.meta_path``:
no torch, no spandrel, nothing else is imported, and an environment without spandrel never
notices it. When a program first imports ``spandrel``, the finder lets the real module load
and then calls ``core.detection.register_with_spandrel()``, so ``spandrel.MAIN_REGISTRY`` knows
NEXUS and HyReSR before the importing statement returns.

Set ``NEXUS_UPSCALER_NO_SPANDREL_HOOK=1`` to turn the hook off. A failure to register is a
warning, never an error in the host's import of spandrel.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing costs more than this whole module at every interpreter start
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType
    from typing import Any

__all__ = ["ENV_OFF", "PTH_NAME", "install", "installed", "startup"]

#: environment variable that turns the start-up hook off (any non-empty value)
ENV_OFF = "NEXUS_UPSCALER_NO_SPANDREL_HOOK"

#: the file the wheel puts into site-packages; its one line calls :func:`startup`
PTH_NAME = "nexus_upscaler_spandrel.pth"

_TARGET = "spandrel"


def _register() -> None:
    try:
        from .core.detection import register_with_spandrel

        register_with_spandrel()
    except Exception as exc:  # the host's import of spandrel must go on
        import warnings

        warnings.warn(
            f"nexus-upscaler: NEXUS and HyReSR models will not load through spandrel: {exc!r}",
            RuntimeWarning,
            stacklevel=2,
        )


class _RegisterAfterSpandrel:
    """A ``sys.meta_path`` finder that only acts on ``import spandrel``.

    It asks the finders after it for spandrel's real spec and hooks that spec's loader, once,
    so that ``exec_module`` runs spandrel and then registers our architectures. The module's
    spec, loader and file stay spandrel's own. (A plain object: ``importlib.abc`` costs an
    import at every interpreter start.)
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> Any:
        if fullname != _TARGET:
            return None
        spec = None
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            import contextlib

            # Undo the hook before running spandrel: a loader can be shared (a zip importer).
            with contextlib.suppress(AttributeError):
                del loader.exec_module
            original(module)
            _uninstall()
            _register()

        loader.exec_module = exec_module
        return spec


def installed() -> bool:
    """Whether the finder is waiting on ``sys.meta_path``."""
    return any(isinstance(f, _RegisterAfterSpandrel) for f in sys.meta_path)


def _uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _RegisterAfterSpandrel)]


def install() -> None:
    """Register with spandrel now if it is imported, else as soon as it is. Idempotent."""
    if _TARGET in sys.modules:
        _register()
    elif not installed():
        sys.meta_path.insert(0, _RegisterAfterSpandrel())


def startup() -> None:
    """What the ``.pth`` file runs at interpreter start: :func:`install` unless turned off."""
    import os

    if not os.environ.get(ENV_OFF):
        install()
