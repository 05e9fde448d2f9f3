"""PickCubeDR-v1: PickCube-v1 with simulator domain randomization, registered with ManiSkill.
Docs: docs/generalization.md (what is drawn and from which ranges: lib/sim_dr.py)

    gym.make("PickCubeDR-v1", sim_dr="heavy", variation="train")   # or make_env(..., sim_dr="heavy")

Env kwargs: `sim_dr` off | light | heavy (the training level) and `variation` clean | train |
held-out. clean (and train with sim_dr off) builds exactly PickCube-v1's scene, so observations are
bit-identical to PickCube-v1's for the same seed. Importing this module registers the id; envs.py
imports it wherever it makes envs (also in CPU worker processes), collect_demos.py in its workers
and in the replay tool's process.

What is randomized, per env (every parallel env of one ManiSkill GPU env draws its own), and how:

- cube colour (reconfiguration): one cube built per sub-scene (`actors.build_cube(scene_idxs=[i])`),
  merged with `Actor.merge` into `cube`;
- table surface colour and pattern (reconfiguration): one kinematic table per sub-scene (PickCube's
  box collision; a box body and a top quad with a `RenderTexture2D` tiled by its UVs), merged into
  `table-workspace`;
- floor colour and pattern (reconfiguration): PickCube's `ground` actor (one plane collision serves
  all sub-scenes, as ManiSkill's build_ground makes it) with a textured render body per sub-scene;
- lighting (reconfiguration): each sub-scene's `render_system.ambient_light`, and
  `add_directional_light(scene_idxs=[i])` for the key light (colour, intensity, direction) and the
  fill light (colour, intensity);
- camera field of view (reconfiguration): a per-env fov array in the `CameraConfig`;
- camera pose, position and look-at point (every episode): the sensor camera is mounted on a
  kinematic actor whose batched pose is set in `_initialize_episode`.

Materials, lights and camera intrinsics are set while ManiSkill builds the scene (its docs: a camera's
fov cannot change after creation; per-env materials and lights are set in _load_scene/_load_lighting;
changing them under a running GPU renderer is not documented, so nothing here relies on it), so those
change only when the env reconfigures; a mounted camera's pose is simulation state and changes at every
reset, partial resets included. Hence:
- with one env per ManiSkill env (our CPU backend, one physx_cpu env per worker) the randomized
  variant reconfigures at every reset by default (`reconfiguration_freq=1`, ~0.3 s per reset on
  a 2-core CPU), so every training episode draws a new scene;
- with num_envs > 1 (the GPU sim) it keeps ManiSkill's default (`reconfiguration_freq=0`): each
  parallel env keeps the scene it drew at creation (thousands of different scenes) and redraws it
  whenever the env reconfigures; the camera pose is redrawn every episode. Training with partial
  resets cannot reconfigure on the GPU sim (ManiSkill refuses it);
- evaluation envs reconfigure at every reset() (make_env(reconfigure=True)): each batch of
  evaluation episodes is a fresh, seeded draw on both backends.
The goal marker is hidden from the sensor cameras (PickCube's `_hidden_objects`), so it is not
randomized; the robot keeps its look; the human-render (video) camera is not moved.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import sapien
import sapien.render
import torch
from mani_skill.envs.tasks.tabletop.pick_cube import PickCubeEnv
from mani_skill.utils import sapien_utils
from mani_skill.utils.building import actors
from mani_skill.utils.registration import register_env
from mani_skill.utils.scene_builder.table import TableSceneBuilder
from mani_skill.utils.structs.actor import Actor
from transforms3d.euler import euler2quat

from cleanrl_style.lib import sim_dr as dr

TABLE_HALF = (2.418 / 2, 1.209 / 2)  # TableSceneBuilder's table collision box (local x, y)
TABLE_HEIGHT = 0.9196429
TABLE_AABB_HEIGHT = 0.91964257 + 3.5762787e-07  # TableSceneBuilder.table_height (its ground altitude)
FLOOR_HALF = 50.0  # metres of floor around the table (PickCube: 100 m)


def _material(rgb, pattern: str, rgb2, seed: int) -> sapien.render.RenderMaterial:
    mat = sapien.render.RenderMaterial(base_color=[*map(float, rgb), 1.0])
    img = dr.texture(pattern, rgb, rgb2, seed)
    if img is not None:  # the pattern carries both colours: the base colour must not tint it again
        mat.base_color = [1.0, 1.0, 1.0, 1.0]
        mat.base_color_texture = sapien.render.RenderTexture2D(img, "R8G8B8A8Unorm", filter_mode="nearest")
    return mat


def _quad(half_x: float, half_y: float, z: float, period: float, mat) -> sapien.render.RenderShapeTriangleMesh:
    """An upward-facing rectangle whose UVs repeat the texture every `period` metres."""
    xy = np.array([[-half_x, -half_y], [half_x, -half_y], [half_x, half_y], [-half_x, half_y]])
    vertices = np.concatenate([xy, np.full((4, 1), z)], axis=1).astype(np.float32)
    normals = np.tile(np.array([[0.0, 0.0, 1.0]], dtype=np.float32), (4, 1))
    uvs = (xy / period).astype(np.float32)
    triangles = np.array([[0, 1, 2], [0, 2, 3]], dtype=np.uint32)
    return sapien.render.RenderShapeTriangleMesh(
        vertices=vertices, triangles=triangles, normals=normals, uvs=uvs, material=mat
    )


def _attach(entity: sapien.Entity, *shapes) -> None:
    """Add render shapes to one sub-scene's entity (as ManiSkill's build_ground adds its floor mesh)."""
    body = sapien.render.RenderBodyComponent()
    for s in shapes:
        body.attach(s)
    entity.add_component(body)


class RandomizedTableScene(TableSceneBuilder):
    """TableSceneBuilder with each env's own table surface and floor (same collision shapes, poses and
    names as PickCube's, so recorded PickCube-v1 env states load into it unchanged): one table per
    sub-scene, merged with Actor.merge; one ground actor as ManiSkill's build_ground makes it (a
    single plane collision serves all sub-scenes) with a render body of that env's floor per sub-scene."""

    def __init__(self, env, looks: list[dict], **kwargs):
        super().__init__(env, **kwargs)
        self.looks = looks

    def build(self):
        scene = self.scene
        render = scene.can_render()  # no renderer (render_backend="none"): collision only, as ManiSkill does
        tables = []
        for i, d in enumerate(self.looks):
            b = scene.create_actor_builder()
            box = sapien.Pose(p=[0, 0, TABLE_HEIGHT / 2])
            b.add_box_collision(pose=box, half_size=(*TABLE_HALF, TABLE_HEIGHT / 2))
            b.initial_pose = sapien.Pose(p=[-0.12, 0, -TABLE_HEIGHT], q=euler2quat(0, 0, np.pi / 2))
            b.set_scene_idxs([i])
            table = b.build_kinematic(name=f"table-workspace-{i}")
            if render:
                body = sapien.render.RenderShapeBox(
                    np.array([*TABLE_HALF, TABLE_HEIGHT / 2 - 0.001], dtype=np.float32),
                    sapien.render.RenderMaterial(base_color=[*(d["table_rgb"] * 0.6), 1.0]),
                )
                body.local_pose = sapien.Pose(p=[0, 0, TABLE_HEIGHT / 2 - 0.001])
                mat = _material(d["table_rgb"], d["table_pattern"], d["table_rgb2"], d["table_texture_seed"])
                _attach(table._objs[0], body, _quad(*TABLE_HALF, TABLE_HEIGHT, d["table_period_m"], mat))
            scene.remove_from_state_dict_registry(table)
            tables.append(table)
        self.table = Actor.merge(tables, name="table-workspace")
        scene.add_to_state_dict_registry(self.table)

        g = scene.create_actor_builder()
        g.add_plane_collision(sapien.Pose(p=[0, 0, -TABLE_AABB_HEIGHT], q=[0.7071068, 0, -0.7071068, 0]))
        g.initial_pose = sapien.Pose()
        self.ground = g.build_static(name="ground")
        for entity, d in zip(self.ground._objs if render else [], self.looks):
            mat = _material(d["floor_rgb"], d["floor_pattern"], d["floor_rgb2"], d["floor_texture_seed"])
            _attach(entity, _quad(FLOOR_HALF, FLOOR_HALF, -TABLE_AABB_HEIGHT, d["floor_period_m"], mat))
        self.table_length, self.table_width = 0.4688596 + 0.7402168, 1.2030163 + 1.2148621
        self.table_height = TABLE_AABB_HEIGHT
        self.scene_objects = [self.table, self.ground]


@register_env(dr.ENV_ID, max_episode_steps=50)
class PickCubeDREnv(PickCubeEnv):
    """PickCube-v1 with simulator domain randomization (see the module docstring)."""

    def __init__(self, *args, sim_dr: str = "off", variation: str = "train", **kwargs):
        self.sim_dr, self.variation = sim_dr, variation
        self.dr_split = dr.split_of(sim_dr, variation)
        self.dr_params: list[dict] = []  # per env: the current draw (scene + camera), for tests and figures
        self._dr_reseed = True
        self._dr_rngs: list = []
        self._dr_mounts: dict[str, Actor] = {}
        self._dr_cameras: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if self.dr_split and kwargs.get("reconfiguration_freq") is None and kwargs.get("num_envs", 1) == 1:
            kwargs["reconfiguration_freq"] = 1  # one env per process: a new scene every episode
        super().__init__(*args, **kwargs)

    # -- seeding: each env's generators restart from its episode seed at every seeded reset
    def reset(self, seed=None, options=None):
        self._dr_reseed = seed is not None or not self._dr_rngs
        return super().reset(seed=seed, options=options)

    def _dr_sync(self, env_idx) -> None:
        if not self._dr_reseed:
            return
        seeds = np.asarray(self._episode_seed).reshape(-1)
        if len(self._dr_rngs) != self.num_envs:
            self._dr_rngs = [None] * self.num_envs
            self.dr_params = [{} for _ in range(self.num_envs)]
        for j, i in enumerate(env_idx):
            self._dr_rngs[i] = dr.episode_rngs(seeds[i] if len(seeds) == self.num_envs else seeds[j])
        self._dr_reseed = False

    # -- reconfiguration: scene, lighting, camera intrinsics
    def _load_scene(self, options: dict):
        if not self.dr_split:
            return super()._load_scene(options)
        self._dr_sync(range(self.num_envs))
        for i in range(self.num_envs):
            self.dr_params[i] = dr.draw_scene(self._dr_rngs[i][0], self.dr_split)
        self.table_scene = RandomizedTableScene(self, self.dr_params, robot_init_qpos_noise=self.robot_init_qpos_noise)
        self.table_scene.build()
        cubes = []
        for i, d in enumerate(self.dr_params):
            cube = actors.build_cube(
                self.scene,
                half_size=self.cube_half_size,
                color=[*d["cube_rgb"], 1.0],
                name=f"cube-{i}",
                scene_idxs=[i],
                initial_pose=sapien.Pose(p=[0, 0, self.cube_half_size]),
            )
            self.scene.remove_from_state_dict_registry(cube)
            cubes.append(cube)
        self.cube = Actor.merge(cubes, name="cube")
        self.scene.add_to_state_dict_registry(self.cube)
        self.goal_site = actors.build_sphere(
            self.scene,
            radius=self.goal_thresh,
            color=[0, 1, 0, 1],
            name="goal_site",
            body_type="kinematic",
            add_collision=False,
            initial_pose=sapien.Pose(),
        )
        self._hidden_objects.append(self.goal_site)
        self._dr_mounts, self._dr_cameras = {}, {}
        for cfg in super()._default_sensor_configs:
            pose = cfg.pose.sp  # the camera's PickCube pose: position and forward (x) axis
            eye, forward = np.asarray(pose.p, dtype=np.float64), pose.to_transformation_matrix()[:3, 0]
            distance = float(np.linalg.norm(np.subtract(self.sensor_cam_target_pos, self.sensor_cam_eye_pos)))
            self._dr_cameras[cfg.uid] = (eye, eye + distance * forward)
            b = self.scene.create_actor_builder()
            b.initial_pose = sapien.Pose()
            mount = b.build_kinematic(name=f"dr_camera_mount_{cfg.uid}")
            self.scene.remove_from_state_dict_registry(mount)  # its pose follows from the seed, not state
            self._dr_mounts[cfg.uid] = mount

    def _load_lighting(self, options: dict):
        if not self.dr_split:
            return super()._load_lighting(options)
        for i, d in enumerate(self.dr_params):
            self.scene.sub_scenes[min(i, len(self.scene.sub_scenes) - 1)].render_system.ambient_light = list(
                map(float, d["ambient_rgb"])
            )
            self.scene.add_directional_light(
                list(d["key_direction"]),
                list(map(float, d["key_rgb"])),
                shadow=self.enable_shadow,
                shadow_scale=5,
                shadow_map_size=2048,
                scene_idxs=[i],
            )
            self.scene.add_directional_light([0, 0, -1], list(map(float, d["fill_rgb"])), scene_idxs=[i])

    @property
    def _default_sensor_configs(self):
        configs = super()._default_sensor_configs
        if not self.dr_split:
            return configs
        offsets = np.radians([d["fov_deg"] for d in self.dr_params])
        out = []
        for cfg in configs:
            fov = cfg.fov + offsets
            out.append(
                dataclasses.replace(
                    cfg,
                    pose=sapien.Pose(),  # local pose on the mount: the mount's pose is the camera's
                    mount=self._dr_mounts[cfg.uid],
                    fov=float(fov[0]) if self.num_envs == 1 else fov,
                )
            )
        return out

    # -- every episode: the camera pose
    def _initialize_episode(self, env_idx: torch.Tensor, options: dict):
        super()._initialize_episode(env_idx, options)
        if not self.dr_split:
            return
        idx = [int(i) for i in env_idx.cpu().tolist()]
        self._dr_sync(idx)
        for i in idx:
            self.dr_params[i].update(dr.draw_camera(self._dr_rngs[i][1], self.dr_split))
        for uid, (eye, target) in self._dr_cameras.items():
            eyes = torch.tensor(
                np.stack([eye + self.dr_params[i]["eye_offset"] for i in idx]), dtype=torch.float32, device=self.device
            )
            targets = torch.tensor(
                np.stack([target + self.dr_params[i]["target_offset"] for i in idx]),
                dtype=torch.float32,
                device=self.device,
            )
            self._dr_mounts[uid].set_pose(sapien_utils.look_at(eyes, targets, device=self.device))
