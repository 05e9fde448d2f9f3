"""Gather the runs of the generalization table into a results CSV. Docs: docs/generalization.md

    python bench/generalization_results.py runs/gen                      # an OUT_DIR of configs/generalization/*.sh
    python bench/generalization_results.py runs/gen other/gen            # several OUT_DIRs (or run directories)
    python bench/generalization_results.py runs/gen --test-seed 5000000  # pick the test evaluations by seed

Every path is a run directory (it holds config.yaml) or a folder searched for them (OUT_DIR/bc/<row>/seed<S>/
<run>/). A run's training row comes from its config.yaml and its demos, never from the folder it sits in:
image-space randomization is bc.py's --dr (light or heavy), simulator randomization is demos converted with
collect_demos.py --sim-dr (the level their json records; such demos are PickCubeDR-v1's), so a bc.py run from
pixels is `none`, `image`, `sim` or `sim+image`.

A BC -> RL fine-tuned policy (a sac_rgb.py run with --init-from or --residual-of, configs/finetune) is gathered
the same way once its last.pt has the three evaluations: its row is what the RL run trained on (--sim-dr of its
env or the level of its --demos: sim; its --dr on rollouts: image), and the `policy` column names its
fine-tuning row of docs/finetune.md (`bc_init_demos`, `residual`, ...), where a bc.py run's says `bc` (or
`bc_gaussian` for --policy gaussian, the fine-tuning pipelines' single-step BC start: its own table row). The
randomization its BC start was trained with is not looked at: the pipelines start every fine-tuning run from
clean demos. wall_s is then the RL run's clock (final_eval.json wall_time_s).

One line per finished run (final_eval.json) whose last.pt has all three evaluate.py results of one test seed
S: eval_last_seed<S>.json (clean), eval_last_seed<S>_train.json and eval_last_seed<S>_held-out.json (the
pipeline's step 3). clean, train and held_out are their success_once, *_at_end their success_at_end;
sim_dr_level is the level whose ranges the train evaluation drew from, demo_sim_dr and image_dr what the run
trained with; wall_s is bc.py's training time (final_eval.json train_s). Lines are appended to --out, never
rewritten; a run whose run_dir is already there is skipped, so gathering again appends nothing.
The table in docs/generalization.md is rendered from --out by `python bench/reproduce.py --render` (make report).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _shared, reproduce  # noqa: E402
from bench.finetune_results import _load_json, _rel, command_of, demo_count, demo_json, find_runs  # noqa: E402
from bench.finetune_results import classify as finetune_row  # noqa: E402
from cleanrl_style.lib.runs import UserError, run  # noqa: E402
from cleanrl_style.lib.sim_dr import BASE_ENV_ID, ENV_ID  # noqa: E402

COLUMNS = (
    "training",
    "policy",
    "seed",
    "clean",
    "train",
    "held_out",
    "clean_at_end",
    "train_at_end",
    "held_out_at_end",
    "episodes",
    "test_seed",
    "sim_dr_level",
    "demo_sim_dr",
    "image_dr",
    "num_demos",
    "total_iters",
    "wall_s",
    "env_id",
    "device",
    "commit",
    "date",
    "test_device",
    "exp_name",
    "run_dir",
    "command",
)
VARIATIONS = {"clean": "", "train": "_train", "held_out": "_held-out"}  # column -> evaluate.py's json suffix
EVAL_RE = re.compile(r"^eval_last_seed(-?\d+)(_train|_held-out)?\.json$")
RANDOMIZED = ("light", "heavy")
FINETUNE_SCRIPTS = ("sac_rgb",)  # RL scripts whose BC-started runs (--init-from, --residual-of) are gathered


@dataclass
class Args:
    paths: tyro.conf.Positional[list[str]]
    """OUT_DIRs of configs/generalization/pickcube_rgb64_cpu.sh (searched for run directories) or run directories"""
    out: str = "results/generalization_pickcube_rgb64_cpu.csv"
    """CSV to append one line per run to"""
    test_seed: Optional[int] = None
    """take the test evaluations of this seed (default: the seed whose three evaluations have the most
    episodes, then the lowest)"""


# ----------------------------------------------------------------------------- one run
def demo_level(cfg: dict, evals: dict[str, dict]) -> str:
    """The --sim-dr level of the run's demos: from their json (collect_demos.py records it; ManiSkill's replay
    tool keeps it in env_kwargs), else from the checkpoint's env as the clean evaluation recorded it
    (a PickCubeDR-v1 checkpoint keeps its level there), 'off' for PickCube-v1 demos, '?' when unknown."""
    meta = demo_json(cfg)
    if meta is not None:
        env_info = meta.get("env_info") or {}
        level = (meta.get("cleanrl_style") or {}).get("sim_dr") or (env_info.get("env_kwargs") or {}).get("sim_dr")
        if level:
            return str(level)
        return "off" if env_info.get("env_id") != ENV_ID else "?"
    clean = evals.get("clean") or {}
    ckpt_env = clean.get("checkpoint_env_id") or cfg.get("env_id")
    if ckpt_env == ENV_ID:
        return str(clean.get("sim_dr") or "?")
    return "off" if ckpt_env == BASE_ENV_ID else "?"


def policy_of(cfg: dict) -> Optional[str]:
    """`bc` for a bc.py run of the table's policy (the action-chunking head, bc.py's default), `bc_gaussian` for
    one with --policy gaussian (the single-step head the fine-tuning pipelines start from: another policy, so
    another table row), the fine-tuning row (bench/finetune_results.classify) of a BC-started sac_rgb.py run,
    None for anything else (RL from scratch or with demos only is not a policy of this table)."""
    a = cfg.get("args") or {}
    if cfg.get("script") == "bc":
        return "bc_gaussian" if a.get("policy") == "gaussian" else "bc"
    if cfg.get("script") in FINETUNE_SCRIPTS and (a.get("init_from") or a.get("residual_of")):
        return finetune_row(cfg)
    return None


def classify(cfg: dict, demo_sim_dr: str) -> Optional[str]:
    """The training row of a bc.py run, or of a BC-started sac_rgb.py run, from pixels (None: not a run of this
    experiment)."""
    a = cfg.get("args") or {}
    if policy_of(cfg) is None or a.get("obs_mode", "state") == "state":
        return None
    if cfg.get("env_id", a.get("env_id")) not in (BASE_ENV_ID, ENV_ID):
        return None
    sim = demo_sim_dr in RANDOMIZED or (demo_sim_dr == "?" and cfg.get("env_id", a.get("env_id")) == ENV_ID)
    sim = sim or str(a.get("sim_dr") or "off") in RANDOMIZED  # an RL run's own env (bc.py has no --sim-dr)
    image = str(a.get("dr") or "off") in RANDOMIZED
    return {(False, False): "none", (False, True): "image", (True, False): "sim", (True, True): "sim+image"}[
        (sim, image)
    ]


def find_test_evals(run_dir: Path, test_seed: Optional[int]) -> tuple[Optional[int], dict[str, dict], list[str]]:
    """(seed, {column: evaluate.py result}, missing json names) of the run's last.pt: the --test-seed, else the
    seed whose three evaluations have the most episodes (then the lowest seed). Missing names are those of
    the seed that came closest, for the skip message."""
    by_seed: dict[int, dict[str, dict]] = {}
    for path in run_dir.glob("eval_last_seed*.json"):
        m = EVAL_RE.match(path.name)
        if not m or (test_seed is not None and int(m.group(1)) != test_seed):
            continue
        col = {v: k for k, v in VARIATIONS.items()}[m.group(2) or ""]
        data = _load_json(path)
        if data is None or "success_once" not in data:
            print(f"generalization_results: {_rel(path)} is not an evaluate.py result, ignored", file=sys.stderr)
            continue
        want = "held-out" if col == "held_out" else col
        if data.get("variation", "clean") != want:
            print(f"generalization_results: {_rel(path)} records variation {data.get('variation')}, ignored")
            continue
        by_seed.setdefault(int(m.group(1)), {})[col] = data

    def rank(s: int) -> tuple:
        return -len(by_seed[s]), -min(int(d.get("episodes") or 0) for d in by_seed[s].values()), s

    seeds = sorted(by_seed, key=rank)
    if not seeds:
        seed = 5_000_000 if test_seed is None else test_seed
        return None, {}, [f"eval_last_seed{seed}{suffix}.json" for suffix in VARIATIONS.values()]
    seed = seeds[0]
    missing = [f"eval_last_seed{seed}{suffix}.json" for col, suffix in VARIATIONS.items() if col not in by_seed[seed]]
    return (None if missing else seed), by_seed[seed], missing


def gather_run(run_dir: Path, cfg: dict, training: str, seed: int, evals: dict[str, dict], demo_sim_dr: str) -> dict:
    a = cfg.get("args") or {}
    final = _load_json(run_dir / "final_eval.json") or {}
    line = dict(
        training=training,
        policy=policy_of(cfg),
        seed=cfg.get("seed", a.get("seed")),
        episodes=min(int(e.get("episodes") or 0) for e in evals.values()),
        test_seed=seed,
        sim_dr_level=evals["train"].get("sim_dr") or "",
        demo_sim_dr=demo_sim_dr,
        image_dr=a.get("dr") or "off",
        num_demos=final.get("num_demos", a.get("num_demos")) or demo_count(cfg),
        total_iters=a.get("total_iters"),
        wall_s=_shared.to_float(str(final.get("train_s", final.get("wall_time_s", "")))),
        env_id=cfg.get("env_id", a.get("env_id", "")),
        device=cfg.get("device", "unknown"),
        commit=cfg.get("git_commit", ""),
        date=cfg.get("start_time", ""),
        test_device=", ".join(dict.fromkeys(str(e.get("device", "")) for e in evals.values())),
        exp_name=a.get("exp_name") or "",
        run_dir=_rel(run_dir),
        command=command_of(cfg),
    )
    for col, e in evals.items():
        line[col] = _shared.to_float(str(e.get("success_once", "")))
        line[f"{col}_at_end"] = _shared.to_float(str(e.get("success_at_end", "")))
    return line


# ----------------------------------------------------------------------------- main
def main(args: Args) -> int:
    if not args.paths:
        raise UserError("give at least one OUT_DIR or run directory")
    out = Path(args.out)
    recorded = {r.get("run_dir", "") for r in _shared.read_rows(out)}
    lines, complete = [], 0
    for run_dir, cfg in find_runs(args.paths):
        rel = _rel(run_dir)
        if policy_of(cfg) is None:
            what = "not started from a BC policy" if cfg.get("script") in FINETUNE_SCRIPTS else "not bc.py"
            print(f"generalization_results: skip {rel}: made by {cfg.get('script')}.py, {what}")
            continue
        if not (run_dir / "final_eval.json").is_file():
            print(f"generalization_results: skip {rel}: no final_eval.json yet (unfinished run)")
            continue
        seed, evals, missing = find_test_evals(run_dir, args.test_seed)
        if seed is None:
            print(f"generalization_results: skip {rel}: no {', '.join(missing)} yet (evaluate.py, pipeline step 3)")
            continue
        level = demo_level(cfg, evals)
        training = classify(cfg, level)
        if training is None:
            a = cfg.get("args") or {}
            print(
                f"generalization_results: skip {rel}: a {cfg.get('script')}.py run on {cfg.get('env_id')} "
                f"from {a.get('obs_mode')}"
            )
            continue
        complete += 1
        folder_row = run_dir.parent.parent.name
        if cfg.get("script") == "bc" and folder_row in reproduce.GENERALIZATION_ROWS and folder_row != training:
            print(f"generalization_results: note: {rel} lies under {folder_row}/ but its config makes it {training}")
        if rel in recorded:
            continue
        line = gather_run(run_dir, cfg, training, seed, evals, level)
        lines.append(line)
        print(
            f"generalization_results: {training} ({line['policy']}) seed {line['seed']}: success_once clean "
            f"{line['clean']:.2f}, "
            f"train {line['train']:.2f} (sim-dr {line['sim_dr_level']}), held-out {line['held_out']:.2f} "
            f"({line['episodes']} episodes from seed {seed}) {rel}"
        )
    if not complete:
        raise UserError(
            f"no finished bc.py (or BC-started sac_rgb.py) runs with their three test evaluations under "
            f"{' '.join(args.paths)}",
            code=1,
        )
    _shared.append_rows(out, COLUMNS, lines)
    print(
        f"generalization_results: appended {len(lines)} run(s) to {out}"
        + (" (everything was recorded already)" if not lines else "")
        + "; python bench/reproduce.py --render puts the table into docs/generalization.md"
    )
    print("\n".join(reproduce.generalization_table(_shared.read_rows(out))))
    return 0


if __name__ == "__main__":
    run(main, tyro.cli(Args))
