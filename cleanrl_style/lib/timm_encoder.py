"""The timm backbones of lib/encoders.py: which models (BACKBONES), and TimmEncoder, a backbone with the
preprocessing in front of it and a trainable adapter behind it. Docs: docs/encoders.md

TimmEncoder takes uint8 images (B, 3k, H, W) on the device: k RGB images (cameras stacked on channels, or
stacked frames). Each is resized to the backbone's input size and normalised with its mean/std there, the
B*k images go through the backbone as one batch, and the adapter maps the k outputs to feature_dim
(`linear`: over the pooled vectors; `attn-pool`: a learned query attending over each image's tokens).
Models are always built with random weights (timm.create_model(pretrained=False)): weights come from
files only (lib/encoder_weights.py), never from the network during a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from cleanrl_style.lib.runs import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ADAPTERS = ("linear", "attn-pool")
TIMM_VERSION = "1.0.31"  # scripts/setup.sh installs this one, without its torchvision dependency


@dataclass(frozen=True)
class Backbone:
    """A timm model used as an image backbone."""

    timm_name: str
    pretrained_tag: str  # the published weights: timm's `<timm_name>.<tag>` on the Hugging Face hub
    image_size: int  # default input size (square)
    patch: int = 0  # ViT patch size: the input size must be a multiple of it
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    timm_kwargs: dict = field(default_factory=dict)

    @property
    def published_name(self) -> str:
        return f"{self.timm_name}.{self.pretrained_tag}"


BACKBONES: dict[str, Backbone] = {
    # ImageNet-1k ResNet-18 (timm's a1 recipe); 11.2M parameters, 512 features, 7x7 tokens at 224
    "resnet18": Backbone("resnet18", "a1_in1k", 224),
    # DINOv2 ViT-S/14 (self-supervised on LVD-142M); 21.7M parameters, 384 features. Published at 518,
    # used at 224 (16x16 patches, the size most robot-learning uses of it take); pos_embed resampled on load
    "dinov2-vits14": Backbone("vit_small_patch14_dinov2", "lvd142m", 224, patch=14),
}
ENCODERS = ("nature", *BACKBONES)


def import_timm():
    from cleanrl_style.lib.timm_compat import import_timm as _import

    try:
        return _import()
    except ImportError as e:
        raise UserError(
            f"the timm encoders need timm ({e}); `make setup` installs it, or: "
            f"pip install --no-deps timm=={TIMM_VERSION} safetensors huggingface_hub",
            code=1,
        ) from e


class Adapter(nn.Module):
    """The trainable map from k images' backbone output to feature_dim: `linear` takes the pooled vectors
    (B, k, D); `attn-pool` takes the tokens (B, k, N, D) and pools each image's tokens with one learned
    query (timm's AttentionPoolLatent, with a learned position embedding: a conv map's tokens carry none),
    then the k pooled vectors go through Linear + LayerNorm + ReLU (LayerNorm: the backbones' feature
    scales differ, the heads' input scale should not)."""

    def __init__(self, kind: str, num_images: int, num_tokens: int, dim: int, feature_dim: int):
        super().__init__()
        self.kind = kind
        self.pool = None
        if kind == "attn-pool":
            from timm.layers import AttentionPoolLatent

            heads = next(h for h in (8, 6, 4, 2, 1) if dim % h == 0)
            self.pool = AttentionPoolLatent(dim, out_features=0, num_heads=heads, feat_size=num_tokens, pos_embed="abs")
        self.proj = nn.Sequential(nn.Linear(num_images * dim, feature_dim), nn.LayerNorm(feature_dim), nn.ReLU())

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            b, k = feats.shape[:2]
            feats = self.pool(feats.flatten(0, 1)).reshape(b, k, -1)
        return self.proj(feats.flatten(1))


class TimmEncoder(nn.Module):
    """uint8 (B, 3k, H, W) -> (B, feature_dim) through a timm backbone (BACKBONES[name]) and an Adapter.
    BatchNorm layers of the backbone always use their stored statistics (never batch statistics, in
    .train() too): those of the loaded weights, or the identity from random init; their affine
    parameters train when their block does. Acting with batches of one env and learning from replay
    batches then see the same function."""

    def __init__(
        self,
        name: str,
        in_channels: int,
        height: int,
        width: int,
        feature_dim: int = 256,
        image_size: Optional[int] = None,
        adapter: str = "attn-pool",
    ):
        super().__init__()
        if name not in BACKBONES:
            raise UserError(f"--encoder must be one of {', '.join(ENCODERS)} (got '{name}')")
        if adapter not in ADAPTERS:
            raise UserError(f"--encoder-adapter must be one of {', '.join(ADAPTERS)} (got '{adapter}')")
        spec = BACKBONES[name]
        if in_channels % 3:
            raise UserError(
                f"--encoder {name} takes RGB images, 3 channels per camera or frame (got {in_channels} channels); "
                f"depth has no counterpart in its weights: use --obs-mode rgb, or --encoder nature for rgbd"
            )
        self.name, self.spec, self.num_images = name, spec, in_channels // 3
        self.image_size = image_size or spec.image_size
        if spec.patch and self.image_size % spec.patch:
            raise UserError(
                f"--encoder-image-size must be a multiple of {name}'s patch size {spec.patch} (got {self.image_size})"
            )
        timm = import_timm()
        kwargs = dict(spec.timm_kwargs, pretrained=False, num_classes=0)
        if spec.patch:
            kwargs["img_size"] = self.image_size
        self.backbone = timm.create_model(spec.timm_name, **kwargs)
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)
        self.adapter_kind = adapter
        self.backbone.eval()  # the sizing forward must not touch batch-norm statistics
        with torch.no_grad():
            tokens = self._tokens(self.backbone.forward_features(torch.zeros(1, 3, self.image_size, self.image_size)))
        num_tokens, dim = tokens.shape[1:]
        self.backbone_shape = (self.num_images, num_tokens, dim) if adapter == "attn-pool" else (self.num_images, dim)
        self.adapter = Adapter(adapter, self.num_images, num_tokens, dim, feature_dim)
        self.out_dim = feature_dim
        self.train()

    @staticmethod
    def _tokens(f: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) conv maps or (B, N, D) ViT tokens -> (B, N, D)."""
        return f.flatten(2).transpose(1, 2) if f.dim() == 4 else f

    def preprocess(self, rgb_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3k, H, W) -> float (B*k, 3, S, S): each image resized to the backbone's input size
        (bilinear, antialiased when shrinking) and normalised with its mean/std, on the input's device."""
        b, c, h, w = rgb_uint8.shape
        x = rgb_uint8.reshape(b * (c // 3), 3, h, w).float() / 255.0
        s = self.image_size
        if (h, w) != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=max(h, w) > s)
        return (x - self.mean) / self.std

    def backbone_features(self, rgb_uint8: torch.Tensor) -> torch.Tensor:
        """The backbone's output for the adapter: (B, k, D) pooled (linear) or (B, k, N, D) tokens (attn-pool)."""
        b = rgb_uint8.shape[0]
        f = self.backbone.forward_features(self.preprocess(rgb_uint8))
        f = self._tokens(f) if self.adapter_kind == "attn-pool" else self.backbone.forward_head(f, pre_logits=True)
        return f.reshape(b, *self.backbone_shape)

    def adapt(self, feats: torch.Tensor) -> torch.Tensor:
        return self.adapter(feats)

    def forward(self, rgb_uint8: torch.Tensor) -> torch.Tensor:
        return self.adapt(self.backbone_features(rgb_uint8))

    def train(self, mode: bool = True) -> "TimmEncoder":
        super().train(mode)
        for m in self.backbone.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self
