"""Real-world degradations: a second-order chain that makes LR inputs from HR batches on the fly.

The model of the real-world SR literature (Real-ESRGAN, BSRGAN): an image reaching a user went
through a camera, resizes, noise and lossy saves, often twice. Each round here is

    blur (random kernel) -> random resize -> Gaussian or Poisson noise -> JPEG

and the chain ends with the resize to ``1/scale`` and a last sinc filter (ringing) and JPEG in a
random order. Everything works on a whole batch on the training device: per-sample blur kernels
go through one grouped convolution, noise is drawn per sample, and JPEG goes through a real
encoder (libjpeg through Pillow, on the CPU). One resize factor and mode is drawn per batch, since
a batch must keep one size.

Every random choice comes from generators seeded with ``(seed, index)``, so a batch is a pure
function of its HR pixels and its seed: a validation set is degraded the same way every time and
a resumed run sees the data an uninterrupted one would have seen.

All functions take and return ``(B, C, H, W)`` float tensors in [0, 1].
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..color import LUMA_WEIGHTS
from .config import RealDegradation, RealRound

__all__ = [
    "KERNEL_TYPES",
    "random_kernels",
    "sinc_kernels",
    "filter2d",
    "add_gaussian_noise",
    "add_poisson_noise",
    "jpeg",
    "usm_sharpen",
    "degrade_real",
    "degrade_web",
    "seeded_generator",
]

KERNEL_TYPES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)
RESIZE_MODES = ("area", "bilinear", "bicubic")


def seeded_generator(*seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded from the tuple ``seed`` (any non-negative ints)."""
    state = np.random.SeedSequence([int(s) for s in seed]).generate_state(2, np.uint32)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(state[0]) << 32 | int(state[1]))
    return gen


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)


def _choice(n: int, probs: Sequence[float], gen: torch.Generator) -> Tensor:
    p = torch.tensor(probs, dtype=torch.float64)
    return torch.multinomial(p / p.sum(), n, replacement=True, generator=gen)


def _odd_sizes(n: int, max_size: int, gen: torch.Generator) -> Tensor:
    """Odd kernel sizes from 7 to ``max_size`` (inclusive), uniformly."""
    choices = torch.arange(7, max_size + 1, 2)
    return choices[torch.randint(len(choices), (n,), generator=gen)]


def sinc_kernels(cutoff: Tensor, sizes: Tensor, max_size: int) -> Tensor:
    """Circular low-pass (2-D sinc) kernels ``(n, max_size, max_size)`` in float64, each summing
    to 1 and zero outside its own odd ``size``: ``cutoff`` (n,) in radians per pixel."""
    r = max_size // 2
    ax = torch.arange(-r, r + 1, dtype=torch.float64)
    dist = torch.sqrt(ax[None, :] ** 2 + ax[:, None] ** 2)[None]  # (1, k, k)
    wc = cutoff.to(torch.float64)[:, None, None]
    safe = torch.where(dist == 0, torch.ones_like(dist), dist)
    k = wc * torch.special.bessel_j1(wc * safe) / (2 * math.pi * safe)
    k = torch.where(dist == 0, wc**2 / (4 * math.pi), k)
    return _window_and_normalise(k, sizes, r)


def _window_and_normalise(k: Tensor, sizes: Tensor, r: int) -> Tensor:
    ax = torch.arange(-r, r + 1)
    half = (sizes // 2)[:, None, None]
    inside = (ax[None, :, None].abs() <= half) & (ax[None, None, :].abs() <= half)
    k = k * inside
    return k / k.sum(dim=(1, 2), keepdim=True)


def random_kernels(n: int, opt: RealRound, max_size: int, gen: torch.Generator) -> Tensor:
    """``n`` random blur kernels ``(n, max_size, max_size)`` (float64, each summing to 1).

    With probability ``opt.sinc_prob`` a kernel is a sinc (ringing) kernel; otherwise its type is
    drawn from ``KERNEL_TYPES`` with ``opt.kernel_probs``: Gaussian, generalised Gaussian
    ``exp(-q^beta/2)`` or plateau ``1/(1+q^beta)`` of the Mahalanobis distance ``q``, isotropic or
    anisotropic (two sigmas and a rotation). The size is an odd number from 7 to ``max_size``.
    """
    r = max_size // 2
    sizes = _odd_sizes(n, max_size, gen)
    kind = _choice(n, opt.kernel_probs, gen)
    sx = _uniform(n, *opt.blur_sigma, gen)
    sy = _uniform(n, *opt.blur_sigma, gen)
    theta = _uniform(n, -math.pi, math.pi, gen)
    beta_g = _uniform(n, *opt.betag_range, gen)
    beta_p = _uniform(n, *opt.betap_range, gen)
    iso = kind % 2 == 0  # iso, generalized_iso, plateau_iso sit at even indices
    sy = torch.where(iso, sx, sy)
    theta = torch.where(iso, torch.zeros_like(theta), theta)
    # inverse covariance of R diag(sx^2, sy^2) R^T
    c, s = torch.cos(theta), torch.sin(theta)
    a = c**2 / sx**2 + s**2 / sy**2
    b = c * s * (1 / sx**2 - 1 / sy**2)
    d = s**2 / sx**2 + c**2 / sy**2
    ax = torch.arange(-r, r + 1, dtype=torch.float64)
    yy, xx = ax[:, None], ax[None, :]
    q = a[:, None, None] * xx**2 + 2 * b[:, None, None] * xx * yy + d[:, None, None] * yy**2
    family = kind // 2  # 0 Gaussian, 1 generalised, 2 plateau
    gauss = torch.exp(-0.5 * q)
    general = torch.exp(-0.5 * q.clamp_min(0) ** beta_g[:, None, None])
    plateau = 1.0 / (1.0 + q.clamp_min(0) ** beta_p[:, None, None])
    f = family[:, None, None]
    k = torch.where(f == 0, gauss, torch.where(f == 1, general, plateau))
    k = _window_and_normalise(k, sizes, r)
    use_sinc = torch.rand(n, generator=gen, dtype=torch.float64) < opt.sinc_prob
    if bool(use_sinc.any()):
        lo = torch.where(sizes < 13, math.pi / 3, math.pi / 5)
        cutoff = lo + (math.pi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)
        k = torch.where(use_sinc[:, None, None], sinc_kernels(cutoff, sizes, max_size), k)
    return k


def filter2d(x: Tensor, kernels: Tensor) -> Tensor:
    """Convolve each image of ``x`` (B, C, H, W) with its own kernel ``(B, k, k)`` (odd k),
    reflecting the borders: one grouped convolution for the whole batch."""
    b, c, h, w = x.shape
    k = kernels.shape[-1]
    p = k // 2
    weight = kernels.to(x).repeat_interleave(c, dim=0)[:, None]  # (B*C, 1, k, k)
    mode = "reflect" if p < min(h, w) else "replicate"  # reflect needs the image wider than p
    xp = F.pad(x.reshape(1, b * c, h, w), (p, p, p, p), mode=mode)
    return F.conv2d(xp, weight.flip(-1, -2), groups=b * c).reshape(b, c, h, w)


def add_gaussian_noise(x: Tensor, sigma: Tensor, gray: Tensor, gen: torch.Generator) -> Tensor:
    """Add Gaussian noise of ``sigma`` (B,) in 0..255 units; ``gray`` (B,) bool samples get the
    same noise in every channel (luminance noise), the others independent colour noise."""
    b, c, h, w = x.shape
    colour = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    mono = torch.randn((b, 1, h, w), generator=gen, device=x.device, dtype=x.dtype)
    g = gray.to(x.device)[:, None, None, None]
    noise = torch.where(g, mono.expand_as(colour), colour)
    return x + noise * (sigma.to(x) / 255.0)[:, None, None, None]


def add_poisson_noise(x: Tensor, scale: Tensor, gray: Tensor, gen: torch.Generator) -> Tensor:
    """Add shot noise: ``Poisson(255 x) / 255 - x`` times ``scale`` (B,); ``gray`` samples draw
    it once from the luma and add it to every channel."""
    luma = (x * x.new_tensor(LUMA_WEIGHTS)[None, :, None, None]).sum(1, keepdim=True)
    colour = torch.poisson(x.clamp(0, 1) * 255.0, generator=gen) / 255.0 - x.clamp(0, 1)
    mono = torch.poisson(luma.clamp(0, 1) * 255.0, generator=gen) / 255.0 - luma.clamp(0, 1)
    g = gray.to(x.device)[:, None, None, None]
    noise = torch.where(g, mono.expand_as(colour), colour)
    return x + noise * scale.to(x)[:, None, None, None]


def jpeg(x: Tensor, quality: Sequence[int]) -> Tensor:
    """Encode and decode each image as baseline JPEG (libjpeg through Pillow, 4:2:0 chroma) at
    its ``quality``. Images go through the CPU: the encoder is the real one people's files saw."""
    u8 = (x.detach().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty_like(u8)
    for i, (img, q) in enumerate(zip(u8, quality)):
        buf = io.BytesIO()
        mode = "L" if img.shape[2] == 1 else "RGB"
        Image.fromarray(img[..., 0] if mode == "L" else img, mode).save(buf, "JPEG", quality=int(q))
        with Image.open(buf) as decoded:
            out[i] = np.asarray(decoded).reshape(img.shape)
    return torch.from_numpy(out).to(x.device).permute(0, 3, 1, 2).to(x.dtype) / 255.0


def _gaussian_kernel1d(size: int, sigma: float) -> Tensor:
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-(ax**2) / (2 * sigma**2))
    return k / k.sum()


def _separable_blur(x: Tensor, size: int, sigma: float) -> Tensor:
    k = _gaussian_kernel1d(size, sigma).to(x)
    c = x.shape[1]
    p = size // 2
    y = F.conv2d(
        F.pad(x, (p, p, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c
    )
    return F.conv2d(
        F.pad(y, (0, 0, p, p), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c
    )


def usm_sharpen(x: Tensor, weight: float = 0.5, threshold: float = 10, radius: int = 50) -> Tensor:
    """Unsharp masking for crisper training targets: add ``weight`` times the detail (image minus
    its Gaussian blur) where the detail exceeds ``threshold``/255, with a softened mask so flat
    areas and noise are left alone. ``x``: (B, C, H, W) in [0, 1]."""
    size = 2 * (radius // 2) + 1
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8  # OpenCV's sigma for a kernel of this size
    size = min(size, 2 * (min(x.shape[-2:]) // 2) - 1)  # reflect padding needs pad < side
    blurred = _separable_blur(x, size, sigma)
    detail = x - blurred
    mask = (detail.abs() * 255 > threshold).to(x)
    soft = _separable_blur(mask, size, sigma)
    sharp = (x + weight * detail).clamp(0, 1)
    return soft * sharp + (1 - soft) * x


def _resize(x: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    if mode == "area":
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


def _random_resize(
    x: Tensor, opt: RealRound, base: tuple[int, int], gen: torch.Generator
) -> Tensor:
    """Resize to ``base`` times a factor drawn up / down / 1 with ``opt.resize_probs`` from
    ``opt.resize_range`` (one factor and one mode for the batch)."""
    way = int(_choice(1, opt.resize_probs, gen))
    lo, hi = opt.resize_range
    if way == 0:
        factor = float(_uniform(1, 1.0, hi, gen))
    elif way == 1:
        factor = float(_uniform(1, lo, 1.0, gen))
    else:
        factor = 1.0
    mode = RESIZE_MODES[int(_choice(1, opt.resize_mode_probs, gen))]
    size = (max(1, int(base[0] * factor)), max(1, int(base[1] * factor)))
    return _resize(x, size, mode)


def _noise(x: Tensor, opt: RealRound, gen: torch.Generator, noise_gen: torch.Generator) -> Tensor:
    n = x.shape[0]
    gaussian = torch.rand(n, generator=gen, dtype=torch.float64) < opt.gaussian_noise_prob
    gray = torch.rand(n, generator=gen, dtype=torch.float64) < opt.gray_noise_prob
    sigma = _uniform(n, *opt.noise_range, gen)
    scale = _uniform(n, *opt.poisson_scale_range, gen)
    zero = torch.zeros_like(sigma)
    x = add_gaussian_noise(x, torch.where(gaussian, sigma, zero), gray, noise_gen)
    return add_poisson_noise(x, torch.where(gaussian, zero, scale), gray, noise_gen)


def _jpeg_round(x: Tensor, quality_range: tuple[int, int], gen: torch.Generator) -> Tensor:
    lo, hi = quality_range
    quality = torch.randint(lo, hi + 1, (x.shape[0],), generator=gen).tolist()
    return jpeg(x, quality)


def _one_round(
    x: Tensor, opt: RealRound, base: tuple[int, int], max_kernel: int,
    gen: torch.Generator, noise_gen: torch.Generator,
) -> Tensor:  # fmt: skip
    n = x.shape[0]
    blur = torch.rand(n, generator=gen, dtype=torch.float64) < opt.blur_prob
    kernels = random_kernels(n, opt, max_kernel, gen)
    if bool(blur.any()):
        identity = torch.zeros_like(kernels)
        identity[:, max_kernel // 2, max_kernel // 2] = 1.0
        x = filter2d(x, torch.where(blur[:, None, None], kernels, identity))
    x = _random_resize(x, opt, base, gen)
    x = _noise(x, opt, gen, noise_gen)
    x = x.clamp(0, 1)
    if opt.jpeg_prob > 0 and float(torch.rand(1, generator=gen)) < opt.jpeg_prob:
        x = _jpeg_round(x, opt.jpeg_range, gen)
    return x


@torch.no_grad()
def degrade_real(hr: Tensor, scale: int, opt: RealDegradation, seed: Sequence[int]) -> Tensor:
    """The LR input ``(B, C, H/scale, W/scale)`` for HR batch ``hr`` (B, C, H, W) in [0, 1]:
    two rounds of blur, resize, noise and JPEG, then the final resize with a sinc filter and JPEG
    in random order; or, for a share ``opt.light_prob`` of the samples, only a downscale and a
    JPEG (so a model also learns to keep the texture of mildly degraded pictures). Quantised to
    8 bits, as a saved image is. ``seed`` fixes every choice."""
    gen = seeded_generator(*seed)
    noise_gen = seeded_generator(*seed, 1, device=hr.device)
    h, w = hr.shape[-2:]
    out_size = (h // scale, w // scale)
    x = hr.float()
    x = _one_round(x, opt.first, (h, w), opt.kernel_size, gen, noise_gen)
    if float(torch.rand(1, generator=gen)) < opt.second_prob:
        x = _one_round(x, opt.second, out_size, opt.kernel_size, gen, noise_gen)
    n = x.shape[0]
    sizes = torch.full((n,), opt.kernel_size)
    cutoff = _uniform(n, math.pi / 3, math.pi, gen)
    use_sinc = torch.rand(n, generator=gen, dtype=torch.float64) < opt.final_sinc_prob
    identity = torch.zeros(n, opt.kernel_size, opt.kernel_size, dtype=torch.float64)
    identity[:, opt.kernel_size // 2, opt.kernel_size // 2] = 1.0
    final_kernels = torch.where(
        use_sinc[:, None, None], sinc_kernels(cutoff, sizes, opt.kernel_size), identity
    )
    mode = RESIZE_MODES[int(_choice(1, opt.second.resize_mode_probs, gen))]
    jpeg_first = float(torch.rand(1, generator=gen)) < 0.5
    quality = torch.randint(
        opt.final_jpeg_range[0], opt.final_jpeg_range[1] + 1, (n,), generator=gen
    ).tolist()
    if jpeg_first:
        x = jpeg(x, quality)
        x = _resize(x, out_size, mode)
        x = _filter_if_any(x, final_kernels, use_sinc)
    else:
        x = _resize(x, out_size, mode)
        x = _filter_if_any(x, final_kernels, use_sinc)
        x = jpeg(x, quality)
    if opt.light_prob > 0:
        light = torch.rand(n, generator=gen, dtype=torch.float64) < opt.light_prob
        if bool(light.any()):
            x = torch.where(
                light.to(x.device)[:, None, None, None], _light(hr, out_size, opt, gen), x
            )
    return (x.clamp(0, 1) * 255.0).round() / 255.0


def _light(
    hr: Tensor, out_size: tuple[int, int], opt: RealDegradation, gen: torch.Generator
) -> Tensor:
    """The light path: an antialiased downscale (bicubic, area or bilinear, one per batch), then
    JPEG at ``opt.light_jpeg_range`` for each sample with ``opt.light_jpeg_prob``: what a web
    image or a resized phone photo went through."""
    n = hr.shape[0]
    mode = ("bicubic", "area", "bilinear")[int(torch.randint(3, (1,), generator=gen))]
    if mode == "area":
        x = F.interpolate(hr.float(), size=out_size, mode="area")
    else:
        x = F.interpolate(hr.float(), size=out_size, mode=mode, align_corners=False, antialias=True)
    x = x.clamp(0, 1)
    compress = torch.rand(n, generator=gen, dtype=torch.float64) < opt.light_jpeg_prob
    lo, hi = opt.light_jpeg_range
    quality = torch.randint(lo, hi + 1, (n,), generator=gen).tolist()
    if bool(compress.any()):
        x = torch.where(compress.to(x.device)[:, None, None, None], jpeg(x, quality), x)
    return x


def _filter_if_any(x: Tensor, kernels: Tensor, used: Tensor) -> Tensor:
    return filter2d(x, kernels) if bool(used.any()) else x


@torch.no_grad()
def degrade_web(
    hr: Tensor, scale: int, quality_range: tuple[int, int], seed: Sequence[int]
) -> Tensor:
    """A web image: bicubic (antialiased) down by ``scale`` then JPEG at a quality drawn from
    ``quality_range`` (inclusive) per image. ``hr``: (B, C, H, W) in [0, 1]."""
    gen = seeded_generator(*seed)
    h, w = hr.shape[-2:]
    x = F.interpolate(
        hr.float(),
        size=(h // scale, w // scale),
        mode="bicubic",
        align_corners=False,
        antialias=True,
    )
    return _jpeg_round(x.clamp(0, 1), quality_range, gen)
