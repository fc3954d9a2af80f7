"""NEXUS and HyReSR-MoE in traiNNer-redux and neosr: a drop-in arch file.

1. Install nexus-upscaler into the trainer's Python (``pip install /path/to/nexus-upscaler``).
2. Copy this file into the trainer's arch folder: ``traiNNer/archs/`` (traiNNer-redux) or
   ``neosr/archs/`` (neosr). Both import every ``*_arch.py`` there at start-up.
3. Name a variant in the training YAML; other keys override the variant's defaults::

       network_g:
         type: hyresr_tiny            # nexus_tiny .. nexus_extreme, hyresr_tiny, hyresr_base,
                                      # hyresr_sr_heavy, hyresr_restoration_heavy
         moe_balance_weight: 0.01     # HyReSR only: the MoE balance loss (0 turns it off)

The scale is the trainer's own ``scale`` option. The models the trainer saves load in
chaiNNer, ComfyUI and nexus-upscale through spandrel. Details: the docstring of
``nexus_upscaler.core.training.registration``.
"""

from nexus_upscaler.core.training.registration import register_for_trainer

register_for_trainer(__name__)
