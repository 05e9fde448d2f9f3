"""Fetch the published weights of the timm image encoders, once, on a machine with internet. Docs: docs/encoders.md

    python scripts/fetch_encoder_weights.py --encoder resnet18        # or dinov2-vits14, or all
    python scripts/fetch_encoder_weights.py --encoder all --out-dir /somewhere/to/copy

Each backbone comes through timm (`timm.create_model("<timm name>.<tag>", pretrained=True)`, which downloads
from the Hugging Face hub into huggingface_hub's own cache) and is written, without its classifier, as
`<timm name>.<tag>.safetensors` into the encoder weights directory: $ENCODER_WEIGHTS_DIR, default
~/.cache/maniskill-pixels/encoders (or --out-dir). `--encoder-weights published` reads that file and nothing
else: no run ever downloads. Copy the file to a machine without internet into the same directory.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `python scripts/x.py` puts scripts/ first on the path, not the repo root
    sys.path.insert(0, str(REPO_ROOT))

import tyro  # noqa: E402

from cleanrl_style.lib.encoder_weights import weights_dir  # noqa: E402
from cleanrl_style.lib.runs import UserError, run  # noqa: E402
from cleanrl_style.lib.timm_encoder import BACKBONES, import_timm  # noqa: E402


@dataclass
class Args:
    encoder: str = "all"
    """resnet18 | dinov2-vits14 | all"""
    out_dir: Optional[str] = None
    """where the .safetensors files go (default: $ENCODER_WEIGHTS_DIR or ~/.cache/maniskill-pixels/encoders)"""
    force: bool = False
    """fetch again even where the file exists"""
    half: bool = False
    """store float16 (half the size, e.g. to fit a 64 MiB carry limit; loading casts back to float32)"""


def main(args: Args) -> list[Path]:
    names = list(BACKBONES) if args.encoder == "all" else [args.encoder]
    unknown = [n for n in names if n not in BACKBONES]
    if unknown:
        raise UserError(f"--encoder must be one of {', '.join(BACKBONES)} or all (got '{args.encoder}')")
    out_dir = Path(args.out_dir) if args.out_dir else weights_dir()
    timm = import_timm()
    from huggingface_hub.utils import logging as hf_logging
    from safetensors.torch import save_file

    hf_logging.set_verbosity_error()  # a failed download is reported below, in one line

    written = []
    for name in names:
        spec = BACKBONES[name]
        path = out_dir / f"{spec.published_name}.safetensors"
        if path.is_file() and not args.force:
            print(f"{name}: {path} exists (--force fetches it again)")
            written.append(path)
            continue
        try:
            model = timm.create_model(spec.published_name, pretrained=True, num_classes=0)
        except Exception as e:  # noqa: BLE001  (no network, hub errors: one line)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise UserError(
                f"could not fetch {spec.published_name} from the Hugging Face hub ({type(e).__name__}: {first}); "
                f"this needs internet access to huggingface.co, with HF_HUB_OFFLINE unset",
                code=1,
            ) from e
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        if args.half:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        save_file(state, str(tmp))
        os.replace(tmp, path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        print(f"{name}: wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, sha256 {digest}...)")
        written.append(path)
    return written


if __name__ == "__main__":
    run(main, tyro.cli(Args))
