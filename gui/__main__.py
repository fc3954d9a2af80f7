"""``nexus-upscaler-gui`` and ``python -m nexus_upscaler.gui``."""

from __future__ import annotations

import sys


def main() -> int:
    from .app import run

    return run(sys.argv)


if __name__ == "__main__":
    sys.exit(main())
