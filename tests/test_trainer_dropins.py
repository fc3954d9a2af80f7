"""``trainers/nexus_arch.py`` copied into traiNNer-redux's or neosr's ``archs/`` folder.

Neither trainer is installed here (they are applications, not libraries), so each is reproduced
by the few lines its arch loading consists of, read from their sources:

- traiNNer-redux (the-database/traiNNer-redux): ``traiNNer/archs/__init__.py`` imports
  ``traiNNer.archs.<name>`` for every ``*_arch.py`` in its folder at import;
  ``build_network(opt)`` pops ``type`` and calls ``ARCH_REGISTRY.get(type)(**opt)``, and the SR
  model calls ``build_network({**opt.network_g, "scale": opt.scale})``.
  ``traiNNer/utils/registry.py``: ``register(obj)`` stores ``obj.__name__.lower()``, asserting
  it is new; ``get`` lower-cases the name.
- neosr (neosr-project/neosr): ``neosr/archs/__init__.py`` ``build_network(opt)`` imports every
  ``*_arch.py`` then calls ``ARCH_REGISTRY.get(type)(**opt)`` with no scale; its archs read the
  scale from ``neosr.archs.arch_util.net_opt()`` (which parses the run's options).
  ``neosr/utils/registry.py`` keeps names as they are.
"""

from __future__ import annotations

import copy
import importlib
import shutil
import sys
import textwrap
from pathlib import Path

import nexus_upscaler
import pytest
import torch
import torch.nn.functional as F
from nexus_upscaler.core.archs import VARIANTS

DROPIN = Path(nexus_upscaler.__file__).parent / "trainers" / "nexus_arch.py"

# --- minimal reproductions of the two trainers' arch loading (labelled above) ------------------

_REGISTRY = """
class Registry:
    def __init__(self, name):
        self._name = name
        self._obj_map = {{}}

    def register(self, obj=None, suffix=None):
        name = {key}
        assert name not in self._obj_map, f"{{name}} already registered"
        self._obj_map[name] = obj

    def get(self, name, suffix={suffix!r}):
        ret = self._obj_map.get({lookup}) or self._obj_map.get({lookup} + "_" + suffix)
        if ret is None:
            raise KeyError(f"No object named '{{name}}' found in '{{self._name}}' registry!")
        return ret

    def __contains__(self, name):
        return {lookup} in self._obj_map

    def keys(self):
        return self._obj_map.keys()


ARCH_REGISTRY = Registry("arch")
"""

_ARCHS_INIT = """
from copy import deepcopy
from importlib import import_module
from pathlib import Path

from {pkg}.utils.registry import ARCH_REGISTRY

_arch_modules = [
    import_module(f"{pkg}.archs.{{p.stem}}") for p in Path(__file__).parent.glob("*_arch.py")
]


def build_network(opt):
    opt = deepcopy(opt)
    network_type = opt.pop("type")
    return ARCH_REGISTRY.get(network_type)(**opt)
"""

_NEOSR_ARCH_UTIL = """
SCALE = 4  # what the run's options say; neosr's net_opt() parses them from the command line


def net_opt():
    return SCALE, True
"""


def _make_trainer(root: Path, pkg: str) -> None:
    lower = pkg == "traiNNer"  # traiNNer-redux lower-cases names, neosr does not
    registry = _REGISTRY.format(
        key="obj.__name__.lower()" if lower else "obj.__name__",
        lookup="name.lower()" if lower else "name",
        suffix="traiNNer" if lower else "neosr",
    )
    files = {
        f"{pkg}/__init__.py": "",
        f"{pkg}/utils/__init__.py": "",
        f"{pkg}/utils/registry.py": registry,
        f"{pkg}/archs/__init__.py": _ARCHS_INIT.format(pkg=pkg),
    }
    if pkg == "neosr":
        files["neosr/archs/arch_util.py"] = _NEOSR_ARCH_UTIL
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    shutil.copy(DROPIN, root / pkg / "archs" / DROPIN.name)  # the one step a user takes


@pytest.fixture(params=["traiNNer", "neosr"])
def trainer(request, tmp_path, monkeypatch):
    """The trainer's ``archs`` package, imported the way the trainer imports it."""
    pkg = request.param
    _make_trainer(tmp_path, pkg)
    monkeypatch.syspath_prepend(str(tmp_path))
    archs = importlib.import_module(f"{pkg}.archs")
    yield pkg, archs
    for name in [m for m in sys.modules if m == pkg or m.startswith(pkg + ".")]:
        del sys.modules[name]


def _build(trainer, opt: dict, scale: int = 4):
    pkg, archs = trainer
    if pkg == "traiNNer":
        return archs.build_network({**opt, "scale": scale})  # sr_model.py's call
    importlib.import_module("neosr.archs.arch_util").SCALE = scale  # the run's `scale` option
    return archs.build_network(opt)


def test_the_dropin_ships_in_the_package():
    assert DROPIN.is_file()
    text = DROPIN.read_text()
    assert "register_for_trainer(__name__)" in text


def test_every_variant_builds_by_name_with_the_trainers_scale(trainer):
    _, archs = trainer
    names = {n.lower() for n in archs.ARCH_REGISTRY.keys()}  # noqa: SIM118 (iterating gives pairs)
    assert set(VARIANTS) <= names
    for name in VARIANTS:
        with torch.device("meta"):  # the real constructors, no memory for the big ones
            model = _build(trainer, {"type": name}, scale=3)
        assert type(model).__name__ in ("NEXUS", "HyReSR"), name
        assert model.scale == 3, name


def test_options_from_the_yaml_reach_the_variant(trainer):
    opt = {"type": "nexus_tiny", "embed_dim": 16, "depths": [1, 1], "num_heads": 2,
           "window_size": 4, "num_feat": 16}  # fmt: skip
    model = _build(trainer, opt, scale=2)
    assert len(model.layers) == 2  # depths: [1, 1], a YAML list
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)


def _tiny_hyresr(trainer, weight: float):
    torch.manual_seed(0)
    opt = {"type": "hyresr_tiny", "base": 8, "depths": [1, 1, 1], "moe_balance_weight": weight}
    return _build(trainer, opt, scale=2)


def _grads(model, x, target, extra=None):
    model.zero_grad(set_to_none=True)
    out = model(x)
    loss = F.l1_loss(out, target)  # what the trainer builds: it never calls aux_loss()
    if extra is not None:
        loss = loss + extra * model.aux_loss()
    loss.backward()
    return out.detach(), {
        n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None
    }


def test_the_moe_balance_loss_reaches_the_gradients(trainer):
    weight = 0.5  # large, so that its share of the router gradient is plain to see
    hooked = _tiny_hyresr(trainer, weight).train()
    plain = _tiny_hyresr(trainer, 0.0).train()
    plain.load_state_dict(hooked.state_dict())
    assert hooked.state_dict().keys() == plain.state_dict().keys()  # nothing added to save
    torch.manual_seed(1)
    x, target = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 32, 32)

    out_h, g_hooked = _grads(hooked, x, target)
    out_p, g_plain = _grads(plain, x, target)
    _, g_explicit = _grads(plain, x, target, extra=weight)  # loss + weight * aux_loss()

    assert torch.equal(out_h, out_p)  # the output itself is unchanged
    routers = [n for n in g_hooked if n.endswith("moe.router.weight")]
    assert routers
    for n in routers:
        assert not torch.allclose(g_hooked[n], g_plain[n])  # the balance term arrived ...
        torch.testing.assert_close(g_hooked[n], g_explicit[n])  # ... with the given weight
    assert g_hooked.keys() == g_explicit.keys()
    for n in g_hooked:
        torch.testing.assert_close(g_hooked[n], g_explicit[n])


def test_the_hook_survives_an_ema_copy_and_stays_out_of_eval(trainer):
    model = _tiny_hyresr(trainer, 0.5)
    ema = copy.deepcopy(model)  # traiNNer-redux and neosr keep an EMA copy of net_g
    x, target = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 32, 32)
    _, g_model = _grads(model.train(), x, target)
    _, g_ema = _grads(ema.train(), x, target)
    for n in g_model:
        torch.testing.assert_close(g_model[n], g_ema[n])
    with torch.no_grad():  # validation: eval mode, no gradients, plain output
        assert model.eval()(x).grad_fn is None


def test_what_the_trainer_saves_loads_through_spandrel(trainer):
    from nexus_upscaler.core.loading import descriptor_from_state_dict

    model = _tiny_hyresr(trainer, 0.01)
    descriptor = descriptor_from_state_dict(model.state_dict())
    assert descriptor.architecture.id == "HyReSR"
    assert descriptor.scale == 2


def test_the_dropin_says_where_it_belongs_when_imported_elsewhere():
    from nexus_upscaler.core.training.registration import register_for_trainer

    with pytest.raises(ImportError, match=r"traiNNer/archs/.*neosr/archs/"):
        register_for_trainer("basicsr.archs.nexus_arch")
