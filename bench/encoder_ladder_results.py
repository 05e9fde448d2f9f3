"""Gather the runs of the encoder ladder (configs/encoders/pickcube_rgb64_cpu.sh) into a results CSV.
Docs: docs/encoders.md

    python bench/encoder_ladder_results.py runs/enc                  # an OUT_DIR of the pipeline
    python bench/encoder_ladder_results.py runs/enc other/enc        # several OUT_DIRs (or run directories)
    python bench/encoder_ladder_results.py runs/enc --test-seed 5000000

Every path is a run directory (it holds config.yaml) or a folder searched for them. A run's row comes
from its config.yaml, never from the folder it sits in: a bc.py rgb run of the ladder's recipe (chunk
policy, auxiliary loss 10, batch 64, shift augmentation, no --dr) is named by its encoder flags,
<encoder>_<weights>_<mode>: nature_scratch (--encoder nature, random init), nature_inDomain_frozen
(--encoder-weights PATH --freeze-encoder), nature_inDomain_unfreeze (... --unfreeze-after),
resnet18_imagenet_frozen / dinov2_frozen (--encoder-weights published --freeze-encoder); other
combinations get the name the same rule gives (e.g. resnet18_scratch). The pipeline's pretraining run
(--exp-name encoder_ladder_pretrain: the in-domain rows' encoder source) is not a row.

One line per (row, seed) run that has both test evaluations of its last.pt (evaluate.py's
eval_last_seed<S>.json on --variation clean and eval_last_seed<S>_held-out.json) is appended to --out:
clean and held_out are their success_once, train_s the run's training time (final_eval.json train_s),
pretrain_s that of the run its --encoder-weights checkpoint came from (0 for none and published).
Nothing is ever rewritten; a run whose run_dir is already in the file is skipped, so gathering again
appends nothing. The table in docs/encoders.md is rendered from --out by `python bench/reproduce.py --render`
(its `encoders` block), and section 2 of docs/report.md by `python bench/make_report.py`.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _shared, reproduce  # noqa: E402
from bench.finetune_results import _load_json, _rel, command_of, find_runs  # noqa: E402
from cleanrl_style.lib.runs import UserError, run  # noqa: E402

COLUMNS = (
    "row",
    "encoder",
    "weights",
    "frozen",
    "unfreeze_after",
    "seed",
    "clean",
    "held_out",
    "episodes",
    "test_seed",
    "train_s",
    "pretrain_s",
    "num_demos",
    "bc_iters",
    "device",
    "commit",
    "date",
    "flags",
    "run_dir",
    "command",
)
# the BC recipe every row shares (configs/encoders/pickcube_rgb64_cpu.sh); a run that differs is not a ladder row
RECIPE = dict(
    obs_mode="rgb", policy="chunk", aux_coef=10.0, batch_size=64, aug="shift", dr="off", head_input="features"
)
PRETRAIN_EXP = "encoder_ladder_pretrain"
ENCODER_TAG = {"nature": "nature", "resnet18": "resnet18", "dinov2-vits14": "dinov2"}
PUBLISHED_TAG = {"resnet18": "imagenet"}  # what the published weights were trained on, where it names the row
ENCODER_FLAGS = ("encoder_weights", "encoder_image_size", "encoder_adapter", "unfreeze_blocks", "encoder_lr")
CLEAN_RE = re.compile(r"^eval_last_seed(-?\d+)\.json$")


@dataclass
class Args:
    paths: tyro.conf.Positional[list[str]]
    """OUT_DIRs of configs/encoders/pickcube_rgb64_cpu.sh (searched for run directories) or run directories"""
    out: str = "results/encoder_ladder_pickcube_rgb64_cpu.csv"
    """CSV to append one line per run to"""
    test_seed: Optional[int] = None
    """take the test evaluations of this TEST_SEED (default: the clean one with the most episodes)"""


# ----------------------------------------------------------------------------- one run
def weights_kind(weights) -> str:
    """none | published | in-domain (a checkpoint or state dict of ours: --encoder-weights PATH)."""
    if weights in (None, "", "none"):
        return "none"
    return "published" if weights == "published" else "in-domain"


def row_name(encoder: str, weights: str, frozen: bool, unfreeze_after) -> str:
    """<encoder>_<weights>_<mode>: nature_scratch, nature_inDomain_frozen, resnet18_imagenet_frozen, ..."""
    tag = {"none": "scratch", "in-domain": "inDomain", "published": PUBLISHED_TAG.get(encoder, "")}[weights]
    if unfreeze_after is not None:
        mode = "unfreeze"
    elif frozen:
        mode = "frozen"
    else:
        mode = "" if weights == "none" else "trained"
    return "_".join(p for p in (ENCODER_TAG.get(encoder, encoder), tag, mode) if p)


def classify(cfg: dict) -> tuple[Optional[str], str]:
    """(row, '') of a ladder run, or (None, why it is not one)."""
    a = cfg.get("args") or {}
    if cfg.get("script") != "bc":
        return None, f"made by {cfg.get('script')}.py, not bc.py"
    if a.get("exp_name") == PRETRAIN_EXP:
        return None, "the pretraining run (the in-domain rows' encoder), not a row"
    off = [f"{k}={a.get(k)}" for k, v in RECIPE.items() if a.get(k, v) != v]
    if off:
        return None, f"not the ladder's BC recipe ({', '.join(off)})"
    if a.get("encoder", "nature") not in ENCODER_TAG:
        return None, f"--encoder {a.get('encoder')} is not on the ladder"
    weights = weights_kind(a.get("encoder_weights"))
    return row_name(a.get("encoder", "nature"), weights, bool(a.get("freeze_encoder")), a.get("unfreeze_after")), ""


def test_evals(run_dir: Path, test_seed: Optional[int]) -> tuple[Optional[dict], Optional[dict], str]:
    """(clean, held-out, '') evaluate.py results of the run's last.pt for one test seed (the one of --test-seed,
    else the clean one with the most episodes, then the lowest seed), or (None, None, why not)."""
    found = []
    for path in run_dir.glob("eval_last_seed*.json"):
        m = CLEAN_RE.match(path.name)
        if not m or (test_seed is not None and int(m.group(1)) != test_seed):
            continue
        data = _load_json(path)
        if data is None or "success_once" not in data or data.get("variation", "clean") != "clean":
            print(f"encoder_ladder_results: {_rel(path)} is not a clean evaluate.py result, ignored", file=sys.stderr)
            continue
        found.append((-int(data.get("episodes") or 0), int(m.group(1)), data))
    if not found:
        return None, None, "no test evaluation yet (eval_last_seed<S>.json: the pipeline's stage 4)"
    _, seed, clean = sorted(found, key=lambda t: t[:2])[0]
    held = _load_json(run_dir / f"eval_last_seed{seed}_held-out.json")
    if held is None or "success_once" not in held:
        return None, None, f"no held-out evaluation yet (eval_last_seed{seed}_held-out.json)"
    if held.get("episodes") != clean.get("episodes"):
        return (
            None,
            None,
            f"its clean and held-out evaluations have {clean.get('episodes')} / {held.get('episodes')} episodes",
        )
    return clean, held, ""


def _resolve_weights(weights: str, runs: dict[str, Path]) -> Optional[Path]:
    """The run directory of an --encoder-weights checkpoint: the path as recorded (absolute, or relative to the
    repository or the current folder), else a gathered run of the same name (runs moved)."""
    p = Path(weights)
    for cand in [p] if p.is_absolute() else [_shared.REPO_ROOT / p, Path.cwd() / p]:
        if (cand.parent / "config.yaml").is_file():
            return cand.parent
    return runs.get(p.parent.name)


def pretrain_seconds(a: dict, run_dir: Path, runs: dict[str, Path]) -> float:
    """Training time of the run the encoder weights came from (0 for none / published, NaN if not found)."""
    weights = a.get("encoder_weights")
    if weights_kind(weights) != "in-domain":
        return 0.0
    source = _resolve_weights(str(weights), runs)
    final = _load_json(source / "final_eval.json") if source else None
    if final is None or "train_s" not in final:
        print(
            f"encoder_ladder_results: {_rel(run_dir)}: --encoder-weights {weights}: its run (final_eval.json) "
            "not found, pretrain_s left empty",
            file=sys.stderr,
        )
        return math.nan
    return float(final["train_s"])


def flags_of(a: dict) -> str:
    """The encoder flags that are set, and the budget (one cell)."""
    out = [f"total_iters={a.get('total_iters')}", f"batch_size={a.get('batch_size')}", f"aux_coef={a.get('aux_coef')}"]
    for k in ENCODER_FLAGS:
        v = a.get(k)
        if v is None or (k == "encoder_weights" and v == "none"):
            continue
        if k == "encoder_adapter" and a.get("encoder", "nature") == "nature":
            continue  # NatureCNN's adapter is its fc layer, whatever the flag says
        if k in ("unfreeze_blocks", "encoder_lr") and a.get("unfreeze_after") is None:
            continue
        out.append(f"{k}={_rel(Path(v)) if k == 'encoder_weights' and v != 'published' else v}")
    return " ".join(out)


def gather_run(run_dir: Path, cfg: dict, row: str, clean: dict, held: dict, runs: dict[str, Path]) -> dict:
    a = cfg.get("args") or {}
    final = _load_json(run_dir / "final_eval.json") or {}
    seeds = clean.get("seeds") or []
    return dict(
        row=row,
        encoder=a.get("encoder", "nature"),
        weights=weights_kind(a.get("encoder_weights")),
        frozen=bool(a.get("freeze_encoder")),
        unfreeze_after=a.get("unfreeze_after"),
        seed=cfg.get("seed", a.get("seed")),
        clean=_shared.to_float(str(clean.get("success_once", ""))),
        held_out=_shared.to_float(str(held.get("success_once", ""))),
        episodes=clean.get("episodes"),
        test_seed=seeds[0] if seeds else "",
        train_s=_shared.to_float(str(final.get("train_s", ""))),
        pretrain_s=pretrain_seconds(a, run_dir, runs),
        num_demos=final.get("num_demos", a.get("num_demos")),
        bc_iters=a.get("total_iters"),
        device=cfg.get("device", "unknown"),
        commit=cfg.get("git_commit", ""),
        date=cfg.get("start_time", ""),
        flags=flags_of(a),
        run_dir=_rel(run_dir),
        command=command_of(cfg),
    )


# ----------------------------------------------------------------------------- main
def main(args: Args) -> int:
    if not args.paths:
        raise UserError("give at least one OUT_DIR or run directory")
    out = Path(args.out)
    found = find_runs(args.paths)
    runs = {run_dir.name: run_dir for run_dir, _ in found}
    recorded = {r.get("run_dir", "") for r in _shared.read_rows(out)}
    lines, ladder_runs = [], 0
    for run_dir, cfg in found:
        row, why = classify(cfg)
        if row is None:
            print(f"encoder_ladder_results: skip {_rel(run_dir)}: {why}")
            continue
        ladder_runs += 1
        if not (run_dir / "final_eval.json").is_file():
            print(f"encoder_ladder_results: skip {_rel(run_dir)}: no final_eval.json yet (unfinished run)")
            continue
        clean, held, why = test_evals(run_dir, args.test_seed)
        if clean is None:
            print(f"encoder_ladder_results: skip {_rel(run_dir)}: {why}")
            continue
        line = gather_run(run_dir, cfg, row, clean, held, runs)
        if line["run_dir"] in recorded:
            continue
        recorded.add(line["run_dir"])
        lines.append(line)
        print(
            f"encoder_ladder_results: {row} seed {line['seed']}: success_once clean {line['clean']:.2f}, held-out "
            f"{line['held_out']:.2f} ({line['episodes']} episodes) {line['run_dir']}"
        )
    if not ladder_runs:
        raise UserError(
            f"no encoder-ladder runs (bc.py runs of the ladder's recipe) under {' '.join(args.paths)}", code=1
        )
    _shared.append_rows(out, COLUMNS, lines)
    print(
        f"encoder_ladder_results: appended {len(lines)} run(s) to {out}"
        + ("" if lines else " (nothing new: every finished, evaluated run was recorded already)")
    )
    print("\n".join(reproduce.encoder_ladder_table(_shared.read_rows(out))))
    return 0


if __name__ == "__main__":
    run(main, tyro.cli(Args))
