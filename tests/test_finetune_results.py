"""bench/finetune_results.py and the `finetune` generated block of bench/reproduce.py, on fake run
directories written in the formats the scripts write (RunLogger's config.yaml and metrics.csv,
Evaluator.finish's final_eval.json, evaluate.py's eval_last_seed<S>.json). Everything goes to tmp_path."""

from __future__ import annotations

import sys

import pytest
import yaml
from conftest import REPO_ROOT, assert_one_error_line, run_script

from cleanrl_style.lib.evaluation import EVAL_KEYS
from cleanrl_style.lib.runs import RunLogger, UserError, write_json

sys.path.insert(0, str(REPO_ROOT))
from bench import _shared, finetune_results, reproduce  # noqa: E402

DEVICE, COMMIT, TEST_SEED = "CPU: Fake Processor x2", "0123456789abcdef0123-dirty", 5_000_000
DEMO = "runs/ft/demos/PickCube-v1/motionplanning/rgb64/trajectory.rgb.pd_ee_delta_pos.physx_cpu.h5"


def _eval_result(success_once: float, success_at_end: float, episodes: int, seed: int) -> dict:
    """What lib/evaluation.evaluate returns: means, episodes, per_episode lists, seeds."""
    per = {k: [0.0] * episodes for k in EVAL_KEYS}
    out = {k: 0.0 for k in EVAL_KEYS}
    out.update(success_once=success_once, success_at_end=success_at_end, episode_len=100.0, episodes=episodes)
    return dict(out, per_episode=per, seeds=[seed + i for i in range(episodes)])


def _run(parent, script, seed, args, evals=(), final=None, test=None, date="2026-12-01T10:00:00+0000", command=True):
    """A run directory as RunLogger + Evaluator (+ evaluate.py) leave it. evals: (step, wall, success_once,
    success_at_end); final: dict(success_once, success_at_end, step, wall_time_s, **extra); test: the
    held-out (success_once, success_at_end)."""
    name = f"PickCube-v1__{args.get('exp_name') or script}__{seed}__20261201-100000"
    run_dir = parent / name
    run_dir.mkdir(parents=True)
    cfg = dict(
        script=script,
        env_id="PickCube-v1",
        seed=seed,
        command=f"cleanrl_style/{script}.py --seed {seed} --exp-name {args.get('exp_name')}",
        args=dict(args, seed=seed, env_id="PickCube-v1"),
        git_commit=COMMIT,
        versions={"python": "3.11.7"},
        device=DEVICE,
        start_time=date,
    )
    if not command:
        del cfg["command"]
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    lines = ["step,wall_time,name,value"]
    for step, wall, so, sae in evals:
        for k, v in (("success_once", so), ("success_at_end", sae), ("return", 10.0), ("episode_len", 100)):
            lines.append(f"{step},{wall:.6f},eval/{k},{v:.6g}")
        lines.append(f"{step},{wall:.6f},time/sps,{12.5:.6g}")
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
    if final is not None:
        f = dict(final)
        res = _eval_result(f.pop("success_once"), f.pop("success_at_end"), 20, seed + 2_000_000)
        write_json(run_dir / "final_eval.json", dict(res, checkpoint="last.pt", **f))
    if test is not None:
        _write_test(run_dir, *test)
    return run_dir


def _write_test(run_dir, success_once, success_at_end, seed=TEST_SEED, episodes=100):
    res = _eval_result(success_once, success_at_end, episodes, seed)
    res.update(
        checkpoint=str(run_dir / "last.pt"),
        script="bc",
        env_id="PickCube-v1",
        checkpoint_step=5000,
        max_episode_steps=100,
        device="CPU: Test Evaluator x2",
        wall_time_s=300.0,
    )
    write_json(run_dir / f"eval_last_seed{seed}.json", res)


BC_ARGS = dict(exp_name="bc_gaussian_rgb64", policy="gaussian", obs_mode="rgb", total_iters=5000, batch_size=64)
RL_ARGS = dict(
    obs_mode="rgb",
    total_timesteps=5000,
    num_envs=2,
    batch_size=256,
    utd=0.5,
    alpha=0.05,
    num_q=10,
    critic_warmup_steps=1000,
    demo_ratio=0.5,
    bc_coef=0.0,
    bc_decay_steps=0,
    critic_encoder="shared",
    demos=None,
    init_from=None,
    include_state=True,
    aug="shift",
)


def _experiment(tmp_path):
    """OUT_DIR as configs/finetune/pickcube_rgb64_cpu.sh lays it out: BC seeds 1 (held-out eval) and 2 (only
    final_eval.json so far), bc_init_demos seeds 1-3, bc_init seed 1, scratch seed 1, demos seed 1 unfinished,
    and a run of another script."""
    out = tmp_path / "ft"
    bc1 = _run(out / "bc/seed1", "bc", 1, BC_ARGS, [(2500, 100, 0.4, 0.2), (5000, 200, 0.5, 0.3)],
               dict(success_once=0.52, success_at_end=0.3, step=5000, wall_time_s=900.0, train_s=600.0,
                    num_demos=500, demo_steps=38902), test=(0.48, 0.25))  # fmt: skip
    bc2 = _run(out / "bc/seed2", "bc", 2, BC_ARGS, [(5000, 210, 0.6, 0.3)],
               dict(success_once=0.6, success_at_end=0.4, step=5000, wall_time_s=950.0, train_s=700.0,
                    num_demos=500, demo_steps=38902))  # fmt: skip
    recipe = dict(RL_ARGS, critic_encoder="separate", demos=DEMO, bc_coef=2.0, bc_decay_steps=10000)
    runs = {"bc1": bc1, "bc2": bc2}
    for seed, bc, curve, final, wall in (
        (1, bc1, [(0, 50, 0.45, 0.3), (2500, 500, 0.2, 0.1), (5000, 990, 0.6, 0.4)], (0.7, 0.5), 1000.0),
        # seed 2 names its BC start by a path that no longer exists: found among the gathered BC runs by name
        (2, "runs/elsewhere/bc/seed2/" + bc2.name, [(0, 55, 0.5, 0.3), (2500, 510, 0.3, 0.2), (5000, 1190, 0.7, 0.5)],
         (0.8, 0.6), 1200.0),
        (3, bc1, [(0, 52, 0.4, 0.3), (2500, 505, 0.5, 0.3), (5000, 1390, 0.9, 0.7)], (0.9, 0.7), 1400.0),
    ):  # fmt: skip
        init = f"{bc}/last.pt"
        runs[f"recipe{seed}"] = _run(out / f"rl/bc_init_demos/seed{seed}", "sac_rgb", seed,
                                     dict(recipe, exp_name="finetune_bc_init_demos", init_from=init), curve,
                                     dict(success_once=0.1, success_at_end=0.0, step=5000, wall_time_s=wall),
                                     test=final)  # fmt: skip
    runs["bc_init"] = _run(out / "rl/bc_init/seed1", "sac_rgb", 1,
                           dict(RL_ARGS, critic_encoder="separate", init_from=f"{bc1}/last.pt",
                                exp_name="finetune_bc_init"),
                           [(0, 40, 0.45, 0.3), (5000, 800, 0.35, 0.2)],
                           dict(success_once=0.3, success_at_end=0.2, step=5000, wall_time_s=820.0), test=(0.33, 0.2),
                           command=False)  # fmt: skip
    runs["scratch"] = _run(out / "rl/scratch/seed1", "sac_rgb", 1, dict(RL_ARGS, exp_name="finetune_scratch"),
                           [(2500, 400, 0.0, 0.0), (5000, 800, 0.05, 0.0)],
                           dict(success_once=0.0, success_at_end=0.0, step=5000, wall_time_s=810.0),
                           test=(0.02, 0.0))  # fmt: skip
    runs["demos"] = _run(
        out / "rl/demos/seed1",
        "sac_rgb",
        1,
        dict(RL_ARGS, demos=DEMO, exp_name="finetune_demos"),
        [(2500, 400, 0.1, 0.0)],
    )  # fmt: skip  (unfinished: no final_eval.json)
    _run(out / "other", "ppo", 1, dict(exp_name="ppo"), [(100, 1, 0.0, 0.0)],
         dict(success_once=0.0, success_at_end=0.0, step=100, wall_time_s=1.0))  # fmt: skip
    return out, runs


def _args(tmp_path, *paths, **kw):
    return finetune_results.Args(
        paths=[str(p) for p in paths],
        out=str(tmp_path / "res" / "ft.csv"),
        **kw,
    )


def test_row_classification_comes_from_the_flags():
    def cfg(script, **a):
        return dict(script=script, args=a)

    assert finetune_results.classify(cfg("bc", policy="gaussian")) == "bc"
    assert finetune_results.classify(cfg("sac_rgb", init_from="x/last.pt", demos="d.h5")) == "bc_init_demos"
    assert finetune_results.classify(cfg("sac_rgb", init_from="x/last.pt", demos=None)) == "bc_init"
    assert finetune_results.classify(cfg("sac_rgb", init_from=None, demos="d.h5")) == "demos"
    assert finetune_results.classify(cfg("sac_rgb", init_from=None, demos=None)) == "scratch"
    assert finetune_results.classify(cfg("sac", demos="d.h5")) == "demos"
    assert finetune_results.classify(cfg("bc", policy="chunk")) == "bc_chunk"  # a residual row's base
    assert finetune_results.classify(cfg("sac_rgb", residual_of="c/last.pt", init_from=None, demos=None)) == "residual"
    assert finetune_results.classify(cfg("ppo_rgb")) is None
    # the encoder ladder's rungs: --freeze-encoder, and --unfreeze-after on top
    recipe = dict(init_from="x/last.pt", demos="d.h5", freeze_encoder=True)
    assert finetune_results.classify(cfg("sac_rgb", **recipe, unfreeze_after=None)) == "bc_init_demos_frozen"
    assert finetune_results.classify(cfg("sac_rgb", **recipe, unfreeze_after=15000)) == "bc_init_demos_unfreeze"
    assert finetune_results.classify(cfg("sac_rgb", demos="d.h5", freeze_encoder=False, unfreeze_after=5)) == "demos"
    assert finetune_results._rel(REPO_ROOT / "runs" / "ft" / "x") == "runs/ft/x"


def test_gather_rows_curves_idempotence_and_the_plot(tmp_path, capsys):
    out, runs = _experiment(tmp_path)
    args = _args(tmp_path, out)
    assert finetune_results.main(args) == 0
    printed = capsys.readouterr().out
    assert "no final_eval.json yet" in printed and "made by ppo.py" in printed
    res, curves_path, png = tmp_path / "res/ft.csv", tmp_path / "res/ft_curves.csv", tmp_path / "res/ft.png"
    rows = _shared.read_rows(res)
    required = ("row seed env_steps final_success_once final_success_at_end min_eval_success_once wall_s device "
                "commit start_success_once test_episodes test_seed pretrain_s eval_curve run_dir command date "
                "final_source").split()  # fmt: skip
    assert all(c in rows[0] for c in required)
    by = {(r["row"], r["seed"]): r for r in rows}
    assert sorted(by) == sorted([("bc", "1"), ("bc", "2"), ("bc_init", "1"), ("scratch", "1")]
                                + [("bc_init_demos", s) for s in "123"])  # fmt: skip

    r = by[("bc_init_demos", "1")]  # final from the held-out json, not from final_eval.json's 0.1
    assert (r["final_success_once"], r["final_success_at_end"]) == ("0.7", "0.5")
    assert (r["final_source"], r["test_episodes"], r["test_seed"]) == (
        f"eval_last_seed{TEST_SEED}.json",
        "100",
        str(TEST_SEED),
    )
    assert r["test_device"] == "CPU: Test Evaluator x2"
    assert r["eval_curve"] == "0:0.45;2500:0.2;5000:0.6"
    assert (r["min_eval_success_once"], r["start_success_once"]) == ("0.2", "0.45")  # the dip, the BC start
    assert (r["env_steps"], r["wall_s"], r["pretrain_s"]) == ("5000", "1000", "600")  # BC seed 1's train_s
    assert (r["device"], r["commit"], r["date"]) == (DEVICE, COMMIT, "2026-12-01T10:00:00+0000")  # the run's own
    assert r["run_dir"] == str(runs["recipe1"].resolve()) and r["command"].startswith("cleanrl_style/sac_rgb.py")
    assert "num_q=10" in r["flags"] and "bc_coef=2.0" in r["flags"] and r["init_from"].endswith("last.pt")
    assert by[("bc_init_demos", "2")]["pretrain_s"] == "700"  # moved BC run, matched by its name
    assert by[("bc_init", "1")]["pretrain_s"] == "600"
    assert by[("bc_init", "1")]["command"].startswith("cleanrl_style/sac_rgb.py --obs-mode rgb")  # rebuilt
    assert "--init-from" in by[("bc_init", "1")]["command"]
    s = by[("scratch", "1")]
    assert (s["pretrain_s"], s["start_success_once"], s["min_eval_success_once"]) == ("0", "", "0")

    b1, b2 = by[("bc", "1")], by[("bc", "2")]
    assert (b1["env_steps"], b1["final_success_once"], b1["min_eval_success_once"], b1["pretrain_s"]) == (
        "0", "0.48", "0.48", "0")  # fmt: skip
    assert (b1["eval_curve"], b1["wall_s"], b1["start_success_once"]) == ("", "900", "")
    assert (b2["final_source"], b2["final_success_once"], b2["test_episodes"], b2["test_seed"]) == (
        "final_eval.json", "0.6", "20", "2000002")  # fmt: skip

    curves = _shared.read_rows(curves_path)
    assert list(curves[0]) == list(finetune_results.CURVE_COLUMNS)
    assert len(curves) == 3 * 3 + 2 + 2  # every in-training evaluation of the finished RL runs, none of BC
    c = [x for x in curves if x["run_dir"] == r["run_dir"]]
    assert [(x["env_steps"], x["wall_s"], x["success_once"], x["success_at_end"]) for x in c] == [
        ("0", "50", "0.45", "0.3"), ("2500", "500", "0.2", "0.1"), ("5000", "990", "0.6", "0.4")]  # fmt: skip
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # gathering again appends nothing
    before = res.read_bytes(), curves_path.read_bytes()
    assert finetune_results.main(args) == 0
    assert (res.read_bytes(), curves_path.read_bytes()) == before
    assert "everything was recorded already" in capsys.readouterr().out

    # BC seed 2 gets its held-out evaluation: one more line for it, which supersedes the first
    _write_test(runs["bc2"], 0.55, 0.35)
    assert finetune_results.main(args) == 0
    rows2 = _shared.read_rows(res)
    assert len(rows2) == len(rows) + 1 and rows2[-1]["run_dir"] == b2["run_dir"]
    assert rows2[-1]["final_source"] == f"eval_last_seed{TEST_SEED}.json" and curves_path.read_bytes() == before[1]
    groups, _ = reproduce.finetune_runs(rows2)
    assert [x["final_success_once"] for x in groups[(DEVICE, "bc", "")]] == ["0.48", "0.55"]
    assert finetune_results.main(args) == 0 and len(_shared.read_rows(res)) == len(rows2)

    # one run directory given directly, and --test-seed picks among several held-out evaluations
    _write_test(runs["scratch"], 0.5, 0.5, seed=7_000_000, episodes=200)
    one = _args(tmp_path / "one", runs["scratch"], test_seed=TEST_SEED, plot=False)
    assert finetune_results.main(one) == 0
    (only,) = _shared.read_rows(one.out)
    assert (only["final_success_once"], only["test_seed"]) == ("0.02", str(TEST_SEED))
    assert not (tmp_path / "one/res/ft.png").exists()


def test_finetune_block_renders_means_few_seeds_and_rows_not_run(tmp_path):
    out, _ = _experiment(tmp_path)
    assert finetune_results.main(_args(tmp_path, out, plot=False)) == 0
    csv_path = tmp_path / "res/ft.csv"
    page = tmp_path / "finetune.md"
    page.write_text(f"# FT\n\n{reproduce.BLOCK_BEGIN}finetune {csv_path} -->\nold\n{reproduce.BLOCK_END}\n\nafter\n")
    md = reproduce.refresh_page(page.read_text(), page)
    assert "\nold\n" not in md and md.endswith(f"{reproduce.BLOCK_END}\n\nafter\n")
    lines = {ln.split(" | ")[0][2:]: ln for ln in md.splitlines() if ln.startswith("| ") and " | " in ln}
    what = reproduce.FINETUNE_ROWS
    assert lines["bc_init_demos"] == (
        f"| bc_init_demos | {what['bc_init_demos']} | 3 (1, 2, 3) | 0.80 ± 0.10 (n=3) | 0.60 ± 0.10 (n=3) | "
        f"100 held-out episodes (seeds {TEST_SEED}+) | 0.30 | 0.45 | 5k | 20.0 min (min 16.7 min); "
        f"+ BC training 10.6 min | {DEVICE} | 0123456789ab-dirty |"
    )
    assert lines["bc"].startswith(f"| bc | {what['bc']} | 2 (1, 2); fewer than 3 | 0.54 ± 0.08 (n=2) | ")
    # seed 2 has no held-out evaluation yet
    assert f"| 100 held-out episodes (seeds {TEST_SEED}+), 20 episodes (final_eval.json) |" in lines["bc"]
    assert "| 0 (no RL) |" in lines["bc"] and "+ BC" not in lines["bc"]
    assert lines["scratch"].startswith(f"| scratch | {what['scratch']} | 1 (1); fewer than 3 | 0.02 (n=1) | ")
    assert "| – | 5k |" in lines["scratch"]  # no step-0 evaluation without --init-from
    assert lines["demos"] == f"| demos | {what['demos']} | not run yet | – | – | – | – | – | – | – | – | – |"
    assert [k for k in lines if k in what] == [
        "bc",
        "scratch",
        "bc_init",
        "bc_init_demos",
        "demos",
        "bc_chunk",
        "residual",
        "bc_init_demos_frozen",
        "bc_init_demos_unfreeze",
    ]

    # the fine-tuning encoder ladder: its own rows only, described by the critics' encoder during RL
    page.write_text(f"{reproduce.BLOCK_BEGIN}finetune_ladder {csv_path} -->\n{reproduce.BLOCK_END}\n")
    md = reproduce.refresh_page(page.read_text(), page)
    ladder = {ln.split(" | ")[0][2:]: ln for ln in md.splitlines() if ln.startswith("| ") and " | " in ln}
    rungs = reproduce.FINETUNE_LADDER_ROWS
    # no bc, scratch, bc_init or residual lines; the measured rung first, then the rungs not run yet
    measured_first = ["bc_init_demos", "demos", "bc_init_demos_frozen", "bc_init_demos_unfreeze"]
    assert [k for k in ladder if k in what] == measured_first
    assert ladder["bc_init_demos"] == lines["bc_init_demos"].replace(what["bc_init_demos"], rungs["bc_init_demos"])
    frozen = f"| bc_init_demos_frozen | {rungs['bc_init_demos_frozen']} | not run yet |"
    assert ladder["bc_init_demos_frozen"].startswith(frozen)

    header_only = tmp_path / "empty.csv"
    header_only.write_text(",".join(finetune_results.COLUMNS) + "\n")
    page.write_text(f"{reproduce.BLOCK_BEGIN}finetune {header_only} -->\n{reproduce.BLOCK_END}\n")
    md = reproduce.refresh_page(page.read_text(), page)
    assert md.count("| not run yet |") == len(reproduce.FINETUNE_ROWS) and "No rows" not in md
    page.write_text(f"{reproduce.BLOCK_BEGIN}finetune_ladder {header_only} -->\n{reproduce.BLOCK_END}\n")
    md = reproduce.refresh_page(page.read_text(), page)
    assert md.count("| not run yet |") == len(reproduce.FINETUNE_LADDER_ROWS) and "No rows" not in md


def test_committed_finetune_csv_and_page_exist():
    """docs/finetune.md renders its Results table from the committed CSV (test_bench.py checks it is current)."""
    csv_path = REPO_ROOT / "results/finetune_pickcube_rgb64_cpu.csv"
    header = csv_path.read_text().splitlines()[0].split(",")
    assert all(c in header for c in finetune_results.COLUMNS)
    text = (REPO_ROOT / "docs/finetune.md").read_text()
    assert f"{reproduce.BLOCK_BEGIN}finetune results/finetune_pickcube_rgb64_cpu.csv -->" in text


def test_runlogger_metrics_parse_as_the_eval_curve(tmp_path):
    """The curve reader reads what RunLogger really writes (long format: step, wall_time, name, value)."""
    log = RunLogger(dict(seed=1), "sac_rgb", "PickCube-v1", 1, runs_dir=str(tmp_path), exp_name="x")
    log.log(0, {"eval/success_once": 0.25, "eval/success_at_end": 0.125, "eval/return": 3.0})
    log.log(2500, {"losses/qf_loss": 1.0})
    log.log(5000, {"eval/success_once": 0.5, "eval/success_at_end": 0.25})
    log.close()
    curve = finetune_results.eval_curve(log.dir)
    assert [(c["step"], c["success_once"], c["success_at_end"]) for c in curve] == [(0, 0.25, 0.125), (5000, 0.5, 0.25)]
    assert all(c["wall_s"] >= 0 for c in curve)


def test_plot_is_skipped_without_matplotlib(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    rows = [dict(row="bc", seed="1", device=DEVICE, final_success_once="0.5", run_dir="a", date="")]
    assert finetune_results.plot(rows, [], tmp_path / "p.png") is None
    assert "matplotlib is not installed" in capsys.readouterr().out and not (tmp_path / "p.png").exists()


def test_bad_paths_are_one_error_line(tmp_path):
    empty = tmp_path / "empty"
    (empty / "unfinished").mkdir(parents=True)
    with pytest.raises(UserError, match="no run directories"):
        finetune_results.main(_args(tmp_path, empty))
    missing = tmp_path / "nope"
    cp = run_script("bench/finetune_results.py", str(missing), "--out", str(tmp_path / "x.csv"), timeout=120)
    assert cp.returncode == 1
    assert_one_error_line(cp.stderr, str(missing), "no such directory")
    assert not (tmp_path / "x.csv").exists()


def test_stopped_runs_are_gathered_only_on_request(tmp_path, capsys):
    """--stopped: an RL run killed before its final evaluation still gives its curve (diagnostics CSVs);
    its final_* stay empty and final_source says why."""
    _, runs = _experiment(tmp_path)
    args = _args(tmp_path / "stopped", runs["demos"], stopped=True, plot=False)
    assert finetune_results.main(args) == 0
    (line,) = _shared.read_rows(args.out)
    assert (line["row"], line["final_source"], line["final_success_once"]) == (
        "demos", "stopped: no final evaluation", "")  # fmt: skip
    assert (line["env_steps"], line["eval_curve"], line["min_eval_success_once"]) == ("2500", "2500:0.1", "0.1")
    with pytest.raises(UserError, match="no finished runs"):
        finetune_results.main(_args(tmp_path / "plain", runs["demos"], plot=False))


def test_runs_of_another_task_need_their_own_csv(tmp_path):
    """A PegInsertionSide run gathered into the PickCube CSV is one error line and appends nothing; with its own
    --out it is gathered."""
    out, _ = _experiment(tmp_path)
    assert finetune_results.main(_args(tmp_path, out, plot=False)) == 0
    csv_path = tmp_path / "res" / "ft.csv"
    before = csv_path.read_bytes()
    peg = _run(tmp_path / "peg/bc/seed1", "bc", 1, BC_ARGS, [(5000, 200, 0.0, 0.0)],
               dict(success_once=0.0, success_at_end=0.0, step=5000, wall_time_s=900.0, train_s=600.0))  # fmt: skip
    cfg = yaml.safe_load((peg / "config.yaml").read_text())
    cfg["env_id"] = cfg["args"]["env_id"] = "PegInsertionSide-v1"
    (peg / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    cp = run_script("bench/finetune_results.py", str(tmp_path / "peg"), "--out", str(csv_path), "--no-plot")
    assert cp.returncode == 1
    assert_one_error_line(cp.stderr, "PickCube-v1", "PegInsertionSide-v1", "--out")
    assert csv_path.read_bytes() == before
    own = finetune_results.Args(paths=[str(tmp_path / "peg")], out=str(tmp_path / "peg.csv"), plot=False)
    assert finetune_results.main(own) == 0
    (line,) = _shared.read_rows(tmp_path / "peg.csv")
    assert (line["row"], line["env_id"]) == ("bc", "PegInsertionSide-v1")


def test_runs_of_another_size_are_rows_of_their_own(tmp_path, capsys):
    """A bc.py start trained on 1000 demos for 10k steps, and the RL run started from it, get num_demos and
    bc_iters from that start and render as their own rows, after the protocol's: they never join (or
    replace) the 500-demo seeds of the same row and seed. A --demos-only run takes its demo file's count."""
    out, runs = _experiment(tmp_path)
    big = out / "big"
    bc = _run(big / "bc/seed1", "bc", 1, dict(BC_ARGS, total_iters=10000), [(10000, 300, 0.8, 0.6)],
              dict(success_once=0.8, success_at_end=0.6, step=10000, wall_time_s=1000.0, train_s=700.0,
                   num_demos=1000, demo_steps=78005), test=(0.9, 0.7), date="2026-12-09T10:00:00+0000")  # fmt: skip
    recipe = dict(RL_ARGS, critic_encoder="separate", demos=DEMO, bc_coef=2.0, exp_name="finetune_bc_init_demos")
    _run(big / "rl/bc_init_demos/seed1", "sac_rgb", 1, dict(recipe, init_from=f"{bc}/last.pt"),
         [(0, 50, 0.8, 0.6), (5000, 990, 0.95, 0.8)],
         dict(success_once=0.9, success_at_end=0.8, step=5000, wall_time_s=1000.0), test=(0.97, 0.85),
         date="2026-12-09T11:00:00+0000")  # fmt: skip
    demo_dir = tmp_path / "d"
    demo_dir.mkdir()
    (demo_dir / "t.json").write_text('{"episodes": [{"episode_id": 0}, {"episode_id": 1}]}')
    _run(big / "rl/demos/seed1", "sac_rgb", 1, dict(RL_ARGS, demos=str(demo_dir / "t.h5"), exp_name="finetune_demos"),
         [(5000, 800, 0.1, 0.0)], dict(success_once=0.1, success_at_end=0.0, step=5000, wall_time_s=800.0))  # fmt: skip
    assert finetune_results.main(_args(tmp_path, out, plot=False)) == 0
    rows = _shared.read_rows(tmp_path / "res/ft.csv")
    size = {(r["row"], r["seed"], r["run_dir"].split("/ft/")[1].split("/")[0]): (r["num_demos"], r["bc_iters"])
            for r in rows}  # fmt: skip
    assert size[("bc", "1", "bc")] == ("500", "5000") and size[("bc", "1", "big")] == ("1000", "10000")
    assert size[("bc_init_demos", "1", "rl")] == ("500", "5000")  # from its start, bc seed 1
    assert size[("bc_init_demos", "1", "big")] == ("1000", "10000") and size[("scratch", "1", "rl")] == ("", "")
    assert size[("demos", "1", "big")] == ("2", "")

    groups, _ = reproduce.finetune_runs(rows)
    assert [r["final_success_once"] for r in groups[(DEVICE, "bc", "")]] == [
        "0.48",
        "0.6",
    ]  # the newer big seed 1 is not there
    assert [r["final_success_once"] for r in groups[(DEVICE, "bc", "1000 demos / 10k BC steps")]] == ["0.9"]
    md = "\n".join(reproduce.finetune_table(rows))
    labels = [ln.split(" | ")[0][2:] for ln in md.splitlines()[2:]]
    # FINETUNE_ROWS order, each row's other sizes right after it; the 500-demo demos row is still not run
    assert labels[:7] == [
        "bc",
        "bc (1000 demos / 10k BC steps)",
        "scratch",
        "demos (2 demos / no BC steps)",
        "bc_init",
        "bc_init_demos",
        "bc_init_demos (1000 demos / 10k BC steps)",
    ]
    assert f"| demos | {reproduce.FINETUNE_ROWS['demos']} | not run yet |" in md
