"""configs/generalization/pickcube_rgb64_cpu.sh's argument checks, bench/generalization_results.py and the
`generalization` generated block of bench/reproduce.py (and section 3 of bench/make_report.py), on fake run
directories written in the formats the scripts write (RunLogger's config.yaml, Evaluator.finish's
final_eval.json with bc.py's extra fields, evaluate.py's eval_last_seed<S>[_<variation>].json, collect_demos.py's
converted demo json). Everything goes to tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from conftest import REPO_ROOT, assert_one_error_line, run_script

from cleanrl_style.lib.evaluation import EVAL_KEYS
from cleanrl_style.lib.runs import UserError, write_json

sys.path.insert(0, str(REPO_ROOT))
from bench import _shared, generalization_results, make_report, reproduce  # noqa: E402

DEVICE, COMMIT, TEST_SEED = "CPU: Fake Processor x2", "0123456789abcdef0123-dirty", 5_000_000
PIPELINE = REPO_ROOT / "configs" / "generalization" / "pickcube_rgb64_cpu.sh"
BC_ARGS = dict(obs_mode="rgb", policy="chunk", total_iters=5000, batch_size=64, aux_coef=10.0, eval_variation="clean")


def _demo(out, sim_dr: str):
    """A converted demo file's json as collect_demos.py writes it (the h5 itself is never read here)."""
    sub = "rgb64" if sim_dr == "off" else f"rgb64-simdr-{sim_dr}"
    h5 = out / "demos/PickCube-v1/motionplanning" / sub / "trajectory.rgb.pd_ee_delta_pos.physx_cpu.h5"
    kw = dict(obs_mode="rgb", control_mode="pd_ee_delta_pos", sensor_configs=dict(width=64, height=64))
    if sim_dr != "off":
        kw.update(sim_dr=sim_dr, variation="train")
    env_info = dict(env_id="PickCubeDR-v1" if sim_dr != "off" else "PickCube-v1", env_kwargs=kw, max_episode_steps=50)
    h5.parent.mkdir(parents=True, exist_ok=True)
    write_json(h5.with_suffix(".json"), dict(env_info=env_info, episodes=[], cleanrl_style=dict(sim_dr=sim_dr)))
    return h5


def _eval_result(success_once: float, success_at_end: float, episodes: int, seed: int) -> dict:
    """What lib/evaluation.evaluate returns: means, episodes, per_episode lists, seeds."""
    per = {k: [0.0] * episodes for k in EVAL_KEYS}
    out = {k: 0.0 for k in EVAL_KEYS}
    out.update(success_once=success_once, success_at_end=success_at_end, episode_len=100.0, episodes=episodes)
    return dict(out, per_episode=per, seeds=[seed + i for i in range(episodes)])


def _write_eval(run_dir, variation, success_once, ckpt_env="PickCube-v1", level="heavy", seed=TEST_SEED, episodes=100):
    """evaluate.py's json for --variation `variation` (train with --sim-dr heavy) of a checkpoint trained on
    `ckpt_env` (demos at `level` for PickCubeDR-v1): the env and sim_dr lib/sim_dr.resolve gives it."""
    if variation == "clean":
        env_id, sim_dr = (ckpt_env, None) if ckpt_env == "PickCube-v1" else (ckpt_env, level)
    elif variation == "train":
        env_id, sim_dr = "PickCubeDR-v1", "heavy"
    else:
        env_id, sim_dr = "PickCubeDR-v1", "off" if ckpt_env == "PickCube-v1" else level
    res = _eval_result(success_once, success_once / 2, episodes, seed)
    res.update(
        checkpoint=str(run_dir / "last.pt"),
        script="bc",
        env_id=env_id,
        checkpoint_env_id=ckpt_env,
        variation=variation,
        sim_dr=sim_dr,
        checkpoint_step=5000,
        max_episode_steps=100,
        device="CPU: Test Evaluator x2",
        wall_time_s=60.0,
    )
    suffix = "" if variation == "clean" else f"_{variation}"
    write_json(run_dir / f"eval_last_seed{seed}{suffix}.json", res)


def _run(out, folder, seed, dr, demo, scores=None, final=True, date="2026-12-01T10:00:00+0000", policy="chunk"):
    """A bc.py run directory of the pipeline (OUT_DIR/bc/<folder>/seed<S>/<run>/) as RunLogger, Evaluator and
    evaluate.py leave it. scores: success_once on (clean, train, held-out); None: not evaluated yet."""
    env_id = "PickCubeDR-v1" if "simdr" in str(demo) else "PickCube-v1"
    run_dir = out / "bc" / folder / f"seed{seed}" / f"{env_id}__generalization__{seed}__20261201-100000"
    run_dir.mkdir(parents=True)
    args = dict(BC_ARGS, env_id=env_id, seed=seed, dr=dr, demo_path=str(demo), exp_name=f"generalization_{folder}")
    args["policy"] = policy
    cfg = dict(
        script="bc",
        env_id=env_id,
        seed=seed,
        command=f"cleanrl_style/bc.py --seed {seed} --dr {dr}",
        args=args,
        git_commit=COMMIT,
        versions={"python": "3.11.7"},
        device=DEVICE,
        start_time=date,
    )
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (run_dir / "metrics.csv").write_text("step,wall_time,name,value\n2500,100.0,eval/success_once,0.5\n")
    if final:
        res = _eval_result(0.5, 0.25, 30, seed + 2_000_000)
        extra = dict(step=5000, env_id=env_id, variation="clean", wall_time_s=900.0, train_s=600.0 + seed)
        extra.update(num_demos=500, demo_steps=38902)  # bc.py's extra fields
        write_json(run_dir / "final_eval.json", dict(res, checkpoint="last.pt", **extra))
    for variation, so in zip(("clean", "train", "held-out"), scores or ()):
        _write_eval(run_dir, variation, so, ckpt_env=env_id)
    return run_dir


def _sac_run(out, row, seed, scores, demo=None, sim_dr="off", residual=False):
    """A BC-started sac_rgb.py run of configs/finetune (OUT_DIR/rl/<row>/seed<S>/<run>/) with its final_eval.json
    and evaluate.py's three test evaluations of last.pt (scores: success_once on clean, train, held-out)."""
    env_id = "PickCubeDR-v1" if sim_dr != "off" else "PickCube-v1"
    run_dir = out / "rl" / row / f"seed{seed}" / f"{env_id}__finetune_{row}__{seed}__20261201-100000"
    run_dir.mkdir(parents=True)
    start = dict(residual_of="bc_chunk/last.pt") if residual else dict(init_from="bc/last.pt")
    args = dict(env_id=env_id, seed=seed, obs_mode="rgb", sim_dr=sim_dr, dr="off", demos=demo and str(demo), **start)
    args.update(exp_name=f"finetune_{row}", freeze_encoder=False, unfreeze_after=None)
    cfg = dict(script="sac_rgb", env_id=env_id, seed=seed, args=args, git_commit=COMMIT, device=DEVICE)
    cfg.update(start_time="2026-12-02T10:00:00+0000", command=f"cleanrl_style/sac_rgb.py --seed {seed}")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = _eval_result(0.5, 0.25, 20, seed + 2_000_000)
    write_json(run_dir / "final_eval.json", dict(res, checkpoint="last.pt", step=30000, wall_time_s=6000.0 + seed))
    for variation, so in zip(("clean", "train", "held-out"), scores):
        _write_eval(run_dir, variation, so, ckpt_env=env_id)
    return run_dir


def _experiment(tmp_path):
    """OUT_DIR as the pipeline lays it out: none seeds 1-3, image seeds 1-2, sim seed 1, sim+image seed 1 (its
    demo json moved away: its level comes from the evaluations), an image run filed under sim/, a run without
    its held-out evaluation, an unfinished run and a run of another script."""
    out = tmp_path / "gen"
    clean, sim = _demo(out, "off"), _demo(out, "heavy")
    runs = {}
    for seed, scores in ((1, (0.9, 0.3, 0.1)), (2, (0.8, 0.2, 0.1)), (3, (0.7, 0.1, 0.1))):
        runs[f"none{seed}"] = _run(out, "none", seed, "off", clean, scores)
    for seed, scores in ((1, (0.8, 0.5, 0.3)), (2, (0.6, 0.3, 0.1))):
        runs[f"image{seed}"] = _run(out, "image", seed, "heavy", clean, scores)
    runs["sim1"] = _run(out, "sim", 1, "off", sim, (0.7, 0.6, 0.4))
    gone = out / "elsewhere" / sim.parent.name / sim.name
    runs["both1"] = _run(out, "sim+image", 1, "heavy", gone, (0.75, 0.7, 0.5))
    runs["misfiled"] = _run(out, "sim", 3, "light", clean, (0.5, 0.4, 0.2))
    runs["no_held_out"] = _run(out, "sim", 2, "off", sim, (0.6, 0.5))
    runs["unfinished"] = _run(out, "none", 4, "off", clean, final=False)
    other = out / "other" / "run"
    other.mkdir(parents=True)
    (other / "config.yaml").write_text(yaml.safe_dump(dict(script="sac_rgb", env_id="PickCube-v1", args={})))
    return out, runs


def _args(tmp_path, *paths, **kw):
    kw.setdefault("out", str(tmp_path / "res" / "gen.csv"))
    return generalization_results.Args(paths=[str(p) for p in paths], **kw)


def test_pipeline_refuses_an_unknown_row_and_bad_settings(tmp_path):
    for argv, env, needle in (
        (["1", "bogus"], {}, "ROW must be none, image, sim or sim+image (got 'bogus')"),
        (["1", "sim+image"], {"NUM_DEMOS": "x"}, "NUM_DEMOS must be"),
        (["1", "sim"], {"SIM_DR": "off"}, "SIM_DR must be light or heavy (got 'off')"),
        (["1", "sim"], {"DEMOS_FROM": str(tmp_path / "nope")}, "holds no PickCube-v1/motionplanning/trajectory.h5"),
    ):
        out = tmp_path / "out"
        p = subprocess.run(
            ["bash", str(PIPELINE), str(out), *argv], capture_output=True, text=True, env=dict(_env(), **env)
        )
        assert p.returncode == 2, p.stderr
        assert_one_error_line(p.stderr, needle)
        assert not out.exists()  # nothing ran


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("NUM_DEMOS", "DEMOS_FROM", "ROW", "SIM_DR")}


def test_the_row_comes_from_the_config_and_the_demos(tmp_path):
    def cfg(dr="off", env_id="PickCube-v1", script="bc", obs_mode="rgb"):
        return dict(script=script, env_id=env_id, args=dict(dr=dr, obs_mode=obs_mode))

    c = generalization_results.classify
    assert c(cfg(), "off") == "none" and c(cfg("heavy"), "off") == "image" and c(cfg("light"), "off") == "image"
    assert c(cfg(env_id="PickCubeDR-v1"), "heavy") == "sim" and c(cfg("heavy", "PickCubeDR-v1"), "light") == "sim+image"
    assert c(cfg(env_id="PickCubeDR-v1"), "?") == "sim"  # a PickCubeDR-v1 run whose level is unknown
    assert c(cfg(obs_mode="state"), "off") is None and c(cfg(script="sac_rgb"), "off") is None
    assert c(cfg(env_id="PushCube-v1"), "off") is None
    sim = _demo(tmp_path, "light")
    assert generalization_results.demo_level(dict(args=dict(demo_path=str(sim))), {}) == "light"
    moved = dict(env_id="PickCubeDR-v1", args=dict(demo_path=str(tmp_path / "gone.h5")))
    evals = {"clean": dict(checkpoint_env_id="PickCubeDR-v1", sim_dr="heavy")}
    assert generalization_results.demo_level(moved, evals) == "heavy"
    assert generalization_results.demo_level(dict(env_id="PickCube-v1", args={}), {}) == "off"


def test_gather_rows_idempotence_and_a_late_evaluation(tmp_path, capsys):
    out, runs = _experiment(tmp_path)
    args = _args(tmp_path, out)
    assert generalization_results.main(args) == 0
    printed = capsys.readouterr().out
    assert "no final_eval.json yet" in printed and "made by sac_rgb.py" in printed
    assert f"no eval_last_seed{TEST_SEED}_held-out.json yet" in printed
    assert "lies under sim/ but its config makes it image" in printed
    res = tmp_path / "res/gen.csv"
    rows = _shared.read_rows(res)
    assert list(rows[0]) == list(generalization_results.COLUMNS)
    by = {r["run_dir"]: r for r in rows}
    assert len(rows) == 8 and str(runs["unfinished"].resolve()) not in by
    assert sorted((r["training"], r["seed"]) for r in rows) == sorted(
        [("none", s) for s in "123"] + [("image", s) for s in "123"] + [("sim", "1"), ("sim+image", "1")]
    )
    r = by[str(runs["none1"].resolve())]
    assert (r["clean"], r["train"], r["held_out"]) == ("0.9", "0.3", "0.1")
    assert (r["clean_at_end"], r["train_at_end"], r["held_out_at_end"]) == ("0.45", "0.15", "0.05")
    assert (r["episodes"], r["test_seed"], r["sim_dr_level"], r["demo_sim_dr"], r["image_dr"]) == (
        "100",
        str(TEST_SEED),
        "heavy",
        "off",
        "off",
    )
    assert (r["wall_s"], r["num_demos"], r["total_iters"], r["env_id"]) == ("601", "500", "5000", "PickCube-v1")
    assert (r["device"], r["commit"], r["date"], r["test_device"]) == (
        DEVICE,
        COMMIT,
        "2026-12-01T10:00:00+0000",
        "CPU: Test Evaluator x2",
    )
    assert r["command"].startswith("cleanrl_style/bc.py")
    s = by[str(runs["sim1"].resolve())]
    assert (s["training"], s["demo_sim_dr"], s["env_id"], s["held_out"]) == ("sim", "heavy", "PickCubeDR-v1", "0.4")
    b = by[str(runs["both1"].resolve())]  # demo json gone: the level from the clean evaluation's env
    assert (b["training"], b["demo_sim_dr"], b["image_dr"]) == ("sim+image", "heavy", "heavy")
    assert by[str(runs["misfiled"].resolve())]["training"] == "image"

    # gathering again appends nothing
    before = res.read_bytes()
    assert generalization_results.main(args) == 0
    assert res.read_bytes() == before and "everything was recorded already" in capsys.readouterr().out

    # the missing held-out evaluation arrives: that run gets its line, nothing else changes
    _write_eval(runs["no_held_out"], "held-out", 0.3, ckpt_env="PickCubeDR-v1")
    assert generalization_results.main(args) == 0
    rows2 = _shared.read_rows(res)
    assert len(rows2) == 9 and rows2[-1]["run_dir"] == str(runs["no_held_out"].resolve())
    assert res.read_bytes().startswith(before)

    # --test-seed picks among several test evaluations; a run dir given directly
    for variation, so in (("clean", 0.1), ("train", 0.1), ("held-out", 0.1)):
        _write_eval(runs["none2"], variation, so, seed=7_000_000, episodes=200)
    one = _args(tmp_path / "one", runs["none2"])
    assert generalization_results.main(one) == 0
    (only,) = _shared.read_rows(one.out)
    assert (only["clean"], only["test_seed"], only["episodes"]) == ("0.1", "7000000", "200")  # most episodes
    two = _args(tmp_path / "two", runs["none2"], test_seed=TEST_SEED)
    assert generalization_results.main(two) == 0
    assert _shared.read_rows(two.out)[0]["clean"] == "0.8"


def test_generalization_block_renders_mean_std_and_rows_not_measured(tmp_path):
    out, _ = _experiment(tmp_path)
    assert generalization_results.main(_args(tmp_path, out)) == 0
    csv_path = tmp_path / "res/gen.csv"
    page = tmp_path / "generalization.md"
    page.write_text(f"# G\n\n{reproduce.BLOCK_BEGIN}generalization {csv_path} -->\nold\n{reproduce.BLOCK_END}\n\nend\n")
    md = reproduce.refresh_page(page.read_text(), page)
    assert "\nold\n" not in md and md.endswith(f"{reproduce.BLOCK_END}\n\nend\n")
    lines = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| training")]
    what = reproduce.GENERALIZATION_ROWS
    assert lines[0] == (
        f"| none | {what['none']} | 3 (1, 2, 3) | 0.80 ± 0.10 (n=3) | 0.20 ± 0.10 (n=3) | 0.10 ± 0.00 (n=3) | "
        f"100 (seeds {TEST_SEED}+) | off / off / heavy | 500 / 5000 | 10.0 min | {DEVICE} | 0123456789ab-dirty |"
    )
    # --dr heavy and --dr light are two settings, never averaged together
    assert lines[1].startswith(f"| image | {what['image']} | 2 (1, 2); fewer than 3 | 0.70 ± 0.14 (n=2) | ")
    assert "| off / heavy / heavy |" in lines[1]
    assert lines[2].startswith(f"| image | {what['image']} | 1 (3); fewer than 3 | 0.50 (n=1) | ")
    assert "| off / light / heavy |" in lines[2]
    assert lines[3].startswith(f"| sim | {what['sim']} | 1 (1); fewer than 3 | 0.70 (n=1) | 0.60 (n=1) | ")
    assert "| heavy / off / heavy |" in lines[3] and "| heavy / heavy / heavy |" in lines[4]
    assert [ln.split(" | ")[0][2:] for ln in lines] == ["none", "image", "image", "sim", "sim+image"]

    # a run of another size (1000 demos, 20000 steps) of seed 1 is a row of its own, never seed 1's replacement
    (none1,) = [r for r in _shared.read_rows(csv_path) if (r["training"], r["seed"]) == ("none", "1")]
    big = dict(none1, num_demos="1000", total_iters="20000", run_dir="elsewhere")
    big.update(clean="0.3", date="2026-12-09T10:00:00+0000")
    _shared.append_rows(csv_path, generalization_results.COLUMNS, [big])
    table = reproduce.generalization_table(_shared.read_rows(csv_path))
    none = [ln for ln in table if ln.startswith("| none |")]
    assert none[0] == lines[0] and "| 1 (1); fewer than 3 | 0.30 (n=1) |" in none[1]
    assert "| off / off / heavy | 1000 / 20000 |" in none[1]

    header_only = tmp_path / "empty.csv"
    header_only.write_text(",".join(generalization_results.COLUMNS) + "\n")
    page.write_text(f"{reproduce.BLOCK_BEGIN}generalization {header_only} -->\n{reproduce.BLOCK_END}\n")
    md = reproduce.refresh_page(page.read_text(), page)
    assert md.count("| not yet measured |") == 4 and "No rows" not in md


def test_make_report_section_3_groups_the_seeds_of_each_row(tmp_path):
    """bench/make_report.py's section 3 reads these columns: one table row per training row, its seeds
    averaged (the per-run columns such as wall_s and *_at_end do not split them)."""
    out, _ = _experiment(tmp_path)
    results = tmp_path / "results"
    assert generalization_results.main(_args(tmp_path, out, out=str(results / make_report.GENERALIZATION_CSV))) == 0
    ctx = make_report.Ctx(results, tmp_path / "docs/report.md", tmp_path / "docs/figures", REPO_ROOT / "configs")
    md = "\n".join(make_report.section_generalization(ctx))
    (none,) = [ln for ln in md.splitlines() if ln.startswith("| none |")]
    assert none.startswith(f"| none | bc | off | off | heavy | 500 | 5000 | 100 | {DEVICE} | 3 (1, 2, 3) | ")
    assert "| 3 (1, 2, 3) | 0.80 ± 0.10 (n=3) | 0.20 ± 0.10 (n=3) | 0.10 ± 0.00 (n=3) |" in none
    assert len([ln for ln in md.splitlines() if ln.startswith("| image |")]) == 2  # --dr heavy and light apart
    firsts = [ln.split(" | ")[0][2:] for ln in md.splitlines() if ln.startswith("| ") and " | bc | " in ln]
    assert list(dict.fromkeys(firsts)) == ["none", "image", "sim", "sim+image"]  # the docs table's order
    assert (tmp_path / "docs/figures/generalization.png").is_file()

    # a line written before the policy column (empty cell) is bc's, as in the docs table: the seeds stay together
    csv_path = results / make_report.GENERALIZATION_CSV
    rows = _shared.read_rows(csv_path)
    next(r for r in rows if r["training"] == "none")["policy"] = ""
    csv_path.unlink()
    _shared.append_rows(csv_path, generalization_results.COLUMNS, rows)
    ctx = make_report.Ctx(results, tmp_path / "docs/report.md", tmp_path / "docs/figures", REPO_ROOT / "configs")
    (none2,) = [ln for ln in make_report.section_generalization(ctx) if ln.startswith("| none |")]
    assert none2 == none

    # the light diagnostic gets its own sub-table when its CSV exists (and none without it, as above)
    assert "### Light ranges (diagnostic)" not in md
    light = [dict(r, sim_dr_level="light", train="0.5") for r in rows if r["training"] == "sim"]
    _shared.append_rows(results / make_report.GENERALIZATION_LIGHT_CSV, generalization_results.COLUMNS, light)
    ctx = make_report.Ctx(results, tmp_path / "docs/report.md", tmp_path / "docs/figures", REPO_ROOT / "configs")
    md = make_report.section_generalization(ctx)
    sub = md[md.index("### Light ranges (diagnostic)") :]
    (sim,) = [ln for ln in sub if ln.startswith("| sim |")]
    assert sim.startswith(f"| sim | bc | heavy | off | light | 500 | 5000 | 100 | {DEVICE} | 1 (1) ")
    assert "| 0.70 (n=1) | 0.50 (n=1) | 0.40 (n=1) |" in sim
    assert ("3. generalisation (light)", "sim, bc, heavy, off, light, 500, 5000, 100, " + DEVICE, 1) in ctx.few_seeds


def test_committed_csv_page_and_pipeline_header():
    """docs/generalization.md renders its Results table from the committed CSV (test_bench.py checks it is
    current); the pipeline's header names that CSV, so docs/reproduction.md and the report find it."""
    header = (REPO_ROOT / "results/generalization_pickcube_rgb64_cpu.csv").read_text().splitlines()[0].split(",")
    assert all(c in header for c in generalization_results.COLUMNS)
    text = (REPO_ROOT / "docs/generalization.md").read_text()
    assert f"{reproduce.BLOCK_BEGIN}generalization results/generalization_pickcube_rgb64_cpu.csv -->" in text
    (p,) = [p for p in reproduce.discover_pipelines(REPO_ROOT / "configs") if p.path == PIPELINE]
    assert p.results == ["results/generalization_pickcube_rgb64_cpu.csv"] and p.tier == "cpu"
    assert p.usage == "bash configs/generalization/pickcube_rgb64_cpu.sh OUT_DIR [SEED] [ROW]"


def test_bad_out_dirs_are_one_error_line(tmp_path):
    empty = tmp_path / "empty"
    (empty / "nothing").mkdir(parents=True)
    with pytest.raises(UserError, match="no run directories"):
        generalization_results.main(_args(tmp_path, empty))
    out, runs = _experiment(tmp_path)
    with pytest.raises(UserError, match=r"no finished bc.py \(or BC-started sac_rgb.py\) runs with their three"):
        generalization_results.main(_args(tmp_path, runs["unfinished"], runs["no_held_out"]))
    missing = tmp_path / "nope"
    cp = run_script("bench/generalization_results.py", str(missing), "--out", str(tmp_path / "x.csv"), timeout=120)
    assert cp.returncode == 1
    assert_one_error_line(cp.stderr, str(missing), "no such directory")
    assert not (tmp_path / "x.csv").exists()


def test_fine_tuned_policies_get_their_own_lines_and_table_rows(tmp_path, capsys):
    """A BC-started sac_rgb.py run (the issue's "add the fine-tuned SAC policy") is gathered with policy = its
    fine-tuning row and its training row from what the RL run saw; it never joins the bc.py runs' row; RL runs
    not started from BC are skipped; lines written before the policy column count as bc."""
    out, _ = _experiment(tmp_path)
    clean = _demo(out, "off")
    meta = yaml.safe_load(clean.with_suffix(".json").read_text())  # json is yaml; the demos: 3 episodes
    write_json(clean.with_suffix(".json"), dict(meta, episodes=[dict(episode_id=i) for i in range(3)]))
    recipe = [_sac_run(out, "bc_init_demos", s, (0.7 - s / 10, 0.05, 0.02), demo=clean) for s in (1, 2)]
    residual = _sac_run(out, "residual", 1, (0.2, 0.6, 0.3), sim_dr="heavy", residual=True)
    scratch = _sac_run(out, "scratch", 1, (0.0, 0.0, 0.0))
    cfg = yaml.safe_load((scratch / "config.yaml").read_text())
    cfg["args"].pop("init_from")
    (scratch / "config.yaml").write_text(yaml.safe_dump(cfg))
    args = _args(tmp_path, out)
    assert generalization_results.main(args) == 0
    printed = capsys.readouterr().out
    assert "made by sac_rgb.py, not started from a BC policy" in printed
    by = {r["run_dir"]: r for r in _shared.read_rows(args.out)}
    assert str(scratch.resolve()) not in by
    r = by[str(recipe[0].resolve())]
    assert (r["training"], r["policy"], r["demo_sim_dr"], r["clean"], r["held_out"]) == (
        "none",
        "bc_init_demos",
        "off",
        "0.6",
        "0.02",
    )
    assert (r["wall_s"], r["num_demos"], r["command"]) == ("6001", "3", "cleanrl_style/sac_rgb.py --seed 1")
    r = by[str(residual.resolve())]
    assert (r["training"], r["policy"], r["demo_sim_dr"], r["train"]) == ("sim", "residual", "heavy", "0.6")
    assert {r["policy"] for r in by.values() if "/bc/" in r["run_dir"]} == {"bc"}

    lines = [ln for ln in reproduce.generalization_table(_shared.read_rows(args.out)) if ln.startswith("| none")]
    assert lines[0].startswith("| none | clean demos, no randomization | 3 (1, 2, 3) | 0.80 ± 0.10 (n=3) |")
    assert lines[1].startswith(
        "| none, fine-tuned (`bc_init_demos`) | clean demos, no randomization; then BC -> SAC fine-tuning, the "
        "`bc_init_demos` row of docs/finetune.md (sac_rgb.py) | 2 (1, 2); fewer than 3 | 0.55 ± 0.07 (n=2) | "
    )
    assert "| off / off / heavy | 3 / – | 100.0 min | " in lines[1]  # the RL runs' clock; no BC steps recorded
    table = "\n".join(reproduce.generalization_table(_shared.read_rows(args.out)))
    assert "| sim, fine-tuned (`residual`) |" in table and "not yet measured" not in table

    # a CSV written before the policy column: its lines are bc.py's and keep their row
    old = tmp_path / "old.csv"
    rows = [
        {k: v for k, v in r.items() if k != "policy"} for r in _shared.read_rows(args.out) if "/bc/" in r["run_dir"]
    ]
    _shared.append_rows(old, [c for c in generalization_results.COLUMNS if c != "policy"], rows)
    assert [ln for ln in reproduce.generalization_table(_shared.read_rows(old)) if ln.startswith("| none")] == lines[:1]


def test_gaussian_bc_runs_are_their_own_policy_row(tmp_path):
    """bc.py --policy gaussian (the fine-tuning pipelines' single-step start) is another policy than the table's
    chunk BC: its line says bc_gaussian and its seeds render as their own row, never averaged into `none`."""
    out, runs = _experiment(tmp_path)
    clean = _demo(out, "off")
    gauss = [_run(out, "gauss", s, "off", clean, (0.3, 0.0, 0.0), policy="gaussian") for s in (1, 2)]
    args = _args(tmp_path, out)
    assert generalization_results.main(args) == 0
    by = {r["run_dir"]: r for r in _shared.read_rows(args.out)}
    assert {by[str(g.resolve())]["policy"] for g in gauss} == {"bc_gaussian"}
    assert by[str(runs["none1"].resolve())]["policy"] == "bc"
    lines = [ln for ln in reproduce.generalization_table(_shared.read_rows(args.out)) if ln.startswith("| none")]
    assert len(lines) == 2
    assert lines[0].startswith("| none | clean demos, no randomization | 3 (1, 2, 3) | 0.80 ± 0.10 (n=3) |")
    assert lines[1].startswith(
        "| none, BC gaussian | clean demos, no randomization; `bc.py --policy gaussian` (single-step tanh-Gaussian "
        "head, the fine-tuning start) | 2 (1, 2); fewer than 3 | 0.30 ± 0.00 (n=2) |"
    )
    # make_report keeps them apart too: section 3 has one `none` row per policy
    results = tmp_path / "results"
    _shared.append_rows(results / make_report.GENERALIZATION_CSV, generalization_results.COLUMNS, list(by.values()))
    ctx = make_report.Ctx(results, tmp_path / "docs/report.md", tmp_path / "docs/figures", REPO_ROOT / "configs")
    nones = [ln for ln in make_report.section_generalization(ctx) if ln.startswith("| none |")]
    by_policy = {ln.split(" | ")[1]: ln for ln in nones}
    assert len(nones) == 2 and set(by_policy) == {"bc", "bc_gaussian"}
    assert "| 2 (1, 2) **< 3 seeds** | 0.30 ± 0.00 (n=2) |" in by_policy["bc_gaussian"]
    assert "| 3 (1, 2, 3) | 0.80 ± 0.10 (n=3) |" in by_policy["bc"]
