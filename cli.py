"""``nexus-upscale``: upscale image files, folders and globs from the command line.

A thin adapter over ``core``: presets give the engine options, ``core.pipeline.upscale_file``
does each file. It goes on past a bad file, prints a summary, and exits 1 if any file failed
(2 for a usage error, 130 when interrupted). Errors are one line; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .core.errors import OptionError, OutputPlanError, one_line

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# the engine option each setting flag overrides, and the flag a message about it should name
OPTION_FLAGS = {
    "tile": "--tile",
    "overlap": "--overlap",
    "precision": "--precision",
    "device": "--device",
    "tta": "--tta",
    "batch": "--batch",
    "target_scale": "--scale",
    "alpha_mode": "--alpha",
    "threads": "--threads",
}

EXAMPLES = """\
examples:
  nexus-upscale photo.jpg                         writes photo_x4.jpg next to it
  nexus-upscale photos/ -o upscaled/ --recursive  a folder tree into another folder
  nexus-upscale "scans/*.tif" --format png        a glob (quoted: expanded here, also on Windows)
  nexus-upscale in.png -o big.webp --quality 90   one file to a named output
  nexus-upscale in.png --model 4x-Model.pth --preset quality --scale 2
  nexus-upscale archive/ -o /shared/out/ -r --cluster    on a Ray cluster
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
    eng.add_argument("--device", metavar="DEV", help="auto, cpu, cuda, cuda:N (the N-th GPU), mps")
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
    eng.add_argument(
        "--threads",
        metavar="N",
        type=_threads,
        help="CPU threads for the model (default: what torch picks, the machine's cores)",
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

    out.add_argument(
        "--max-pixels",
        metavar="N",
        type=_pixels,
        help="largest input to open, in pixels (300M = 300 megapixels; 0: no limit; "
        "default 200M): a guard against decompression bombs",
    )

    ray = p.add_argument_group(
        "cluster (Ray; every node must see the inputs and outputs at the same paths)"
    )
    ray.add_argument(
        "--cluster",
        action="store_true",
        help="spread the images over the workers of a Ray cluster: the one --cluster-address or "
        "RAY_ADDRESS names, else one on this machine (needs the cluster extra)",
    )
    ray.add_argument(
        "--cluster-address",
        metavar="ADDR",
        help="the cluster's head, as host:port (what `ray start --head` printed)",
    )
    ray.add_argument(
        "--workers",
        metavar="N",
        type=int,
        help="workers, each with the model loaded once (default: one per GPU of the cluster, "
        "else one per CPU core)",
    )

    misc = p.add_argument_group("other")
    misc.add_argument("--list-models", action="store_true", help="list shipped models and exit")
    misc.add_argument("--list-presets", action="store_true", help="list presets and exit")
    misc.add_argument("--quiet", action="store_true", help="no progress bar")
    misc.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return p


def _whole_number_or_auto(what: str) -> Callable[[str], int | str]:
    """An argparse type: "auto" or a whole number (``what`` names it in the error)."""

    def parse(text: str) -> int | str:
        if text.lower() == "auto":
            return "auto"
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected {what} or "auto", got {text!r}') from None

    return parse


_tile = _whole_number_or_auto("pixels")
_threads = _whole_number_or_auto("a number of threads")


def _pixels(text: str) -> int:
    """``--max-pixels``: a pixel count, ``300M`` megapixels or ``1.5G``; 0 means no limit."""
    units = {"k": 10**3, "m": 10**6, "g": 10**9}
    number, unit = (text[:-1], units[text[-1].lower()]) if text[-1:].lower() in units else (text, 1)
    try:
        pixels = round(float(number) * unit)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a pixel count such as 300000000 or 300M, got {text!r}"
        ) from None
    if pixels < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or positive, got {text!r}")
    return pixels


# --- inputs and outputs ------------------------------------------------------------------------


def find_files(args: argparse.Namespace):
    """The inputs ``args`` name (``core.inputs.find_inputs``)."""
    from .core.inputs import find_inputs

    return find_inputs(args.inputs, args.recursive)


def plan(args: argparse.Namespace, files, scale: float):
    """Where each input goes (``core.outputs.plan_outputs``), as ``args`` ask."""
    from .core.outputs import default_suffix, plan_outputs

    existing = "overwrite" if args.overwrite else "skip" if args.skip_existing else "fail"
    return plan_outputs(
        files,
        output=args.output,
        suffix=args.suffix if args.suffix is not None else default_suffix(scale),
        format=args.format,
        existing=existing,
    )


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


def _note(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"nexus-upscale: note: {message}", file=sys.stderr)


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM, or SIGHUP: the terminal closed). Raised from the
    signal handler so that every ``finally`` runs: no temporary file is left behind."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """Turn SIGTERM (and SIGHUP) into ``Terminated`` for the length of a run.

    Their default action ends the process at once, skipping the clean-up of the file being
    written. Only the main thread can set handlers; elsewhere this does nothing.
    """
    wanted = [signal.SIGTERM]
    if hasattr(signal, "SIGHUP"):  # not on Windows
        wanted.append(signal.SIGHUP)

    def handler(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    saved = {}
    try:
        for signum in wanted:
            saved[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread
        pass
    try:
        yield
    finally:
        for signum, previous in saved.items():
            signal.signal(signum, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nexus-upscale`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with _stop_signals_raise():
        try:
            return _run(parser, args)
        except KeyboardInterrupt:
            _error("interrupted; the file in progress was not written")
            return EXIT_INTERRUPTED
        except Terminated as stop:
            _error(
                f"stopped by {signal.Signals(stop.signum).name}; the file in progress was not written"
            )
            return 128 + stop.signum
        except OptionError as exc:
            flag = OPTION_FLAGS.get(exc.field)
            _error(exc.for_setting(flag) if flag else one_line(exc))
            return EXIT_USAGE
        except OutputPlanError as exc:
            _error(
                f"-o {exc}" if args.output and str(exc).startswith(args.output) else one_line(exc)
            )
            return EXIT_USAGE
        except Exception as exc:  # noqa: BLE001 - setup errors (preset, model, device): one line
            if args.debug:
                traceback.print_exc()
            _error(one_line(exc))
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
    if not args.cluster and (args.workers is not None or args.cluster_address):
        _error("--workers and --cluster-address go with --cluster")
        return EXIT_USAGE
    if args.workers is not None and args.workers < 1:
        _error(f"--workers must be 1 or more, got {args.workers}")
        return EXIT_USAGE
    if args.cluster:
        from .core.cluster import import_ray

        import_ray()  # before anything else: without Ray, say which extra to install

    from .core.presets import build_options

    options = build_options(
        args.preset,
        # on a cluster each worker resolves "auto" on its own node
        resolve=not args.cluster,
        **{field: getattr(args, _dest(flag)) for field, flag in OPTION_FLAGS.items()},
    )

    found = find_files(args)
    if found.ours:
        count = len(found.ours)
        _note(
            f"left out {count} image{'s' * (count != 1)} this tool wrote earlier "
            "(name a file to upscale it again)"
        )
    if not found.files:
        for spec in found.missing:
            _error(f"{spec}: no such file, folder or matching image")
        if not found.missing:
            _note("nothing to upscale")
        return EXIT_FAILED if found.missing else EXIT_OK

    plan(args, found.files, options.target_scale or 1)  # usage errors before a model loads
    if args.cluster:
        return _upscale_on_cluster(args, options, found.files, found.missing)
    descriptor = _load(args.model, options.device, args.scale)
    plans = plan(args, found.files, options.target_scale or descriptor.scale)
    return _upscale_all(args, options, descriptor, plans, found.missing)


def _dest(flag: str) -> str:
    return {"--scale": "scale", "--alpha": "alpha"}.get(flag, flag[2:])


def _load(model: str | None, device: str, scale: float | None = None):
    """The model descriptor for ``--model`` (a path or a shipped name; None: the default, the
    shipped model of scale ``--scale`` when there is one)."""
    from .core.loading import load_model

    return load_model(_model_path(model, scale), device=device)


def _model_path(model: str | None, scale: float | None) -> Path:
    from .core.zoo import resolve_model

    native = int(scale) if scale is not None and float(scale).is_integer() else None
    return resolve_model(model, scale=native)


def _upscale_all(args, options, descriptor, plans, missing) -> int:
    from tqdm import tqdm

    from .core.batch import BatchItem, upscale_files

    failures: list[tuple[str, str]] = [
        (s, "no such file, folder or matching image") for s in missing
    ]
    for spec, reason in failures:
        _error(f"{spec}: {reason}")
    written: list[Path] = []
    skipped: list[Path] = []
    started = time.perf_counter()
    show = not args.quiet
    several = len(plans) > 1
    files_bar = tqdm(total=len(plans), unit="file", disable=not show or not several, position=0)

    def failed(file: Path, exc: BaseException) -> None:
        if args.debug:
            traceback.print_exception(exc)
        reason = one_line(exc)
        failures.append((str(file), reason))
        _error(f"{file}: {reason}" if str(file) not in reason else reason)

    items = []
    for plan_item in plans:
        if plan_item.problem is not None:
            failed(plan_item.input.path, OutputPlanError(plan_item.problem))
            files_bar.update(1)
        elif plan_item.skip:
            skipped.append(plan_item.output)
            files_bar.update(1)
        else:
            items.append(BatchItem(plan_item.input.path, plan_item.output))

    bars: list[_Progress] = []

    def on_start(item: BatchItem) -> _Progress:
        # the previous file's model work is over (its file is being written meanwhile)
        for bar in bars:
            bar.close()
        bars[:] = [_Progress(item.input_path.name, show, position=int(several))]
        return bars[0]

    # the next file is read and the last one written while the model works (core.batch)
    outcomes = upscale_files(
        descriptor,
        items,
        options,
        format=args.format,
        quality=args.quality,
        overwrite=args.overwrite,
        max_pixels=_max_pixels(args),
        on_start=on_start,
    )
    try:
        for outcome in outcomes:
            if outcome.error is not None:
                failed(outcome.item.input_path, outcome.error)
            else:
                assert outcome.result is not None
                written.append(outcome.result.output_path)
                for note in outcome.result.notes:
                    _note(f"{outcome.result.output_path.name}: {note}")
            files_bar.update(1)
    finally:
        outcomes.close()  # an interrupt: the file being written in the background is finished
        for bar in bars:
            bar.close()
        files_bar.close()
    return _summary(written, skipped, failures, time.perf_counter() - started)


def _summary(
    written: list[Path], skipped: list[Path], failures: list[tuple[str, str]], seconds: float
) -> int:
    """Print what a run did, every failure on its own line; the exit code."""
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


def _upscale_on_cluster(args, options, files, missing) -> int:
    """``--cluster``: the same plans, the same ``upscale_file`` per image, run by the workers of
    a Ray cluster (``core.cluster``); failures and the summary as in the loop above."""
    from tqdm import tqdm

    from .core.cluster import connect, plan_workers, upscale_on_cluster
    from .core.errors import ClusterError
    from .core.loading import model_from_state_dict, read_state_dict

    path = _model_path(args.model, args.scale)
    state_dict = read_state_dict(path)
    scale = model_from_state_dict(state_dict, path=path).scale  # a bad model fails here, once
    plans = plan(args, files, options.target_scale or scale)

    failures = [(s, "no such file, folder or matching image") for s in missing]
    for spec, reason in failures:
        _error(f"{spec}: {reason}")
    for item in plans:
        if item.problem is not None:
            file = str(item.input.path)
            failures.append((file, item.problem))
            _error(f"{file}: {item.problem}" if file not in item.problem else item.problem)
    skipped = [item.output for item in plans if item.skip]
    todo = [item for item in plans if item.to_do]
    written: list[Path] = []
    started = time.perf_counter()
    if not todo:  # all done before (a rerun with --skip-existing): no cluster to reach
        return _summary(written, skipped, failures, time.perf_counter() - started)
    with connect(args.cluster_address) as cluster:
        pool = plan_workers(cluster, options.device, args.workers)
        if not args.quiet:
            _note(f"{cluster.describe()}; {pool.describe()}")
        bar = tqdm(total=len(todo), unit="image", disable=args.quiet or not todo, smoothing=0.1)
        done: set[int] = set()
        try:
            for result in upscale_on_cluster(
                plans,
                state_dict,
                options,
                pool,
                model_name=str(path),
                format=args.format,
                quality=args.quality,
                overwrite=args.overwrite,
                max_pixels=_max_pixels(args),
            ):
                item = plans[result.index]
                done.add(result.index)
                bar.update(1)
                if result.error is not None:
                    file, reason = str(item.input.path), _as_given(result.error, item)
                    failures.append((file, reason))
                    _error(f"{file}: {reason}" if file not in reason else reason)
                    continue
                written.append(item.output)
                for note in result.notes:
                    _note(f"{item.output.name}: {note}")
        except ClusterError as exc:
            _error(one_line(exc))
            for index, item in enumerate(plans):
                if item.to_do and index not in done:
                    failures.append((str(item.input.path), "not done: the cluster job stopped"))
        finally:
            bar.close()
    return _summary(written, skipped, failures, time.perf_counter() - started)


def _as_given(reason: str, item) -> str:
    """A worker's message with the absolute paths it was given spelled as the user gave them."""
    for path in (item.input.path, item.output):
        reason = reason.replace(str(path.absolute()), str(path))
    return reason


def _max_pixels(args: argparse.Namespace) -> int | None:
    from .core.imageio import DEFAULT_MAX_PIXELS

    if args.max_pixels is None:
        return DEFAULT_MAX_PIXELS
    return args.max_pixels or None  # 0: no limit


class _Progress:
    """A file's progress bar, shown from the first report on (when its total is known), so it
    never starts as a bare "0it"; it counts the engine's steps (tiles, or passes over a tile)."""

    def __init__(self, name: str, show: bool, position: int) -> None:
        self._name, self._show, self._position = name[:30], show, position
        self._bar = None

    def __call__(self, done: int, total: int) -> None:
        if not self._show:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                desc=self._name,
                total=total,
                leave=False,
                position=self._position,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n}/{total} [{elapsed}<{remaining}]",
            )
        self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


if __name__ == "__main__":
    sys.exit(main())
