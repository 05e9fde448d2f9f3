"""Image augmentation on the device for pixel RL. Docs: docs/sac.md

Two uses, one module:
  * training-time augmentation of replay batches (DrQ / DrQ-v2): `Augmentation("shift")` or
    `Augmentation("shift+color")`, a random shift (replicate pad, then crop back to the input size)
    drawn per sample, optionally followed by colour jitter, Gaussian blur and Gaussian noise;
  * image-space domain randomization for rollouts: `DomainRandomization("light" | "heavy")`, the
    same photometric ops with parameters drawn per env and kept for a whole episode.

Contract (every public function here):
  * input: uint8 (B, C, H, W) on any device; H != W is fine.
  * output: uint8 (B, C, H, W) on the same device. Shifts move whole pixels, so they are exact in
    uint8; photometric ops compute in float32 and round back once. Keeping uint8 everywhere means an
    augmented batch goes through exactly the same encoder path (`.float() / 255` inside the
    encoder) as an un-augmented observation.
  * channels: the first `rgb_channels` channels are RGB triplets (frame stacks or several cameras:
    C = 3 * k), any channels after them (depth from rgbd obs) only get the geometric shift, never
    colour, blur or noise. One shift per sample is applied to all of its channels (a stack of
    frames moves together); colour parameters are drawn per sample and shared by its RGB triplets.
  * randomness: every op takes an optional `torch.Generator` on the input's device; without one it
    uses torch's global RNG, so `torch.manual_seed(s)` makes results reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

AUG_CHOICES = ("none", "shift", "shift+color")
DR_LEVELS = ("off", "light", "heavy")


# ----------------------------------------------------------------------------- helpers
def _check_images(x: torch.Tensor) -> None:
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise ValueError(f"expected uint8 images (B, C, H, W), got {x.dtype} {tuple(x.shape)}")


def _uniform(n: int, low: float, high: float, device, generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, device=device, generator=generator)


def _rgb_count(c: int, rgb_channels: Optional[int]) -> int:
    rgb = c if rgb_channels is None else rgb_channels
    if rgb % 3 or rgb > c or rgb < 0:
        raise ValueError(
            f"rgb_channels must be a multiple of 3 and <= C={c} (got {rgb}); "
            f"pass rgb_channels for images with depth or non-RGB channels"
        )
    return rgb


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp_(0.0, 255.0).round_().to(torch.uint8)


# ----------------------------------------------------------------------------- random shift
def sample_shifts(batch: int, pad: int, device, generator=None) -> torch.Tensor:
    """(B, 2) integer offsets (dy, dx) in [-pad, pad], one pair per sample."""
    return torch.randint(-pad, pad + 1, (batch, 2), device=device, generator=generator)


def shift_images(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Move sample b by shifts[b] = (dy, dx) whole pixels, with edge pixels repeated: the same as
    replicate-padding by `pad` and cropping an HxW window at offset (pad + dy, pad + dx), but
    written as one gather with clamped indices, so no padded copy is made and uint8 stays uint8."""
    b, c, h, w = x.shape
    rows = (torch.arange(h, device=x.device)[None, :] + shifts[:, :1]).clamp_(0, h - 1)  # (B, H)
    cols = (torch.arange(w, device=x.device)[None, :] + shifts[:, 1:]).clamp_(0, w - 1)  # (B, W)
    flat = (rows[:, :, None] * w + cols[:, None, :]).reshape(b, 1, h * w).expand(b, c, h * w)
    return torch.gather(x.reshape(b, c, h * w), 2, flat).reshape(b, c, h, w)


def random_shift(x: torch.Tensor, pad: int = 4, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """DrQ random shift: per-sample integer shift in [-pad, pad] on both axes, replicate border.
    uint8 (B, C, H, W) -> uint8 (B, C, H, W)."""
    _check_images(x)
    if pad <= 0:
        return x
    return shift_images(x, sample_shifts(x.shape[0], pad, x.device, generator))


# ----------------------------------------------------------------------------- photometric ops
@dataclass(frozen=True)
class PhotometricRanges:
    """Ranges of the photometric ops (all 0 = identity). Factors are drawn uniformly in
    [1 - v, 1 + v] (brightness, contrast, saturation, gain), hue in [-v, v] of a full turn, blur
    sigma in [0.1, v] px applied with probability blur_p, noise std in [0, v] (0-255 scale)."""

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    gain: float = 0.0
    blur_sigma: float = 0.0
    blur_p: float = 0.0
    noise: float = 0.0


def sample_photometric(n: int, ranges: PhotometricRanges, device, generator=None) -> dict[str, torch.Tensor]:
    """Per-sample parameters, a dict of (n,) tensors ((n, 3) for per-channel gain)."""
    r = ranges
    p = {
        "brightness": _uniform(n, 1 - r.brightness, 1 + r.brightness, device, generator),
        "contrast": _uniform(n, 1 - r.contrast, 1 + r.contrast, device, generator),
        "saturation": _uniform(n, 1 - r.saturation, 1 + r.saturation, device, generator),
        "hue": _uniform(n, -r.hue, r.hue, device, generator),
        "gain": 1 + r.gain * (2 * torch.rand(n, 3, device=device, generator=generator) - 1),
        "blur_sigma": _uniform(n, 0.1, max(r.blur_sigma, 0.1), device, generator),
        "blur_on": torch.rand(n, device=device, generator=generator) < r.blur_p,
        "noise": _uniform(n, 0.0, r.noise, device, generator),
    }
    return p


def apply_photometric(
    x: torch.Tensor,
    params: dict[str, torch.Tensor],
    ranges: PhotometricRanges,
    rgb_channels: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Apply gain, brightness, saturation and contrast (one fused pass; saturation and contrast
    commute), then hue, blur and noise, each only if its range is non-zero, to the RGB triplets
    of uint8 x (B, C, H, W) with per-sample `params`. Channels past `rgb_channels` (depth) pass
    through untouched. Returns uint8."""
    _check_images(x)
    b, c, h, w = x.shape
    rgb = _rgb_count(c, rgb_channels)
    if rgb == 0:
        return x
    k = rgb // 3
    r = ranges
    img = x[:, :rgb].float().reshape(b, k, 3, h, w)  # one (3, H, W) image per RGB triplet

    def per(v):  # broadcast a (B,) parameter over (B, k, 3, H, W)
        return v.reshape(b, 1, 1, 1, 1)

    if r.gain:
        img = img * params["gain"].reshape(b, 1, 3, 1, 1)
    if r.brightness or r.contrast or r.saturation:
        # brightness (scale), saturation (blend with luma) and contrast (blend with the mean luma)
        # are per-sample affine maps of (pixel, luma); saturation keeps luma, so the three compose
        # into one pass: out = c*b*s*img + c*b*(1-s)*luma + (1-c)*b*mean(luma)
        one = torch.ones(b, device=x.device)
        bri = params["brightness"] if r.brightness else one
        con = params["contrast"] if r.contrast else one
        sat = params["saturation"] if r.saturation else one
        out = img * per(con * bri * sat)
        if r.contrast or r.saturation:
            gray = _gray(img)
            out = out + gray * per(con * bri * (1 - sat))
            if r.contrast:
                out = out + gray.mean(dim=(-3, -2, -1), keepdim=True) * per((1 - con) * bri)
        img = out
    if r.hue:
        import kornia.color as kc

        flat = (img.clamp(0, 255) / 255.0).reshape(b * k, 3, h, w)
        hsv = kc.rgb_to_hsv(flat)
        turn = params["hue"].repeat_interleave(k) * (2 * math.pi)
        hue = torch.remainder(hsv[:, 0] + turn[:, None, None], 2 * math.pi)
        img = kc.hsv_to_rgb(torch.stack([hue, hsv[:, 1], hsv[:, 2]], 1)).reshape(b, k, 3, h, w) * 255.0
    if r.blur_sigma and r.blur_p:
        import kornia.filters as kf

        ksize = 2 * math.ceil(2 * r.blur_sigma) + 1
        sigma = params["blur_sigma"].repeat_interleave(k)[:, None].expand(-1, 2)
        flat = img.reshape(b * k, 3, h, w)
        blurred = kf.gaussian_blur2d(flat, (ksize, ksize), sigma, border_type="replicate")
        on = params["blur_on"].repeat_interleave(k).reshape(b * k, 1, 1, 1)
        img = torch.where(on, blurred, flat).reshape(b, k, 3, h, w)
    if r.noise:
        img = img + torch.randn(img.shape, device=x.device, generator=generator) * per(params["noise"])
    out = _to_uint8(img.reshape(b, rgb, h, w))
    if rgb == c:
        return out
    return torch.cat([out, x[:, rgb:]], dim=1)


def _gray(img: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of (..., 3, H, W), keeping the channel axis."""
    return 0.299 * img[..., 0:1, :, :] + 0.587 * img[..., 1:2, :, :] + 0.114 * img[..., 2:3, :, :]


# ----------------------------------------------------------------------------- training augmentation
# --aug shift+color: brightness/contrast/saturation jitter only. Hue (an HSV round trip) and noise
# (a randn per pixel) cost 5-10x more on the CPU; they are available through PhotometricRanges.
TRAIN_COLOR = PhotometricRanges(brightness=0.2, contrast=0.2, saturation=0.2)


class Augmentation:
    """Batched, per-sample augmentation of replay batches (uint8 in, uint8 out).

    mode: "none" (identity), "shift" (DrQ random shift by up to `pad` pixels, replicate border) or
    "shift+color" (shift, then colour jitter / noise with `color` ranges, RGB triplets only)."""

    def __init__(
        self,
        mode: str = "shift",
        pad: int = 4,
        rgb_channels: Optional[int] = None,
        color: PhotometricRanges = TRAIN_COLOR,
    ):
        if mode not in AUG_CHOICES:
            raise ValueError(f"augmentation must be one of {AUG_CHOICES} (got '{mode}')")
        self.mode, self.pad, self.rgb_channels, self.color = mode, pad, rgb_channels, color

    def __call__(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        _check_images(x)
        if self.mode == "none":
            return x
        x = random_shift(x, self.pad, generator)
        if self.mode == "shift+color":
            params = sample_photometric(x.shape[0], self.color, x.device, generator)
            x = apply_photometric(x, params, self.color, self.rgb_channels, generator)
        return x

    def pair(
        self, obs: torch.Tensor, next_obs: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment obs and next_obs of one batch in a single call (one kernel launch per op).
        The two get independent draws, as in DrQ-v2."""
        out = self(torch.cat([obs, next_obs], 0), generator)
        return out[: obs.shape[0]], out[obs.shape[0] :]

    def __repr__(self) -> str:
        return f"Augmentation(mode={self.mode!r}, pad={self.pad}, rgb_channels={self.rgb_channels})"


# ----------------------------------------------------------------------------- domain randomization
DR_RANGES = {
    "light": PhotometricRanges(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.0, gain=0.05, noise=2.0),
    "heavy": PhotometricRanges(
        brightness=0.3, contrast=0.3, saturation=0.4, hue=0.08, gain=0.15, blur_sigma=1.0, blur_p=0.3, noise=6.0
    ),
}


def rgb_channel_count(obs_mode: str, channels: int) -> int:
    """RGB channels of an obs["rgb"] tensor: all of them for rgb; 3 per camera for rgbd, whose
    layout is [rgb of every camera, then one depth channel per camera] (lib/envs.PixelObs)."""
    return channels if obs_mode == "rgb" else 3 * (channels // 4)


def randomize_batch(
    x: torch.Tensor,
    level: str,
    rgb_channels: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    group: int = 1,
) -> torch.Tensor:
    """Image-space domain randomization of a training batch (bc.py --dr): every sample draws its own
    photometric parameters from DR_RANGES[level], the ranges DomainRandomization gives rollouts, shared
    by each run of `group` consecutive images (one sample's observation history); noise is fresh per
    image. uint8 (B * group, C, H, W) in and out; level "off" is the identity."""
    _check_images(x)
    if level not in DR_LEVELS:
        raise ValueError(f"domain randomization level must be one of {DR_LEVELS} (got '{level}')")
    if level == "off":
        return x
    if x.shape[0] % group:
        raise ValueError(f"randomize_batch: {x.shape[0]} images are not groups of {group}")
    ranges = DR_RANGES[level]
    params = sample_photometric(x.shape[0] // group, ranges, x.device, generator)
    params = {k: v.repeat_interleave(group, 0) for k, v in params.items()}
    return apply_photometric(x, params, ranges, rgb_channels, generator)


class DomainRandomization:
    """Image-space domain randomization for rollouts: every env draws its own photometric
    parameters (colour gain, brightness, contrast, saturation, hue, blur) at the start of each
    episode and keeps them for the whole episode; noise is drawn fresh every frame.

        dr = DomainRandomization("light", num_envs, device, rgb_channels=3)
        obs_rgb = dr(obs_rgb)                   # after every env.step / reset
        dr.resample(terminated | truncated)     # envs that start a new episode get new parameters

    level "off" is the identity. uint8 (N, C, H, W) in, uint8 out."""

    def __init__(
        self,
        level: str,
        num_envs: int,
        device,
        rgb_channels: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
    ):
        if level not in DR_LEVELS:
            raise ValueError(f"domain randomization level must be one of {DR_LEVELS} (got '{level}')")
        self.level, self.num_envs, self.device = level, num_envs, torch.device(device)
        self.rgb_channels, self.generator = rgb_channels, generator
        self.ranges = DR_RANGES.get(level)
        self.params = (
            sample_photometric(num_envs, self.ranges, self.device, generator) if self.ranges is not None else None
        )

    def resample(self, mask: torch.Tensor) -> None:
        """New episode parameters for the envs where mask (N,) is True (no host sync)."""
        if self.params is None:
            return
        new = sample_photometric(self.num_envs, self.ranges, self.device, self.generator)
        for k, v in self.params.items():
            m = mask.reshape(-1, *([1] * (v.dim() - 1)))
            self.params[k] = torch.where(m, new[k], v)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.params is None:
            return x
        return apply_photometric(x, self.params, self.ranges, self.rgb_channels, self.generator)
