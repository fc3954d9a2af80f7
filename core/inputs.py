"""Which files are inputs: the image extensions, and scanning folders and globs for them.

One rule for every face (the command line, the app, a cluster run):

- a file named explicitly is an input whatever it is called (reading it says if it is no image);
- a folder (``recursive``: its whole tree) or a glob yields the files with an image extension
  (:data:`IMAGE_EXTENSIONS`), leaving out hidden files and folders (a dot name: our own temporary
  files are ``.name.xxxx.tmp``), folders named ``upscaled`` below the folder scanned (the app's
  default output folder) and every image this package wrote (:func:`written_by_us`), so that
  re-running on a folder never upscales the previous results. Name such a file explicitly to
  upscale it again.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "IMAGE_EXTENSIONS",
    "OUTPUT_FOLDER_NAME",
    "FoundInputs",
    "InputFile",
    "find_inputs",
    "is_image_name",
    "written_by_us",
]

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
)
"""Extensions of the files a folder or glob yields (all of them are read by ``read_image``)."""

OUTPUT_FOLDER_NAME = "upscaled"
"""The app's default output folder beside each input; left out when scanning below a folder."""


@dataclass(frozen=True)
class InputFile:
    """One input. ``root`` is the folder it was found under (its parent for a file named
    explicitly), so that an output tree can repeat the subfolders below it."""

    path: Path
    root: Path
    explicit: bool = False

    @property
    def relative_folder(self) -> Path:
        """The input's folder relative to ``root`` ("." for a file directly in it)."""
        return self.path.parent.relative_to(self.root)


@dataclass
class FoundInputs:
    """What a list of specs (files, folders, globs) yields."""

    files: list[InputFile] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Specs that match no file at all (a typo, an empty folder, a glob that matches nothing);
    a folder or glob that matched only images we wrote is not missing: it is in ``ours``."""
    ours: list[Path] = field(default_factory=list)
    """Images this package wrote that a folder or glob matched, left out (each once)."""


def is_image_name(path: str | os.PathLike[str]) -> bool:
    """True when the file's extension is one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def written_by_us(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is an image this package wrote (it carries our software mark)."""
    from .imageio import SOFTWARE_NAME, read_software

    return (read_software(path) or "").startswith(SOFTWARE_NAME)


def find_inputs(specs: Iterable[str | os.PathLike[str]], recursive: bool = False) -> FoundInputs:
    """The input files named by ``specs``: files, folders and (quoted, so that ``glob``
    expands them here, also on Windows) glob patterns, in the order given, each file once.

    ``recursive``: folders are walked down their whole tree and ``**`` in a glob matches any
    number of folders.
    """
    found = FoundInputs()
    seen: set[str] = set()
    for spec in specs:
        text = os.fspath(spec)
        path = Path(text).expanduser()
        ours: list[Path] = []
        if path.is_file():
            candidates = [InputFile(path, path.parent, explicit=True)]
        elif path.is_dir():
            pattern = "**/*" if recursive else "*"
            candidates = _scan(sorted(path.glob(pattern)), path, ours)
        elif glob.has_magic(text):
            matches = sorted(glob.glob(os.path.expanduser(text), recursive=recursive))
            candidates = [c for m in matches for c in _scan([Path(m)], Path(m).parent, ours)]
        else:
            candidates = []
        if not candidates and not ours:
            found.missing.append(text)
        found.ours.extend(p for p in ours if p not in found.ours)
        for candidate in candidates:
            key = os.path.normcase(candidate.path.resolve())
            if key not in seen:
                seen.add(key)
                found.files.append(candidate)
    return found


def _scan(paths: Iterable[Path], root: Path, ours: list[Path]) -> list[InputFile]:
    """The inputs among ``paths`` found under ``root``; images we wrote go to ``ours``."""
    files = []
    for path in paths:
        if not path.is_file() or not is_image_name(path):
            continue
        below = path.relative_to(root).parts
        if any(part.startswith(".") for part in below):
            continue
        if OUTPUT_FOLDER_NAME in below[:-1]:
            continue
        if written_by_us(path):
            ours.append(path)
            continue
        files.append(InputFile(path, root))
    return files
