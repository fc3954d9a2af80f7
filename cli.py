"""``nexus-upscale``: upscale image files, folders and globs from the command line.

A thin adapter over ``core``: presets give the engine options, ``core.pipeline.upscale_file``
does each file. It goes on past a bad file, prints a summary, and exits 1 if any file failed
(2 for a usage error, 130 when interrupted). Errors are one line; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path

from .core.errors import NexusError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".jpe", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EXAMPLES = """\
examples:
  nexus-upscale photo.jpg                         writes photo_x4.jpg next to it
  nexus-upscale photos/ -o upscaled/ --recursive  a folder tree into another folder
  nexus-upscale "scans/*.tif" --format png        a glob (quoted: expanded here, also on Windows)
  nexus-upscale in.png -o big.webp --quality 90   one file to a named output
  nexus-upscale in.png --model 4x-Model.pth --preset quality --scale 2
  nexus-upscale --list-models / --list-presets
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nexus-upscale",
        description="Upscale images with a NEXUS model or any model spandrel loads "
        "(ESRGAN, SwinIR, HAT, ...), tile by tile, with seamless blending.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders or globs")
    p.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="output folder, or output file for a single input "
        "(default: next to each input, named with --suffix)",
    )
    p.add_argument(
        "-m",
        "--model",
        metavar="MODEL",
        help="checkpoint file (.safetensors, .pth, ...) or the name of a shipped model "
        "(see --list-models; default: the shipped default)",
    )
    p.add_argument("-r", "--recursive", action="store_true", help="descend into subfolders")
    p.add_argument(
        "-p",
        "--preset",
        metavar="NAME",
        help="settings preset (default: balanced; see --list-presets)",
    )

    eng = p.add_argument_group("engine settings (override the preset)")
    eng.add_argument("--tile", metavar="PX|auto", type=_tile, help="tile size in input pixels")
    eng.add_argument("--overlap", metavar="PX", type=int, help="overlap between tiles in pixels")
    eng.add_argument("--precision", choices=["auto", "fp32", "fp16", "bf16"])
    eng.add_argument("--device", metavar="DEV", help='"auto", "cpu", "cuda", "cuda:1", "mps"')
    eng.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="x8 self-ensemble: slower, slightly better",
    )
    eng.add_argument("--batch", metavar="N", type=int, help="tiles per model call")
    eng.add_argument(
        "-s",
        "--scale",
        metavar="X",
        type=float,
        help="output scale if not the model's (x2 with a x4 model: downscaled; x8: two passes); "
        "with no --model, the shipped model of that scale when there is one",
    )
    eng.add_argument(
        "--alpha",
        choices=["model", "resize"],
        help="alpha channel: through the model (default) or resized",
    )

    out = p.add_argument_group("output")
    out.add_argument(
        "-f",
        "--format",
        choices=["png", "jpg", "webp", "tiff"],
        help="output format (default: the input's, PNG for others)",
    )
    out.add_argument(
        "-q",
        "--quality",
        metavar="1-100",
        type=int,
        default=95,
        help="JPEG/WebP quality (WebP 100 = lossless; default 95)",
    )
    out.add_argument(
        "--suffix",
        metavar="TEXT",
        help='added to output names (default "_x<scale>", e.g. photo_x4.png)',
    )
    exists = out.add_mutually_exclusive_group()
    exists.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    exists.add_argument(
        "--skip-existing",
        action="store_true",
        help="leave inputs whose output exists alone (re-run an interrupted batch)",
    )

    misc = p.add_argument_group("other")
    misc.add_argument("--list-models", action="store_true", help="list shipped models and exit")
    misc.add_argument("--list-presets", action="store_true", help="list presets and exit")
    misc.add_argument("--quiet", action="store_true", help="no progress bar")
    misc.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return p


def _tile(text: str) -> int | str:
    if text.lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected pixels or "auto", got {text!r}') from None


# --- inputs and outputs ------------------------------------------------------------------------


def expand_inputs(
    specs: Iterable[str], recursive: bool
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(file, root) pairs for each input (root: the folder it was found in, for -o trees) and
    the specs that matched nothing."""
    found: dict[Path, tuple[Path, Path]] = {}
    missing: list[str] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_file():
            candidates = [(path, path.parent)]
        elif path.is_dir():
            pattern = "**/*" if recursive else "*"
            candidates = [
                (f, path)
                for f in sorted(path.glob(pattern))
                if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS and not _hidden(f, path)
            ]
        elif glob.has_magic(spec):
            matches = sorted(glob.glob(os.path.expanduser(spec), recursive=recursive))
            candidates = [(Path(m), Path(m).parent) for m in matches if Path(m).is_file()]
        else:
            candidates = []
        if not candidates:
            missing.append(spec)
        for file, root in candidates:
            found.setdefault(file.resolve(), (file, root))
    return list(found.values()), missing


def _hidden(file: Path, root: Path) -> bool:
    # our own temporary files (".name.xxxx.tmp") and other dot files are not inputs
    return any(part.startswith(".") for part in file.relative_to(root).parts)


def _output_for(
    file: Path, root: Path, output: str | None, single: bool, suffix: str, fmt: str | None
) -> Path:
    from .core.pipeline import plan_output_path

    if output is None:
        return plan_output_path(file, None, suffix, fmt)
    if single and _names_a_file(output):
        return Path(output)
    folder = Path(output) / file.parent.relative_to(root)  # keeps subfolders of a --recursive tree
    return plan_output_path(file, folder, suffix, fmt)


# --- listing -----------------------------------------------------------------------------------


def list_models() -> int:
    from .core.zoo import default_model_name, list_shipped_models, weights_dir

    models = list_shipped_models()
    if not models:
        print(f"no trained weights ship in {weights_dir()} yet; use --model PATH with any")
        print("checkpoint spandrel can load (ESRGAN, SwinIR, HAT, ...)")
        return EXIT_OK
    default = default_model_name()
    for m in models:
        scale = f"x{m.scale}" if m.scale else "x?"
        mark = " (default)" if m.name == default else ""
        print(f"{m.name:<20} {scale:<4} {m.architecture or '':<24} {m.description}{mark}")
    return EXIT_OK


def list_presets() -> int:
    from .core.presets import DEFAULT_PRESET, list_presets, user_presets_path

    print(
        f"{'preset':<12} {'tile':<6} {'overlap':<8} {'precision':<10} {'tta':<6} {'batch':<6} description"
    )
    for preset in list_presets():
        s = preset.settings
        tile = "auto" if s.get("tile") is None else str(s["tile"])
        desc = preset.description + (" (default)" if preset.name == DEFAULT_PRESET else "")
        if preset.user:
            desc += " [user]"
        print(
            f"{preset.name:<12} {tile:<6} {s.get('overlap', ''):<8} {s.get('precision', ''):<10} "
            f"{str(s.get('tta', '')).lower():<6} {s.get('batch', ''):<6} {desc}"
        )
    print(f"\nyour own presets: {user_presets_path()}")
    return EXIT_OK


# --- main --------------------------------------------------------------------------------------


def _error(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"nexus-upscale: error: {message}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if isinstance(exc, NexusError) else f"{type(exc).__name__}: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nexus-upscale`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(parser, args)
    except KeyboardInterrupt:
        _error("interrupted; the file in progress was not written")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - setup errors (preset, model, device): one line
        if args.debug:
            traceback.print_exc()
        _error(_one_line(exc))
        return EXIT_USAGE


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.list_models:
        return list_models()
    if args.list_presets:
        return list_presets()
    if not args.inputs:
        parser.print_usage(sys.stderr)
        _error("give at least one image, folder or glob (see --help)")
        return EXIT_USAGE
    if not 1 <= args.quality <= 100:
        _error(f"--quality must be 1..100, got {args.quality}")
        return EXIT_USAGE

    from .core.presets import get_preset

    overrides = {
        key: value
        for key, value in {
            "tile": args.tile,
            "overlap": args.overlap,
            "precision": args.precision,
            "device": args.device,
            "tta": args.tta,
            "batch": args.batch,
            "target_scale": args.scale,
            "alpha_mode": args.alpha,
        }.items()
        if value is not None
    }
    options = get_preset(args.preset, **overrides)

    files, missing = expand_inputs(args.inputs, args.recursive)
    if not files and missing:
        for spec in missing:
            _error(f"{spec}: no such file, folder or matching image")
        return EXIT_FAILED

    if args.output and len(files) + len(missing) > 1 and _names_a_file(args.output):
        _error(f"-o {args.output} names one file, but there are several inputs; give a folder")
        return EXIT_USAGE

    descriptor = _load(args.model, options.device, args.scale)
    scale = options.target_scale or descriptor.scale
    suffix = args.suffix if args.suffix is not None else f"_x{scale:g}"
    return _upscale_all(args, options, descriptor, files, missing, suffix)


def _names_a_file(output: str) -> bool:
    from .core.imageio import format_for_path

    return (
        not output.endswith(("/", os.sep))
        and not Path(output).is_dir()
        and (format_for_path(output) is not None)
    )


def _load(model: str | None, device: str, scale: float | None = None):
    """The model descriptor for ``--model`` (a path or a shipped name; None: the default, the
    shipped model of scale ``--scale`` when there is one)."""
    from .core.loading import load_model
    from .core.zoo import resolve_model

    native = int(scale) if scale is not None and float(scale).is_integer() else None
    return load_model(resolve_model(model, scale=native), device=device)


def _upscale_all(args, options, descriptor, files, missing, suffix) -> int:
    from tqdm import tqdm

    from .core.pipeline import upscale_file

    failures: list[tuple[str, str]] = [
        (s, "no such file, folder or matching image") for s in missing
    ]
    for spec, reason in failures:
        _error(f"{spec}: {reason}")
    written: list[Path] = []
    skipped: list[Path] = []
    planned: set[Path] = set()
    single = len(files) == 1 and not missing
    started = time.perf_counter()
    show = not args.quiet
    several = len(files) > 1
    files_bar = tqdm(total=len(files), unit="file", disable=not show or not several, position=0)
    for file, root in files:
        tiles = tqdm(
            desc=file.name[:30], unit="tile", leave=False, disable=not show, position=int(several)
        )

        def progress(done: int, total: int, bar=tiles) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            target = _output_for(file, root, args.output, single, suffix, args.format)
            key = Path(os.path.normcase(target.resolve()))
            if key in planned:
                raise _Collision(f"{target}: another input in this run already writes this file")
            planned.add(key)
            if (
                args.skip_existing
                and target.exists()
                and key != Path(os.path.normcase(file.resolve()))
            ):
                skipped.append(target)
                continue
            result = upscale_file(
                descriptor,
                file,
                target,
                options,
                format=args.format,
                quality=args.quality,
                overwrite=args.overwrite,
                progress=progress,
            )
        except KeyboardInterrupt:
            tiles.close()
            files_bar.close()
            raise
        except Exception as exc:  # noqa: BLE001 - go on past a bad file, report it in the summary
            if args.debug:
                traceback.print_exc()
            failures.append((str(file), _one_line(exc)))
            _error(f"{file}: {_one_line(exc)}" if str(file) not in str(exc) else _one_line(exc))
        else:
            written.append(result.output_path)
            for note in result.notes:
                tqdm.write(
                    f"nexus-upscale: note: {result.output_path.name}: {note}", file=sys.stderr
                )
        finally:
            tiles.close()
            files_bar.update(1)
    files_bar.close()

    seconds = time.perf_counter() - started
    counts = [f"{len(written)} written"]
    if skipped:
        counts.append(f"{len(skipped)} skipped (output exists)")
    summary = ", ".join([*counts, f"{len(failures)} failed"]) + f" in {seconds:.1f} s"
    if len(written) == 1 and not failures and not skipped:
        summary = f"wrote {written[0]} in {seconds:.1f} s"
    print(summary, file=sys.stderr if failures else sys.stdout)
    for name, reason in failures:
        print(
            f"  failed: {name}: {reason}" if name not in reason else f"  failed: {reason}",
            file=sys.stderr,
        )
    return EXIT_FAILED if failures else EXIT_OK


class _Collision(NexusError):
    """Two inputs of one run would write the same output file."""


if __name__ == "__main__":
    sys.exit(main())
