"""The core never pulls in Qt or ComfyUI: a ComfyUI user without PySide6 and a CLI user
without ComfyUI must both be able to import it."""

import subprocess
import sys
import textwrap

BLOCKED = ["PySide6", "shiboken6", "comfy", "comfy_api", "comfy_extras", "folder_paths", "server"]
# Ray (the cluster extra) is imported when a cluster job starts, never on import
BLOCKED_WITH_RAY = [*BLOCKED, "ray"]


def _import_with_blocked(
    statement: str, blocked: list[str] = BLOCKED
) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(
        f"""
        import sys, importlib.abc

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {blocked!r}:
                    raise ImportError("blocked by test: " + name)
                return None

        sys.meta_path.insert(0, Block())
        {statement}
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in {blocked!r})
        assert not leaked, leaked
        print("ok")
        """
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_package_and_core_import_without_qt_or_comfy():
    result = _import_with_blocked("import nexus_upscaler, nexus_upscaler.core")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_block_really_blocks():
    """Guard against a blocker that blocks nothing: importing PySide6 must fail under it."""
    result = _import_with_blocked("import PySide6")
    assert result.returncode != 0
    assert "blocked by test" in result.stderr


def test_package_core_and_cli_import_without_ray():
    result = _import_with_blocked(
        "import nexus_upscaler, nexus_upscaler.core, nexus_upscaler.core.cluster, "
        "nexus_upscaler.cli",
        BLOCKED_WITH_RAY,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
