"""Installing the package is enough for any program's ``import spandrel`` to know our models.

chaiNNer's Load Model (backend/src/packages/chaiNNer_pytorch/pytorch/io/load_model.py in
chaiNNer-org/chaiNNer) does, at import, ``from spandrel import MAIN_REGISTRY, ModelDescriptor,
ModelLoader``, ``from spandrel_extra_arches import EXTRA_REGISTRY``,
``MAIN_REGISTRY.add(*EXTRA_REGISTRY)``, then per file ``ModelLoader(device).load_from_file(path)``.
It has no plugin mechanism: nothing of ours may be imported by the host. Every check below runs
in a fresh interpreter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import nexus_upscaler
import pytest
from nexus_upscaler.spandrel_hook import ENV_OFF, PTH_NAME

ROOT = Path(nexus_upscaler.__file__).resolve().parent
SHIPPED = sorted((ROOT / "weights").glob("*.safetensors"))

# chaiNNer's calls, verbatim in substance; prints what each shipped file loads as.
CHAINNER_LOAD = """
import sys
import tempfile
import zlib
from spandrel import MAIN_REGISTRY, ModelDescriptor, ModelLoader
from spandrel_extra_arches import EXTRA_REGISTRY

MAIN_REGISTRY.add(*EXTRA_REGISTRY)

for path in sys.argv[1:]:
    model_descriptor = ModelLoader("cpu").load_from_file(path)
    print(model_descriptor.architecture.id, model_descriptor.scale)

# The load path needs none of the image-file dependencies (chaiNNer installs us with --no-deps)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("tifffile", "imagecodecs")
             or m == "nexus_upscaler.core.imageio"))
"""


def _run(args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None):
    # PYTHONPATH may point at a checkout (as when testing one): a child sees only what we give it
    base = {k: v for k, v in os.environ.items() if k not in (ENV_OFF, "PYTHONPATH")}
    result = subprocess.run(
        args, capture_output=True, text=True, env={**base, **(env or {})}, cwd=cwd, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _our_path() -> str:
    """A folder holding the package under test as ``nexus_upscaler`` (first on sys.path of the
    child). The checkout's own folder may have any name (a CI clone's has), and a child started
    with ``-S`` has no editable-install finder: then a link named ``nexus_upscaler`` is made."""
    root = Path(nexus_upscaler.__file__).resolve().parent
    if root.name == "nexus_upscaler":
        return str(root.parent)
    key = zlib.crc32(str(root).encode())
    holder = Path(tempfile.gettempdir()) / f"nexus-upscaler-under-test-{os.getuid()}-{key:08x}"
    holder.mkdir(exist_ok=True)
    link = holder / "nexus_upscaler"
    if not link.exists():
        link.symlink_to(root, target_is_directory=True)
    return str(holder)


def _with_hook(code: str) -> str:
    """``code`` after what the ``.pth`` line does at start-up (this checkout, not an install)."""
    pth_line = (ROOT / PTH_NAME).read_text().strip()
    return f"import sys; sys.path.insert(0, {_our_path()!r})\n{pth_line}\n{code}"


def _expected() -> list[str]:
    ids = {"nexus": "NEXUS", "hyresr": "HyReSR"}
    return [f"{ids[p.stem.split('-')[0]]} {p.stem.split('-x')[1]}" for p in SHIPPED]


def test_the_pth_line_imports_no_torch_and_no_spandrel():
    code = _with_hook(
        "from nexus_upscaler import spandrel_hook\n"
        "assert spandrel_hook.installed()\n"
        "print(sorted(m for m in ('torch', 'spandrel', 'numpy') if m in sys.modules))"
    )
    assert _run([sys.executable, "-c", code]).stdout.split() == ["[]"]


def test_chainners_calls_load_every_shipped_model_after_the_hook():
    pytest.importorskip("spandrel_extra_arches")
    assert SHIPPED, "no shipped weights"
    code = _with_hook(CHAINNER_LOAD)
    out = _run([sys.executable, "-c", code, *map(str, SHIPPED)]).stdout.splitlines()
    assert out == [*_expected(), "[]"]


def test_without_the_hook_spandrel_does_not_know_our_models():
    """Guards the test above: our ids come from the hook, not from spandrel itself."""
    code = _with_hook("import spandrel; print('NEXUS' in spandrel.MAIN_REGISTRY)")
    assert _run([sys.executable, "-c", code], env={ENV_OFF: "1"}).stdout.split() == ["False"]


def test_an_environment_without_spandrel_sees_the_usual_import_error():
    # -S: no site-packages, so neither torch nor spandrel can be found
    code = _with_hook(
        "try:\n"
        "    import spandrel\n"
        "except ModuleNotFoundError as e:\n"
        "    print(type(e).__name__, e.name)\n"
        "print('torch' in sys.modules)"
    )
    out = _run([sys.executable, "-S", "-W", "error", "-c", code]).stdout.split()
    assert out == ["ModuleNotFoundError", "spandrel", "False"]


def test_spandrel_imported_before_install_registers_at_once():
    code = (
        f"import sys; sys.path.insert(0, {_our_path()!r})\n"
        "import spandrel\n"
        "from nexus_upscaler import spandrel_hook\n"
        "assert 'NEXUS' not in spandrel.MAIN_REGISTRY\n"
        "spandrel_hook.install()\n"
        "print('NEXUS' in spandrel.MAIN_REGISTRY, spandrel_hook.installed())"
    )
    assert _run([sys.executable, "-c", code], env={ENV_OFF: "1"}).stdout.split() == [
        "True",
        "False",
    ]


# --- the real install: a wheel, and an editable install, into fresh virtual environments -----

_SOURCE_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
    ".ruff_cache", "runs", "experiments", "upscaled", "tests",
)  # fmt: skip


def _source_copy(tmp: Path) -> Path:
    """A copy of the project to build from (building writes build/ and egg-info/ into it)."""
    if not (ROOT / "pyproject.toml").is_file():
        pytest.skip(f"{ROOT} is an installed package, not a source tree to build")
    return Path(shutil.copytree(ROOT, tmp / "src", ignore=_SOURCE_IGNORE))


def _venv_with_deps_of_this_one(tmp: Path) -> tuple[Path, Path]:
    """A fresh venv without pip whose only extra path entry is this interpreter's
    site-packages (torch, spandrel...), put there by a path line: a folder named in a .pth is
    appended to sys.path, but the .pth files inside it are not run, so nothing of this
    environment's own nexus_upscaler install leaks in."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    import spandrel

    (site / "zz_test_dependencies.pth").write_text(
        str(Path(spandrel.__file__).resolve().parents[1]) + "\n"
    )
    return python, site


def _pip(python: Path, *args: str) -> None:
    _run([sys.executable, "-m", "pip", "--python", str(python), *args, "--no-deps", "-q"])


def _check_installed(python: Path, site: Path, package: Path, tmp: Path) -> None:
    """The hook file is in site-packages, costs no torch at start-up, and chaiNNer's calls
    load the installed package's shipped weights in a process that imports nothing of ours."""
    assert (site / PTH_NAME).is_file(), sorted(p.name for p in site.iterdir())
    where = (
        "import sys; print('torch' in sys.modules, 'spandrel' in sys.modules); "
        "import nexus_upscaler; print(nexus_upscaler.__file__)"
    )
    start, located = _run([str(python), "-c", where], cwd=tmp).stdout.splitlines()
    assert start.split() == ["False", "False"]
    assert Path(located).parent == package
    weights = sorted(package.glob("weights/*.safetensors"))
    assert [p.name for p in weights] == [p.name for p in SHIPPED]
    out = _run([str(python), "-c", CHAINNER_LOAD, *map(str, weights)], cwd=tmp)
    assert out.stdout.splitlines() == [*_expected(), "[]"]


@pytest.fixture(scope="module")
def _builds():
    pytest.importorskip("spandrel_extra_arches")
    pytest.importorskip("setuptools", minversion="70.1")  # the `test` extra installs it
    if subprocess.run([sys.executable, "-m", "pip", "--version"]).returncode:
        pytest.skip("pip is not available to build and install the package")


def test_the_wheel_installs_the_hook_and_chainner_loads_our_weights(tmp_path, _builds):
    src = _source_copy(tmp_path)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(tmp_path / "dist"), str(src)])  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("nexus_upscaler-*.whl")
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert PTH_NAME in names  # at the wheel's root, i.e. site-packages
    assert "nexus_upscaler/spandrel_hook.py" in names
    assert "nexus_upscaler/setup.py" not in names
    python, site = _venv_with_deps_of_this_one(tmp_path)
    _pip(python, "install", "--no-index", str(wheel))
    _check_installed(python, site, site / "nexus_upscaler", tmp_path)


def test_an_editable_install_installs_the_hook_too(tmp_path, _builds):
    src = _source_copy(tmp_path)
    python, site = _venv_with_deps_of_this_one(tmp_path)
    _pip(python, "install", "--no-build-isolation", "-e", str(src))
    _check_installed(python, site, src, tmp_path)
