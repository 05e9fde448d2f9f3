"""configs/encoders/pickcube_rgb64_cpu.sh's refusals, bench/encoder_ladder_results.py and the `encoders`
generated block of bench/reproduce.py, on fake run directories written in the formats the scripts write
(RunLogger's config.yaml, Evaluator.finish's final_eval.json, evaluate.py's eval_last_seed<S>[_held-out].json),
and section 2 of bench/make_report.py. Nothing here trains or makes an env; everything goes to tmp_path."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml
from conftest import REPO_ROOT, assert_one_error_line, run_script

from cleanrl_style.lib.evaluation import EVAL_KEYS
from cleanrl_style.lib.runs import UserError, write_json

sys.path.insert(0, str(REPO_ROOT))
from bench import _shared, encoder_ladder_results, make_report, reproduce  # noqa: E402

PIPELINE = REPO_ROOT / "configs" / "encoders" / "pickcube_rgb64_cpu.sh"
DEVICE, COMMIT, TEST_SEED = "CPU: Fake Processor x2", "0123456789abcdef0123-dirty", 5_000_000
DEMO = "runs/enc/demos/PickCube-v1/motionplanning/rgb64/trajectory.rgb.pd_ee_delta_pos.physx_cpu.h5"


# ----------------------------------------------------------------------------- the pipeline's refusals
def _pipeline(tmp_path, *argv, **env):
    full = dict(os.environ, PYTHON=sys.executable, ENCODER_WEIGHTS_DIR=str(tmp_path / "no_weights"), **env)
    (tmp_path / "no_weights").mkdir(exist_ok=True)
    return subprocess.run(
        ["bash", str(PIPELINE), *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=full
    )


def test_pipeline_refuses_an_unknown_row_and_bad_arguments_before_anything_runs(tmp_path):
    out = tmp_path / "enc"
    cp = _pipeline(tmp_path, str(out), "1", "resnet50_frozen")
    assert cp.returncode == 2 and cp.stdout == ""
    line = assert_one_error_line(cp.stderr, "ROW must be one of", "'resnet50_frozen'")
    assert all(row in line for row in reproduce.ENCODER_LADDER_ROWS)  # the pipeline's rows are the table's
    cp = _pipeline(tmp_path)
    assert cp.returncode == 2 and "usage:" in assert_one_error_line(cp.stderr)
    cp = _pipeline(tmp_path, str(out), "x1")
    assert cp.returncode == 2 and "SEED must be a non-negative integer" in assert_one_error_line(cp.stderr)
    cp = _pipeline(tmp_path, str(out), "0", "nature_inDomain_frozen")  # the pretraining seed itself
    assert cp.returncode == 2 and "PRETRAIN_SEED=0" in assert_one_error_line(cp.stderr)
    cp = _pipeline(tmp_path, str(out), "1", "nature_scratch", DEMOS_FROM=str(tmp_path / "nowhere"))
    assert cp.returncode == 1 and "DEMOS_FROM=" in assert_one_error_line(cp.stderr)
    assert not out.exists()


@pytest.mark.parametrize("row,encoder", [("resnet18_imagenet_frozen", "resnet18"), ("dinov2_frozen", "dinov2-vits14")])
def test_pipeline_refuses_published_rows_without_cached_weights(tmp_path, row, encoder):
    out = tmp_path / "enc"
    cp = _pipeline(tmp_path, str(out), "1", row)
    assert cp.returncode == 1 and cp.stdout == ""
    assert_one_error_line(
        cp.stderr, f"ROW {row} needs the published {encoder} weights", str(tmp_path / "no_weights"),
        f"`python scripts/fetch_encoder_weights.py --encoder {encoder}`",
    )  # fmt: skip
    assert not out.exists()  # refused before the demos stage


def test_pipeline_header_is_discovered_with_its_csv_and_page():
    (p,) = [p for p in reproduce.discover_pipelines(REPO_ROOT / "configs") if p.path == PIPELINE]
    assert p.tier == "cpu" and p.usage == "bash configs/encoders/pickcube_rgb64_cpu.sh OUT_DIR [SEED] [ROW]"
    assert p.results == ["results/encoder_ladder_pickcube_rgb64_cpu.csv"] and "docs/encoders.md" in p.pages
    rows = re.search(r'^ROWS="(.*)"$', PIPELINE.read_text(), re.M).group(1).split()
    assert rows == list(reproduce.ENCODER_LADDER_ROWS)


# ----------------------------------------------------------------------------- fixture runs
def _eval_result(success_once: float, episodes: int, seed: int) -> dict:
    """What lib/evaluation.evaluate returns: means, episodes, per_episode lists, seeds."""
    out = {k: 0.0 for k in EVAL_KEYS}
    out.update(success_once=success_once, success_at_end=success_once / 2, episode_len=100.0, episodes=episodes)
    return dict(out, per_episode={k: [0.0] * episodes for k in EVAL_KEYS}, seeds=[seed + i for i in range(episodes)])


def _write_test(run_dir, variation, success_once, seed=TEST_SEED, episodes=100):
    """evaluate.py --checkpoint RUN/last.pt --variation V: eval_last_seed<S>[_<V>].json."""
    res = _eval_result(success_once, episodes, seed)
    res.update(
        checkpoint=str(run_dir / "last.pt"),
        script="bc",
        env_id="PickCube-v1" if variation == "clean" else "PickCubeDR-v1",
        checkpoint_env_id="PickCube-v1",
        variation=variation,
        sim_dr=None if variation == "clean" else "heavy",
        checkpoint_step=5000,
        max_episode_steps=100,
        device="CPU: Test Evaluator x2",
        wall_time_s=300.0,
    )
    write_json(run_dir / f"eval_last_seed{seed}{'' if variation == 'clean' else '_' + variation}.json", res)


BC_ARGS = dict(
    obs_mode="rgb", policy="chunk", chunk_size=16, total_iters=5000, batch_size=64, aux_coef=10.0, aug="shift",
    dr="off", head_input="features", encoder="nature", encoder_weights="none", encoder_image_size=None,
    encoder_adapter="attn-pool", freeze_encoder=False, unfreeze_after=None, unfreeze_blocks=1, encoder_lr=None,
    demo_path=DEMO, num_demos=500, learning_rate=1e-3,
)  # fmt: skip


def _run(parent, seed, exp, clean=None, held=None, final=True, train_s=600.0, script="bc", **args):
    """A run directory as RunLogger + Evaluator (+ evaluate.py) leave it."""
    run_dir = parent / f"PickCube-v1__{exp}__{seed}__20261201-100000"
    run_dir.mkdir(parents=True)
    a = dict(BC_ARGS, exp_name=exp, seed=seed, env_id="PickCube-v1", **args)
    cfg = dict(script=script, env_id="PickCube-v1", seed=seed, command=f"cleanrl_style/{script}.py --seed {seed}",
               args=a, git_commit=COMMIT, versions={"python": "3.11.7"}, device=DEVICE,
               start_time="2026-12-01T10:00:00+0000")  # fmt: skip
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (run_dir / "metrics.csv").write_text("step,wall_time,name,value\n2500,100.0,eval/success_once,0.5\n")
    if final:
        write_json(run_dir / "final_eval.json", dict(_eval_result(0.4, 20, seed + 2_000_000), checkpoint="last.pt",
                   step=5000, wall_time_s=train_s + 60, train_s=train_s, num_demos=500, demo_steps=38902))  # fmt: skip
    if clean is not None:
        _write_test(run_dir, "clean", clean)
    if held is not None:
        _write_test(run_dir, "held-out", held)
    return run_dir


def _ladder(tmp_path):
    """OUT_DIR as configs/encoders/pickcube_rgb64_cpu.sh lays it out: the pretraining run, nature_scratch seeds
    1-3, nature_inDomain_frozen seeds 1-2, nature_inDomain_unfreeze seed 1 without its held-out evaluation yet,
    an unfinished run, and runs that are not ladder rows."""
    out = tmp_path / "enc"
    pre = _run(out / "pretrain/seed0", 0, "encoder_ladder_pretrain", train_s=900.0)
    pre_ckpt = str(pre / "last.pt")
    runs = {"pre": pre}
    for seed, clean, held in ((1, 0.5, 0.1), (2, 0.6, 0.2), (3, 0.7, 0.0)):
        runs[f"scratch{seed}"] = _run(out / f"bc/nature_scratch/seed{seed}", seed, "encoder_ladder_nature_scratch",
                                      clean, held, train_s=600.0 + seed)  # fmt: skip
    for seed, clean, held in ((1, 0.8, 0.3), (2, 0.9, 0.4)):
        runs[f"frozen{seed}"] = _run(out / f"bc/nature_inDomain_frozen/seed{seed}", seed,
                                     "encoder_ladder_nature_inDomain_frozen", clean, held,
                                     encoder_weights=pre_ckpt, freeze_encoder=True, train_s=400.0)  # fmt: skip
    runs["unfreeze1"] = _run(out / "bc/nature_inDomain_unfreeze/seed1", 1, "encoder_ladder_nature_inDomain_unfreeze",
                             0.75, None, encoder_weights=pre_ckpt, freeze_encoder=True, unfreeze_after=2500,
                             encoder_lr=1e-4)  # fmt: skip
    _run(out / "bc/nature_scratch/seed4", 4, "encoder_ladder_nature_scratch", final=False)
    _run(out / "other/gaussian", 1, "bc_gaussian_rgb64", 0.5, 0.1, policy="gaussian", chunk_size=1)
    _run(out / "other/sac", 1, "finetune_scratch", 0.5, 0.1, script="sac_rgb")
    return out, runs


def _args(tmp_path, *paths, **kw):
    return encoder_ladder_results.Args(paths=[str(p) for p in paths], out=str(tmp_path / "res" / "enc.csv"), **kw)


# ----------------------------------------------------------------------------- the gatherer
def test_rows_come_from_the_encoder_flags():
    def cfg(**a):
        return dict(script="bc", args=dict(BC_ARGS, **a))

    c = encoder_ladder_results.classify
    assert c(cfg()) == ("nature_scratch", "")
    assert c(cfg(encoder_weights="x/last.pt", freeze_encoder=True)) == ("nature_inDomain_frozen", "")
    assert c(cfg(encoder_weights="x/last.pt", freeze_encoder=True, unfreeze_after=10)) == (
        "nature_inDomain_unfreeze", "")  # fmt: skip
    assert c(cfg(encoder="resnet18", encoder_weights="published", freeze_encoder=True)) == (
        "resnet18_imagenet_frozen", "")  # fmt: skip
    assert c(cfg(encoder="dinov2-vits14", encoder_weights="published", freeze_encoder=True)) == ("dinov2_frozen", "")
    assert c(cfg(encoder="resnet18"))[0] == "resnet18_scratch"  # combinations off the ladder: the same naming rule
    assert c(cfg(encoder="resnet18", encoder_weights="published"))[0] == "resnet18_imagenet_trained"
    assert c(cfg(exp_name="encoder_ladder_pretrain"))[0] is None
    assert c(cfg(encoder="keypoints"))[0] is None
    row, why = c(cfg(policy="gaussian", aux_coef=0.0))
    assert row is None and "policy=gaussian" in why and "aux_coef=0.0" in why
    assert c(dict(script="sac_rgb", args={}))[0] is None
    assert set(reproduce.ENCODER_LADDER_ROWS) <= {
        encoder_ladder_results.row_name(e, w, f, u)
        for e in ("nature", "resnet18", "dinov2-vits14")
        for w in ("none", "in-domain", "published")
        for f in (False, True)
        for u in (None, 1)
    }


def test_gather_rows_and_idempotence(tmp_path, capsys):
    out, runs = _ladder(tmp_path)
    args = _args(tmp_path, out)
    assert encoder_ladder_results.main(args) == 0
    printed = capsys.readouterr().out
    assert "the pretraining run" in printed and "no final_eval.json yet" in printed
    assert "not the ladder's BC recipe (policy=gaussian)" in printed and "made by sac_rgb.py" in printed
    assert "no held-out evaluation yet (eval_last_seed5000000_held-out.json)" in printed
    res = tmp_path / "res" / "enc.csv"
    rows = _shared.read_rows(res)
    assert list(rows[0]) == list(encoder_ladder_results.COLUMNS)
    by = {(r["row"], r["seed"]): r for r in rows}
    assert sorted(by) == sorted([("nature_scratch", s) for s in "123"] + [("nature_inDomain_frozen", s) for s in "12"])

    s1 = by[("nature_scratch", "1")]
    assert (s1["encoder"], s1["weights"], s1["frozen"], s1["unfreeze_after"]) == ("nature", "none", "False", "")
    assert (s1["clean"], s1["held_out"], s1["episodes"], s1["test_seed"]) == ("0.5", "0.1", "100", str(TEST_SEED))
    assert (s1["train_s"], s1["pretrain_s"], s1["num_demos"], s1["bc_iters"]) == ("601", "0", "500", "5000")
    assert (s1["device"], s1["commit"], s1["date"]) == (DEVICE, COMMIT, "2026-12-01T10:00:00+0000")  # the run's own
    assert s1["run_dir"] == str(runs["scratch1"].resolve()) and s1["command"] == "cleanrl_style/bc.py --seed 1"
    assert s1["flags"] == "total_iters=5000 batch_size=64 aux_coef=10.0"
    f1 = by[("nature_inDomain_frozen", "1")]
    assert (f1["weights"], f1["frozen"], f1["clean"], f1["held_out"]) == ("in-domain", "True", "0.8", "0.3")
    assert (f1["train_s"], f1["pretrain_s"]) == ("400", "900")  # the pretraining run's train_s
    assert f"encoder_weights={runs['pre'].resolve()}/last.pt" in f1["flags"]

    # gathering again appends nothing
    before = res.read_bytes()
    assert encoder_ladder_results.main(args) == 0
    assert res.read_bytes() == before and "nothing new" in capsys.readouterr().out

    # the unfreeze run gets its held-out evaluation: one more line, the others stay as they were
    _write_test(runs["unfreeze1"], "held-out", 0.25)
    assert encoder_ladder_results.main(args) == 0
    rows2 = _shared.read_rows(res)
    assert len(rows2) == len(rows) + 1 and res.read_bytes().startswith(before)
    u = rows2[-1]
    assert (u["row"], u["unfreeze_after"], u["clean"], u["held_out"], u["pretrain_s"]) == (
        "nature_inDomain_unfreeze", "2500", "0.75", "0.25", "900")  # fmt: skip
    assert "unfreeze_blocks=1 encoder_lr=0.0001" in u["flags"]

    # --test-seed picks the evaluations of one seed; a run directory given directly
    _write_test(runs["scratch2"], "clean", 0.1, seed=7_000_000, episodes=200)
    one = _args(tmp_path / "one", runs["scratch2"])
    assert encoder_ladder_results.main(one) == 0  # the clean one with the most episodes has no held-out twin
    assert not (tmp_path / "one/res/enc.csv").exists() and "eval_last_seed7000000_held-out" in capsys.readouterr().out
    assert encoder_ladder_results.main(_args(tmp_path / "one", runs["scratch2"], test_seed=TEST_SEED)) == 0
    assert [r["clean"] for r in _shared.read_rows(tmp_path / "one/res/enc.csv")] == ["0.6"]


def test_bad_out_dirs_are_one_error_line(tmp_path):
    cp = run_script("bench/encoder_ladder_results.py", str(tmp_path / "nope"), "--out", str(tmp_path / "x.csv"))
    assert cp.returncode == 1
    assert_one_error_line(cp.stderr, str(tmp_path / "nope"), "no such directory")
    (tmp_path / "empty" / "unfinished").mkdir(parents=True)
    with pytest.raises(UserError, match="no run directories"):
        encoder_ladder_results.main(_args(tmp_path, tmp_path / "empty"))
    _run(tmp_path / "sac_only", 1, "finetune_scratch", 0.5, 0.1, script="sac_rgb")
    with pytest.raises(UserError, match="no encoder-ladder runs"):
        encoder_ladder_results.main(_args(tmp_path, tmp_path / "sac_only"))
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "res").exists()


# ----------------------------------------------------------------------------- rendering
def test_encoders_block_renders_means_and_rows_not_measured(tmp_path):
    out, _ = _ladder(tmp_path)
    assert encoder_ladder_results.main(_args(tmp_path, out)) == 0
    csv_path = tmp_path / "res" / "enc.csv"
    page = tmp_path / "encoders.md"
    page.write_text(f"# E\n\n{reproduce.BLOCK_BEGIN}encoders {csv_path} -->\nold\n{reproduce.BLOCK_END}\n\nafter\n")
    md = reproduce.refresh_page(page.read_text(), page)
    assert "\nold\n" not in md and md.endswith(f"{reproduce.BLOCK_END}\n\nafter\n")
    lines = {ln.split(" | ")[0][2:]: ln for ln in md.splitlines() if ln.startswith("| ") and " | " in ln}
    what = {k: v[0] for k, v in reproduce.ENCODER_LADDER_ROWS.items()}
    assert lines["nature_scratch"] == (
        f"| nature_scratch | {what['nature_scratch']} | 3 (1, 2, 3) | 0.60 ± 0.10 (n=3) | 0.10 ± 0.10 (n=3) | "
        f"100 (seeds {TEST_SEED}+) | 5k | 10.0 min | {DEVICE} | 0123456789ab-dirty |"
    )
    assert lines["nature_inDomain_frozen"].startswith(
        f"| nature_inDomain_frozen | {what['nature_inDomain_frozen']} | 2 (1, 2); fewer than 3 | 0.85 ± 0.07 (n=2) | "
        "0.35 ± 0.07 (n=2) |"
    )
    assert "| 6.7 min; + pretraining 15.0 min |" in lines["nature_inDomain_frozen"]
    assert "| not run yet |" in lines["nature_inDomain_unfreeze"]
    assert lines["resnet18_imagenet_frozen"].startswith(
        f"| resnet18_imagenet_frozen | {what['resnet18_imagenet_frozen']} | not measured: needs "
        "`python scripts/fetch_encoder_weights.py --encoder resnet18` | – |"
    )
    assert "`python scripts/fetch_encoder_weights.py --encoder dinov2-vits14`" in lines["dinov2_frozen"]
    assert [k for k in lines if k in what] == list(what)

    header_only = tmp_path / "empty.csv"
    header_only.write_text(",".join(encoder_ladder_results.COLUMNS) + "\n")
    page.write_text(f"{reproduce.BLOCK_BEGIN}encoders {header_only} -->\n{reproduce.BLOCK_END}\n")
    md = reproduce.refresh_page(page.read_text(), page)
    assert md.count("| not run yet |") == 3 and md.count("| not measured: needs ") == 2


def test_report_section_groups_seeds_per_row(tmp_path):
    """bench/make_report.py's encoder section: one table row per ladder row (its seeds' run-to-run columns
    do not split it), every row citing its CSV lines; a header-only CSV is the pending placeholder."""
    results = tmp_path / "results"
    results.mkdir()
    ctx = make_report.Ctx(results, tmp_path / "docs" / "report.md", tmp_path / "figs", REPO_ROOT / "configs")
    (results / make_report.LADDER_CSV).write_text(",".join(encoder_ladder_results.COLUMNS) + "\n")
    md = "\n".join(make_report.section_encoders(ctx))
    assert f"`results/{make_report.LADDER_CSV}` has no rows yet" in md.split("### Learning")[1]
    assert "bash configs/encoders/pickcube_rgb64_cpu.sh OUT_DIR [SEED] [ROW]" in md

    out, _ = _ladder(tmp_path)
    assert (
        encoder_ladder_results.main(encoder_ladder_results.Args([str(out)], str(results / make_report.LADDER_CSV))) == 0
    )
    ctx = make_report.Ctx(results, tmp_path / "docs" / "report.md", tmp_path / "figs", REPO_ROOT / "configs")
    learning = "\n".join(make_report.section_encoders(ctx)).split("### Learning")[1]
    rows = {ln.split(" | ")[0][2:]: ln for ln in learning.splitlines() if ln.startswith("| nature")}
    assert sorted(rows) == ["nature_inDomain_frozen", "nature_scratch"], learning  # in CSV (gathering) order
    scratch, frozen = rows["nature_scratch"], rows["nature_inDomain_frozen"]
    assert scratch.startswith("| nature_scratch | nature | none | False |  | 500 | 5000 | 100 | ")
    assert "| 3 (1, 2, 3) | 0.60 ± 0.10 (n=3) | 0.10 ± 0.10 (n=3) | 602.00 ± 1.00 (n=3) |" in scratch
    assert scratch.endswith(f"| {make_report.LADDER_CSV}: L4-6 |") and frozen.endswith(": L2-3 |")
    assert "**< 3 seeds**" in frozen
    assert ctx.few_seeds == [
        ("2. encoder ladder", f"nature_inDomain_frozen, nature, in-domain, True, 500, 5000, 100, {DEVICE}", 2)
    ]


def test_committed_csv_and_page_block_exist():
    """docs/encoders.md renders its ladder table from the committed CSV (test_bench.py checks it is current)."""
    header = (REPO_ROOT / "results" / make_report.LADDER_CSV).read_text().splitlines()[0].split(",")
    assert header == list(encoder_ladder_results.COLUMNS)
    text = (REPO_ROOT / "docs" / "encoders.md").read_text()
    assert f"{reproduce.BLOCK_BEGIN}encoders results/{make_report.LADDER_CSV} -->" in text
