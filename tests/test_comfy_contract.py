"""Our nodes against the UPSCALE_MODEL contract of today's ComfyUI, which CI cannot run.

THIS FILE HOLDS A STAND-IN, NOT COMFYUI. The classes and functions under "ComfyUI's current
contract" are a minimal reimplementation, written for this test, of what ComfyUI does after
0.3.64 (read from Comfy-Org/ComfyUI at commit 30a74432: ``comfy_extras/nodes_upscale_model.py``,
``comfy/model_patcher.py``, ``comfy/model_management.py``, ``comfy/storage.py``):

- "Load Upscale Model" loads the file with spandrel and attaches ``descriptor.patcher =
  comfy.model_patcher.CoreModelPatcher(descriptor.model, load_device=get_torch_device(),
  offload_device=unet_offload_device(), fast_disk=...)``;
- "Upscale Image (using Model)" reads ``upscale_model.patcher.load_device``, calls
  ``model_management.load_models_gpu([patcher], memory_required=..., force_full_load=True)``,
  moves the model to that device and calls ``upscale_model(x)`` on (B, 3, H, W) tiles;
- ``CoreModelPatcher`` is a module attribute that ``main.py`` may replace (with
  ``ModelPatcherDynamic``), so it is read when a model is loaded.

Only those calls are reproduced; the stand-in modules are put in ``sys.modules`` for one test at
a time. The real 0.3.64 is exercised in ``test_comfy_nodes.py`` where ``COMFYUI_PATH`` is set.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import spandrel
import torch
from nexus_upscaler.comfy_nodes import logic, management
from nexus_upscaler.core import save_model
from nexus_upscaler.core.archs import nexus_tiny
from safetensors.torch import load_file

# --- ComfyUI's current contract (a stand-in written for this test, see the module docstring) ---


class CoreModelPatcher:
    """Keeps what ComfyUI's patcher keeps that the upscale nodes use."""

    def __init__(
        self,
        model,
        load_device,
        offload_device,
        size=0,
        weight_inplace_update=False,
        fast_disk=False,
    ):
        self.model = model
        self.load_device = load_device
        self.offload_device = offload_device
        self.fast_disk = fast_disk


class ComfyState:
    """The stand-in ``comfy.*`` modules and what was asked of them."""

    def __init__(self) -> None:
        self.load_calls: list[dict] = []
        self.free_calls: list[tuple[int, object]] = []
        self.loaded: list[CoreModelPatcher] = []
        self.fast_disk_paths: list[list[str]] = []
        self.ticks: list[tuple[int, int]] = []

    def modules(self) -> dict[str, types.ModuleType]:
        comfy = types.ModuleType("comfy")
        comfy.__path__ = []  # a package

        model_patcher = types.ModuleType("comfy.model_patcher")
        model_patcher.CoreModelPatcher = CoreModelPatcher
        model_patcher.ModelPatcher = CoreModelPatcher

        mm = types.ModuleType("comfy.model_management")
        mm.get_torch_device = lambda: torch.device("cpu")
        mm.unet_offload_device = lambda: torch.device("cpu")
        mm.intermediate_device = lambda: torch.device("cpu")
        mm.soft_empty_cache = lambda force=False: None
        mm.throw_exception_if_processing_interrupted = lambda: None

        def load_models_gpu(
            models,
            memory_required=0,
            force_patch_weights=False,
            minimum_memory_required=None,
            force_full_load=False,
        ):
            self.load_calls.append(
                {
                    "models": list(models),
                    "memory_required": memory_required,
                    "force_full_load": force_full_load,
                }
            )
            for patcher in models:  # places the weights on the load device and keeps them there
                patcher.model.to(patcher.load_device)
                if patcher not in self.loaded:
                    self.loaded.append(patcher)

        mm.load_models_gpu = load_models_gpu
        mm.free_memory = lambda memory, device, keep_loaded=(): self.free_calls.append(
            (memory, device)
        )

        storage = types.ModuleType("comfy.storage")

        def model_fast_disk(paths):
            self.fast_disk_paths.append(list(paths))
            return False

        storage.model_fast_disk = model_fast_disk

        utils = types.ModuleType("comfy.utils")
        state = self

        class ProgressBar:
            def __init__(self, total):
                self.total = total

            def update_absolute(self, value, total=None, preview=None):
                state.ticks.append((value, total))

        utils.ProgressBar = ProgressBar
        comfy.model_patcher, comfy.model_management = model_patcher, mm
        comfy.storage, comfy.utils = storage, utils
        return {
            "comfy": comfy,
            "comfy.model_patcher": model_patcher,
            "comfy.model_management": mm,
            "comfy.storage": storage,
            "comfy.utils": utils,
        }


def builtin_load_upscale_model(path: Path):
    """The current built-in "Load Upscale Model", reduced to the calls that matter here."""
    mm = sys.modules["comfy.model_management"]
    patcher_class = sys.modules["comfy.model_patcher"].CoreModelPatcher
    out = spandrel.ModelLoader().load_from_state_dict(load_file(str(path))).eval()
    out.patcher = patcher_class(
        out.model,
        load_device=mm.get_torch_device(),
        offload_device=mm.unet_offload_device(),
        fast_disk=sys.modules["comfy.storage"].model_fast_disk([str(path)]),
    )
    return out


def builtin_upscale_image(upscale_model, image: torch.Tensor) -> torch.Tensor:
    """The current built-in "Upscale Image (using Model)", one tile, reduced likewise."""
    mm = sys.modules["comfy.model_management"]
    device = upscale_model.patcher.load_device
    memory_required = 512 * 512 * 3 * image.element_size() * max(upscale_model.scale, 1.0) * 384
    mm.load_models_gpu(
        [upscale_model.patcher], memory_required=memory_required, force_full_load=True
    )
    upscale_model.to(device)
    x = image.movedim(-1, -3).to(device)
    with torch.no_grad():
        y = upscale_model(x.float())
    return torch.clamp(y.movedim(-3, -1), 0, 1)


# --- the tests -----------------------------------------------------------------------------------


@pytest.fixture()
def comfy(monkeypatch) -> ComfyState:
    state = ComfyState()
    for name, module in state.modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    return state


@pytest.fixture(scope="module")
def nexus_path(tmp_path_factory) -> Path:
    from nexus_upscaler.core.detection import register_with_spandrel

    register_with_spandrel()  # what our comfy_entrypoint does when ComfyUI loads the pack
    torch.manual_seed(0)
    model = nexus_tiny(scale=4, embed_dim=16, depths=(1,), num_heads=2, window_size=4, num_feat=8)
    path = tmp_path_factory.mktemp("models") / "nexus_tiny_x4.safetensors"
    save_model(model.eval(), path)
    return path


def _image() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(1, 12, 10, 3)


def test_our_loader_makes_what_the_builtin_loader_makes(comfy, nexus_path):
    ours = management.load_upscale_model(nexus_path)
    theirs = builtin_load_upscale_model(nexus_path)
    assert type(ours.patcher) is type(theirs.patcher) is CoreModelPatcher
    assert ours.patcher.model is ours.model
    assert ours.patcher.load_device == theirs.patcher.load_device
    assert ours.patcher.offload_device == theirs.patcher.offload_device
    assert ours.patcher.fast_disk is False
    assert comfy.fast_disk_paths[0] == [str(nexus_path)]  # asked ComfyUI's storage policy


def test_the_builtin_node_runs_our_loaders_output(comfy, nexus_path):
    ours = management.load_upscale_model(nexus_path)
    out = builtin_upscale_image(ours, _image())
    assert out.shape == (1, 48, 40, 3)
    assert comfy.load_calls[-1]["models"] == [ours.patcher]


def test_our_node_runs_the_builtin_loaders_output_through_model_management(comfy, nexus_path):
    theirs = builtin_load_upscale_model(nexus_path)
    image, mask = management.upscale(theirs, _image(), None, preset="balanced", precision="fp32")
    assert image.shape == (1, 48, 40, 3) and mask.shape == (1, 48, 40)
    call = comfy.load_calls[-1]
    assert call["models"] == [theirs.patcher] and call["force_full_load"] is True
    assert call["memory_required"] == logic.working_memory(theirs, _image(), None)
    assert comfy.free_calls == []  # model management, not a blind free, made room
    assert comfy.ticks and comfy.ticks[-1][0] == comfy.ticks[-1][1]
    expected = builtin_upscale_image(theirs, _image())
    torch.testing.assert_close(image, expected, atol=2e-3, rtol=0)


def test_a_replaced_core_patcher_is_used(comfy, nexus_path):
    """ComfyUI's main.py swaps CoreModelPatcher for ModelPatcherDynamic after import."""

    class ModelPatcherDynamic(CoreModelPatcher):
        pass

    sys.modules["comfy.model_patcher"].CoreModelPatcher = ModelPatcherDynamic
    assert isinstance(management.load_upscale_model(nexus_path).patcher, ModelPatcherDynamic)


def test_without_a_patcher_memory_is_freed_as_0364_does(comfy, nexus_path):
    """0.3.64's built-in loader attaches no patcher: our node frees memory for it instead."""
    bare = logic.load_upscale_model(nexus_path)
    assert not hasattr(bare, "patcher")
    image, _ = management.upscale(bare, _image(), None, preset="balanced")
    assert image.shape == (1, 48, 40, 3)
    assert comfy.load_calls == []
    assert comfy.free_calls == [(logic.memory_estimate(bare, _image(), None), torch.device("cpu"))]


def test_a_patcher_without_fast_disk_gets_none(comfy, nexus_path):
    """An older ModelPatcher (0.3.64's) takes no fast_disk argument: none is passed."""

    class OldModelPatcher:
        def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
            self.model, self.load_device = model, load_device

    patchers = sys.modules["comfy.model_patcher"]
    del patchers.CoreModelPatcher
    patchers.ModelPatcher = OldModelPatcher
    descriptor = management.load_upscale_model(nexus_path)
    assert isinstance(descriptor.patcher, OldModelPatcher)
    assert comfy.fast_disk_paths == []
