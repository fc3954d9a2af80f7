"""The ComfyUI nodes: their logic everywhere, their classes and a real server where ComfyUI is.

CI has no ComfyUI, so the node logic (``comfy_nodes.logic``) is tested with real spandrel
descriptors, real safetensors files and real tensors. The node classes are tested when
``COMFYUI_PATH`` points at a ComfyUI checkout importable from this interpreter (run pytest with
ComfyUI's own Python). The end-to-end test additionally starts that ComfyUI as a server and
submits the shipped workflows through its HTTP API; it needs ``NEXUS_COMFYUI_SERVER=1``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
import torch
from nexus_upscaler.comfy_nodes import logic
from nexus_upscaler.core import PresetError, UpscaleCancelled, engine, save_model
from nexus_upscaler.core.archs import nexus_tiny
from spandrel.architectures.Compact import Compact as SRVGGNetCompact

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "example_workflows"  # UI format, what ComfyUI's template browser opens
API_WORKFLOWS = ROOT / "api_workflows"  # the same graphs in API format, for POST /prompt


def _tiny_nexus(scale: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    return nexus_tiny(
        scale=scale, embed_dim=16, depths=(1,), num_heads=2, window_size=4, num_feat=8
    ).eval()


@pytest.fixture(scope="module")
def nexus_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "nexus_tiny_x4.safetensors"
    save_model(_tiny_nexus(), path)
    return path


@pytest.fixture(scope="module")
def compact_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4)
    path = tmp_path_factory.mktemp("models") / "compact_x4.safetensors"
    save_file(model.state_dict(), str(path))
    return path


@pytest.fixture()
def model(compact_path: Path):
    """A x4 model for the node logic: spandrel's Compact, fast and independent of detection."""
    return logic.load_upscale_model(compact_path)


def _image(batch: int = 1, height: int = 12, width: int = 10, channels: int = 3) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(batch, height, width, channels)  # ComfyUI IMAGE: (B, H, W, C)


# --- loading and info --------------------------------------------------------------------------


def test_loader_reads_our_checkpoint_and_describes_it(nexus_path):
    nexus = logic.load_upscale_model(nexus_path)
    assert nexus.scale == 4
    assert nexus.dtype == torch.float32 and nexus.device.type == "cpu"
    info = logic.model_info(nexus)
    params = logic.count_parameters(nexus)
    assert params == sum(p.numel() for p in _tiny_nexus().parameters())
    assert info.startswith(f"{nexus.architecture.name} x4 | ")
    assert re.search(r"\| [\d.]+[KM]? parameters \|", info)
    assert "fp32" in info and "3 -> 3 channels" in info


def test_loader_offers_shipped_models_first_and_loads_them(nexus_path, tmp_path, monkeypatch):
    """The NEXUS loader lists the models in weights/ by name, default first, before ComfyUI's."""
    import shutil

    from nexus_upscaler.core import zoo

    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(nexus_path, weights / "nexus-x4.safetensors")
    shutil.copy(nexus_path, weights / "another-x4.safetensors")
    monkeypatch.setenv(zoo.WEIGHTS_DIR_ENV, str(weights))

    choices = logic.model_choices(["4x-UltraSharp.pth"])
    assert choices == ["NEXUS/nexus-x4", "NEXUS/another-x4", "4x-UltraSharp.pth"]
    assert logic.shipped_model_path("4x-UltraSharp.pth") is None
    path = logic.shipped_model_path(choices[0])
    assert Path(path) == weights / "nexus-x4.safetensors"
    assert logic.load_upscale_model(path).scale == 4


def test_workflows_saved_with_the_old_shipped_name_still_load(nexus_path, tmp_path, monkeypatch):
    from nexus_upscaler.core import zoo

    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "nexus-x4.safetensors").write_bytes(nexus_path.read_bytes())
    monkeypatch.setenv(zoo.WEIGHTS_DIR_ENV, str(weights))
    old = logic.shipped_model_path("nexus-x4 (shipped with NEXUS)")
    assert (
        old == logic.shipped_model_path("NEXUS/nexus-x4") == str(weights / "nexus-x4.safetensors")
    )


@pytest.mark.parametrize(
    "choice", ["NEXUS/no-such-model", "NEXUS/../weights/nexus-x4.safetensors", "NEXUS/" + "/etc"]
)
def test_a_shipped_name_reaches_only_a_shipped_model(choice, nexus_path, tmp_path, monkeypatch):
    from nexus_upscaler.core import ModelNotFoundError, zoo

    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "nexus-x4.safetensors").write_bytes(nexus_path.read_bytes())
    monkeypatch.setenv(zoo.WEIGHTS_DIR_ENV, str(weights))
    with pytest.raises(ModelNotFoundError, match="shipped: NEXUS/nexus-x4"):
        logic.shipped_model_path(choice)


def test_loader_reads_any_spandrel_checkpoint(compact_path):
    descriptor = logic.load_upscale_model(compact_path)
    info = logic.model_info(descriptor)
    assert info.startswith("RealESRGAN Compact x4") or " x4 | " in info
    assert "fp16" in info  # Compact supports half precision


# --- options -----------------------------------------------------------------------------------


def test_presets_offered_with_the_default_first():
    names = logic.preset_names()
    assert names[0] == "balanced"
    assert {"fast", "quality", "low-memory", "cpu"} <= set(names)


def test_sentinels_keep_the_preset_and_overrides_win():
    kept = logic.build_options("quality", device="cpu")
    assert kept.tta is True and kept.precision == "fp32" and kept.overlap == 64
    assert kept.target_scale is None and kept.device == "cpu"

    changed = logic.build_options(
        "quality", device="cpu", tile=64, overlap=8, precision="bf16", tta="off", scale_by=1.5
    )
    assert changed.tile == 64 and changed.overlap == 8
    assert changed.precision == "bf16" and changed.tta is False
    assert changed.target_scale == 1.5


def test_comfy_device_used_unless_the_preset_names_one():
    # "balanced" says device "auto": ComfyUI's choice wins (here a made-up name it could pass).
    assert logic.build_options("balanced", device="cuda:1").device == "cuda:1"
    # "cpu" says device "cpu" explicitly: the user picked it, so it stays.
    assert logic.build_options("cpu", device="cuda:1").device == "cpu"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"preset": "no-such-preset"}, PresetError),
        ({"preset": "balanced", "tile": 4}, PresetError),  # under core's minimum tile
        ({"preset": "balanced", "tile": -8}, ValueError),
        ({"preset": "balanced", "precision": "fp8"}, ValueError),
        ({"preset": "balanced", "scale_by": -1.0}, ValueError),
    ],
)
def test_bad_options_are_refused(kwargs, error):
    with pytest.raises(error):
        logic.build_options(device="cpu", **kwargs)


# --- upscaling ---------------------------------------------------------------------------------


def test_batch_upscale_matches_the_model(model):
    images = _image(batch=2)
    options = logic.build_options("balanced", device="cpu", precision="fp32")
    out, mask = logic.upscale_images(model, images, options)
    assert out.shape == (2, 48, 40, 3) and out.dtype == torch.float32
    assert mask.shape == (2, 48, 40) and torch.count_nonzero(mask) == 0  # opaque
    with torch.no_grad():
        expected = model(images.movedim(-1, 1)).clamp(0, 1).movedim(1, -1)
    torch.testing.assert_close(out, expected, atol=2e-3, rtol=0)


def test_tiles_tick_progress_and_seams_stay_invisible(model):
    images = _image(height=100, width=90)
    calls: list[tuple[int, int]] = []
    whole = logic.build_options("balanced", device="cpu", precision="fp32")
    tiled = logic.build_options("balanced", device="cpu", precision="fp32", tile=64, overlap=8)
    ref, _ = logic.upscale_images(model, images, whole)
    out, _ = logic.upscale_images(model, images, tiled, progress=lambda d, t: calls.append((d, t)))
    total = calls[-1][1]
    assert total > 1 and calls[-1][0] == total
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert (out - ref).abs().mean() < 0.02


def test_interrupt_from_the_progress_callback_stops_and_restores_the_model(model):
    class Interrupted(Exception):  # stands in for ComfyUI's InterruptProcessingException
        pass

    def progress(done: int, total: int) -> None:
        raise Interrupted

    options = logic.build_options("balanced", device="cpu", precision="bf16", tile=16, overlap=4)
    with pytest.raises(Interrupted):
        logic.upscale_images(model, _image(height=40, width=36), options, progress=progress)
    assert model.dtype == torch.float32 and model.device.type == "cpu"


def test_cancel_token_stops_before_the_first_tile(model):
    token = engine.CancelToken()
    token.cancel()
    calls = []
    options = logic.build_options("balanced", device="cpu", tile=16, overlap=4)
    with pytest.raises(UpscaleCancelled):
        logic.upscale_images(
            model, _image(), options, progress=lambda *a: calls.append(a), cancel=token
        )
    assert calls == []


def test_reduced_precision_leaves_the_shared_model_in_fp32(model):
    options = logic.build_options("balanced", device="cpu", precision="bf16")
    out, _ = logic.upscale_images(model, _image(), options)
    assert out.dtype == torch.float32 and out.shape == (1, 48, 40, 3)
    assert model.dtype == torch.float32  # the built-in node, fed the same model, needs fp32


@pytest.mark.parametrize(("factor", "size"), [(2.0, (24, 20)), (1.5, (18, 15)), (0.0, (48, 40))])
def test_upscale_by_factor_with_a_x4_model(model, factor, size):
    options = logic.build_options("balanced", device="cpu", scale_by=factor)
    out, mask = logic.upscale_images(model, _image(), options)
    assert out.shape[1:3] == size and mask.shape[1:] == size


# --- alpha -------------------------------------------------------------------------------------


def _half_transparent_mask(height: int = 12, width: int = 10) -> torch.Tensor:
    mask = torch.zeros(1, height, width)
    mask[:, :, : width // 2] = 1.0  # ComfyUI: 1 = transparent (Load Image: 1 - alpha)
    return mask


def test_mask_is_upscaled_with_the_image(model):
    options = logic.build_options("balanced", device="cpu", alpha_mode="resize")
    out, mask = logic.upscale_images(model, _image(), options, mask=_half_transparent_mask())
    assert out.shape == (1, 48, 40, 3) and mask.shape == (1, 48, 40)
    assert mask[:, :, :16].min() > 0.95  # the transparent half stays transparent
    assert mask[:, :, 24:].max() < 0.05  # the opaque half stays opaque


def test_alpha_through_the_model_keeps_its_layout(model):
    options = logic.build_options("balanced", device="cpu", alpha_mode="model")
    _, mask = logic.upscale_images(model, _image(), options, mask=_half_transparent_mask())
    assert mask.shape == (1, 48, 40)
    assert mask[:, :, :16].mean() > mask[:, :, 24:].mean() + 0.5


def test_rgba_image_alpha_comes_out_as_the_mask(model):
    images = _image(channels=4)
    images[..., 3] = 1.0 - _half_transparent_mask()[0]
    options = logic.build_options("balanced", device="cpu", alpha_mode="resize")
    out, mask = logic.upscale_images(model, images, options)
    assert out.shape == (1, 48, 40, 3)
    assert mask[:, :, :16].min() > 0.95 and mask[:, :, 24:].max() < 0.05


@pytest.mark.parametrize(
    ("mask", "value"),
    [
        (torch.zeros(64, 64), 0.0),  # "Load Image"'s placeholder for an RGB file
        (torch.zeros(1, 12, 10), 0.0),  # all opaque
        (torch.ones(2, 12, 10), 1.0),  # all transparent
        (None, 0.0),  # an RGBA image whose alpha is all opaque (4th channel)
    ],
    ids=["placeholder", "all-zero", "all-one", "opaque-rgba"],
)
def test_a_mask_with_nothing_to_say_costs_no_model_pass(model, mask, value):
    images = _image(batch=2)
    if mask is None:
        images = torch.cat([images, torch.ones(2, 12, 10, 1)], dim=-1)
    options = logic.build_options("balanced", device="cpu", precision="fp32", alpha_mode="model")
    plain_calls: list[tuple[int, int]] = []
    calls: list[tuple[int, int]] = []
    plain, _ = logic.upscale_images(
        model, images[..., :3], options, progress=lambda *a: plain_calls.append(a)
    )
    out, out_mask = logic.upscale_images(
        model, images, options, mask=mask, progress=lambda *a: calls.append(a)
    )
    assert calls[-1][1] == plain_calls[-1][1]  # as many passes as without a mask
    assert torch.equal(out, plain)
    assert out_mask.shape == (2, 48, 40)
    assert torch.all(out_mask == value)  # exactly: opaque pixels are saved as 255, not 254


def test_one_constant_mask_per_image_keeps_each_value(model):
    mask = torch.stack([torch.zeros(12, 10), torch.full((12, 10), 0.25)])
    options = logic.build_options("balanced", device="cpu", alpha_mode="model")
    _, out_mask = logic.upscale_images(model, _image(batch=2), options, mask=mask)
    assert torch.all(out_mask[0] == 0.0) and torch.all(out_mask[1] == 0.25)


def test_mask_batch_must_match(model):
    with pytest.raises(ValueError, match="mask batch"):
        logic.mask_to_alpha(torch.zeros(3, 8, 8), batch=2, height=8, width=8)
    options = logic.build_options("balanced", device="cpu")
    for mask in (torch.zeros(3, 12, 10), _half_transparent_mask().expand(3, 12, 10)):
        with pytest.raises(ValueError, match="mask batch"):
            logic.upscale_images(model, _image(batch=2), options, mask=mask)


def test_memory_estimate_grows_with_the_image(model):
    small = logic.memory_estimate(model, _image(height=16, width=16))
    large = logic.memory_estimate(model, _image(height=256, width=256))
    assert large > small > sum(p.numel() * 4 for p in model.model.parameters())


# --- packaging: requirements, workflows --------------------------------------------------------


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_requirements_txt_matches_pyproject():
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    requirements = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    project = _pyproject()
    assert requirements == project["project"]["dependencies"]
    comfy = project["tool"]["comfy"]
    assert comfy["PublisherId"] and comfy["DisplayName"]
    assert project["project"]["urls"]["Repository"].startswith("https://")


def _api_workflows() -> list[Path]:
    return sorted(API_WORKFLOWS.glob("*.api.json"))


def _templates() -> list[Path]:
    return sorted(TEMPLATES.glob("*.json"))


OUR_WIDGETS = {
    "preset": lambda v: v in logic.preset_names(),
    "precision": lambda v: v in logic.PRECISION_CHOICES,
    "tta": lambda v: v in logic.TTA_CHOICES,
    "alpha_mode": lambda v: v in logic.ALPHA_CHOICES,
}

TEMPLATE_FOLDERS = ("example_workflows", "example", "examples", "workflow", "workflows")
"""Where ComfyUI looks for a custom node's templates, in its order (app/custom_node_manager.py):
it lists ``*.json`` of all of them and serves files from the first that exists."""


def test_templates_are_where_comfyui_serves_them():
    present = [name for name in TEMPLATE_FOLDERS if (ROOT / name).is_dir()]
    assert present[0] == "example_workflows"
    for name in present[1:]:  # nothing else gets listed as a template
        assert not list((ROOT / name).glob("*.json")), f"{name}/ holds JSON ComfyUI would list"
    files = sorted(p.name for p in TEMPLATES.iterdir())
    stems = {p.stem for p in _templates()}
    assert len(stems) >= 3
    # each template has its thumbnail, <name>.jpg (the frontend asks for exactly that name)
    assert files == sorted([f"{s}.json" for s in stems] + [f"{s}.jpg" for s in stems])
    for stem in stems:
        from PIL import Image

        with Image.open(TEMPLATES / f"{stem}.jpg") as thumbnail:
            assert thumbnail.format == "JPEG" and min(thumbnail.size) >= 256


@pytest.mark.parametrize("path", _templates(), ids=lambda p: p.name)
def test_template_is_a_ui_workflow_that_runs_as_shipped(path):
    ui = json.loads(path.read_text(encoding="utf-8"))
    assert {"nodes", "links", "version"} <= set(ui)  # UI format: the browser can open it
    assert not any("class_type" in v for v in ui.values() if isinstance(v, dict))
    shipped = logic.model_choices([])  # what our loader offers with no files of the user's
    loaders = [n for n in ui["nodes"] if n["type"] == "NEXUSUpscaleModelLoader"]
    assert loaders
    for node in ui["nodes"]:
        assert node["type"] != "UpscaleModelLoader", "its list holds only the user's files"
        if node["type"] == "NEXUSUpscaleModelLoader":
            assert node["widgets_values"][0] in shipped
        if node["type"] == "LoadImage":  # ComfyUI ships input/example.png
            assert node["widgets_values"][0] == "example.png"


# frontend 1.27 (litegraph): title bar 30 px above pos; a slot row 20 px; a widget 20 + 4 px,
# plus 8; an image preview widget at least 220 + 4 px; PreviewAny's text needs about 60 px
TITLE, SLOT, WIDGET, PREVIEW = 30, 20, 24, 224
SHOWS_IMAGE = {"LoadImage", "SaveImage", "PreviewImage"}
EXTRA = {"PreviewAny": 64}


def _min_height(node: dict) -> int:
    slots = max(len(node.get("inputs", [])), len(node.get("outputs", [])))
    widgets = len(node.get("widgets_values") or [])
    height = slots * SLOT + widgets * WIDGET + (8 if widgets else 0)
    return height + (PREVIEW if node["type"] in SHOWS_IMAGE else 0) + EXTRA.get(node["type"], 0)


@pytest.mark.parametrize("path", _templates(), ids=lambda p: p.name)
def test_template_nodes_keep_clear_of_each_other_with_previews_shown(path):
    nodes = json.loads(path.read_text(encoding="utf-8"))["nodes"]
    boxes = {}
    for node in nodes:
        (x, y), (w, h) = node["pos"], node["size"]
        assert h >= _min_height(node), f"{node['title']} grows past its size"
        boxes[node["title"]] = (x, y - TITLE, x + w, y + h)
    titles = list(boxes)
    for i, a in enumerate(titles):
        for b in titles[i + 1 :]:
            ax0, ay0, ax1, ay1 = boxes[a]
            bx0, by0, bx1, by1 = boxes[b]
            apart = ax1 + 10 <= bx0 or bx1 + 10 <= ax0 or ay1 + 10 <= by0 or by1 + 10 <= ay0
            assert apart, f"{path.name}: {a!r} and {b!r} overlap"


@pytest.mark.parametrize("path", _api_workflows(), ids=lambda p: p.name)
def test_api_workflow_is_wired_and_valid(path):
    prompt = json.loads(path.read_text(encoding="utf-8"))
    ours = [n for n in prompt.values() if n["class_type"].startswith("NEXUS")]
    assert ours
    for node in prompt.values():
        for name, value in node["inputs"].items():
            if isinstance(value, list):  # a link: [source node id, output index]
                assert value[0] in prompt, f"{path.name}: {name} links to missing {value[0]}"
            elif node["class_type"].startswith("NEXUS") and name in OUR_WIDGETS:
                assert OUR_WIDGETS[name](value), f"{path.name}: {name}={value!r}"
            elif name == "model_name":
                assert value in logic.model_choices([])


def test_every_template_has_its_api_twin():
    assert [p.name.replace(".api.json", "") for p in _api_workflows()] == [
        p.stem for p in _templates()
    ]


@pytest.mark.parametrize("path", _api_workflows(), ids=lambda p: p.name)
def test_ui_workflow_has_the_same_graph(path):
    prompt = json.loads(path.read_text(encoding="utf-8"))
    ui = json.loads((TEMPLATES / path.name.replace(".api.json", ".json")).read_text("utf-8"))
    assert {str(n["id"]): n["type"] for n in ui["nodes"]} == {
        k: v["class_type"] for k, v in prompt.items()
    }
    ui_links = {(str(a), s, str(b), d) for _, a, s, b, d, _ in ui["links"]}
    api_links = set()
    for target, node in prompt.items():
        slots = {i["name"]: n for n, i in enumerate(_ui_node(ui, target)["inputs"])}
        for name, value in node["inputs"].items():
            if isinstance(value, list):
                api_links.add((value[0], value[1], target, slots[name]))
    assert ui_links == api_links
    assert ui["last_node_id"] == max(int(k) for k in prompt)
    for node in ui["nodes"]:  # the same widget values, in the schema's order
        widgets = [v for v in prompt[str(node["id"])]["inputs"].values() if not isinstance(v, list)]
        assert widgets == node["widgets_values"][: len(widgets)]


def _ui_node(ui: dict, node_id: str) -> dict:
    return next(n for n in ui["nodes"] if str(n["id"]) == node_id)


# --- the node classes, inside ComfyUI ----------------------------------------------------------


@pytest.fixture(scope="module")
def comfy():
    """ComfyUI's modules, imported from ``COMFYUI_PATH`` on the CPU; skips where there are none."""
    path = os.environ.get("COMFYUI_PATH")
    if not path:
        pytest.skip("COMFYUI_PATH is not set (CI has no ComfyUI)")
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        import comfy.cli_args

        comfy.cli_args.args.cpu = True  # before model_management reads it
        import comfy.model_management
        import comfy.utils
        import folder_paths
        from comfy_api.v0_0_2 import io  # noqa: F401
    except ImportError as e:
        pytest.skip(f"ComfyUI at {path} is not importable from this Python: {e}")
    from nexus_upscaler.comfy_nodes import nodes

    return {"nodes": nodes, "folder_paths": folder_paths, "comfy": comfy}


@pytest.fixture()
def model_folder(comfy, nexus_path, compact_path):
    folder_paths = comfy["folder_paths"]
    folder = nexus_path.parent
    (folder / compact_path.name).write_bytes(compact_path.read_bytes())
    folder_paths.add_model_folder_path("upscale_models", str(folder), is_default=True)
    return folder


def test_entrypoint_registers_nodes_and_our_architectures(comfy):
    import asyncio

    import spandrel
    from nexus_upscaler import comfy_entrypoint

    extension = asyncio.run(comfy_entrypoint())
    node_list = asyncio.run(extension.get_node_list())
    ids = [n.GET_SCHEMA().node_id for n in node_list]
    assert ids == ["NEXUSUpscaleModelLoader", "NEXUSUpscaleImage", "NEXUSUpscaleImageBy"]
    registered = {a.architecture.id for a in spandrel.MAIN_REGISTRY.architectures()}
    assert _tiny_nexus_arch_id() in registered


def _tiny_nexus_arch_id() -> str:
    from nexus_upscaler.core.loading import descriptor_from_state_dict

    return descriptor_from_state_dict(_tiny_nexus().state_dict()).architecture.id


def test_loader_node_lists_the_folder_and_feeds_the_builtin_node(comfy, model_folder):
    nodes, mm = comfy["nodes"], comfy["comfy"].model_management
    schema = nodes.NEXUSUpscaleModelLoader.GET_SCHEMA()
    assert "nexus_tiny_x4.safetensors" in schema.inputs[0].options
    out = nodes.NEXUSUpscaleModelLoader.execute("nexus_tiny_x4.safetensors")
    descriptor, info = out.args
    assert info == logic.model_info(descriptor)
    # what this ComfyUI offers: 0.3.64 has ModelPatcher (no CoreModelPatcher yet)
    patchers = comfy["comfy"].model_patcher
    expected = getattr(patchers, "CoreModelPatcher", None) or patchers.ModelPatcher
    assert type(descriptor.patcher) is expected and descriptor.patcher.model is descriptor.model
    assert descriptor.patcher.load_device == mm.get_torch_device()

    from comfy_extras.nodes_upscale_model import ImageUpscaleWithModel, UpscaleModelLoader

    builtin = ImageUpscaleWithModel.execute(descriptor, _image()).args[0]
    assert builtin.shape == (1, 48, 40, 3)
    # and the built-in loader opens our checkpoint (registered through the entrypoint) ...
    theirs = UpscaleModelLoader.execute("nexus_tiny_x4.safetensors").args[0]
    assert theirs.architecture.id == descriptor.architecture.id
    # ... for our upscale node, whatever it attached (0.3.64: nothing)
    image, _ = nodes.NEXUSUpscaleImage.execute(theirs, _image(), "balanced").args
    assert image.shape == (1, 48, 40, 3)


def test_model_management_places_and_frees_our_model(comfy, model_folder):
    nodes, mm = comfy["nodes"], comfy["comfy"].model_management
    descriptor = nodes.NEXUSUpscaleModelLoader.execute("nexus_tiny_x4.safetensors").args[0]

    def managed() -> bool:
        return any(loaded.model is descriptor.patcher for loaded in mm.current_loaded_models)

    first = nodes.NEXUSUpscaleImage.execute(descriptor, _image(), "balanced", precision="fp32")
    assert managed()  # loaded through load_models_gpu, so ComfyUI can unload it for others
    mm.unload_all_models()
    assert not managed()
    again = nodes.NEXUSUpscaleImage.execute(descriptor, _image(), "balanced", precision="fp32")
    torch.testing.assert_close(again.args[0], first.args[0])
    assert descriptor.dtype == torch.float32


def test_every_input_and_output_has_a_tooltip(comfy):
    for node in comfy["nodes"].NODES:
        schema = node.GET_SCHEMA()
        for item in [*schema.inputs, *schema.outputs]:
            name = getattr(item, "id", None) or item.display_name
            assert item.tooltip and len(item.tooltip) > 20, f"{schema.node_id}: {name}"


def test_loader_validates_current_and_old_shipped_names(comfy, model_folder):
    loader = comfy["nodes"].NEXUSUpscaleModelLoader
    shipped = logic.model_choices([])[0]
    assert shipped.startswith("NEXUS/")
    old = shipped.removeprefix("NEXUS/") + " (shipped with NEXUS)"
    assert loader.validate_inputs(shipped) is True
    assert loader.validate_inputs(old) is True  # saved by earlier versions
    assert loader.validate_inputs("nexus_tiny_x4.safetensors") is True
    assert "not in models/upscale_models" in loader.validate_inputs("missing.pth")
    assert "no such model ships" in loader.validate_inputs("NEXUS/missing")
    assert loader.execute(old).args[0].scale == loader.execute(shipped).args[0].scale


def test_upscale_node_ticks_progress_and_obeys_interrupt(comfy, model_folder):
    nodes, mm, utils = comfy["nodes"], comfy["comfy"].model_management, comfy["comfy"].utils
    descriptor = logic.load_upscale_model(model_folder / "nexus_tiny_x4.safetensors")
    ticks: list[tuple[int, int]] = []

    def hook(value, total, preview, node_id=None):
        mm.throw_exception_if_processing_interrupted()  # as ComfyUI's server hook does
        ticks.append((value, total))

    utils.set_progress_bar_global_hook(hook)
    try:
        image, mask = nodes.NEXUSUpscaleImage.execute(
            descriptor, _image(height=80, width=72), "balanced", tile=64, overlap=8
        ).args
        assert image.shape == (1, 320, 288, 3) and mask.shape == (1, 320, 288)
        assert len(ticks) > 1 and ticks[-1][0] == ticks[-1][1]

        image, _ = nodes.NEXUSUpscaleImageBy.execute(descriptor, _image(), "fast", 2.0).args
        assert image.shape == (1, 24, 20, 3)

        mm.interrupt_current_processing(True)
        with pytest.raises(mm.InterruptProcessingException):
            nodes.NEXUSUpscaleImage.execute(descriptor, _image(), "balanced")
        assert descriptor.dtype == torch.float32
    finally:
        mm.interrupt_current_processing(False)
        utils.set_progress_bar_global_hook(None)


# --- a real ComfyUI server, driven through its HTTP API ----------------------------------------

SERVER_REASON = "set COMFYUI_PATH and NEXUS_COMFYUI_SERVER=1 to start a real ComfyUI server"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(url: str, payload: dict | None = None) -> dict:
    import urllib.request

    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return json.loads(body) if body else {}


def _test_image(path: Path, size: tuple[int, int], transparent: bool = True) -> None:
    """A real photo (Set5 baby) cut to ``size``, its left half made transparent (RGBA PNG), or
    with ``transparent=False`` as it is (RGB PNG)."""
    from PIL import Image

    photo = ROOT.parent / "shared" / "datasets" / "Set5" / "baby.png"
    if photo.exists():
        image = Image.open(photo).convert("RGB").crop((200, 150, 200 + size[0], 150 + size[1]))
    else:  # a gradient, where the datasets are not beside the checkout
        image = Image.linear_gradient("L").resize(size).convert("RGB")
    if not transparent:
        image.save(path)
        return
    alpha = Image.new("L", size, 255)
    alpha.paste(0, (0, 0, size[0] // 2, size[1]))
    image.putalpha(alpha)
    image.save(path)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """ComfyUI from COMFYUI_PATH on the CPU, with this checkout as a custom node under an
    arbitrary folder name (its shipped models included), a tiny NEXUS x4 checkpoint in
    models/upscale_models, and RGBA and RGB test images; yields its URL."""
    import subprocess
    import time
    import urllib.error

    comfy_path = os.environ.get("COMFYUI_PATH")
    if not comfy_path or os.environ.get("NEXUS_COMFYUI_SERVER") != "1":
        pytest.skip(SERVER_REASON)
    base = tmp_path_factory.mktemp("comfy_base")
    for sub in ("models/upscale_models", "input", "output", "custom_nodes"):
        (base / sub).mkdir(parents=True)
    (base / "custom_nodes" / "nexus-upscaler-test").symlink_to(ROOT, target_is_directory=True)
    save_model(_tiny_nexus(), base / "models/upscale_models/nexus_tiny_x4.safetensors")
    _test_image(base / "input" / "example.png", (64, 48))
    _test_image(base / "input" / "large.png", (256, 256))
    _test_image(base / "input" / "opaque.png", (64, 48), transparent=False)
    port = _free_port()
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    command = [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port)]
    command += ["--base-directory", str(base), "--disable-auto-launch"]
    log = (base / "server.log").open("w")
    process = subprocess.Popen(command, cwd=comfy_path, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # a busy 2-core machine took 3 minutes
        while True:
            try:
                _http(f"{url}/object_info/NEXUSUpscaleImage")
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("ComfyUI did not start:\n" + (base / "server.log").read_text())
                time.sleep(1)
        yield {"url": url, "base": base}
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _run_prompt(server: dict, prompt: dict, timeout: float = 180) -> dict:
    import time

    prompt_id = _http(f"{server['url']}/prompt", {"prompt": prompt})["prompt_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = _http(f"{server['url']}/history/{prompt_id}")
        if prompt_id in history and history[prompt_id]["status"].get("completed") is not None:
            return history[prompt_id]
        time.sleep(0.25)
    pytest.fail(f"prompt {prompt_id} did not finish in {timeout} s")


def _saved(server: dict, entry: dict, node: str):
    from PIL import Image

    image = entry["outputs"][node]["images"][0]
    return Image.open(server["base"] / "output" / image["subfolder"] / image["filename"])


def _workflow(name: str) -> dict:
    return json.loads((API_WORKFLOWS / name).read_text(encoding="utf-8"))


def test_server_runs_the_alpha_workflow(server):
    entry = _run_prompt(server, _workflow("nexus_upscale_alpha.api.json"))  # as shipped
    assert entry["status"]["status_str"] == "success", entry["status"]
    saved = _saved(server, entry, "5")
    assert saved.size == (256, 192) and saved.mode == "RGBA"
    alpha = saved.getchannel("A")
    assert alpha.crop((0, 0, 112, 192)).getextrema()[1] < 30  # transparent half
    assert alpha.crop((144, 0, 256, 192)).getextrema()[0] > 225  # opaque half
    info = "".join(entry["outputs"]["6"]["text"])
    assert info.startswith("HyReSR") and " x4 | " in info


def test_server_alpha_workflow_on_an_rgb_image_stays_opaque(server):
    prompt = _workflow("nexus_upscale_alpha.api.json")
    prompt["1"]["inputs"]["image"] = "opaque.png"  # Load Image gives a 64 x 64 zero mask
    entry = _run_prompt(server, prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]
    saved = _saved(server, entry, "5")
    assert saved.size == (256, 192) and saved.getchannel("A").getextrema() == (255, 255)


def test_server_runs_the_by_factor_and_builtin_node_templates(server):
    entry = _run_prompt(server, _workflow("nexus_upscale_by_factor.api.json"))
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert _saved(server, entry, "4").size == (128, 96)  # x2 from a x4 model
    entry = _run_prompt(server, _workflow("nexus_model_in_builtin_node.api.json"))
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert _saved(server, entry, "4").size == (256, 192)


def test_server_runs_a_workflow_saved_with_the_old_model_name(server):
    prompt = _workflow("nexus_upscale_by_factor.api.json")
    name = prompt["2"]["inputs"]["model_name"].removeprefix("NEXUS/")
    prompt["2"]["inputs"]["model_name"] = name + " (shipped with NEXUS)"
    entry = _run_prompt(server, prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]


def test_server_builtin_loader_opens_our_checkpoint_for_our_x2_node(server):
    prompt = _workflow("nexus_upscale_by_factor.api.json")
    prompt["2"] = {
        "class_type": "UpscaleModelLoader",
        "inputs": {"model_name": "nexus_tiny_x4.safetensors"},
    }
    entry = _run_prompt(server, prompt)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert _saved(server, entry, "4").size == (128, 96)


def test_server_serves_our_templates_and_thumbnails(server):
    import urllib.request

    listing = _http(f"{server['url']}/workflow_templates")
    names = sorted(p.stem for p in TEMPLATES.glob("*.json"))
    assert sorted(listing["nexus-upscaler-test"]) == names
    for name in names:
        base = f"{server['url']}/api/workflow_templates/nexus-upscaler-test/{name}"
        assert _http(f"{base}.json") == json.loads((TEMPLATES / f"{name}.json").read_text())
        with urllib.request.urlopen(f"{base}.jpg", timeout=30) as response:
            assert response.read() == (TEMPLATES / f"{name}.jpg").read_bytes()


def test_server_widget_order_matches_the_templates(server):
    """The frontend fills a node's widgets from widgets_values in the order object_info gives
    (required, then optional, sockets left out): the templates must list them in that order."""
    for path in _templates():
        for node in json.loads(path.read_text(encoding="utf-8"))["nodes"]:
            if not node["type"].startswith("NEXUS"):
                continue
            info = _http(f"{server['url']}/object_info/{node['type']}")[node["type"]]
            widgets = []
            for group in ("required", "optional"):
                for name in info["input_order"].get(group, []):
                    kind = info["input"][group][name][0]
                    if isinstance(kind, list) or kind in ("COMBO", "INT", "FLOAT", "STRING"):
                        widgets.append(name)
            twin = json.loads((API_WORKFLOWS / f"{path.stem}.api.json").read_text("utf-8"))
            inputs = twin[str(node["id"])]["inputs"]
            assert [k for k, v in inputs.items() if not isinstance(v, list)] == widgets
            assert len(node["widgets_values"]) == len(widgets)


def test_server_interrupt_stops_a_running_upscale(server):
    import time

    prompt = _workflow("nexus_upscale_alpha.api.json")
    prompt["1"]["inputs"]["image"] = "large.png"
    prompt["3"]["inputs"].update(tile=64, overlap=8, tta="on")  # hundreds of tile passes
    prompt_id = _http(f"{server['url']}/prompt", {"prompt": prompt})["prompt_id"]
    started = time.monotonic()
    while not _http(f"{server['url']}/queue")["queue_running"]:
        time.sleep(0.05)
    time.sleep(1.0)  # let it get into the tiles
    _http(f"{server['url']}/interrupt", {})
    while prompt_id not in (history := _http(f"{server['url']}/history/{prompt_id}")):
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    status = history[prompt_id]["status"]
    assert status["status_str"] == "error"
    assert any(kind == "execution_interrupted" for kind, _ in status["messages"])
    assert "5" not in history[prompt_id]["outputs"]  # nothing saved
    assert elapsed < 30
