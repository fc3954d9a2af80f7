"""Where outputs go: their names, and what happens when two of them, or an input, collide.

One rule for every face (the command line, the app, a cluster run):

- an output is named ``<input stem><suffix><extension>``; the extension is the format's (the
  input's own spelling, ``.jpeg`` or ``.tif``, when the format is the input's), the format the
  input's when it can be written (png, jpg, webp, tiff), else PNG;
- it goes next to its input, into ``subfolder`` beside each input, or into an output folder that
  repeats the subfolders the input was found in; one input may instead go to a named file, and
  then the name decides the format (a ``format`` that contradicts it is an error);
- an output is never an input of the run (nor a ``protected`` file, e.g. one queued in the app),
  nor the output of another input; an existing output is refused, replaced, renamed
  (``name-2.png``) or its input skipped, as the caller's policy says.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import OutputPlanError
from .imageio import FORMATS, format_for_path
from .inputs import InputFile

__all__ = [
    "EXISTING_POLICIES",
    "ExistingPolicy",
    "PlannedOutput",
    "default_suffix",
    "names_a_file",
    "plan_output_path",
    "plan_outputs",
]

ExistingPolicy = Literal["fail", "overwrite", "rename", "skip"]
EXISTING_POLICIES: tuple[ExistingPolicy, ...] = ("fail", "overwrite", "rename", "skip")
"""What to do with an output file that already exists: refuse it (the file fails), replace it,
pick the next free name (``photo_x4-2.png``), or leave its input alone (resuming a batch)."""


@dataclass(frozen=True)
class PlannedOutput:
    """One input and where it goes. ``skip``: its output exists and the policy is "skip";
    ``problem``: why this input cannot be done (its output would overwrite an input, or another
    input's output)."""

    input: InputFile
    output: Path
    skip: bool = False
    problem: str | None = None

    @property
    def to_do(self) -> bool:
        return not self.skip and self.problem is None


def default_suffix(scale: float) -> str:
    """The name suffix when the user gives none: ``_x4``, ``_x2``, ``_x1.5``."""
    return f"_x{scale:g}"


def names_a_file(output: str | os.PathLike[str]) -> bool:
    """True when ``output`` names an output file: it has an image extension we write, it is not
    an existing folder, and it does not end in a path separator."""
    text = os.fspath(output)
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        return False
    return format_for_path(text) is not None


def plan_output_path(
    input_path: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    suffix: str = "",
    format: str | None = None,
) -> Path:
    """Where the upscaled ``input_path`` goes.

    ``output`` None: next to the input. An existing folder, or a path ending in a separator or
    without an image extension: inside that folder. Otherwise ``output`` is the file itself. The
    name is the input's stem + ``suffix`` + the extension of ``format`` (default: the input's own
    when it is png/jpg/webp/tiff, else .png), keeping the input's spelling (.jpeg, .tif).
    """
    input_path = Path(input_path)
    fmt = _format_name(format)
    if output is not None and names_a_file(output):
        return Path(output)
    folder = input_path.parent if output is None else Path(output)
    fmt = fmt or format_for_path(input_path) or "png"
    extension = input_path.suffix if format_for_path(input_path) == fmt else FORMATS[fmt][1]
    return folder / f"{input_path.stem}{suffix}{extension}"


def _format_name(format: str | None) -> str | None:
    if format is None:
        return None
    fmt = format.lower().replace("jpeg", "jpg")
    if fmt not in FORMATS:
        raise OutputPlanError(f"unknown output format {format!r}; use one of {', '.join(FORMATS)}")
    return fmt


def plan_outputs(
    inputs: Sequence[InputFile | str | os.PathLike[str]],
    *,
    output: str | os.PathLike[str] | None = None,
    subfolder: str | None = None,
    suffix: str,
    format: str | None = None,
    existing: ExistingPolicy = "fail",
    protected: Iterable[str | os.PathLike[str]] = (),
) -> list[PlannedOutput]:
    """The output of each input, in order (see the module's rules).

    ``output``: None (next to each input, or in ``subfolder`` beside it), a folder (the subfolders
    each input was found in are repeated below it), or, for a single input, a file name.
    ``protected``: files no output may land on besides the inputs themselves.

    Raises OutputPlanError when ``output`` names one file for several inputs, or names a file
    whose extension contradicts ``format``.
    """
    files = [i if isinstance(i, InputFile) else InputFile(Path(i), Path(i).parent) for i in inputs]
    fmt = _format_name(format)
    to_file = output is not None and names_a_file(output)
    if to_file and len(files) > 1:
        raise OutputPlanError(
            f"{os.fspath(output)} names one file, but there are several inputs ({len(files)}); "
            "give a folder"
        )
    if to_file and fmt is not None and format_for_path(output) != fmt:  # type: ignore[arg-type]
        named = format_for_path(output)  # type: ignore[arg-type]
        raise OutputPlanError(
            f"{os.fspath(output)} names a {named.upper()} file but the format asked for is "  # type: ignore[union-attr]
            f"{fmt.upper()}; the name decides the format: drop the format or name the file "
            f"{Path(output).stem}{FORMATS[fmt][1]}"  # type: ignore[arg-type]
        )

    untouchable = {_key(f.path) for f in files} | {_key(Path(p)) for p in protected}
    claimed: set[str] = set()
    plans: list[PlannedOutput] = []
    for file in files:
        if to_file:
            target = Path(output)  # type: ignore[arg-type]
        else:
            if output is not None:
                folder = Path(output) / file.relative_folder
            elif subfolder:
                folder = file.path.parent / subfolder
            else:
                folder = file.path.parent
            target = plan_output_path(file.path, f"{folder}{os.sep}", suffix, fmt)
        plans.append(_settle(file, target, untouchable, claimed, existing))
    return plans


def _settle(
    file: InputFile,
    planned: Path,
    untouchable: set[str],
    claimed: set[str],
    existing: ExistingPolicy,
) -> PlannedOutput:
    """Apply the collision rules to one planned output."""
    candidate, n = planned, 1
    while True:
        key = _key(candidate)
        if key in untouchable:
            problem = "is an input file; refusing to overwrite an input"
        elif key in claimed:
            problem = "another input of this run writes this file too"
        elif existing == "rename" and candidate.exists():
            problem = "exists"
        else:
            break
        if existing != "rename":
            return PlannedOutput(file, candidate, problem=f"{candidate}: {problem}")
        n += 1
        candidate = planned.with_name(f"{planned.stem}-{n}{planned.suffix}")
    claimed.add(key)
    skip = existing == "skip" and candidate.exists()
    return PlannedOutput(file, candidate, skip=skip)


def _key(path: Path) -> str:
    """One spelling per file: absolute, links resolved, case folded where the system folds it."""
    return os.path.normcase(os.path.realpath(path))
