"""The image encoder of the pixel scripts (ppo_rgb.py, sac_rgb.py, bc.py): one interface, one set of
flags. Docs: docs/encoders.md

    --encoder nature | resnet18 | dinov2-vits14      NatureCNN (default), or a timm backbone + adapter
    --encoder-weights none | PATH | published        random init, a file of ours, the backbone's published weights
    --encoder-image-size N  --encoder-adapter linear | attn-pool
    --freeze-encoder  --unfreeze-after STEP  --unfreeze-blocks K  --encoder-lr LR

Every encoder maps uint8 images (B, C, H, W) on the device to float features (B, feature_dim) and has
`.out_dim`. `nature` is lib/nets.NatureCNN itself (state-dict keys `convs.*`, `fc.*`, unchanged). A timm
backbone (`TimmEncoder`) takes C = 3k channels as k RGB images (cameras stacked on channels, or stacked
frames), resizes each to the backbone's input size and normalises it with the backbone's mean/std on the
device, runs them through the backbone as one batch, and maps the k feature sets through a trainable
adapter (`linear`: over the pooled vector; `attn-pool`: a learned query attending over the spatial
tokens) to feature_dim. Depth channels (rgbd) have no pretrained counterpart and are refused.

Each encoder splits into a backbone (the part --freeze-encoder freezes: NatureCNN's convs, a timm model)
and an adapter (NatureCNN's fc layer, TimmEncoder's adapter), so a frozen backbone's output can be cached
(`backbone_features` / `adapt`). Its `backbone_blocks` are the groups --unfreeze-blocks counts from the
output end. The timm side (which backbones, TimmEncoder) is lib/timm_encoder.py; weights (none, a file of
ours, the published ones fetched once by scripts/fetch_encoder_weights.py) are lib/encoder_weights.py.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
import torch.nn as nn

from cleanrl_style.lib.encoder_weights import check_weights_file, load_encoder_weights
from cleanrl_style.lib.nets import NatureCNN
from cleanrl_style.lib.runs import UserError
from cleanrl_style.lib.timm_encoder import ADAPTERS, BACKBONES, ENCODERS, TimmEncoder

__all__ = ["ADAPTERS", "BACKBONES", "ENCODERS", "TimmEncoder", "load_encoder_weights"]


# ----------------------------------------------------------------------------- the interface
def encoder_config(args: Any) -> Optional[dict]:
    """The architecture part of the encoder flags, as recorded in model_kwargs (None: NatureCNN, which
    keeps the model_kwargs of checkpoints written before this module existed)."""
    if args.encoder not in BACKBONES:
        return None
    return dict(name=args.encoder, image_size=args.encoder_image_size, adapter=args.encoder_adapter)


def adopt_config(args: Any, config: Optional[dict]) -> None:
    """Write a checkpoint's encoder_config into args (--init-from takes the architecture it starts from)."""
    config = config or {}
    args.encoder = config.get("name", "nature")
    args.encoder_image_size = config.get("image_size")
    args.encoder_adapter = config.get("adapter", args.encoder_adapter)


def make_image_encoder(
    in_channels: int, height: int, width: int, feature_dim: int = 256, config: Optional[dict] = None
) -> nn.Module:
    """The image encoder `config` (encoder_config) describes: NatureCNN for None, else a TimmEncoder."""
    if not config or config.get("name", "nature") == "nature":
        return NatureCNN(in_channels, height, width, feature_dim)
    name, size, adapter = config["name"], config.get("image_size"), config.get("adapter", "attn-pool")
    return TimmEncoder(name, in_channels, height, width, feature_dim, size, adapter)


def _nature_backbone(enc: NatureCNN, rgb_uint8: torch.Tensor) -> torch.Tensor:
    return enc.convs(rgb_uint8.float() / 255.0)


def backbone_features(enc: nn.Module, rgb_uint8: torch.Tensor) -> torch.Tensor:
    """The backbone's output (what a frozen encoder's feature cache stores); enc(x) == adapt(enc, this)."""
    return _nature_backbone(enc, rgb_uint8) if isinstance(enc, NatureCNN) else enc.backbone_features(rgb_uint8)


def adapt(enc: nn.Module, feats: torch.Tensor) -> torch.Tensor:
    """The adapter over cached backbone features."""
    return enc.fc(feats) if isinstance(enc, NatureCNN) else enc.adapt(feats)


def backbone_shape(enc: nn.Module) -> tuple:
    """Shape of one frame's backbone_features (for cache storage)."""
    if isinstance(enc, NatureCNN):
        return (enc.fc[0].in_features,)
    return tuple(enc.backbone_shape)


def backbone_modules(enc: nn.Module) -> nn.Module:
    return enc.convs if isinstance(enc, NatureCNN) else enc.backbone


def backbone_blocks(enc: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """The backbone's parameter groups from input to output, named: NatureCNN's three conv layers; a timm
    model's coarse groups (timm's group_matcher: ResNet stem, layer1..4; ViT patch/pos embedding, then
    one group per block, the final norm with the last block)."""
    if isinstance(enc, NatureCNN):
        return [(f"convs.{i}", list(enc.convs[i].parameters())) for i in (0, 2, 4)]
    from timm.models import group_parameters

    params = dict(enc.backbone.named_parameters())
    groups = group_parameters(enc.backbone, enc.backbone.group_matcher(coarse=True))
    return [(_label(names), [params[n] for n in names]) for names in groups.values()]


def _label(names: list[str]) -> str:
    """A block's name from its parameters' modules: `layer4`, `blocks.11+norm`, `conv1+bn1`."""
    parts: list[str] = []
    for n in names:
        p = n.split(".")
        key = ".".join(p[:2]) if p[0] == "blocks" else p[0]
        if key not in parts:
            parts.append(key)
    return "+".join(parts)


def freeze_backbone(enc: nn.Module) -> int:
    """requires_grad off for every backbone parameter (the adapter stays trainable); returns their count."""
    n = 0
    for p in backbone_modules(enc).parameters():
        p.requires_grad_(False)
        n += p.numel()
    return n


def trainable(params) -> list[nn.Parameter]:
    """The parameters an optimizer should hold: frozen ones never enter one."""
    return [p for p in params if p.requires_grad]


class Unfreezer:
    """--unfreeze-after STEP --unfreeze-blocks K --encoder-lr LR: at the first call with step >= STEP the
    last K of backbone_blocks(enc) become trainable, in a new param group of `optimizer` with lr LR (and,
    given a scheduler, a matching base lr). Logged once: a line and charts/encoder_unfrozen_blocks,
    charts/encoder_trainable_params. A run resumed past STEP calls it before loading its optimizer state."""

    def __init__(self, enc: nn.Module, after: Optional[int], num_blocks: int, lr: Optional[float], script: str):
        self.after, self.lr, self.script = after, lr, script
        self.done = after is None
        self.blocks: list[tuple[str, list[nn.Parameter]]] = []
        if after is not None:
            blocks = backbone_blocks(enc)
            if not 1 <= num_blocks <= len(blocks):
                names = ", ".join(n for n, _ in blocks)
                raise UserError(f"--unfreeze-blocks must be in 1..{len(blocks)}: this backbone's blocks are {names}")
            self.blocks = blocks[-num_blocks:]

    @classmethod
    def from_args(cls, enc: nn.Module, args: Any, script: str) -> "Unfreezer":
        return cls(enc, args.unfreeze_after, args.unfreeze_blocks, args.encoder_lr, script)

    def maybe_unfreeze(
        self,
        step: int,
        optimizer: torch.optim.Optimizer,
        log: Optional[Callable[[int, dict], None]] = None,
        scheduler: Optional[Any] = None,
    ) -> bool:
        if self.done or step < self.after:
            return False
        params = [p for _, ps in self.blocks for p in ps]
        for p in params:
            p.requires_grad_(True)
        optimizer.add_param_group({"params": params, "lr": self.lr, "initial_lr": self.lr})
        if scheduler is not None:  # the group follows the schedule's shape from its own starting lr
            scheduler.base_lrs.append(self.lr)
            if hasattr(scheduler, "_last_lr"):
                scheduler._last_lr.append(self.lr)
        self.done = True
        n = sum(p.numel() for p in params)
        names = ", ".join(name for name, _ in self.blocks)
        print(
            f"{self.script}: step {step}: unfroze the encoder's last {len(self.blocks)} block(s) ({names}; "
            f"{n:,} parameters) at lr {self.lr:g}",
            flush=True,
        )
        if log is not None:
            log(step, {"charts/encoder_unfrozen_blocks": len(self.blocks), "charts/encoder_trainable_params": n})
        return True


# ----------------------------------------------------------------------------- flags
_ENCODER_FLAGS = (
    ("encoder_weights", "none"),
    ("encoder_image_size", None),
    ("freeze_encoder", False),
    ("unfreeze_after", None),
    ("encoder_lr", None),
)


def check_encoder_flags(args: Any, obs_mode: str, lr: float, others: tuple = ()) -> None:
    """The encoder flags of a pixel script (one line, exit 2), with the resolved defaults written back:
    the backbone's input size, and --encoder-lr = 0.1 x the lr of the optimizer the encoder trains in.
    `others`: the script's own encoders (bc.py's keypoints), which take none of these flags."""
    from cleanrl_style.lib.runs import check_choice, check_non_negative, check_positive

    check_choice("encoder", args.encoder, ENCODERS + tuple(others))
    if obs_mode == "state" or args.encoder in others:
        given = [name for name, default in _ENCODER_FLAGS if getattr(args, name) != default]
        if given:
            what = "state observations" if obs_mode == "state" else f"--encoder {args.encoder}"
            raise UserError(
                f"--{given[0].replace('_', '-')} applies to the image encoders {', '.join(ENCODERS)}, not to {what}"
            )
        return
    check_choice("encoder-adapter", args.encoder_adapter, ADAPTERS)
    check_positive(args, "encoder_image_size", "unfreeze_blocks", "encoder_lr")
    check_non_negative(args, "unfreeze_after")
    timm_encoder = args.encoder != "nature"
    if timm_encoder and obs_mode == "rgbd":
        raise UserError(
            f"--encoder {args.encoder} takes RGB images: rgbd's depth channels have no counterpart in its "
            f"weights; use --obs-mode rgb, or --encoder nature for rgbd"
        )
    if not timm_encoder and args.encoder_image_size is not None:
        raise UserError("--encoder-image-size is the input size of a timm backbone; nature sees the camera image")
    if timm_encoder:
        spec = BACKBONES[args.encoder]
        args.encoder_image_size = args.encoder_image_size or spec.image_size
        if spec.patch and args.encoder_image_size % spec.patch:
            raise UserError(
                f"--encoder-image-size must be a multiple of {args.encoder}'s patch size {spec.patch} "
                f"(got {args.encoder_image_size})"
            )
    if args.encoder_weights == "published" and not timm_encoder:
        raise UserError("--encoder nature has no published weights: use none or a PATH (e.g. runs/<bc run>/best.pt)")
    if args.unfreeze_after is not None and not args.freeze_encoder:
        raise UserError("--unfreeze-after unfreezes a frozen encoder: it needs --freeze-encoder")
    if args.unfreeze_after is None and args.encoder_lr is not None:
        raise UserError(
            "--encoder-lr is the lr of the blocks --unfreeze-after makes trainable: it needs --unfreeze-after"
        )
    if args.unfreeze_after is not None and getattr(args, "cudagraphs", False):
        raise UserError(
            "--unfreeze-after changes the trained parameters mid-run: it does not combine with --cudagraphs"
        )
    if args.encoder_weights != "none" and getattr(args, "init_from", None):
        raise UserError("--init-from loads the encoder of its checkpoint: drop --encoder-weights")
    if args.unfreeze_after is not None and args.encoder_lr is None:
        args.encoder_lr = 0.1 * lr
    if not getattr(args, "resume", None):  # a missing file fails before any env starts (resuming reads none)
        check_weights_file(args.encoder_weights, args.encoder)


def prepare_encoder(enc: nn.Module, args: Any, resumed: bool) -> str:
    """What every script does to its image encoder after building it: --encoder-weights (not when resuming:
    the checkpoint has the weights), then --freeze-encoder (resuming too: requires_grad is not saved).
    Returns what was loaded ('' for nothing)."""
    loaded = "" if resumed else load_encoder_weights(enc, args.encoder_weights, args.encoder)
    if args.freeze_encoder:
        freeze_backbone(enc)
    return loaded


def describe(enc: nn.Module) -> str:
    """One line for the run's start: which encoder, how many parameters train."""
    total = sum(p.numel() for p in enc.parameters())
    train = sum(p.numel() for p in enc.parameters() if p.requires_grad)
    if isinstance(enc, NatureCNN):
        return f"encoder=nature ({total:,} params, {train:,} trainable)"
    where = f"{enc.name}@{enc.image_size}px x{enc.num_images} images, adapter={enc.adapter_kind}"
    return f"encoder={where} ({total:,} params, {train:,} trainable)"
