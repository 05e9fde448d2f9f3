"""Gather finished bc.py runs into a results CSV (one row per run) and print a markdown table.

    python bench/bc_results.py --runs RUN_DIR [RUN_DIR ...] --out results/bc_pickcube_state_cpu.csv

Each row names the variant (the run's --exp-name), the demo file and count, the method flags that
matter (policy head, chunk size, temporal ensembling, observation history, dropped state keys,
obs noise, control mode), the eval success at every evaluation, the final success on fresh seeds,
training and wall time, the device and the exact command. Rows are appended, never rewritten.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _shared  # noqa: E402

COLUMNS = (
    "device",
    "date",
    "commit",
    "variant",
    "seed",
    "num_demos",
    "control_mode",
    "obs_mode",
    "policy",
    "chunk_size",
    "temporal_ensemble",
    "obs_horizon",
    "drop_state_keys",
    "obs_noise",
    "total_iters",
    "eval_success_by_iter",
    "final_success_once",
    "final_episodes",
    "train_s",
    "run_wall_s",
    "load1_note",
    "command",
    "encoder",
    "aug",
    "aux_coef",
)


@dataclass
class Args:
    runs: list[str] = field(default_factory=list)
    """bc.py run directories (each with config.yaml, metrics.csv, final_eval.json)"""
    out: str = "results/bc_pickcube_state_cpu.csv"
    """CSV to append to"""
    note: str = ""
    """free text stored with every row (e.g. the machine's load while the runs ran)"""


def row_of(run: Path, note: str) -> dict:
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    a = cfg["args"]
    final = json.loads((run / "final_eval.json").read_text())
    evals = [
        (int(r["step"]), float(r["value"]))
        for r in _shared.read_rows(run / "metrics.csv")
        if r["name"] == "eval/success_once"
    ]
    demo_json = Path(a["demo_path"]).with_suffix(".json")
    control = (
        json.loads(demo_json.read_text())["env_info"]["env_kwargs"].get("control_mode") if demo_json.exists() else ""
    )
    return dict(
        device=cfg["device"],
        date=cfg["start_time"],
        commit=cfg["git_commit"],
        variant=a.get("exp_name") or "bc",
        seed=a["seed"],
        num_demos=final.get("num_demos"),
        control_mode=control,
        obs_mode=a["obs_mode"],
        policy=a["policy"],
        chunk_size=a["chunk_size"] if a["policy"] == "chunk" else 1,
        temporal_ensemble=a["temporal_ensemble"],
        obs_horizon=a["obs_horizon"],
        drop_state_keys="+".join(a["drop_state_keys"]) or "none",
        obs_noise=a.get("obs_noise", 0.0),
        total_iters=a["total_iters"],
        eval_success_by_iter=" ".join(f"{s}:{v:.2f}" for s, v in evals),
        final_success_once=final["success_once"],
        final_episodes=final["episodes"],
        train_s=round(final.get("train_s", float("nan")), 1),
        run_wall_s=round(final.get("wall_time_s", float("nan")), 1),
        load1_note=note,
        command=cfg["command"],
        encoder=a.get("encoder", "nature") if a["obs_mode"] != "state" else "",
        aug=a.get("aug", "") if a["obs_mode"] != "state" else "",
        aux_coef=a.get("aux_coef", 0.0),
    )


def main(args: Args) -> int:
    rows = []
    for r in args.runs:
        run = Path(r)
        if not (run / "final_eval.json").is_file():
            print(f"bc_results: skip {run}: no final_eval.json (unfinished run)", file=sys.stderr)
            continue
        rows.append(row_of(run, args.note))
    if not rows:
        print("bc_results: no finished runs given", file=sys.stderr)
        return 1
    _shared.append_rows(args.out, COLUMNS, rows)
    print("| variant | seed | demos | head | chunk | TE | hist | dropped | final success_once | evals |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['variant']} | {r['seed']} | {r['num_demos']} | {r['policy']} | {r['chunk_size']} | "
            f"{r['temporal_ensemble']} | {r['obs_horizon']} | {r['drop_state_keys']} | "
            f"{r['final_success_once']:.2f} ({r['final_episodes']}) | {r['eval_success_by_iter']} |"
        )
    print(f"appended {len(rows)} row(s) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(tyro.cli(Args)))
