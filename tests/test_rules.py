"""The rules every face shares (core.inputs, core.outputs, core.errors, core.model_info,
core.color): which files are inputs, where outputs go, how an error and a model are told."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from nexus_upscaler.core.color import LUMA_WEIGHTS, luma
from nexus_upscaler.core.errors import (
    ImageReadError,
    OutputPlanError,
    PresetError,
    error_reason,
    one_line,
)
from nexus_upscaler.core.imageio import write_image
from nexus_upscaler.core.inputs import IMAGE_EXTENSIONS, InputFile, find_inputs
from nexus_upscaler.core.model_info import format_count, parameter_count
from nexus_upscaler.core.outputs import default_suffix, plan_output_path, plan_outputs
from PIL import Image


def png(path: Path, ours: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((4, 5, 3), np.uint8)
    if ours:
        write_image(path, pixels)
    else:
        Image.fromarray(pixels).save(path)
    return path


def names(found) -> list[str]:
    return [f.path.name for f in found.files]


def test_a_folder_yields_images_but_no_hidden_files_no_outputs_and_no_app_output_folder(tmp_path):
    root = tmp_path / "in"
    png(root / "a.png")
    png(root / "b.JPE")  # every extension we read, any case
    png(root / "c.gif")
    png(root / ".hidden.png")
    png(root / ".a.png.1234abcd.png")  # hidden, as our temporary files are
    png(root / "a_x4.png", ours=True)  # an earlier output
    png(root / "upscaled" / "a_upscaled.png")  # the app's output folder
    png(root / "sub" / "d.webp")
    png(root / ".git" / "e.png")
    (root / "notes.txt").write_text("not an image")
    flat = find_inputs([root])
    assert names(flat) == ["a.png", "b.JPE", "c.gif"]
    assert [p.name for p in flat.ours] == ["a_x4.png"]
    deep = find_inputs([root], recursive=True)
    assert names(deep) == ["a.png", "b.JPE", "c.gif", "d.webp"]
    assert deep.files[-1].relative_folder == Path("sub") and not deep.files[-1].explicit
    # the folder itself may be called "upscaled": only folders below the one named are left out
    assert names(find_inputs([root / "upscaled"])) == ["a_upscaled.png"]


def test_a_file_named_explicitly_is_an_input_whatever_it_is(tmp_path):
    ours = png(tmp_path / "a_x4.png", ours=True)
    (tmp_path / "odd.dat").write_bytes(b"?")
    found = find_inputs([ours, tmp_path / "odd.dat", tmp_path / "a_x4.png", "nothing*.png", "gone"])
    assert names(found) == ["a_x4.png", "odd.dat"]  # each file once
    assert all(f.explicit for f in found.files)
    assert found.missing == ["nothing*.png", "gone"]


def test_a_folder_of_our_outputs_only_is_not_missing(tmp_path):
    """Pointing at the output folder of an earlier run finds nothing to do; it is not a typo."""
    png(tmp_path / "out" / "a_x4.png", ours=True)
    found = find_inputs([tmp_path / "out", str(tmp_path / "out" / "*.png")])
    assert found.files == [] and found.missing == []
    assert [p.name for p in found.ours] == ["a_x4.png"]  # once, though two specs matched it


def test_globs_are_scans(tmp_path):
    png(tmp_path / "a.png")
    png(tmp_path / "a_x2.png", ours=True)
    png(tmp_path / "deep" / "b.png")
    assert names(find_inputs([str(tmp_path / "*.png")])) == ["a.png"]
    assert names(find_inputs([str(tmp_path / "**" / "*.png")], recursive=True)) == [
        "a.png",
        "b.png",
    ]
    assert {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"} <= IMAGE_EXTENSIONS


def test_outputs_follow_the_input_and_keep_subfolders(tmp_path):
    found = find_inputs([png(tmp_path / "in" / "a.jpeg").parent], recursive=True)
    png(tmp_path / "in" / "sub" / "b.tif")
    found = find_inputs([tmp_path / "in"], recursive=True)
    beside = plan_outputs(found.files, suffix="_x4")
    assert [p.output for p in beside] == [
        tmp_path / "in" / "a_x4.jpeg",
        tmp_path / "in" / "sub" / "b_x4.tif",
    ]
    tree = plan_outputs(found.files, output=tmp_path / "out", suffix="_x4", format="png")
    assert [p.output for p in tree] == [
        tmp_path / "out" / "a_x4.png",
        tmp_path / "out" / "sub" / "b_x4.png",
    ]
    app = plan_outputs(found.files, subfolder="upscaled", suffix="_up", format="jpeg")
    assert app[1].output == tmp_path / "in" / "sub" / "upscaled" / "b_up.jpg"
    assert plan_output_path(tmp_path / "x.bmp", None, default_suffix(1.5)).name == "x_x1.5.png"


def test_collisions_fail_rename_or_skip_as_the_caller_says(tmp_path):
    a, b = png(tmp_path / "a.png"), png(tmp_path / "a.jpg")
    png(tmp_path / "out" / "a_x2.png")  # exists
    for policy in ("fail", "overwrite", "skip"):
        first, second = plan_outputs(
            [a, b], output=tmp_path / "out", suffix="_x2", format="png", existing=policy
        )
        assert first.output == tmp_path / "out" / "a_x2.png"
        assert first.skip == (policy == "skip") and first.problem is None
        assert second.problem.endswith("another input of this run writes this file too")
    first, second = plan_outputs(
        [a, b], output=tmp_path / "out", suffix="_x2", format="png", existing="rename"
    )
    assert (first.output.name, second.output.name) == ("a_x2-2.png", "a_x2-3.png")
    assert first.to_do and second.to_do


def test_an_output_is_never_an_input_or_a_protected_file(tmp_path):
    a, named_like_ours = png(tmp_path / "a.png"), png(tmp_path / "a_x2.png")
    [plan_a, plan_b] = plan_outputs([a, named_like_ours], suffix="_x2", existing="overwrite")
    assert plan_a.problem == f"{named_like_ours}: is an input file; refusing to overwrite an input"
    assert plan_b.to_do
    [renamed] = plan_outputs(
        [a], suffix="_x2", existing="rename", protected=[tmp_path / "a_x2.png"]
    )
    assert renamed.output.name == "a_x2-2.png"
    [itself] = plan_outputs([a], output=a, suffix="", existing="overwrite")
    assert "refusing to overwrite an input" in itself.problem


def test_a_named_output_file(tmp_path):
    a, b = png(tmp_path / "a.png"), png(tmp_path / "b.png")
    [one] = plan_outputs([a], output=tmp_path / "big.webp", suffix="_x2")
    assert one.output == tmp_path / "big.webp"
    with pytest.raises(OutputPlanError, match="several inputs"):
        plan_outputs([a, b], output=tmp_path / "big.webp", suffix="_x2")
    with pytest.raises(OutputPlanError, match="names a PNG file but the format asked for is JPG"):
        plan_outputs([a], output=tmp_path / "named.png", suffix="", format="jpeg")
    with pytest.raises(OutputPlanError, match="unknown output format 'gif'"):
        plan_outputs([a], suffix="", format="gif")
    [folder] = plan_outputs([InputFile(a, tmp_path)], output=f"{tmp_path / 'o.png'}/", suffix="_x2")
    assert folder.output == tmp_path / "o.png" / "a_x2.png"  # a trailing separator: a folder


def test_one_line_errors():
    assert one_line(ImageReadError("/x/a.png", "unreadable\nmore detail")) == "/x/a.png: unreadable"
    assert error_reason(ImageReadError("/x/a.png", "unreadable")) == "unreadable"
    assert one_line(KeyError("tile")) == "KeyError: 'tile'"
    assert error_reason(RuntimeError("")) == "RuntimeError"
    assert one_line(PresetError("bad")) == "bad"


def test_parameter_counts_are_written_one_way():
    import torch

    assert [format_count(n) for n in (870, 2_300, 207_112, 2_071_234, 1_250_000_000)] == [
        "870",
        "2.3K",
        "207.1K",
        "2.07M",
        "1.25B",
    ]
    conv = torch.nn.Conv2d(3, 4, 3)
    assert parameter_count(conv) == 3 * 4 * 9 + 4
    assert parameter_count(type("Descriptor", (), {"model": conv})()) == 112


def test_luma_is_bt601():
    assert LUMA_WEIGHTS == (0.299, 0.587, 0.114)
    pixel = np.array([[[255, 0, 0], [0, 65535, 0]]], np.uint16)
    assert luma(pixel)[0, :, 0].tolist() == [76, 38469]
