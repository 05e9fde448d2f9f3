"""bench/: env_fps, train_sps, reproduce, report. Every test writes to tmp paths, never to the
committed results/ or docs/ files (checked by `results_untouched`)."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import sys

import pytest
import yaml
from conftest import REPO_ROOT, assert_one_error_line, run_script

from cleanrl_style.lib.runs import UserError, device_name

sys.path.insert(0, str(REPO_ROOT))
from bench import _shared, bc_results, env_fps, report, reproduce, train_sps  # noqa: E402

COMMITTED = [
    REPO_ROOT / p
    for p in (
        "results/env_fps.csv",
        "results/train_sps.csv",
        "results/env_fps.png",
        "results/train_sps.png",
        "docs/benchmarks.md",
        "docs/reproduction.md",
        "docs/bc.md",
        "docs/sac.md",
        "results/aug_throughput.csv",
        "results/bc_pickcube_state_cpu.csv",
        "results/bc_pickcube_rgb_cpu.csv",
    )
] + sorted((REPO_ROOT / "results" / "repro").glob("*.csv"))


def _digest(paths):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None for p in paths}


@pytest.fixture(scope="module", autouse=True)
def results_untouched():
    before = _digest(COMMITTED)
    yield
    assert _digest(COMMITTED) == before, "a bench test wrote to the committed results/ or docs/ files"


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- shared CSV handling
def test_append_rows_creates_header_appends_and_merges_new_columns(tmp_path):
    out = tmp_path / "sub" / "rows.csv"
    assert _shared.append_rows(out, ("a", "b"), [dict(a=1, b=2.5)]) == 1
    _shared.append_rows(out, ("a", "b"), [dict(a=3, b=float("nan"))])
    text = out.read_text().splitlines()
    assert text == ["a,b", "1,2.5", "3,"]  # one header, NaN -> empty cell
    # a newer writer with an extra column: the file is rewritten once with the union of columns
    _shared.append_rows(out, ("a", "b", "c"), [dict(a=4, b=5, c="x")])
    rows = read_csv(out)
    assert list(rows[0]) == ["a", "b", "c"]
    assert [r["a"] for r in rows] == ["1", "3", "4"] and rows[0]["c"] == "" and rows[2]["c"] == "x"


# ----------------------------------------------------------------------------- env_fps
def test_env_fps_default_grids():
    cpu = env_fps.build_grid((), (), (), "cpu")
    assert [(c.obs, c.res, c.num_envs) for c in cpu] == [
        ("state", None, 1),
        ("state", None, 2),
        ("rgb", 64, 1),
        ("rgb", 64, 2),
        ("rgb", 128, 1),
        ("rgb", 128, 2),
    ]
    gpu = env_fps.build_grid((), (), (), "gpu")
    assert len(gpu) == 5 + 2 * 3 * 5  # state once per num_envs; rgb and rgbd at 3 resolutions
    assert {c.num_envs for c in gpu} == {16, 64, 256, 1024, 4096}
    assert {c.res for c in gpu if c.obs == "rgbd"} == {64, 128, 256}
    # largest num_envs last within each obs/res, so the ones that may run out of memory come last
    rgb128 = [c.num_envs for c in gpu if (c.obs, c.res) == ("rgb", 128)]
    assert rgb128 == sorted(rgb128)


@pytest.mark.parametrize(
    "kw, needle",
    [
        (dict(obs=("depth",)), "--obs"),
        (dict(res=(8,)), "--res"),
        (dict(num_envs=(0,)), "--num-envs"),
        (dict(num_envs=(128,)), "CPU backend"),
    ],
)
def test_env_fps_grid_rejects_bad_values(kw, needle):
    args = dict(obs=(), res=(), num_envs=())
    args.update(kw)
    with pytest.raises(UserError, match=needle):
        env_fps.build_grid(args["obs"], args["res"], args["num_envs"], "cpu")


def test_env_fps_sweep_records_failures_as_rows_and_skips_larger(tmp_path, capsys):
    """An out-of-memory configuration becomes a row with an error note, larger num_envs at that
    setting are skipped, other settings go on; every row is complete and appended at once."""
    out = tmp_path / "env_fps.csv"
    grid = env_fps.build_grid(("rgb", "state"), (64,), (2, 4, 8), "cpu")
    calls = []

    def fake_measure(cfg):
        calls.append((cfg.obs, cfg.num_envs))
        if cfg.obs == "rgb" and cfg.num_envs >= 4:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore lines")
        return dict(env_fps=100.0 * cfg.num_envs, steps=10, seconds=0.1 * cfg.num_envs, load1=0.5, sim_backend="cpu")

    args = env_fps.Args(out=str(out), sim_backend="cpu", max_seconds=1.0)
    rows = env_fps.sweep(args, "PickCube-v1", grid, steps=10, burn_in=1, isolate=False, measure_fn=fake_measure)
    assert calls == [("rgb", 2), ("rgb", 4), ("state", 2), ("state", 4), ("state", 8)]  # rgb 8 skipped
    assert "skip obs=rgb res=64 num_envs=8" in capsys.readouterr().out
    written = read_csv(out)
    assert len(written) == len(rows) == 5
    assert set(env_fps.COLUMNS) <= set(written[0])
    err = written[1]
    assert (err["obs"], err["num_envs"], err["env_fps"]) == ("rgb", "4", "")
    assert err["error"].startswith("RuntimeError: CUDA out of memory") and "more lines" not in err["error"]
    ok = written[4]
    assert (ok["obs"], ok["res"], ok["num_envs"], float(ok["env_fps"]), ok["error"]) == ("state", "", "8", 800.0, "")
    assert ok["device"] == device_name() and ok["env_id"] == "PickCube-v1" and "torch=" in ok["versions"]
    assert ok["commit"] and ok["date"][:2] == "20" and ok["control_mode"] == "pd_joint_delta_pos"

    # --keep-going tries larger settings after a failure
    calls.clear()
    args = env_fps.Args(out=str(tmp_path / "b.csv"), sim_backend="cpu", keep_going=True)
    env_fps.sweep(args, "PickCube-v1", grid[:3], 10, 1, False, fake_measure)
    assert calls == [("rgb", 2), ("rgb", 4), ("rgb", 8)]


def test_env_fps_cli_bad_obs_is_one_error_line(tmp_path):
    p = run_script("bench/env_fps.py", "--obs", "depth", "--out", str(tmp_path / "x.csv"), timeout=120)
    assert p.returncode == 2
    assert_one_error_line(p.stderr, "--obs", "depth")
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.slow
def test_env_fps_cli_measures_tiny_grid(tmp_path):
    """In-process state measurement, then an isolated (subprocess per configuration) rgb 64 one,
    both appended to the same CSV."""
    out = tmp_path / "env_fps.csv"
    p = run_script(
        "bench/env_fps.py",
        "--obs",
        "state",
        "--num-envs",
        "1",
        "--steps",
        "20",
        "--burn-in",
        "2",
        "--sim-backend",
        "cpu",
        "--out",
        str(out),
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    p = run_script(
        "bench/env_fps.py",
        "--obs",
        "rgb",
        "--res",
        "64",
        "--num-envs",
        "1",
        "--steps",
        "10",
        "--burn-in",
        "1",
        "--isolate",
        "always",
        "--sim-backend",
        "cpu",
        "--out",
        str(out),
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert out.read_text().count("device,date,commit") == 1
    rows = read_csv(out)
    assert [(r["obs"], r["res"], r["num_envs"]) for r in rows] == [("state", "", "1"), ("rgb", "64", "1")]
    for r, steps in zip(rows, (20, 10)):
        assert r["error"] == "", r["error"]
        assert r["device"] == device_name() and r["env_id"] == "PickCube-v1"
        assert int(r["steps"]) == steps and float(r["seconds"]) > 0
        assert math.isclose(float(r["env_fps"]), steps / float(r["seconds"]), rel_tol=0.01)
        assert r["peak_mem_gb"] == "" and r["gpu_mem_used_gb"] == ""  # CPU: no GPU memory
        assert r["sim_backend"] == "cpu" and float(r["load1"]) >= 0 and int(r["cpu_count"]) >= 1


# ----------------------------------------------------------------------------- train_sps
def _write_metrics(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "wall_time", "name", "value"])
        w.writerows(rows)


def test_summarize_metrics_drops_burn_in(tmp_path):
    """4 iterations of 100 steps; burn-in 200 steps: the iterations at 300 and 400 are measured,
    against the wall time of the one at 200."""
    m = tmp_path / "metrics.csv"
    rows = []
    for step, wall, fps, upd in (
        (100, 30.0, 10.0, 9.0),
        (200, 31.0, 100.0, 0.5),
        (300, 32.0, 100.0, 0.25),
        (400, 33.6, 300.0, 0.75),
    ):
        rows += [
            (step, wall, "losses/value_loss", 1.0),
            (step, wall, "time/sps", 5.0),
            (step, wall, "time/env_fps", fps),
            (step, wall, "time/update_s", upd),
            (step, wall, "time/rollout_s", 100 / fps),
        ]
    rows += [(400, 40.0, "eval/success_once", 0.0)]  # an eval logged later at the same step is ignored
    _write_metrics(m, rows)
    s = train_sps.summarize_metrics(m, burn_in_steps=200)
    assert s["iterations"] == 2 and s["measured_steps"] == 200
    assert math.isclose(s["seconds"], 2.6, rel_tol=1e-6)
    assert math.isclose(s["train_sps"], 200 / 2.6, rel_tol=1e-6)
    assert math.isclose(s["collect_fps"], 2 / (1 / 100 + 1 / 300), rel_tol=1e-6)  # = 200 steps / 1.333 s
    assert math.isclose(s["update_s"], 0.5) and math.isclose(s["rollout_s"], (1 + 1 / 3) / 2)
    with pytest.raises(ValueError, match="after the burn-in"):
        train_sps.summarize_metrics(m, burn_in_steps=400)
    with pytest.raises(ValueError):
        train_sps.summarize_metrics(m, burn_in_steps=50)  # no baseline iteration before the measured ones


def test_lookup_env_fps_matches_the_same_setting_only():
    base = dict(
        device="D",
        env_id="PickCube-v1",
        obs="rgb",
        res="64",
        num_envs="2",
        control_mode="pd_joint_delta_pos",
        env_fps="20",
        error="",
    )
    rows = [
        base,
        dict(base, env_fps="30"),
        dict(base, env_fps="100"),
        dict(base, device="E", env_fps="999"),
        dict(base, res="128", env_fps="999"),
        dict(base, num_envs="1", env_fps="999"),
        dict(base, control_mode="pd_ee_delta_pose", env_fps="999"),
        dict(base, error="RuntimeError: boom", env_fps="999"),
        dict(base, obs="rgbd", env_fps="999"),
    ]
    assert train_sps.lookup_env_fps(rows, "D", "PickCube-v1", "rgb", 64, 2, "pd_joint_delta_pos") == (30.0, 3)
    state = dict(base, obs="state", res="", env_fps="400")
    assert train_sps.lookup_env_fps([state], "D", "PickCube-v1", "state", None, 2, None) == (400.0, 1)
    assert train_sps.lookup_env_fps(rows, "D", "PushCube-v1", "rgb", 64, 2, None)[1] == 0


def test_fixed_configs_use_settings_of_the_env_fps_grid():
    """The ratio needs a raw env FPS at the same setting: every fixed training config's num_envs and
    resolution are in bench/env_fps.py's default grid of the same tier."""
    for script, tiers in train_sps.FIXED.items():
        for tier, fixed in tiers.items():
            grid = env_fps.build_grid((), (), (), tier)
            assert env_fps.Config(fixed.obs, fixed.res, fixed.num_envs) in grid, (script, tier)
            assert fixed.burn_in < fixed.total_timesteps, (script, tier)
            if fixed.res is not None:
                assert "--image-size" in fixed.flags and str(fixed.res) in fixed.flags


def test_train_sps_skips_missing_scripts_and_cudagraphs_without_cuda(tmp_path, monkeypatch, capsys):
    scripts = tmp_path / "cleanrl_style"
    scripts.mkdir()
    (scripts / "ppo.py").write_text("")
    monkeypatch.setattr(_shared, "SCRIPTS_DIR", scripts)
    monkeypatch.setattr(_shared, "REPO_ROOT", tmp_path)
    out = tmp_path / "train_sps.csv"
    args = train_sps.Args(scripts=("sac", "ppo"), modes=("cudagraphs",), sim_backend="cpu", out=str(out))
    assert train_sps.main(args) == []
    text = capsys.readouterr().out
    assert "skip sac: cleanrl_style/sac.py does not exist" in text
    assert "skip ppo cudagraphs: needs CUDA" in text
    assert "nothing to run" in text and not out.exists()
    # dry run: the fixed CPU config, the mode flag, the benchmark flags
    train_sps.main(
        train_sps.Args(
            scripts=("ppo",), modes=("eager", "compile"), sim_backend="cpu", dry_run=True, extra_flags="--num-envs 1"
        )
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].endswith("--compile --num-envs 1") and "--compile" not in lines[0]
    for flag in ("--eval-freq 0", "--no-save-checkpoints", "--runs-dir", "--num-steps 100", "--total-timesteps 1200"):
        assert flag in lines[0]
    with pytest.raises(UserError, match="--modes"):
        train_sps.main(train_sps.Args(modes=("jit",), sim_backend="cpu"))
    with pytest.raises(UserError, match="--scripts"):
        train_sps.main(train_sps.Args(scripts=("dqn",), sim_backend="cpu"))


@pytest.mark.slow
def test_train_sps_cli_tiny_ppo_run(tmp_path):
    """ppo eager, 1 env, 4 iterations of 16 steps (burn-in 2); the raw env FPS comes from a fixture
    CSV row of the same setting, so ratio = collect_fps / 400 exactly."""
    fps_csv = tmp_path / "env_fps.csv"
    match = dict(
        device=device_name(),
        env_id="PickCube-v1",
        obs="state",
        res="",
        num_envs=1,
        control_mode="pd_joint_delta_pos",
        env_fps=400.0,
        error="",
    )
    _shared.append_rows(fps_csv, env_fps.COLUMNS, [match, dict(match, num_envs=2, env_fps=9999.0)])
    out = tmp_path / "train_sps.csv"
    p = run_script(
        "bench/train_sps.py",
        "--scripts",
        "ppo",
        "--modes",
        "eager",
        "--sim-backend",
        "cpu",
        "--extra-flags=--num-envs 1 --num-steps 16 --num-minibatches 2 --update-epochs 1",
        "--total-timesteps",
        "64",
        "--burn-in",
        "32",
        "--out",
        str(out),
        "--env-fps-csv",
        str(fps_csv),
        "--runs-dir",
        str(tmp_path / "runs"),
        timeout=400,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    rows = read_csv(out)
    assert len(rows) == 1
    r = rows[0]
    assert r["error"] == "", r["error"]
    assert (r["script"], r["mode"], r["obs"], r["res"], r["num_envs"], r["env_id"]) == (
        "ppo",
        "eager",
        "state",
        "",
        "1",
        "PickCube-v1",
    )
    assert r["device"] == device_name() and r["control_mode"] == "pd_joint_delta_pos"
    assert int(r["iterations"]) == 2 and int(r["measured_steps"]) == 32 and int(r["burn_in_steps"]) == 32
    assert float(r["env_fps"]) == 400.0 and "median of 1" in r["env_fps_source"]
    collect, sps = float(r["collect_fps"]), float(r["train_sps"])
    assert collect > 0 and 0 < sps <= collect * 1.01  # updates make the whole loop slower than collection
    assert math.isclose(float(r["ratio"]), collect / 400.0, rel_tol=1e-4)
    assert float(r["update_s"]) > 0 and math.isclose(sps, 32 / float(r["seconds"]), rel_tol=1e-3)
    assert list(rows[0]) == list(train_sps.COLUMNS)
    assert (tmp_path / "runs" / "ppo_eager").is_dir()  # --runs-dir keeps the run


# ----------------------------------------------------------------------------- report
CPU = "CPU: Fixture CPU x2"
GPU = "Fixture GPU (test only)"


def _fixture_csvs(tmp_path, with_gpu=True):
    env_csv, train_csv = tmp_path / "env_fps.csv", tmp_path / "train_sps.csv"
    base = dict(
        device=CPU,
        date="2026-01-02T03:04:05+0000",
        commit="abcdef1234",
        versions="torch=2.13.0",
        env_id="PickCube-v1",
        control_mode="pd_joint_delta_pos",
        sim_backend="cpu",
        load1=1.5,
    )
    env_rows = [
        dict(base, obs="state", num_envs=1, env_fps=300.0),
        dict(base, obs="state", num_envs=1, env_fps=500.0, load1=3.25),
        dict(base, obs="state", num_envs=1, env_fps=350.0),  # median of 300, 350, 500 = 350
        dict(base, obs="state", num_envs=2, env_fps=420.0),
        dict(base, obs="rgb", res=64, num_envs=1, env_fps=24.5),
        dict(base, obs="rgb", res=64, num_envs=2, env_fps=26.0),
    ]
    train_rows = [
        dict(
            base,
            script="ppo",
            obs="state",
            num_envs=2,
            mode="eager",
            train_sps=150.0,
            collect_fps=210.0,
            env_fps=420.0,
            ratio=0.5,
            update_s=0.2,
        ),
        dict(
            base,
            script="ppo",
            obs="state",
            num_envs=2,
            mode="compile",
            train_sps=170.0,
            collect_fps=230.0,
            env_fps=420.0,
            ratio=230 / 420,
            update_s=0.1,
        ),
        dict(
            base,
            script="ppo",
            obs="state",
            num_envs=2,
            mode="eager",
            train_sps=100.0,
            collect_fps=200.0,
            env_fps=420.0,
            ratio=200 / 420,
            update_s=0.05,
            omp_num_threads="1",
        ),
    ]
    if with_gpu:
        g = dict(base, device=GPU, sim_backend="gpu", load1=0.1)
        env_rows += [
            dict(g, obs="rgb", res=128, num_envs=256, env_fps=5000.0, peak_mem_gb=1.5, gpu_mem_used_gb=3.0),
            dict(g, obs="rgb", res=128, num_envs=1024, env_fps=9000.0, peak_mem_gb=4.0, gpu_mem_used_gb=8.0),
            dict(g, obs="rgb", res=128, num_envs=4096, error="RuntimeError: CUDA out of memory"),
        ]
        train_rows += [
            dict(
                g,
                script="ppo_rgb",
                obs="rgb",
                res=128,
                num_envs=256,
                mode="cudagraphs",
                train_sps=3000.0,
                collect_fps=4000.0,
                env_fps=5000.0,
                ratio=0.8,
                update_s=1.0,
            )
        ]
    _shared.append_rows(env_csv, env_fps.COLUMNS, env_rows)
    _shared.append_rows(train_csv, train_sps.COLUMNS, train_rows)
    return env_csv, train_csv


def test_report_renders_tiers_tables_and_plots(tmp_path):
    env_csv, train_csv = _fixture_csvs(tmp_path)
    doc, plots = tmp_path / "docs" / "benchmarks.md", tmp_path / "plots"
    report.main(report.Args(env_fps_csv=str(env_csv), train_sps_csv=str(train_csv), doc=str(doc), plots_dir=str(plots)))
    md = doc.read_text()
    assert "generated by `bench/report.py`" in md.lower()
    assert md.index(f"## GPU: {GPU}") < md.index(f"## {CPU}")  # GPU tiers first
    assert "not yet measured" not in md.split("## Headline")[1].split("##")[0]  # a GPU tier exists
    cpu_part = md.split(f"## {CPU}")[1]
    assert "| 1 | 350 | 24.5 |" in cpu_part  # median of three runs; pivot num_envs x obs/res
    assert "| 2 | 420 | 26.0 |" in cpu_part
    assert "| PickCube-v1 | state | 1 | 350 | 3 | 1.5–3.2 |" in cpu_part  # runs and load1 range in the details
    assert "| ppo | PickCube-v1 | state | 2 | compile | 170 | 230 | 420 | 0.55 | 0.10 | 1 |" in cpu_part
    # rows measured with OMP_NUM_THREADS set are a separate line, not pooled into the eager median
    assert "| ppo | PickCube-v1 | state | 2 | eager | 150 | 210 |" in cpu_part
    assert "| ppo | PickCube-v1 | state | 2 | eager, OMP_NUM_THREADS=1 | 100 | 200 |" in cpu_part
    gpu_part = md.split(f"## GPU: {GPU}")[1].split(f"## {CPU}")[0]
    assert "| 4096 | err |" in gpu_part and "CUDA out of memory" in gpu_part
    assert "| 1024 | 4.00 / 8.00 |" in gpu_part  # GPU memory table
    headline = md.split("## Headline")[1].split("\n\n")[1]
    assert f"| {GPU} | – | – | 9,000 @1024 | – | 3,000 (cudagraphs, rgb 128, 256 envs) |" in headline
    assert f"| {CPU} | 420 @2 | 26.0 @2 | – | 170 (compile, state, 2 envs) | – |" in headline
    assert "python bench/env_fps.py" in md and "pull request" in md
    for name in ("env_fps.png", "train_sps.png"):
        data = (plots / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        assert f"](../plots/{name})" in md


def test_quiet_rows_replace_rows_taken_under_load(tmp_path):
    """A setting measured both on an oversubscribed machine (load1 > cpu_count) and on a quiet one is
    summarised by the quiet rows only; the ratio is recomputed against the raw FPS the report shows;
    without any quiet row, all rows count."""
    base = dict(
        device=CPU,
        date="2026-01-02T03:04:05+0000",
        commit="abcdef1234",
        versions="torch=2.13.0",
        env_id="PushCube-v1",
        control_mode="pd_joint_delta_pos",
        sim_backend="cpu",
        cpu_count=2,
        obs="state",
        num_envs=2,
    )
    env_rows = [
        dict(base, env_fps=100.0, load1=6.0),
        dict(base, env_fps=120.0, load1=8.0),
        dict(base, env_fps=300.0, load1=1.6),
        dict(base, num_envs=1, env_fps=50.0, load1=5.0),
        dict(base, num_envs=1, env_fps=70.0, load1=7.0),
    ]
    assert [r["env_fps"] for r in _shared.quiet_rows(env_rows)] == [300.0]
    assert train_sps.lookup_env_fps(
        [{k: str(v) for k, v in r.items()} for r in env_rows], CPU, "PushCube-v1", "state", None, 2, None
    ) == (300.0, 1)
    train_rows = [
        dict(
            base,
            script="sac",
            mode="eager",
            train_sps=60.0,
            collect_fps=150.0,
            env_fps=110.0,
            ratio=150 / 110,
            update_s=0.03,
            load1=1.2,
        )
    ]
    env_csv, train_csv = tmp_path / "env_fps.csv", tmp_path / "train_sps.csv"
    _shared.append_rows(env_csv, env_fps.COLUMNS, env_rows)
    _shared.append_rows(train_csv, train_sps.COLUMNS, train_rows)
    doc = tmp_path / "benchmarks.md"
    out = report.main(
        report.Args(env_fps_csv=str(env_csv), train_sps_csv=str(train_csv), doc=str(doc), plots_dir=str(tmp_path))
    )
    env = {s["num_envs"]: s for s in out["env"][CPU]}
    assert env[2]["env_fps"] == 300.0 and env[2]["n"] == 1 and env[2]["n_skipped"] == 2
    assert env[1]["env_fps"] == 60.0 and env[1]["n"] == 2 and env[1]["n_skipped"] == 0  # no quiet row: all count
    (sac,) = out["train"][CPU]
    assert sac["env_fps"] == 300.0 and sac["ratio"] == 0.5  # not the 1.36 recorded against the busy median
    md = doc.read_text()
    assert "| PushCube-v1 | state | 2 | 300 | 1 (+2 under load) |" in md
    assert "| sac | PushCube-v1 | state | 2 | eager | 60.0 | 150 | 300 | 0.50 |" in md


def test_report_keeps_randomization_levels_apart(tmp_path):
    """env_fps rows of each --sim-dr level are their own setting (own median, own column), never pooled
    with each other or with rows that ran without randomization; the headline takes the plain rows only."""
    base = dict(
        device=CPU,
        date="2026-01-02T03:04:05+0000",
        commit="abcdef1234",
        versions="torch=2.13.0",
        control_mode="pd_joint_delta_pos",
        sim_backend="cpu",
        cpu_count=2,
        obs="rgb",
        res=64,
        num_envs=2,
        load1=1.0,
    )
    env_rows = [
        dict(base, env_id="PickCube-v1", env_fps=40.0),  # a row from before the sim_dr column: off
        dict(base, env_id="PickCube-v1", env_fps=42.0, sim_dr="off"),
        dict(base, env_id="PickCubeDR-v1", env_fps=30.0, sim_dr="light"),
        dict(base, env_id="PickCubeDR-v1", env_fps=10.0, sim_dr="heavy"),
        dict(base, env_id="PickCubeDR-v1", env_fps=12.0, sim_dr="heavy"),
    ]
    env_csv, train_csv = tmp_path / "env_fps.csv", tmp_path / "train_sps.csv"
    _shared.append_rows(env_csv, env_fps.COLUMNS, env_rows)
    doc = tmp_path / "benchmarks.md"
    out = report.main(
        report.Args(env_fps_csv=str(env_csv), train_sps_csv=str(train_csv), doc=str(doc), plots_dir=str(tmp_path))
    )
    got = {(s["env_id"], s["sim_dr"]): (s["env_fps"], s["n"], s["label"]) for s in out["env"][CPU]}
    assert got == {
        ("PickCube-v1", "off"): (41.0, 2, "rgb 64"),
        ("PickCubeDR-v1", "light"): (30.0, 1, "rgb 64 sim_dr=light"),
        ("PickCubeDR-v1", "heavy"): (11.0, 2, "rgb 64 sim_dr=heavy"),
    }
    md = doc.read_text()
    assert "| num_envs | rgb 64 sim_dr=light | rgb 64 sim_dr=heavy |" in md and "| 2 | 30.0 | 11.0 |" in md
    assert f"| {CPU} | – | 41.0 @2 | – |" in md.split("## Headline")[1]


def test_report_cpu_only_says_gpu_not_measured(tmp_path, capsys):
    env_csv, train_csv = _fixture_csvs(tmp_path, with_gpu=False)
    doc = tmp_path / "benchmarks.md"
    report.main(
        report.Args(
            env_fps_csv=str(env_csv), train_sps_csv=str(train_csv), doc=str(doc), plots_dir=str(tmp_path), headline=True
        )
    )
    md = doc.read_text()
    assert "GPU rows: not yet measured" in md
    assert "| GPU | not yet measured |" in md
    assert f"| {CPU} | 420 @2 |" in capsys.readouterr().out  # --headline prints the README table


def test_report_without_csvs_and_with_a_foreign_csv(tmp_path):
    doc = tmp_path / "b.md"
    r = report.main(
        report.Args(
            env_fps_csv=str(tmp_path / "none.csv"),
            train_sps_csv=str(tmp_path / "none2.csv"),
            doc=str(doc),
            plots_dir=str(tmp_path),
        )
    )
    assert "No rows yet" in doc.read_text() and r["plots"] == {"env_fps": None, "train_sps": None}
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("x,y\n1,2\n")
    with pytest.raises(UserError, match="lacks column"):
        report.main(report.Args(env_fps_csv=str(foreign), train_sps_csv=str(tmp_path / "none.csv"), doc=str(doc)))


# ----------------------------------------------------------------------------- reproduce
def _configs(tmp_path):
    c = tmp_path / "configs"
    (c / "ppo").mkdir(parents=True)
    (c / "ppo" / "fast.args").write_text(
        "# tier: cpu\n# A fast one.\n--env-id PushCube\n--num-envs 2  # two\n"
        "--seed 7\n--runs-dir elsewhere\n--total-timesteps 1000\n"
    )
    (c / "ppo" / "big.args").write_text("# tier: gpu\n--env-id PickCube\n--num-envs 1024\n")
    (c / "ppo" / "pix.args").write_text("# tier: cpu\n# script: ppo_rgb\n--env-id PushCube\n")  # overrides the folder
    (c / "quickstart").mkdir()
    (c / "quickstart" / "cpu.args").write_text("# quickstart\n--env-id PickCube\n")
    (c / "nosuchscript").mkdir()
    (c / "nosuchscript" / "x.args").write_text("--env-id PickCube\n")
    return c


def test_reproduce_dry_run_lists_runs_of_this_tier(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_shared, "machine_tier", lambda: "cpu")
    args = reproduce.Args(configs_dir=str(_configs(tmp_path)), seeds=(1, 2), runs_dir="runs/x", python="PY")
    assert reproduce.main(args) == 0
    out = capsys.readouterr().out
    cmds = [ln for ln in out.splitlines() if ln.startswith("PY ")]
    assert cmds == [
        "PY cleanrl_style/ppo.py --env-id PushCube --num-envs 2 --total-timesteps 1000 --seed 1 "
        "--runs-dir runs/x/ppo__fast --exp-name ppo__fast",
        "PY cleanrl_style/ppo.py --env-id PushCube --num-envs 2 --total-timesteps 1000 --seed 2 "
        "--runs-dir runs/x/ppo__fast --exp-name ppo__fast",
        "PY cleanrl_style/ppo_rgb.py --env-id PushCube --seed 1 "
        "--runs-dir runs/x/ppo_rgb__ppo-pix --exp-name ppo_rgb__ppo-pix",
        "PY cleanrl_style/ppo_rgb.py --env-id PushCube --seed 2 "
        "--runs-dir runs/x/ppo_rgb__ppo-pix --exp-name ppo_rgb__ppo-pix",
        "PY cleanrl_style/ppo.py --env-id PickCube --seed 1 "
        "--runs-dir runs/x/ppo__quickstart-cpu --exp-name ppo__quickstart-cpu",
        "PY cleanrl_style/ppo.py --env-id PickCube --seed 2 "
        "--runs-dir runs/x/ppo__quickstart-cpu --exp-name ppo__quickstart-cpu",
    ]
    assert "ignoring --seed 7 --runs-dir elsewhere" in out
    assert "skip" in out and "big.args: tier gpu" in out and "nosuchscript.py does not exist" in out
    assert not (REPO_ROOT / "runs" / "x").exists()  # a dry run starts nothing
    reproduce.main(reproduce.Args(configs_dir=str(tmp_path / "configs"), seeds=(3,), all=True, python="PY"))
    assert "--num-envs 1024 --seed 3" in capsys.readouterr().out
    with pytest.raises(UserError, match="not found"):
        reproduce.main(reproduce.Args(configs_dir=str(tmp_path / "nope")))


def test_reproduce_cli_dry_run_on_the_repo_configs():
    p = run_script("bench/reproduce.py", "--seeds", "4", "--all", timeout=120)
    assert p.returncode == 0, p.stderr
    assert "cleanrl_style/ppo.py" in p.stdout and "--seed 4 --runs-dir runs/repro/ppo__quickstart-cpu" in p.stdout
    assert "dry run" in p.stdout


def _fake_run(runs, key, seed, stamp, evals, final=None, device=CPU):
    d = runs / key / f"PickCube-v1__{key}__{seed}__{stamp}"
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(
        yaml.safe_dump(
            dict(
                script="ppo",
                env_id="PickCube-v1",
                seed=seed,
                git_commit="0123456789abcdef",
                device=device,
                args=dict(exp_name=key, seed=seed),
            )
        )
    )
    rows = []
    for step, wall, so in evals:
        rows += [
            (step, wall, "time/sps", 10.0),
            (step, wall, "eval/success_once", so),
            (step, wall, "eval/success_at_end", so / 2),
            (step, wall, "eval/return", 1.0),
        ]
    _write_metrics(d / "metrics.csv", rows)
    if final is not None:
        (d / "final_eval.json").write_text(
            json.dumps(
                dict(
                    success_once=final, success_at_end=0.0, step=evals[-1][0], wall_time_s=evals[-1][1] + 5, episodes=8
                )
            )
        )
    return d


def test_reproduce_gather_and_render_from_fixture_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(_shared, "machine_tier", lambda: "cpu")
    runs, results, doc = tmp_path / "runs", tmp_path / "results", tmp_path / "reproduction.md"
    key = "ppo__fast"
    _fake_run(runs, key, 1, "20260101-000000", [(100, 10.0, 1.0), (200, 20.0, 1.0)], final=1.0)  # superseded
    _fake_run(runs, key, 1, "20260102-000000", [(100, 10.0, 0.0), (200, 20.0, 0.5)], final=0.25)
    _fake_run(runs, key, 2, "20260102-000000", [(100, 12.0, 0.5), (200, 24.0, 1.0)], final=0.75)
    _fake_run(runs, key, 3, "20260102-000000", [(100, 14.0, 1.0)])  # still running: no final_eval.json
    args = reproduce.Args(
        configs_dir=str(_configs(tmp_path)),
        runs_dir=str(runs),
        results_dir=str(results),
        doc=str(doc),
        pages_dir=str(tmp_path / "no_pages"),
        gather=True,
    )
    assert reproduce.main(args) == 0
    rows = read_csv(results / f"{key}.csv")
    assert list(rows[0]) == list(reproduce.REPRO_COLUMNS)
    assert [(r["seed"], r["kind"], r["step"], r["success_once"]) for r in rows] == [
        ("1", "eval", "100", "0"),
        ("1", "eval", "200", "0.5"),
        ("1", "final", "200", "0.25"),
        ("2", "eval", "100", "0.5"),
        ("2", "eval", "200", "1"),
        ("2", "final", "200", "0.75"),
        ("3", "eval", "100", "1"),
    ]
    assert {r["device"] for r in rows} == {CPU} and rows[-1]["complete"] == "0"
    md = doc.read_text()
    assert "Generated by `python bench/reproduce.py --gather`" in md
    table = md.split(f"### {CPU}")[1]
    assert "| 100 | 0.50 ± 0.50 (n=3) | 0.25 ± 0.25 (n=3) | 12 s | 3 |" in table  # all three seeds reached 100
    assert "| 200 | 0.75 ± 0.35 (n=2) | 0.38 ± 0.18 (n=2) | 22 s | 2 |" in table  # seed 3 has not reached 200
    assert "| final (200, fresh eval seeds) | 0.50 ± 0.35 (n=2) |" in table
    assert "still running or stopped early: 3" in table and "Commit: 0123456789ab." in table
    summary = md.split("## Summary")[1]
    assert f"| ppo | PickCube-v1 | [fast](#ppo__fast) | {CPU} | 3 | 0.50 ± 0.35 (n=2) | 200 | 27 s |" in summary
    assert "No runs recorded yet" not in md
    assert "| `" in md.split("## Configs and commands")[1]  # the configs are listed with their tier
    # every seed's own evaluations; seed 3 has no final evaluation yet
    per_seed = table.split("Per training seed:")[1]
    assert "| seed | eval success_once at 100 / 200 env steps | final success_once |" in per_seed
    assert "| 1 | 0.00 / 0.50 | 0.25 | 0.00 | 25 s | 0123456789ab |" in per_seed
    assert "| 3 | 1.00 / – | – | – | 14 s (no final eval) | 0123456789ab |" in per_seed
    assert str(tmp_path) not in md  # no machine-local path in a page meant to be committed

    # rows another machine recorded in the CSV survive a re-gather and get their own table
    other = "Other machine (fixture)"
    with open(results / f"{key}.csv", "a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=reproduce.REPRO_COLUMNS, lineterminator="\n")
        w.writerow(dict(rows[2], device=other, success_once="1", run="elsewhere"))
    _fake_run(runs, key, 2, "20260103-000000", [(100, 12.0, 0.5), (200, 24.0, 0.0)], final=0.0)  # newer seed 2
    assert reproduce.main(args) == 0
    rows = read_csv(results / f"{key}.csv")
    assert [r["run"] for r in rows if r["device"] == other] == ["elsewhere"]
    assert [r["success_once"] for r in rows if r["seed"] == "2" and r["kind"] == "final" and r["device"] == CPU] == [
        "0"
    ]
    md = doc.read_text()
    assert f"### {other}" in md and f"| {other} | 1 | 1.00 (n=1) |" in md.split("## Summary")[1]
    assert "| final (200, fresh eval seeds) | 0.12 ± 0.18 (n=2) |" in md.split(f"### {CPU}")[1]


def test_reproduce_render_says_no_runs_recorded_yet(tmp_path):
    doc = tmp_path / "reproduction.md"
    reproduce.main(
        reproduce.Args(
            configs_dir=str(_configs(tmp_path)),
            runs_dir=str(tmp_path / "none"),
            results_dir=str(tmp_path / "results"),
            doc=str(doc),
            pages_dir=str(tmp_path / "no_pages"),
            gather=True,
        )
    )
    md = doc.read_text()
    assert "No runs recorded yet" in md and "## Summary" not in md
    assert "ppo.py" in md and "cpu" in md and "gpu" in md  # the configs and their tiers are still listed


def _bc_rows():
    base = dict(
        device=CPU,
        variant="c16",
        num_demos=200,
        control_mode="pd_ee_delta_pos",
        obs_mode="state",
        policy="chunk",
        chunk_size=16,
        temporal_ensemble=True,
        obs_horizon=1,
        drop_state_keys="agent/qvel",
        obs_noise=0,
        total_iters=5000,
        final_episodes=50,
        command="cleanrl_style/bc.py --runs-dir /tmp/x",
    )
    return [
        dict(base, seed=2, eval_success_by_iter="2500:0.80", final_success_once=0.88),
        dict(base, seed=1, eval_success_by_iter="2500:0.90 5000:0.85", final_success_once=0.92),
        dict(base, variant="single", seed=1, chunk_size=1, drop_state_keys="none", obs_noise=0.1,
             eval_success_by_iter="2500:0.40", final_success_once=0.3),
        dict(base, variant="pix", seed=1, obs_mode="rgb", encoder="keypoints", aug="none", aux_coef=10,
             temporal_ensemble=False, eval_success_by_iter="", final_success_once=0.166667,
             command="bc.py --aux-coef 10 --head-input aux"),
    ]  # fmt: skip


def _page(tmp_path, csv_path, body="stale numbers typed by hand"):
    pages = tmp_path / "pages"
    pages.mkdir(exist_ok=True)
    page = pages / "bc.md"
    page.write_text(
        f"# BC\n\nprose before\n\n{reproduce.BLOCK_BEGIN}bc {csv_path} -->\n{body}\n{reproduce.BLOCK_END}\n\n"
        "prose after\n"
    )
    return page


def test_reproduce_renders_generated_tables_into_pages(tmp_path):
    """A `<!-- generated: bench/reproduce.py bc CSV -->` block is replaced by the table of that CSV (one row
    per variant, seeds in order); the prose around it is kept; rendering again changes nothing."""
    bc_csv = tmp_path / "bc.csv"
    _shared.append_rows(bc_csv, bc_results.COLUMNS, _bc_rows())
    page = _page(tmp_path, bc_csv)
    args = reproduce.Args(
        configs_dir=str(_configs(tmp_path)),
        results_dir=str(tmp_path / "none"),
        doc=str(tmp_path / "reproduction.md"),
        pages_dir=str(tmp_path / "pages"),
        render=True,
    )
    assert reproduce.main(args) == 0
    md = page.read_text()
    assert md.startswith("# BC\n\nprose before\n\n<!-- generated: bench/reproduce.py bc ")
    assert md.endswith("<!-- end generated -->\n\nprose after\n") and "stale numbers" not in md
    assert "| c16 | 200 | chunk 16 + temporal ensembling | 5k | 1, 2 | @2.5k: 0.90 / 0.80; @5k: 0.85 / – | " \
        "0.92 / 0.88 | 0.90 ± 0.03 (n=2) | 50 |" in md  # fmt: skip
    assert "| single | 200 | single step (chunk 1), joint velocities kept, obs noise 0.1 | 5k | 1 | @2.5k: 0.40 | " \
        "0.30 | 0.30 (n=1) |" in md  # fmt: skip
    assert "| pix | 200 | chunk 16 + open loop, keypoints encoder, aug none, aux position loss 10, head sees state " \
        "+ predicted position only | 5k | 1 | – | 0.17 |" in md  # fmt: skip
    rendered = md.replace(f"bc {bc_csv} -->", "")  # the marker names the CSV as the page's author wrote it
    assert "/tmp/" not in rendered and str(tmp_path) not in rendered  # the table names the CSV by file name only
    assert reproduce.write_docs(args) == []  # idempotent
    assert reproduce.rendered_docs(args)[page] == md


@pytest.mark.parametrize(
    "spec, body_end, needle",
    [("bc {csv}", "", "no '<!-- end generated -->' line"), ("nope {csv}", None, "is not one of"),
     ("bc missing.csv", None, "does not exist")],
)  # fmt: skip
def test_reproduce_rejects_bad_generated_blocks(tmp_path, spec, body_end, needle):
    bc_csv = tmp_path / "bc.csv"
    _shared.append_rows(bc_csv, bc_results.COLUMNS, _bc_rows())
    page = _page(tmp_path, bc_csv)
    text = page.read_text().replace(f"bc {bc_csv}", spec.format(csv=bc_csv))
    if body_end is not None:
        text = text.replace(reproduce.BLOCK_END, body_end)
    page.write_text(text)
    with pytest.raises(UserError, match=re.escape(needle)):
        reproduce.refresh_page(page.read_text(), page)


def test_aug_table_pivots_the_median_of_each_setting():
    base = dict(device=CPU, commit="abcdef1234", res="64", batch="256", load1="1.5")
    rows = [
        dict(base, impl="gather", images_per_s="100"),
        dict(base, impl="gather", images_per_s="300", load1="3.25"),
        dict(base, impl="gather", images_per_s="200"),  # median 200
        dict(base, impl="kornia", images_per_s="1234.4"),
        dict(base, impl="gather", res="128", images_per_s="50"),
    ]
    lines = reproduce.aug_table(rows)
    assert lines[0] == f"**{CPU}**, images/s (median over runs), 1-minute load average 1.5-3.2, commit abcdef1:"
    assert lines[2:] == ["| res | batch | gather | kornia |", "|---|---:|---:|---:|", "| 64x64 | 256 | 200 | 1,234 |",
                         "| 128x128 | 256 | 50 | – |"]  # fmt: skip


def test_encoder_throughput_table_pivots_modes_per_encoder_and_keeps_the_notes():
    base = dict(device=CPU, commit="abcdef1234", batch="8", torch_threads="1", load1="2.5", adapter="attn-pool")
    rows = [
        dict(base, encoder="nature", adapter="fc", camera="64", input_size="64", mode="forward", frames_per_s="6093.7"),
        dict(base, encoder="nature", adapter="fc", camera="64", input_size="64", mode="forward", frames_per_s="5000"),
        dict(base, encoder="nature", adapter="fc", camera="64", input_size="64", mode="forward", frames_per_s="7000",
             load1="4.25", notes="machine shared"),
        dict(base, encoder="resnet18", camera="64", input_size="224", mode="train", frames_per_s="5.14"),
        # a failed measurement (0 frames/s) is left out:
        dict(base, encoder="resnet18", camera="64", input_size="224", mode="forward", frames_per_s="0"),
    ]  # fmt: skip
    lines = reproduce.encoder_throughput_table(rows)
    assert lines[0].startswith(f"**{CPU}**, batch 8, 1 torch thread(s): frames/s (median over runs)")
    assert "load average 2.5-4.2, commit abcdef1" in lines[0]
    assert lines[2:6] == [
        "| encoder | adapter | camera | input | forward | train |",
        "|---|---|---:|---:|---:|---:|",
        "| nature | fc | 64 | 64 | 6,094 | – |",  # the median of three runs
        "| resnet18 | attn-pool | 64 | 224 | – | 5.1 |",
    ]
    assert lines[-1] == "Note: machine shared."
    assert reproduce.encoder_throughput_table([]) == []


def test_feature_cache_table_pairs_the_runs_and_computes_the_speedup():
    base = dict(device=CPU, commit="abcdef1234", script="ppo_rgb", encoder="resnet18", input_size="224",
                adapter="linear", load1="4", command="cleanrl_style/ppo_rgb.py --freeze-encoder")  # fmt: skip
    rows = [
        dict(base, pair="1", cache_features="True", update_s_mean="0.08", rollout_s_mean="2.5", sps_final="6"),
        dict(base, pair="1", cache_features="False", update_s_mean="3.2", rollout_s_mean="1.6", sps_final="3.4"),
        dict(base, pair="2", cache_features="True", update_s_mean="0.1", rollout_s_mean="2.6", sps_final="5.8"),
    ]
    lines = reproduce.feature_cache_table(rows)
    assert lines[0].startswith(f"**{CPU}**, ppo_rgb.py, frozen resnet18 at 224 px, linear adapter")
    assert lines[4:7] == [
        "| 1 | on | 0.080 | 2.50 | 6.00 | 40x |",
        "| 1 | off | 3.200 | 1.60 | 3.40 | – |",
        "| 2 | on | 0.100 | 2.60 | 5.80 | – |",  # no run without the cache in pair 2: no speed-up claimed
    ]
    assert lines[-1] == "Command: `cleanrl_style/ppo_rgb.py --freeze-encoder`"


LOCAL_PATH = re.compile(r"(?<![\w.~])/(tmp|work|root|home|Users|private|var/folders)/")


def _generated_parts(text: str) -> str:
    """The generated blocks of a page (a page may hold hand-written examples with /tmp paths elsewhere)."""
    return "\n".join(re.findall(re.escape(reproduce.BLOCK_BEGIN) + r".*?" + re.escape(reproduce.BLOCK_END), text,
                                 re.S))  # fmt: skip


def test_committed_docs_are_what_the_generators_render():
    """docs/benchmarks.md, docs/reproduction.md and every generated table in docs/*.md are exactly what
    bench/report.py and bench/reproduce.py render from the committed results/ CSVs (and configs/): one
    source of truth, and re-rendering changes nothing. Fails after a CSV or a config changed without
    `python bench/reproduce.py --render` / `python bench/report.py`. None holds a machine-local path."""
    bench_md = REPO_ROOT / "docs" / "benchmarks.md"
    assert report.rendered_doc(report.Args()) == bench_md.read_text(), "stale: run python bench/report.py"
    docs = reproduce.rendered_docs(reproduce.Args())
    for page in ("bc.md", "sac.md"):  # their results tables are generated blocks
        assert REPO_ROOT / "docs" / page in docs
    for path, text in docs.items():
        rel = path.relative_to(REPO_ROOT)
        assert path.read_text() == text, f"{rel} is stale: run python bench/reproduce.py --render"
        generated = text if path.name == "reproduction.md" else _generated_parts(text)
        assert generated and not LOCAL_PATH.search(generated), f"{rel}: {LOCAL_PATH.search(generated)}"
    assert not LOCAL_PATH.search(bench_md.read_text())


def test_bc_results_appends_one_row_per_finished_run(tmp_path, capsys):
    demo = tmp_path / "trajectory.rgb.pd_ee_delta_pos.physx_cpu.h5"
    demo.with_suffix(".json").write_text(json.dumps({"env_info": {"env_kwargs": {"control_mode": "pd_ee_delta_pos"}}}))
    args = dict(
        exp_name="rgb_aux",
        seed=2,
        obs_mode="rgb",
        policy="chunk",
        chunk_size=16,
        temporal_ensemble=True,
        obs_horizon=1,
        drop_state_keys=["agent/qvel"],
        obs_noise=0.0,
        total_iters=4000,
        demo_path=str(demo),
        encoder="nature",
        aug="shift",
        aux_coef=1.0,
    )
    done, unfinished = tmp_path / "run1", tmp_path / "run2"
    for run in (done, unfinished):
        run.mkdir()
        (run / "config.yaml").write_text(
            yaml.safe_dump(
                dict(
                    device="CPU: test",
                    start_time="2026-01-01",
                    git_commit="abc",
                    command="bc.py --aux-coef 1",
                    args=args,
                )
            )
        )
        (run / "metrics.csv").write_text(
            "step,wall_time,name,value\n2000,1,eval/success_once,0.25\n"
            "4000,2,eval/success_once,0.5\n4000,2,losses/bc_loss,0.1\n"
        )
    (done / "final_eval.json").write_text(
        json.dumps(dict(success_once=0.6, episodes=100, num_demos=200, train_s=12.34, wall_time_s=56.78))
    )
    out = tmp_path / "bc.csv"
    assert bc_results.main(bc_results.Args(runs=[str(done), str(unfinished)], out=str(out), note="quiet")) == 0
    (row,) = _shared.read_rows(out)
    assert row["variant"] == "rgb_aux" and row["seed"] == "2" and row["num_demos"] == "200"
    assert row["eval_success_by_iter"] == "2000:0.25 4000:0.50" and row["final_success_once"] == "0.6"
    assert (row["control_mode"], row["encoder"], row["aux_coef"], row["drop_state_keys"]) == (
        "pd_ee_delta_pos",
        "nature",
        "1",
        "agent/qvel",
    )
    captured = capsys.readouterr()
    assert "skip" in captured.err and "| rgb_aux | 2 | 200 |" in captured.out
    assert bc_results.main(bc_results.Args(runs=[str(unfinished)], out=str(out))) == 1  # nothing finished
