"""Simulator domain randomization (lib/sim_dr.py, PickCubeDR-v1 in lib/pickcube_dr.py), on the CPU backend:
the ranges and draws, what the env builds from them (materials, lights, camera intrinsics and pose),
clean == PickCube-v1, per-env / per-episode / per-seed draws, and the flags through the scripts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import assert_one_error_line, run_script

from cleanrl_style.lib import sim_dr as dr
from cleanrl_style.lib.envs import make_env
from cleanrl_style.lib.runs import UserError

PERIODS = {"cube_hue": 1.0, "table_hue": 1.0, "floor_hue": 1.0, "key_azimuth_deg": 360.0}
SCENE_KEYS = [k for k in dr.DISJOINT if not k.startswith("camera_")]
CAMERA_KEYS = ["camera_eye_m", "camera_target_m"]
EYE, TARGET = np.array([0.3, 0, 0.6]), np.array([-0.1, 0, 0.1])  # PickCube-v1's base camera (panda)


def _overlap(a, b, period=None) -> bool:
    shifts = (0.0,) if period is None else (-period, 0.0, period)
    return any(a[0] < b[1] + k and b[0] + k < a[1] for k in shifts)


def _inside(inner, outer, period=None) -> bool:
    shifts = (0.0,) if period is None else (-period, 0.0, period)
    return any(o[0] <= inner[0] + k and inner[1] + k <= o[1] for o in outer for k in shifts)


# ----------------------------------------------------------------------------- ranges and draws
@pytest.mark.parametrize("key", dr.DISJOINT)
def test_held_out_ranges_are_disjoint_from_training_and_light_lies_inside_heavy(key):
    heavy, light, held = (dr.RANGES[s][key] for s in ("heavy", "light", "held-out"))
    if isinstance(heavy[0], str):  # patterns: sets of names
        assert not set(held) & set(heavy) and set(light) <= set(heavy)
        return
    period = PERIODS.get(key)
    for h in held:
        for t in heavy:
            assert not _overlap(h, t, period), (key, h, t)
    for interval in light:
        assert _inside(interval, heavy, period), (key, interval, heavy)
        assert interval[1] - interval[0] < sum(hi - lo for lo, hi in heavy)  # narrower


def _draws(split, n=300, first=0):
    out = []
    for seed in range(first, first + n):
        scene_rng, cam_rng = dr.episode_rngs(seed)
        out.append(dict(dr.draw_scene(scene_rng, split), **dr.draw_camera(cam_rng, split)))
    return out


@pytest.mark.parametrize("split", ["light", "heavy", "held-out"])
def test_every_draw_lies_in_its_split_and_never_in_the_other(split):
    other = "heavy" if split == "held-out" else "held-out"
    for d in _draws(split):
        for key in SCENE_KEYS + CAMERA_KEYS:
            assert dr.in_ranges(d[key], dr.RANGES[split][key], PERIODS.get(key)), (split, key, d[key])
            assert not dr.in_ranges(d[key], dr.RANGES[other][key], PERIODS.get(key)), (split, key, d[key])
        assert math.isclose(np.linalg.norm(d["eye_offset"]), d["camera_eye_m"], abs_tol=1e-12)
        assert math.isclose(np.linalg.norm(d["target_offset"]), d["camera_target_m"], abs_tol=1e-12)
        assert math.isclose(np.linalg.norm(d["key_direction"]), 1.0, abs_tol=1e-12) and d["key_direction"][2] < 0


def test_train_and_held_out_colours_never_share_a_hue():
    """The colour palettes: every held-out hue is at least 0.02 of the colour wheel from every training hue."""
    train, held = _draws("heavy", 200), _draws("held-out", 200, first=10_000)
    for obj in ("cube", "table", "floor"):
        t = np.array([d[f"{obj}_hue"] for d in train])
        h = np.array([d[f"{obj}_hue"] for d in held])
        gap = np.abs(t[:, None] - h[None, :])
        assert np.minimum(gap, 1 - gap).min() > 0.02, obj


def test_draws_are_reproducible_from_the_seed_and_differ_between_seeds():
    a, b, c = _draws("heavy", 1, first=7), _draws("heavy", 1, first=7), _draws("heavy", 1, first=8)
    assert a[0]["cube_hue"] == b[0]["cube_hue"] and np.array_equal(a[0]["eye_offset"], b[0]["eye_offset"])
    assert a[0]["cube_hue"] != c[0]["cube_hue"] and not np.array_equal(a[0]["eye_offset"], c[0]["eye_offset"])
    hues = {round(d["cube_hue"], 6) for d in _draws("heavy", 50)}
    assert len(hues) == 50


def test_textures_hold_both_colours_and_plain_has_none():
    assert dr.texture("plain", (1, 0, 0), (0.5, 0, 0), 0) is None
    for pattern in ("checker", "stripes", "dots", "grid", "noise"):
        img = dr.texture(pattern, (1.0, 0.0, 0.0), (0.0, 0.0, 1.0), seed=3)
        assert img.dtype == np.uint8 and img.shape == (dr.TEXTURE_PX, dr.TEXTURE_PX, 4)
        colours = {tuple(p) for p in img[..., :3].reshape(-1, 3)}
        assert colours == {(255, 0, 0), (0, 0, 255)}, pattern
    assert not np.array_equal(
        dr.texture("noise", (1, 0, 0), (0, 0, 1), 1), dr.texture("noise", (1, 0, 0), (0, 0, 1), 2)
    )


@pytest.mark.parametrize(
    "env_id, sim_dr, variation, kwargs, expected",
    [
        ("PickCubeDR-v1", "light", None, None, ("PickCubeDR-v1", {"sim_dr": "light", "variation": "train"})),
        ("PickCubeDR-v1", None, None, None, ("PickCubeDR-v1", {"sim_dr": "off", "variation": "train"})),
        ("PickCube-v1", None, None, None, ("PickCube-v1", None)),
        ("PickCube-v1", "off", "clean", None, ("PickCube-v1", None)),
        ("PickCube-v1", None, "train", None, ("PickCubeDR-v1", {"sim_dr": "heavy", "variation": "train"})),
        ("PickCube-v1", "light", "train", None, ("PickCubeDR-v1", {"sim_dr": "light", "variation": "train"})),
        ("PickCube-v1", None, "held-out", None, ("PickCubeDR-v1", {"sim_dr": "off", "variation": "held-out"})),
        (
            "PickCubeDR-v1",
            None,
            "train",
            {"sim_dr": "light", "variation": "train"},
            ("PickCubeDR-v1", {"sim_dr": "light", "variation": "train"}),
        ),
        (
            "PickCubeDR-v1",
            None,
            "clean",
            {"sim_dr": "light", "variation": "train"},
            ("PickCubeDR-v1", {"sim_dr": "light", "variation": "clean"}),
        ),
        ("PushCube-v1", None, "clean", None, ("PushCube-v1", None)),
    ],
)
def test_resolve_maps_flags_to_env_id_and_kwargs(env_id, sim_dr, variation, kwargs, expected):
    assert dr.resolve(env_id, sim_dr, variation, kwargs) == expected


@pytest.mark.parametrize(
    "env_id, sim_dr, variation, needle",
    [
        ("PickCube-v1", "light", None, "PickCubeDR"),
        ("PushCube-v1", "heavy", None, "PickCubeDR"),
        ("PushCube-v1", None, "held-out", "variation held-out"),
        ("PickCubeDR-v1", "medium", None, "--sim-dr"),
        ("PickCubeDR-v1", None, "test", "--variation"),
    ],
)
def test_impossible_flag_combinations_are_user_errors(env_id, sim_dr, variation, needle):
    with pytest.raises(UserError) as ei:
        dr.check_flags(env_id, sim_dr, variation)
    assert ei.value.code == 2 and needle in str(ei.value)


def test_the_docs_page_holds_the_ranges_table_of_the_code():
    from conftest import REPO_ROOT

    page = (REPO_ROOT / "docs" / "generalization.md").read_text()
    assert dr.ranges_markdown() in page, "regenerate it: python bench/variations_figure.py --table"


def test_env_fps_sweeps_randomization_levels_on_pickcube_only():
    import sys

    from conftest import REPO_ROOT

    sys.path.insert(0, str(REPO_ROOT))
    from bench import env_fps

    grid = env_fps.build_grid(("rgb",), (64,), (1, 2), "cpu", ("off", "heavy"))
    assert [(c.sim_dr, c.num_envs) for c in grid] == [("off", 1), ("off", 2), ("heavy", 1), ("heavy", 2)]
    assert env_fps.config_env_id("PickCube-v1", grid[0]) == "PickCube-v1"
    assert env_fps.config_env_id("PickCube-v1", grid[2]) == "PickCubeDR-v1"
    with pytest.raises(UserError, match="PickCubeDR"):
        env_fps.config_env_id("PushCube-v1", grid[2])
    with pytest.raises(UserError, match="--sim-dr"):
        env_fps.build_grid(("rgb",), (64,), (1,), "cpu", ("medium",))
    assert "sim_dr" in env_fps.COLUMNS


# ----------------------------------------------------------------------------- the env
def _raw_env(sim_dr="heavy", variation="train", size=32):
    import gymnasium as gym

    from cleanrl_style.lib.envs import register_our_envs

    register_our_envs()
    kw = dict(
        obs_mode="rgb", sim_backend="physx_cpu", render_backend="cpu", sensor_configs=dict(width=size, height=size)
    )
    return gym.make("PickCubeDR-v1", num_envs=1, sim_dr=sim_dr, variation=variation, **kw)


@pytest.fixture(scope="module")
def heavy_env():
    env = _raw_env("heavy")
    yield env
    env.close()


@pytest.fixture(scope="module")
def held_out_env():
    env = _raw_env("off", "held-out")
    yield env
    env.close()


def _snapshot(env, obs):
    u = env.unwrapped
    cam = obs["sensor_param"]["base_camera"]
    return dict(
        rgb=obs["sensor_data"]["base_camera"]["rgb"].clone(),
        params={k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in u.dr_params[0].items()},
        cam2world=cam["cam2world_gl"][0].clone(),
        intrinsic=cam["intrinsic_cv"][0].clone(),
        cube_xyz=u.cube.pose.p[0].clone(),
    )


def test_an_episode_is_reproducible_from_its_seed_and_seeds_differ(heavy_env):
    first = _snapshot(heavy_env, heavy_env.reset(seed=11)[0])
    again = _snapshot(heavy_env, heavy_env.reset(seed=11)[0])
    other = _snapshot(heavy_env, heavy_env.reset(seed=12)[0])
    assert torch.equal(first["rgb"], again["rgb"]) and torch.equal(first["cam2world"], again["cam2world"])
    assert first["params"]["cube_hue"] == again["params"]["cube_hue"]
    assert not torch.equal(first["rgb"], other["rgb"])
    assert first["params"]["cube_hue"] != other["params"]["cube_hue"]
    assert not torch.allclose(first["cam2world"], other["cam2world"])


def test_every_episode_draws_anew_reproducibly_after_a_seeded_reset(heavy_env):
    """Unseeded resets (what auto-resets do) continue each env's generators: a new scene and camera every
    episode (one env per process reconfigures at every reset), the same sequence after the same seed.
    (The cube's pose in an unseeded episode comes from ManiSkill's torch RNG, as in PickCube-v1.)"""
    assert heavy_env.unwrapped.reconfiguration_freq == 1

    def sequence():
        shots = [_snapshot(heavy_env, heavy_env.reset(seed=21)[0])]
        shots += [_snapshot(heavy_env, heavy_env.reset()[0]) for _ in range(2)]
        return shots

    a, b = sequence(), sequence()
    assert torch.equal(a[0]["rgb"], b[0]["rgb"])
    for x, y in zip(a, b):
        assert x["params"]["table_hue"] == y["params"]["table_hue"] and x["params"]["fov_deg"] == y["params"]["fov_deg"]
        assert torch.equal(x["cam2world"], y["cam2world"]) and torch.equal(x["intrinsic"], y["intrinsic"])
    hues = [s["params"]["table_hue"] for s in a]
    assert len(set(hues)) == 3
    assert not torch.allclose(a[0]["cam2world"], a[1]["cam2world"])


def test_the_camera_intrinsics_and_pose_are_the_drawn_ones(heavy_env):
    for seed in (31, 32):
        s = _snapshot(heavy_env, heavy_env.reset(seed=seed)[0])
        p = s["params"]
        fov = math.radians(90.0 + p["fov_deg"])
        assert math.isclose(float(s["intrinsic"][1, 1]), 16 / math.tan(fov / 2), rel_tol=1e-4)  # 32 px
        eye = EYE + p["eye_offset"]
        np.testing.assert_allclose(s["cam2world"][:3, 3].numpy(), eye, atol=1e-5)
        # OpenGL camera looks along -z: the look-at point is on that ray
        view = -s["cam2world"][:3, 2].numpy()
        aim = TARGET + p["target_offset"] - eye
        np.testing.assert_allclose(view, aim / np.linalg.norm(aim), atol=1e-4)


def test_materials_and_lights_are_the_drawn_ones(heavy_env):
    import sapien

    heavy_env.reset(seed=41)
    u = heavy_env.unwrapped
    p = u.dr_params[0]
    body = u.cube._objs[0].find_component_by_type(sapien.render.RenderBodyComponent)
    np.testing.assert_allclose(body.render_shapes[0].material.base_color[:3], p["cube_rgb"], atol=1e-6)
    scene = u.scene.sub_scenes[0]
    np.testing.assert_allclose(scene.render_system.ambient_light, p["ambient_rgb"], atol=1e-6)
    lights = [
        e.find_component_by_type(sapien.render.RenderDirectionalLightComponent)
        for e in scene.entities
        if e.find_component_by_type(sapien.render.RenderDirectionalLightComponent) is not None
    ]
    assert len(lights) == 2
    key = next(c for c in lights if np.allclose(c.color, p["key_rgb"], atol=1e-6))
    np.testing.assert_allclose(key.global_pose.to_transformation_matrix()[:3, 0], p["key_direction"], atol=1e-5)
    assert any(np.allclose(c.color, p["fill_rgb"], atol=1e-6) for c in lights)
    # the task itself is PickCube's: same state registry names, same initial cube pose for the seed
    assert {"table-workspace", "cube", "goal_site"} <= set(u.scene.state_dict_registry.actors)


def test_held_out_draws_land_outside_the_training_ranges_in_the_env(held_out_env):
    s = _snapshot(held_out_env, held_out_env.reset(seed=51)[0])
    p = s["params"]
    for key in SCENE_KEYS + CAMERA_KEYS:
        assert not dr.in_ranges(p[key], dr.RANGES["heavy"][key], PERIODS.get(key)), key
    fov = 2 * math.atan(16 / float(s["intrinsic"][1, 1]))
    assert abs(math.degrees(fov) - 90.0) > 8.0  # outside heavy's +-8 degrees
    assert np.linalg.norm(s["cam2world"][:3, 3].numpy() - EYE) > 0.07


def test_without_a_renderer_only_the_physics_is_built():
    """render_backend="none" (VecEnv.state_layout's env, motion planning): no materials or textures, same draws."""
    import gymnasium as gym

    from cleanrl_style.lib.envs import register_our_envs

    register_our_envs()
    kw = dict(obs_mode="state", sim_backend="physx_cpu", render_backend="none")
    env = gym.make("PickCubeDR-v1", num_envs=1, sim_dr="heavy", **kw)
    try:
        obs, _ = env.reset(seed=71)
        assert obs.shape[-1] == 42 and env.unwrapped.dr_params[0]["cube_hue"] == _draws("heavy", 1, 71)[0]["cube_hue"]
        env.step(env.action_space.sample())
    finally:
        env.close()


def test_clean_evaluation_is_bit_identical_to_pickcube():
    """variation clean of a randomized run (and of plain PickCube checkpoints) is PickCube-v1 itself:
    same observations, rewards and images for the same seeds, through the evaluation protocol's envs."""
    kw = dict(image_size=32, sim_backend="cpu", partial_reset=False, reconfigure=True, max_episode_steps=4)
    plain = make_env("PickCube", 1, "rgb", **kw)
    clean = make_env("PickCubeDR", 1, "rgb", sim_dr="heavy", variation="clean", **kw)
    assert clean.env_id == "PickCubeDR-v1" and clean.cfg["env_kwargs"] == {"sim_dr": "heavy", "variation": "clean"}
    g = torch.Generator().manual_seed(0)
    try:
        for seed in (3, 1_000_000):
            a, _ = plain.reset(seed=seed)
            b, _ = clean.reset(seed=seed)
            assert torch.equal(a["rgb"], b["rgb"]) and torch.equal(a["state"], b["state"])
            for _ in range(4):
                act = plain.action_low + torch.rand(1, plain.action_dim, generator=g) * (
                    plain.action_high - plain.action_low
                )
                a, ra, _, _, ia = plain.step(act)
                b, rb, _, _, ib = clean.step(act)
                if "final_observation" in ia:  # the episode's last step: what follows is an unseeded reset
                    a, b = ia["final_observation"], ib["final_observation"]
                assert torch.equal(a["rgb"], b["rgb"]) and torch.equal(a["state"], b["state"]) and torch.equal(ra, rb)
    finally:
        plain.close()
        clean.close()


def test_each_cpu_env_draws_its_own_variation_from_its_seed(heavy_env):
    """2 worker processes (they register PickCubeDR-v1 themselves): env i shows the variation of seed S + i,
    the same image a single env reset with that seed renders."""
    envs = make_env("PickCubeDR", 2, "rgb", image_size=32, sim_backend="cpu", partial_reset=False, sim_dr="heavy")
    try:
        obs, _ = envs.reset(seed=60)
        assert not torch.equal(obs["rgb"][0], obs["rgb"][1])
        again, _ = envs.reset(seed=60)
        assert torch.equal(obs["rgb"], again["rgb"])
    finally:
        envs.close()
    single = heavy_env.reset(seed=61)[0]["sensor_data"]["base_camera"]["rgb"][0].permute(2, 0, 1)
    assert torch.equal(obs["rgb"][1], single)


def test_the_batched_branch_randomizes_and_auto_resets():
    """ManiSkillVectorEnv (the GPU code path) over one physx_cpu env: reconfiguring auto-resets work and
    each new episode has a new draw."""
    envs = make_env(
        "PickCubeDR", 1, "rgb", image_size=32, sim_backend="batched-cpu", sim_dr="light", max_episode_steps=2
    )
    try:
        base = envs.env.unwrapped
        obs, _ = envs.reset(seed=5)
        hue0 = base.dr_params[0]["cube_hue"]
        for _ in range(2):
            obs, _, term, trunc, info = envs.step(envs.sample_actions())
        assert bool((term | trunc).all()) and "final_observation" in info
        assert base.dr_params[0]["cube_hue"] != hue0
        assert dr.in_ranges(base.dr_params[0]["cube_hue"], dr.RANGES["light"]["cube_hue"], 1.0)
    finally:
        envs.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the GPU sim: num_envs > 1 in one ManiSkill env")
def test_gpu_parallel_envs_each_draw_their_own_variation():
    """One ManiSkill GPU env with 4 parallel envs: env i draws what seed S + i draws on the CPU, renders its
    own scene and camera; a partial reset redraws only that env's camera. (Not yet run: no GPU so far.)"""
    import gymnasium as gym

    from cleanrl_style.lib.envs import register_our_envs

    register_our_envs()
    kw = dict(obs_mode="rgb", sim_backend="physx_cuda", sensor_configs=dict(width=32, height=32))
    env = gym.make("PickCubeDR-v1", num_envs=4, sim_dr="heavy", **kw)
    try:
        obs, _ = env.reset(seed=[80, 81, 82, 83], options=dict(reconfigure=True))
        u = env.unwrapped
        assert [d["cube_hue"] for d in u.dr_params] == [_draws("heavy", 1, 80 + i)[0]["cube_hue"] for i in range(4)]
        rgb = obs["sensor_data"]["base_camera"]["rgb"]
        assert all(not torch.equal(rgb[0], rgb[i]) for i in range(1, 4))
        cam = obs["sensor_param"]["base_camera"]
        for i, d in enumerate(u.dr_params):
            fov = math.radians(90.0 + d["fov_deg"])
            assert math.isclose(float(cam["intrinsic_cv"][i, 1, 1]), 16 / math.tan(fov / 2), rel_tol=1e-3)
            eye = cam["cam2world_gl"][i, :3, 3].cpu().numpy()
            np.testing.assert_allclose(eye, EYE + d["eye_offset"], atol=1e-4)
        before = cam["cam2world_gl"].clone()
        obs, _ = env.reset(options=dict(env_idx=torch.tensor([1], device=u.device)))
        after = obs["sensor_param"]["base_camera"]["cam2world_gl"]
        assert torch.equal(before[0], after[0]) and not torch.allclose(before[1], after[1])
    finally:
        env.close()


# ----------------------------------------------------------------------------- through the scripts
def test_sim_dr_on_another_task_is_one_error_line_exit_2():
    p = run_script(
        "cleanrl_style/ppo_rgb.py", "--env-id", "PickCube", "--sim-dr", "light", "--sim-backend", "cpu", timeout=120
    )
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert_one_error_line(p.stderr, "--sim-dr light", "PickCubeDR")


def test_variation_of_a_non_pickcube_checkpoint_is_one_error_line_exit_2():
    from conftest import REPO_ROOT

    ckpt = REPO_ROOT / "tests" / "fixtures" / "old_checkpoints" / "ppo.pt"  # PushCube-v1
    p = run_script("cleanrl_style/evaluate.py", "--checkpoint", str(ckpt), "--variation", "held-out", timeout=120)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert_one_error_line(p.stderr, "variation held-out", "PushCube-v1")


@pytest.fixture(scope="module")
def dr_run(tmp_path_factory):
    """A tiny ppo_rgb run on PickCubeDR --sim-dr heavy, evaluated in training on held-out."""
    from cleanrl_style import ppo_rgb

    tmp = tmp_path_factory.mktemp("dr_run")
    run_dir = ppo_rgb.main(
        ppo_rgb.Args(
            env_id="PickCubeDR",
            sim_dr="heavy",
            eval_variation="held-out",
            num_envs=1,
            num_eval_envs=1,
            image_size=36,
            total_timesteps=8,
            num_steps=8,
            num_minibatches=2,
            eval_freq=0,
            num_eval_episodes=1,
            max_episode_steps=4,
            sim_backend="cpu",
            runs_dir=str(tmp),
        )
    )
    return run_dir


def test_a_randomized_training_run_records_its_env(dr_run):
    import yaml

    from cleanrl_style.lib.checkpoints import load_checkpoint

    cfg = yaml.safe_load((dr_run / "config.yaml").read_text())
    assert cfg["args"]["sim_dr"] == "heavy" and cfg["args"]["eval_variation"] == "held-out"
    spec = load_checkpoint(dr_run / "last.pt")["env"]
    assert spec["env_id"] == "PickCubeDR-v1" and spec["env_kwargs"] == {"sim_dr": "heavy", "variation": "train"}
    final = json.loads((dr_run / "final_eval.json").read_text())
    assert final["episodes"] == 1 and final["variation"] == "held-out" and final["env_id"] == "PickCubeDR-v1"


@pytest.mark.parametrize("variation", ["clean", "train", "held-out"])
def test_evaluate_scores_a_checkpoint_on_each_variation(dr_run, tmp_path, variation):
    from cleanrl_style import evaluate

    m = evaluate.main(
        evaluate.Args(
            checkpoint=str(dr_run / "last.pt"),
            num_episodes=1,
            seed=3,
            sim_backend="cpu",
            max_episode_steps=2,
            out_dir=str(tmp_path),
            variation=variation,
        )
    )
    assert m["episodes"] == 1 and m["variation"] == variation and m["env_id"] == "PickCubeDR-v1"
    assert m["sim_dr"] == "heavy"  # train: the checkpoint's own level
    name = "eval_last_seed3" + ("" if variation == "clean" else f"_{variation}")
    assert json.loads((tmp_path / f"{name}.json").read_text())["variation"] == variation


def test_a_plain_pickcube_checkpoint_is_scored_on_train_and_held_out(dr_run, tmp_path):
    """A PickCube-v1 checkpoint (no env_kwargs) runs in PickCubeDR-v1: train on heavy's ranges by default."""
    from cleanrl_style import evaluate
    from cleanrl_style.lib.checkpoints import load_checkpoint

    ckpt = load_checkpoint(dr_run / "last.pt")
    ckpt["env"] = dict(ckpt["env"], env_id="PickCube-v1", env_kwargs=None)
    torch.save(ckpt, tmp_path / "plain.pt")
    for variation, level in (("train", "heavy"), ("held-out", None)):
        args = evaluate.Args(
            checkpoint=str(tmp_path / "plain.pt"),
            num_episodes=1,
            sim_backend="cpu",
            max_episode_steps=2,
            out_dir=str(tmp_path),
            variation=variation,
        )
        m = evaluate.main(args)
        assert (m["env_id"], m["checkpoint_env_id"], m["variation"]) == ("PickCubeDR-v1", "PickCube-v1", variation)
        assert m["sim_dr"] == (level or "off")


def test_demos_converted_with_sim_dr_replay_each_demos_own_variation(tmp_path):
    """2 planned PickCube demos converted to 32x32 RGB under --sim-dr light: PickCubeDR-v1 with that level
    in the json, and each demo's first frame is the variation a fresh env draws from its episode seed."""
    import h5py

    p = run_script(
        "cleanrl_style/collect_demos.py",
        "--env-id",
        "PickCube",
        "--num-demos",
        "2",
        "--out-dir",
        str(tmp_path),
        "--obs-mode",
        "rgb",
        "--control-mode",
        "pd_ee_delta_pose",
        "--image-size",
        "32",
        "--sim-dr",
        "light",
        "--num-procs",
        "1",
        timeout=600,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    conv = (
        tmp_path
        / "PickCube-v1"
        / "motionplanning"
        / "rgb32-simdr-light"
        / "trajectory.rgb.pd_ee_delta_pose.physx_cpu.h5"
    )
    meta = json.loads(conv.with_suffix(".json").read_text())
    assert meta["env_info"]["env_id"] == "PickCubeDR-v1"
    assert meta["env_info"]["env_kwargs"]["sim_dr"] == "light" and meta["cleanrl_style"]["sim_dr"] == "light"
    assert len(meta["episodes"]) == 2
    env = _raw_env("light")
    try:
        firsts = []
        with h5py.File(conv, "r") as f:
            for ep in meta["episodes"]:
                frame = np.asarray(f[f"traj_{ep['episode_id']}/obs/sensor_data/base_camera/rgb"][0])
                fresh = env.reset(seed=ep["episode_seed"])[0]["sensor_data"]["base_camera"]["rgb"][0].numpy()
                # same scene, camera and cube; the replay set the recorded robot state (tiny joint noise)
                assert np.mean(np.abs(frame.astype(int) - fresh.astype(int))) < 2.0
                firsts.append(frame)
        assert not np.array_equal(firsts[0], firsts[1])
    finally:
        env.close()
