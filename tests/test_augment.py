"""cleanrl_style/augment.py: the DrQ random shift (exactly replicate-pad + crop, per sample, uint8 in
and out, non-square, reproducible under a seed), the three shift implementations agree, colour
ops touch RGB triplets only (never depth) and share parameters across a sample's triplets, and
domain randomization keeps its parameters for an episode."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench.aug_throughput import random_shift_grid_sample, random_shift_kornia
from cleanrl_style.lib import augment as A


def _images(b=8, c=3, h=40, w=56, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, h, w), dtype=torch.uint8, generator=g)


def _padded_crop(x, shifts, pad):
    """The textbook definition: replicate-pad by `pad`, crop at offset pad + (dy, dx)."""
    h, w = x.shape[-2:]
    xp = F.pad(x.float(), (pad, pad, pad, pad), mode="replicate")
    return torch.stack(
        [xp[i, :, pad + dy : pad + dy + h, pad + dx : pad + dx + w] for i, (dy, dx) in enumerate(shifts.tolist())]
    ).to(torch.uint8)


@pytest.mark.parametrize("shape", [(5, 3, 64, 64), (5, 6, 40, 56), (3, 9, 50, 36), (2, 4, 37, 80)])
def test_shift_is_replicate_pad_then_crop(shape):
    x = _images(*shape)
    shifts = A.sample_shifts(shape[0], 4, "cpu", torch.Generator().manual_seed(1))
    assert torch.equal(A.shift_images(x, shifts), _padded_crop(x, shifts, 4))
    # and random_shift draws exactly those shifts from the same generator
    assert torch.equal(A.random_shift(x, 4, torch.Generator().manual_seed(1)), _padded_crop(x, shifts, 4))


@pytest.mark.parametrize("mode", A.AUG_CHOICES)
@pytest.mark.parametrize("shape", [(6, 3, 64, 64), (6, 6, 40, 56), (6, 12, 48, 36)])
def test_augmentation_shapes_dtype_device(mode, shape):
    x = _images(*shape)
    y = A.Augmentation(mode)(x)
    assert y.shape == x.shape and y.dtype == torch.uint8 and y.device == x.device
    if mode == "none":
        assert y is x


@pytest.mark.parametrize("mode", ["shift", "shift+color"])
def test_per_sample_difference(mode):
    """The same image repeated 16 times comes out as (mostly) different images."""
    x = _images(1, 3, 40, 56).repeat(16, 1, 1, 1)
    torch.manual_seed(0)
    y = A.Augmentation(mode)(x)
    distinct = {tuple(y[i].flatten()[:4000].tolist()) for i in range(16)}
    assert len(distinct) >= 8
    assert not torch.equal(y, x)


@pytest.mark.parametrize("mode", ["shift", "shift+color"])
def test_reproducible_under_a_seed(mode):
    x = _images(8, 6, 40, 56)
    aug = A.Augmentation(mode)
    torch.manual_seed(123)
    a = aug(x)
    torch.manual_seed(123)
    b = aug(x)
    torch.manual_seed(124)
    c = aug(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # an explicit generator gives the same reproducibility without touching the global RNG
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(aug(x, g1), aug(x, g2))


def test_grid_sample_and_kornia_shifts_agree_with_the_gather_shift():
    x = _images(6, 6, 20, 28)
    shifts = A.sample_shifts(6, 3, "cpu", torch.Generator().manual_seed(5))
    ref = A.shift_images(x, shifts)
    assert torch.equal(random_shift_grid_sample(x, 3, torch.Generator().manual_seed(5)), ref)
    # kornia draws its own offsets: each of its outputs must be one of the 7x7 possible shifts
    torch.manual_seed(0)
    k = random_shift_kornia(x, 3)
    assert k.shape == x.shape and k.dtype == torch.uint8
    offsets = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)]
    for i in range(6):
        candidates = [A.shift_images(x[i : i + 1], torch.tensor([o])) for o in offsets]
        assert any(torch.equal(k[i : i + 1], c) for c in candidates), i


def test_pair_augments_obs_and_next_obs_independently():
    x = _images(1, 3, 40, 40).repeat(32, 1, 1, 1)
    torch.manual_seed(0)
    a, b = A.Augmentation("shift").pair(x, x.clone())
    assert a.shape == b.shape == x.shape
    assert not torch.equal(a, b)


def test_color_ops_skip_depth_channels_and_share_params_across_triplets():
    """rgbd with 2 cameras: [rgb cam0, rgb cam1, depth cam0, depth cam1]. With pad 0 only the colour
    ops act: depth is untouched, and two identical RGB triplets get the identical jitter."""
    rgb = _images(8, 3, 40, 56)
    depth = _images(8, 2, 40, 56, seed=1)
    x = torch.cat([rgb, rgb, depth], dim=1)
    no_noise = A.PhotometricRanges(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05)
    torch.manual_seed(0)
    y = A.Augmentation("shift+color", pad=0, rgb_channels=6, color=no_noise)(x)
    assert torch.equal(y[:, 6:], depth)
    assert torch.equal(y[:, 0:3], y[:, 3:6])
    assert not torch.equal(y[:, :3], rgb)


def test_shift_moves_depth_with_the_image():
    x = torch.cat([_images(4, 3, 40, 40), _images(4, 1, 40, 40, seed=2)], dim=1)
    g = torch.Generator().manual_seed(3)
    y = A.Augmentation("shift", rgb_channels=3)(x, g)
    shifts = A.sample_shifts(4, 4, "cpu", torch.Generator().manual_seed(3))
    assert torch.equal(y, A.shift_images(x, shifts))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="uint8"):
        A.random_shift(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="rgb_channels"):
        A.Augmentation("shift+color")(_images(2, 4, 40, 40))  # 4 channels: say which are RGB
    with pytest.raises(ValueError, match="augmentation must be"):
        A.Augmentation("crop")


def test_domain_randomization_keeps_params_for_the_episode():
    x = torch.cat([_images(4, 3, 40, 48), _images(4, 1, 40, 48, seed=1)], dim=1)
    assert A.DomainRandomization("off", 4, "cpu")(x) is x
    dr = A.DomainRandomization("heavy", 4, "cpu", rgb_channels=3, generator=torch.Generator().manual_seed(0))
    y = dr(x)
    assert y.shape == x.shape and y.dtype == torch.uint8
    assert torch.equal(y[:, 3:], x[:, 3:])  # depth untouched
    assert not torch.equal(y[:, :3], x[:, :3])
    before = {k: v.clone() for k, v in dr.params.items()}
    dr.resample(torch.tensor([False, True, False, False]))
    for k, v in dr.params.items():
        keep = torch.tensor([True, False, True, True])
        assert torch.equal(v[keep], before[k][keep]), k
    assert not torch.equal(dr.params["brightness"][1], before["brightness"][1])
    # the same episode parameters give nearly the same image on the next frame (only noise differs)
    dr_light = A.DomainRandomization("light", 4, "cpu", rgb_channels=3)
    a, b = dr_light(x).float(), dr_light(x).float()
    assert (a - b).abs().mean() < 4.0


def test_domain_randomization_rejects_unknown_level():
    with pytest.raises(ValueError, match="light"):
        A.DomainRandomization("medium", 2, "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augmentation_on_cuda_stays_on_the_device():
    x = _images(16, 6, 64, 48).cuda()
    for mode in ("shift", "shift+color"):
        y = A.Augmentation(mode)(x)
        assert y.is_cuda and y.dtype == torch.uint8 and y.shape == x.shape


def test_randomize_batch_draws_per_sample_and_shares_a_draw_within_a_history():
    """bc.py --dr: each sample its own photometric draw, the same for the `group` frames of one sample's
    history (noise aside: off here by comparing noise-free ranges' effect on a constant image)."""
    torch.manual_seed(0)
    x = torch.full((6, 3, 8, 8), 120, dtype=torch.uint8)  # 3 samples x 2 history frames of one flat image
    assert torch.equal(A.randomize_batch(x, "off"), x)
    g = torch.Generator().manual_seed(1)
    y = A.randomize_batch(x, "heavy", 3, g, group=2)
    assert y.dtype == torch.uint8 and y.shape == x.shape and not torch.equal(y, x)
    means = y.float().mean((1, 2, 3))  # per-image mean colour: noise averages out over 192 values
    assert (means[0::2] - means[1::2]).abs().max() < 2.0  # frames of one sample: one draw
    assert (means[0::2].max() - means[0::2].min()) > 2.0  # samples: different draws
    again = A.randomize_batch(x, "heavy", 3, torch.Generator().manual_seed(1), group=2)
    assert torch.equal(y, again)
    with pytest.raises(ValueError, match="groups of 4"):
        A.randomize_batch(x, "light", group=4)
    with pytest.raises(ValueError, match="level must be one of"):
        A.randomize_batch(x, "extreme")
