"""Weights of the image encoders (lib/encoders.py): --encoder-weights none | PATH | published.
Docs: docs/encoders.md

  published  the backbone's published weights, read from weights_dir() ($ENCODER_WEIGHTS_DIR, default
             ~/.cache/maniskill-pixels/encoders), where scripts/fetch_encoder_weights.py wrote them once
             on a machine with internet; never downloaded during a run
  PATH       a checkpoint of ours (best.pt / last.pt of bc.py, sac_rgb.py, ppo_rgb.py): its image encoder,
             the in-domain pretrained start; or a state dict (.pt / .safetensors) of the backbone
Anything missing, unreadable or not fitting is one UserError line (exit 1).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn as nn

from cleanrl_style.lib.nets import NatureCNN
from cleanrl_style.lib.runs import UserError
from cleanrl_style.lib.timm_encoder import BACKBONES, TimmEncoder

WEIGHTS_DIR_ENV = "ENCODER_WEIGHTS_DIR"


def weights_dir() -> Path:
    """Where `--encoder-weights published` looks (and scripts/fetch_encoder_weights.py writes)."""
    return Path(os.environ.get(WEIGHTS_DIR_ENV) or Path.home() / ".cache" / "maniskill-pixels" / "encoders")


def published_path(name: str) -> Path:
    return weights_dir() / f"{BACKBONES[name].published_name}.safetensors"


def fetch_command(name: str) -> str:
    return f"python scripts/fetch_encoder_weights.py --encoder {name}"


# where each script's checkpoint keeps its image encoder, and how it records the encoder's config
_CKPT_PREFIX = {"bc": "model.encoder.cnn.", "sac_rgb": "encoder.cnn.", "ppo_rgb": "encoder."}


def check_weights_file(weights: str, encoder: str) -> None:
    """The file --encoder-weights names exists (checked before any env starts)."""
    if weights == "published" and encoder in BACKBONES and not published_path(encoder).is_file():
        raise _not_cached(encoder)
    if weights not in ("none", "published") and not Path(weights).is_file():
        raise _fail(f"--encoder-weights {weights}", _NO_FILE)


def _ckpt_encoder_config(ckpt: dict) -> Optional[dict]:
    mk = ckpt.get("model_kwargs") or {}
    if ckpt["script"] == "bc":
        m = mk.get("model", {})
        if m.get("encoder", "nature") == "keypoints":
            return {"name": "keypoints"}
        return m.get("encoder_config")
    return mk.get("encoder")


def _fail(where: str, msg: str) -> UserError:
    return UserError(f"{where}: {msg}", code=1)


_NO_FILE = "no such file (none, published, or the path of a checkpoint or a state dict)"


def _not_cached(name: str) -> UserError:
    path = published_path(name)
    return UserError(
        f"--encoder-weights published: the {name} weights ({BACKBONES[name].published_name}) are not cached "
        f"at {path}; fetch them once on a machine with internet: {fetch_command(name)} "
        f"(then copy the file into {path.parent} here, or set {WEIGHTS_DIR_ENV})",
        code=1,
    )


def _load_strict(module: nn.Module, state: dict, where: str, what: str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        detail = detail.split(":", 1)[-1].strip() if ":" in detail else detail
        raise _fail(where, f"does not fit {what} ({detail[:240]})") from e


def _fit_backbone_state(backbone: nn.Module, state: dict) -> dict:
    """A published/full timm state dict for our headless model: classifier keys dropped, a ViT's
    absolute position embedding resampled to this input size (timm's own resampling)."""
    own = backbone.state_dict()
    classifier = backbone.pretrained_cfg.get("classifier") or ""
    classifiers = classifier if isinstance(classifier, (list, tuple)) else [classifier]
    state = {k: v for k, v in state.items() if k in own or not any(k.startswith(c + ".") for c in classifiers if c)}
    if "pos_embed" in state and "pos_embed" in own and state["pos_embed"].shape != own["pos_embed"].shape:
        from timm.layers import resample_abs_pos_embed

        prefix = 0 if getattr(backbone, "no_embed_class", False) else backbone.num_prefix_tokens
        state["pos_embed"] = resample_abs_pos_embed(
            state["pos_embed"], list(backbone.patch_embed.grid_size), num_prefix_tokens=prefix
        )
    return state


def _read_file(path: Path, where: str) -> Any:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # noqa: BLE001
            raise _fail(where, f"not a readable safetensors file ({type(e).__name__})") from e
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001
        raise _fail(where, f"corrupt or not a torch file ({type(e).__name__})") from e


def load_encoder_weights(enc: nn.Module, weights: str, encoder: str) -> str:
    """Load `--encoder-weights` into the image encoder `enc` of type `encoder`; returns what was loaded
    ('' for none). A file that is missing, unreadable or does not fit is one UserError line (exit 1).

      published  the backbone's published weights from weights_dir() (the adapter stays random)
      PATH       a checkpoint of ours (best.pt/last.pt of bc.py, sac_rgb.py or ppo_rgb.py): its whole image
                 encoder (backbone and adapter), which must be of the same --encoder and architecture;
                 or a state dict (.pt / .safetensors) of the backbone (a timm model; NatureCNN: convs+fc)"""
    if weights in (None, "", "none"):
        return ""
    if weights == "published":
        if encoder not in BACKBONES:
            raise UserError(f"--encoder {encoder} has no published weights", code=1)
        path = published_path(encoder)
        if not path.is_file():
            raise _not_cached(encoder)
        state = _read_file(path, f"--encoder-weights published ({path})")
        where = f"--encoder-weights published ({path})"
        _load_strict(enc.backbone, _fit_backbone_state(enc.backbone, state), where, f"the {encoder} backbone")
        return f"published {BACKBONES[encoder].published_name} backbone weights"
    where = f"--encoder-weights {weights}"
    path = Path(weights)
    if not path.is_file():
        raise _fail(where, _NO_FILE)
    obj = _read_file(path, where)
    if isinstance(obj, dict) and "script" in obj and "state_dict" in obj:  # a checkpoint of ours
        script = obj["script"]
        if script not in _CKPT_PREFIX:
            raise _fail(where, f"a {script}.py checkpoint has no image encoder (bc, sac_rgb and ppo_rgb ones do)")
        theirs = _ckpt_encoder_config(obj)
        their_name = (theirs or {}).get("name", "nature")
        sd = obj["state_dict"]
        prefix = _CKPT_PREFIX[script]
        sub = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
        if script == "bc" and not sub:
            raise _fail(where, "this BC checkpoint was trained from state: it has no image encoder")
        if their_name != encoder:
            raise _fail(where, f"its image encoder is '{their_name}', this run's --encoder is '{encoder}'")
        if theirs and isinstance(enc, TimmEncoder) and theirs.get("image_size") != enc.image_size:
            size = theirs.get("image_size")
            raise _fail(where, f"its encoder saw {size}px inputs, this run's --encoder-image-size is {enc.image_size}")
        _load_strict(enc, sub, where, f"this run's {encoder} encoder (--encoder-adapter, --feature-dim, cameras?)")
        return f"{encoder} image encoder of {path} ({script}.py, step {obj.get('step')})"
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise _fail(where, "neither a cleanrl_style checkpoint nor a state dict of tensors")
    if isinstance(enc, NatureCNN):
        _load_strict(enc, obj, where, "a NatureCNN (convs.*, fc.*)")
    else:
        _load_strict(enc.backbone, _fit_backbone_state(enc.backbone, obj), where, f"the {encoder} backbone")
    return f"{encoder} {'encoder' if isinstance(enc, NatureCNN) else 'backbone'} weights of {path}"
