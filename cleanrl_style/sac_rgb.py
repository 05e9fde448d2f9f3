"""SAC from pixels (RGB or RGB-D, optionally with proprioceptive state) with DrQ augmentation on
the device, CleanRL style. Docs: docs/sac.md

    python cleanrl_style/sac_rgb.py --env-id PickCube --num-envs 512                   # GPU
    python cleanrl_style/sac_rgb.py --env-id PushCube --num-envs 1 --total-timesteps 2_000   # CPU smoke

Same algorithm as sac.py, over the same lib modules (the replay buffer and the memory check in
lib/replay.py, the TD targets in lib/returns.py, the actor head and the critic ensemble in
lib/nets.py); this file adds the pixel parts, following DrQ-v2:
  * images stay uint8 on the env's device from the renderer to the replay buffer; `/255` happens
    inside the encoder;
  * every sampled batch gets a fresh per-sample augmentation of obs and next_obs (lib/augment.py:
    random shift, optionally colour jitter);
  * one NatureCNN encoder shared by actor and critics learns only through the critic loss; the
    actor sees detached features.

Resuming (`--resume RUN_DIR`) works as in sac.py: last.pt carries the critics, the optimizers, the
temperature, the RNG states and the counters; the replay buffer only with `--save-replay`.

Fine-tuning from demonstrations (docs/finetune.md): `--init-from` a bc.py `--policy gaussian` checkpoint
(encoder, state normalisation and actor), `--demos` in a second replay store mixed into every batch,
`--critic-warmup-steps`, `--bc-coef`/`--bc-decay-steps`, `--num-q`; lib/finetune.py and lib/sac_update.py.
`--residual-of CKPT` instead learns a bounded correction on top of a frozen policy (lib/residual.py).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Literal, Optional

import torch
import torch.nn as nn
import tyro
from tensordict import TensorDict

from cleanrl_style.lib import encoders as enc_lib
from cleanrl_style.lib import envs as envs_lib
from cleanrl_style.lib import residual as residual_lib
from cleanrl_style.lib.augment import (
    AUG_CHOICES,
    DR_LEVELS,
    Augmentation,
    DomainRandomization,
    rgb_channel_count,
)
from cleanrl_style.lib.checkpoints import restore_common, save_checkpoint, start_run, train_state
from cleanrl_style.lib.evaluation import EpisodeStats, Evaluator
from cleanrl_style.lib.fast import check_fast_flags, maybe_fast
from cleanrl_style.lib.finetune import check_finetune_flags, init_spec, load_demo_replay, load_init, load_init_learner
from cleanrl_style.lib.nets import Actor, PixelEncoder, QEnsemble, QNetwork
from cleanrl_style.lib.replay import (
    ReplayBuffer,
    check_memory,
    eval_env_bytes,
    final_obs_gap,
    measure_free,
    resolve_buffer_device,
    restore_replay,
)
from cleanrl_style.lib.returns import bootstrap_flags
from cleanrl_style.lib.runs import (
    RunLogger,
    UserError,
    check_choice,
    check_non_negative,
    check_positive,
    check_unit_interval,
    close_run,
    run,
)
from cleanrl_style.lib.sac_update import SacLog, SacUpdater, make_sac_updates


@dataclass
class Args:
    env_id: str = "PickCube"
    """ManiSkill task id; short names like PickCube resolve to PickCube-v1"""
    num_envs: Optional[int] = None
    """parallel training envs (default: 512 on GPU, 1 on CPU)"""
    num_eval_envs: Optional[int] = None
    """parallel evaluation envs (default: 16 on GPU, 1 on CPU)"""
    total_timesteps: int = 1_000_000
    """total env steps (summed over all envs)"""
    eval_freq: int = 100_000
    """evaluate (and write last.pt / best.pt) every this many env steps (0 = only at the end)"""
    num_eval_episodes: int = 16
    """episodes per evaluation (and for final_eval.json)"""
    seed: int = 1
    """seed of torch/numpy and of the training envs; evaluation uses seeds derived from it"""
    obs_mode: str = "rgb"
    """rgb or rgbd (depth channels are shifted with the image but never colour-jittered)"""
    image_size: int = 64
    """camera resolution (square); use --image-height/--image-width for non-square"""
    image_height: Optional[int] = None
    """override the image height"""
    image_width: Optional[int] = None
    """override the image width"""
    include_state: bool = True
    """fuse proprioceptive state (joint positions/velocities, TCP pose, goal) with the image features"""
    control_mode: str = "pd_joint_delta_pos"
    """ManiSkill controller (pd_ee_delta_pose is a common alternative for pixels)"""
    partial_reset: bool = False
    """end and reset each env at success (True), or let every episode run to the time limit (False,
    ManiSkill's SAC default: no terminations, and the buffer keeps only a few final observations)"""
    bootstrap_at_done: Literal["always", "truncation"] = "always"
    """which episode ends the value targets bootstrap from V(final obs): always (success terminations
    too, as ManiSkill's baselines; see docs/foundation.md#bootstrapping) or truncation (time limit only)"""
    sim_backend: str = "auto"
    """auto (GPU if CUDA is present), gpu or cpu"""
    sim_dr: str = "off"
    """simulator domain randomization of the training envs: off | light | heavy (lighting, colours,
    textures, camera pose and fov; needs --env-id PickCubeDR; docs/generalization.md)"""
    eval_variation: str = "clean"
    """what the evaluation envs show: clean | train (the --sim-dr ranges, heavy's with --sim-dr off) |
    held-out (ranges disjoint from training's); PickCube or PickCubeDR only (docs/generalization.md)"""
    max_episode_steps: Optional[int] = None
    """override the task's episode length"""
    buffer_size: Optional[int] = None
    """replay capacity in transitions, summed over envs (default: 1_000_000 on GPU, 100_000 on CPU)"""
    buffer_device: str = "auto"
    """where the replay buffer lives: auto (the env's device), cuda or cpu"""
    batch_size: int = 512
    """transitions per gradient step"""
    learning_starts: int = 4_000
    """env steps before the first gradient step, acting with uniform random actions (with --init-from:
    with the loaded policy; after a --resume without a saved buffer: env steps of the current policy
    that refill the buffer before updates resume)"""
    utd: float = 0.25
    """gradient steps per env step (update-to-data ratio); fractions carry over between iterations"""
    gamma: float = 0.8
    """discount (ManiSkill's SAC uses 0.8 for its short tabletop tasks)"""
    tau: float = 0.01
    """target network update rate (Polyak averaging)"""
    n_step: int = 1
    """n-step returns: sum this many discounted rewards before bootstrapping (stops at episode ends)"""
    policy_lr: float = 3e-4
    """actor learning rate"""
    q_lr: float = 3e-4
    """critic (and encoder) learning rate"""
    alpha_lr: float = 3e-4
    """entropy temperature learning rate (with --autotune)"""
    alpha: float = 0.2
    """entropy temperature (initial value with --autotune); 0 with --no-autotune drops the entropy terms"""
    autotune: bool = True
    """learn the entropy temperature towards a target entropy of -action_dim"""
    policy_frequency: int = 1
    """update the actor (and temperature) every this many critic updates"""
    target_network_frequency: int = 1
    """update the target critics every this many critic updates"""
    aug: str = "shift"
    """augmentation of each sampled batch: none, shift (DrQ random shift) or shift+color"""
    aug_pad: int = 4
    """maximum random shift in pixels (DrQ uses 4 at 84x84)"""
    dr: str = "off"
    """image-space domain randomization of training rollouts: off, light or heavy (evaluation stays clean)"""
    feature_dim: int = 256
    """image feature size (the encoder's output)"""
    encoder: str = "nature"
    """image encoder: nature (NatureCNN) | resnet18 | dinov2-vits14 (timm backbone + adapter; docs/encoders.md)"""
    encoder_weights: str = "none"
    """none (random init) | PATH (the image encoder of a bc/sac_rgb/ppo_rgb checkpoint, or a backbone state
    dict) | published (the backbone's published weights, fetched once by scripts/fetch_encoder_weights.py)"""
    encoder_image_size: Optional[int] = None
    """input size of a timm backbone; images are resized to it on the device (default: the backbone's, 224)"""
    encoder_adapter: str = "attn-pool"
    """trainable head over a timm backbone: linear (over its pooled features) | attn-pool (a learned query
    attending over its spatial tokens)"""
    freeze_encoder: bool = False
    """freeze the encoder's backbone (NatureCNN's convs, the timm model); the adapter still trains (critic loss)"""
    unfreeze_after: Optional[int] = None
    """at this env step make the last --unfreeze-blocks blocks of the frozen backbone trainable"""
    unfreeze_blocks: int = 1
    """backbone blocks --unfreeze-after makes trainable, counted from the output (ResNet stages, ViT blocks)"""
    encoder_lr: Optional[float] = None
    """learning rate of the unfrozen blocks, in the critic optimizer (default: 0.1 x --q-lr)"""
    hidden_dim: int = 256
    """MLP width of the actor and critic heads (3 hidden layers)"""
    q_layer_norm: bool = True
    """LayerNorm in the critic heads"""
    num_q: int = 2
    """critics in the ensemble; above 2 the target takes the minimum of a random pair and the actor the
    ensemble mean (RLPD uses 10)"""
    demos: Optional[str] = None
    """ManiSkill trajectory file (collect_demos.py) of this task in this run's obs mode, control mode and
    image size, with rewards: loaded into a second replay store that every batch samples from"""
    demo_ratio: float = 0.5
    """fraction of every batch drawn from --demos (RLPD's symmetric sampling: 0.5); in [0, 1)"""
    init_from: Optional[str] = None
    """start from this checkpoint: a bc.py --policy gaussian one (image encoder, state normalisation and
    actor; its feature/hidden sizes are adopted) or a sac_rgb.py one (policy; critics and temperature too
    from a last.pt). The loaded policy is evaluated before any update (the curve's first point)"""
    init_log_std: Optional[float] = None
    """with --init-from: set the loaded actor's log-std to this for every input (a BC actor never learned
    its std; the std it happens to have decides how much exploration destroys), e.g. -3 (std 0.05)"""
    fixed_log_std: Optional[float] = None
    """keep the actor's log-std at this value for every input and never train it (loaded or fresh actor),
    e.g. -3 (std 0.05): the exploration noise of a BC-started actor stays what keeps its success, where
    the entropy term alone let it grow to ~1 (docs/finetune.md). Needs --no-autotune; replaces --init-log-std"""
    target_entropy: Optional[float] = None
    """the entropy --autotune steers the policy to (default -action_dim); lower keeps a loaded actor's
    exploration noise small"""
    critic_warmup_steps: int = 0
    """gradient steps that train only the critics before the first actor step (keeps a loaded actor
    from following a random critic)"""
    bc_coef: float = 0.0
    """weight of a BC term ||mu(s) - a_demo||^2 on the demo rows of each batch in the actor loss (needs --demos)"""
    bc_decay_steps: int = 0
    """anneal --bc-coef linearly to 0 over this many actor steps (0: constant)"""
    residual_of: Optional[str] = None
    """learn a bounded correction on top of this frozen policy instead of a whole actor (any checkpoint
    evaluate.py runs, e.g. a bc.py action-chunking one): the env executes clip(base(obs) + residual), the
    learner sees the base action in its state, and the residual starts at zero, so the first evaluation
    is the base policy's own (lib/residual.py, docs/finetune.md#residual)"""
    residual_scale: float = 0.2
    """with --residual-of: the correction's bound per action dimension (the actor's tanh range)"""
    residual_penalty: float = 0.0
    """with --residual-of: weight of ||correction / scale||^2 (every row) in the actor loss, which keeps the
    correction where the critics have seen data unless they clearly prefer more (0: off)"""
    critic_encoder: str = "shared"
    """shared: one image encoder, trained by the critic loss, gives the features of actor and critics
    (DrQ); separate: the critics train their own copy of it and the policy's encoder stays as it was
    loaded (frozen), so critic learning never moves the features a BC-initialised actor acts on"""
    torch_threads: Optional[int] = None
    """torch CPU threads (default: 1 on the CPU backend unless OMP_NUM_THREADS is set, torch's choice on GPU)"""
    log_freq: int = 5_000
    """log losses and training episode stats every this many env steps (each log reads the device once)"""
    compile: bool = False
    """torch.compile the update functions and the rollout policy (opt-in fast path)"""
    cudagraphs: bool = False
    """capture each whole gradient step (replay sampling, augmentation, critic, actor, target update) in one
    CUDA graph replayed without device syncs (lib/fast.CapturedStep), and the rollout policy with tensordict's
    CudaGraphModule; needs CUDA and the buffer on the GPU. Not yet run on a GPU"""
    capture_video: bool = False
    """save an mp4 of the first batch of final-evaluation episodes (videos/final_eval.mp4)"""
    track: bool = False
    """log to Weights & Biases (set WANDB_MODE=offline to log without a network)"""
    wandb_project: str = "maniskill-pixels"
    """W&B project"""
    exp_name: Optional[str] = None
    """run name prefix (default: the script name)"""
    runs_dir: str = "runs"
    """where run directories are created"""
    save_checkpoints: bool = True
    """write best.pt / last.pt (last.pt carries the training state for --resume)"""
    save_replay: bool = False
    """also write the replay buffer to replay.pt next to last.pt at every evaluation, so --resume
    continues with it; without it a resumed run refills the buffer from fresh interaction"""
    resume: Optional[str] = None
    """continue the run in this run directory from its last.pt, with the flags it was started with (a
    larger --total-timesteps extends it); metrics.csv and TensorBoard continue in place"""


# ----------------------------------------------------------------------------- networks
class PixelPolicy(nn.Module):
    """Encoder + tanh-Gaussian actor head: everything a checkpoint needs to act. The critic heads
    live outside (QEnsemble) and share this encoder (with --critic-encoder separate they train their
    own copy of it, and this one stays as loaded)."""

    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        state_dim: int,
        action_dim: int,
        feature_dim: int = 256,
        hidden_dim: int = 256,
        state_in_dim: Optional[int] = None,
        encoder: Optional[dict] = None,
    ):
        """state_in_dim: the env's state size; the encoder's StateNorm maps it to the state_dim dims the
        heads see (identity, or a BC checkpoint's selection and statistics). None: checkpoints written
        before StateNorm existed (the state is used as it is). encoder: lib/encoders.encoder_config
        (None: NatureCNN)."""
        super().__init__()
        image_encoder = enc_lib.make_image_encoder(in_channels, height, width, feature_dim, encoder)
        self.encoder = PixelEncoder(in_channels, height, width, state_dim, feature_dim, state_in_dim, image_encoder)
        self.actor = Actor(self.encoder.out_dim, action_dim, hidden_dim)

    @property
    def state_norm(self):
        return self.encoder.state_norm

    def deterministic(self, obs: dict) -> torch.Tensor:
        return self.actor.deterministic(self.encoder(obs["rgb"], obs["state"]))

    def explore(self, rgb: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return self.actor.sample(self.encoder(rgb, state))[0]


def training_bytes(batch: int, channels: int, height: int, width: int) -> int:
    """Rough peak memory of one update: sampled + augmented uint8 and float copies of obs and next_obs,
    and NatureCNN activations (with gradients for obs), plus weights/optimizer/workspace."""
    h1, w1 = (height - 8) // 4 + 1, (width - 8) // 4 + 1
    h2, w2 = (h1 - 4) // 2 + 1, (w1 - 4) // 2 + 1
    act = 32 * h1 * w1 + 64 * h2 * w2 + 64 * (h2 - 2) * (w2 - 2)
    return 2 * batch * (channels * height * width * 6 + act * 4 * 3) + 256 * 2**20


# ----------------------------------------------------------------------------- flags
def resolve_args(args: Args, backend: str) -> Args:
    """Check every numeric and choice flag (one line, exit 2) and write the backend-dependent defaults
    and the image size back into args, so config.yaml and checkpoints record the values used."""
    check_positive(
        args,
        "num_envs",
        "num_eval_envs",
        "total_timesteps",
        "num_eval_episodes",
        "buffer_size",
        "batch_size",
        "utd",
        "n_step",
        "policy_frequency",
        "target_network_frequency",
        "log_freq",
        "feature_dim",
        "hidden_dim",
        "max_episode_steps",
        "torch_threads",
        "policy_lr",
        "q_lr",
        "alpha_lr",
        "image_size",
        "image_height",
        "image_width",
        "residual_scale",
    )
    check_non_negative(args, "learning_starts", "eval_freq", "alpha", "aug_pad", "residual_penalty")
    if args.autotune and args.alpha == 0:
        raise UserError("--alpha 0 needs --no-autotune (the learned temperature starts from --alpha, in log space)")
    check_unit_interval(args, "tau", low_open=True)
    check_unit_interval(args, "gamma")
    if args.obs_mode not in ("rgb", "rgbd"):
        raise UserError(f"sac_rgb.py --obs-mode must be rgb or rgbd (got '{args.obs_mode}'); use sac.py for state")
    check_choice("aug", args.aug, AUG_CHOICES)
    check_choice("dr", args.dr, DR_LEVELS)
    check_choice("critic-encoder", args.critic_encoder, ("shared", "separate"))
    args.image_height, args.image_width = args.image_height or args.image_size, args.image_width or args.image_size
    if args.encoder == "nature" and min(args.image_height, args.image_width) < 36:
        raise UserError(
            f"the NatureCNN encoder needs images of at least 36x36 (got {args.image_height}x{args.image_width})"
        )
    check_finetune_flags(args)
    if args.residual_of:
        clash = [f for f, on in (("--init-from", args.init_from), ("--demos", args.demos)) if on]
        if clash:
            raise UserError(f"--residual-of learns a correction from scratch: drop {' and '.join(clash)}")
        if args.partial_reset:
            raise UserError("--residual-of needs --no-partial-reset (the base policy's state is reset per episode)")
        if not args.include_state:
            raise UserError("--residual-of needs --include-state (the base action reaches the learner in the state)")
    elif args.residual_penalty > 0:
        raise UserError("--residual-penalty weighs the correction of --residual-of: it needs --residual-of")
    enc_lib.check_encoder_flags(args, args.obs_mode, args.q_lr)
    check_fast_flags(args, backend)
    resolve_buffer_device(args.buffer_device, envs_lib.env_device(backend))  # auto|cpu|cuda, and cuda present
    args.env_id = envs_lib.resolve_env_id(args.env_id)
    args.num_envs = args.num_envs or (512 if backend == "gpu" else 1)
    args.num_eval_envs = args.num_eval_envs or (16 if backend == "gpu" else 1)
    args.buffer_size = args.buffer_size or (1_000_000 if backend == "gpu" else 100_000)
    return args


# ----------------------------------------------------------------------------- updates
# ----------------------------------------------------------------------------- main
def main(args: Args):
    args, backend, ckpt = start_run(args, "sac_rgb", resolve_args)
    num_envs, env_id, buffer_size = args.num_envs, args.env_id, args.buffer_size
    height, width = args.image_height, args.image_width
    num_iterations = max(1, args.total_timesteps // num_envs)
    env_device = envs_lib.env_device(backend)
    start_step = ckpt["train_state"]["global_step"] if ckpt else 0

    env_kw = dict(
        image_size=(height, width),
        control_mode=args.control_mode,
        sim_backend=backend,
        max_episode_steps=args.max_episode_steps,
        sim_dr=args.sim_dr,  # the training level; eval envs add their variation
    )
    free_before = measure_free(env_device)
    envs = envs_lib.make_env(env_id, num_envs, args.obs_mode, partial_reset=args.partial_reset, **env_kw)
    obs, _ = envs.reset(seed=args.seed + start_step)  # a resumed run starts fresh episodes
    device = envs.device
    env_bytes = max(0, free_before - measure_free(env_device))
    buffer_device = resolve_buffer_device(args.buffer_device, device)
    C = envs.obs_shapes["rgb"][0]
    action_dim = envs.action_dim
    base = eval_base = base_ckpt = None
    if args.residual_of:  # a frozen base policy; the learner's state gets its action appended
        base, base_ckpt = residual_lib.load_base(args.residual_of, envs, args.control_mode, device)
        eval_base = residual_lib.base_from_checkpoint(base_ckpt, device, args.residual_of)  # evaluation's own copy
    learner_state_dim = envs.obs_shapes["state"][0] + (action_dim if base is not None else 0)  # what the learner sees
    state_dim = learner_state_dim if args.include_state else 0
    init = None
    if args.init_from:  # the policy takes the checkpoint's architecture (written back into args)
        spec = dict(env_id=env_id, obs_mode=args.obs_mode, control_mode=args.control_mode, action_dim=action_dim)
        init = init_spec(args.init_from, "sac_rgb", dict(spec, obs_shapes=envs.obs_shapes))
        if init["state_dim"] and not args.include_state:
            raise UserError(f"--init-from {args.init_from} uses the state; drop --no-include-state", code=1)
        args.feature_dim, args.hidden_dim, state_dim = init["feature_dim"], init["hidden_dim"], init["state_dim"]
        enc_lib.adopt_config(args, init["encoder_config"])  # its image encoder's architecture too
    demo_rb = load_demo_replay(args.demos, envs, args.obs_mode, args, device) if args.demos else None
    obs_specs = {"rgb": ((C, height, width), torch.uint8), "state": ((learner_state_dim,), torch.float32)}
    gap = final_obs_gap(args.partial_reset, args.bootstrap_at_done, envs.max_episode_steps)
    buffer_bytes = ReplayBuffer.nbytes(num_envs, buffer_size, obs_specs, action_dim, gap, args.n_step)
    check_memory(
        [
            ("replay buffer", buffer_bytes, buffer_device),
            ("eval envs", eval_env_bytes(env_bytes, args.num_eval_envs, num_envs, env_device), env_device),
            ("training", training_bytes(args.batch_size, C, height, width), device),
        ],
        env_bytes,
        buffer_size,
        buffer_bytes / buffer_size,
        held=[("demo store", demo_rb.nbytes, device)] if demo_rb else (),
    )

    run_log = RunLogger(
        args,
        "sac_rgb",
        env_id,
        args.seed,
        args.runs_dir,
        args.track,
        args.wandb_project,
        total_steps=num_iterations * num_envs,
        exp_name=args.exp_name,
        resume_dir=args.resume,
        resume_step=start_step,
    )
    eval_envs = envs_lib.make_env(
        env_id,
        args.num_eval_envs,
        args.obs_mode,
        partial_reset=False,
        reconfigure=True,
        video_dir=run_log.video_dir if args.capture_video else None,
        variation=args.eval_variation,
        **env_kw,
    )
    rb = ReplayBuffer(num_envs, buffer_size, obs_specs, action_dim, buffer_device, gap, args.gamma, args.n_step)

    model_kwargs = dict(
        in_channels=C,
        height=height,
        width=width,
        state_dim=state_dim,
        action_dim=action_dim,
        feature_dim=args.feature_dim,
        hidden_dim=args.hidden_dim,
        state_in_dim=learner_state_dim,
        encoder=enc_lib.encoder_config(args),
    )
    policy = PixelPolicy(**model_kwargs).to(device)
    if base is not None:  # the actor outputs the correction, in [-scale, scale], starting at zero
        bound = torch.full_like(envs.action_low, args.residual_scale)
        policy.actor.set_action_bounds(-bound, bound).zero_mean()
    else:
        policy.actor.set_action_bounds(envs.action_low, envs.action_high)
    loaded = (
        load_init(init, policy, args.init_log_std) if init and not ckpt else ""
    )  # before the critics copy the encoder
    if args.fixed_log_std is not None:  # a resumed run's weights hold it: this adds the gradient hooks
        policy.actor.fix_log_std(args.fixed_log_std)
    # --encoder-weights, --freeze-encoder; before the critics copy the encoder (a separate one is frozen too)
    encoder_loaded = enc_lib.prepare_encoder(policy.encoder.cnn, args, resumed=bool(ckpt))
    critic_encoder = copy.deepcopy(policy.encoder) if args.critic_encoder == "separate" else None
    feat_dim = policy.encoder.out_dim
    qnets = QEnsemble(lambda: QNetwork(feat_dim, action_dim, args.hidden_dim, args.q_layer_norm), args.num_q, device)
    upd = make_sac_updates(
        policy.actor,
        qnets,
        args,
        action_dim,
        device,
        encoder=critic_encoder if critic_encoder is not None else policy.encoder,
        actor_encoder=policy.encoder if critic_encoder is not None else None,
    )
    explore = maybe_fast(policy.explore, args, tensordict_io=False)
    rgb_channels = rgb_channel_count(args.obs_mode, C)
    augment = Augmentation(args.aug, pad=args.aug_pad, rgb_channels=rgb_channels)
    dr = DomainRandomization(args.dr, num_envs, device, rgb_channels=rgb_channels)
    print(
        f"sac_rgb: {env_id} backend={backend} device={device} num_envs={num_envs} image={C}x{height}x{width} "
        f"state_dim={state_dim} action_dim={action_dim} buffer={buffer_size:,} ({rb.T} steps x {num_envs} envs, "
        f"uint8) on {buffer_device} batch={args.batch_size} utd={args.utd} n_step={args.n_step} aug={args.aug} "
        f"dr={args.dr} iterations={num_iterations} torch_threads={args.torch_threads}",
        flush=True,
    )

    def randomize(o: dict) -> dict:
        return o if args.dr == "off" else {"rgb": dr(o["rgb"]), "state": o["state"]}

    def with_base(o: dict) -> dict:  # --residual-of: the learner's observation (one base step per call)
        return o if base is None else residual_lib.augment(o, base(o))

    obs = with_base(randomize(obs))

    def augment_batch(batch: TensorDict) -> TensorDict:
        batch["obs", "rgb"], batch["next_obs", "rgb"] = augment.pair(batch["obs", "rgb"], batch["next_obs", "rgb"])
        return batch

    updater = SacUpdater(upd, qnets, args, device, prepare=augment_batch, demos=demo_rb, critic_encoder=critic_encoder)
    trained_encoder = (critic_encoder if critic_encoder is not None else policy.encoder).cnn  # the critic loss's
    unfreezer = enc_lib.Unfreezer.from_args(trained_encoder, args, "sac_rgb")
    print(f"sac_rgb: {enc_lib.describe(trained_encoder)}", flush=True)
    if encoder_loaded:
        print(f"sac_rgb: --encoder-weights: loaded the {encoder_loaded}", flush=True)
    replay_path = run_log.dir / "replay.pt"
    global_step = start_step

    def save(path, step, metrics, resumable):
        ts = None
        if resumable:
            if args.save_replay:  # before last.pt: a kill in between leaves a buffer one evaluation newer
                rb.save(replay_path, obs)
            ts = train_state(step, evaluator, **updater.state())
        save_checkpoint(
            path,
            script="sac_rgb",
            args=args,
            env=envs,
            model_kwargs=model_kwargs,
            state_dict=policy.state_dict(),
            step=step,
            extra=dict(eval=metrics, **residual_extra),
            train_state=ts,
        )

    # --residual-of: checkpoints carry the base, so evaluate.py rebuilds the whole policy from one file
    residual_extra = (
        {residual_lib.CKPT_KEY: base_ckpt, "action_low": envs.action_low.cpu(), "action_high": envs.action_high.cpu()}
        if base is not None
        else {}
    )
    eval_policy = (
        policy.deterministic
        if base is None
        else residual_lib.ResidualPolicy(eval_base, policy.deterministic, envs.action_low, envs.action_high)
    )
    evaluator = Evaluator(run_log, eval_envs, eval_policy, args, save)
    if ckpt:  # the encoder too, which the critics share, critics, optimizers, counters
        unfreezer.maybe_unfreeze(start_step, upd.optimizers["q"])  # past --unfreeze-after: the state has its group
        updater.load_state(restore_common(ckpt, policy, evaluator))
        if not restore_replay(rb, replay_path, args.save_replay):
            updater.updates_from = start_step + args.learning_starts
    elif init:  # the starting policy's own success is the curve's first point
        loaded = " with its ".join(filter(None, (loaded, load_init_learner(init, updater))))
        print(f"sac_rgb: --init-from {args.init_from}: loaded the {loaded}", flush=True)
        evaluator.maybe_evaluate(0, force=True)
    elif base is not None:  # the residual starts at zero: this is the base policy's own success
        print(
            f"sac_rgb: --residual-of {args.residual_of}: a {base_ckpt['script']}.py policy, frozen; the correction "
            f"is bounded by +-{args.residual_scale}",
            flush=True,
        )
        evaluator.maybe_evaluate(0, force=True)
    if demo_rb is not None:
        print(
            f"sac_rgb: --demos {args.demos}: {demo_rb.num_episodes} episodes, {demo_rb.num_transitions:,} "
            f"transitions on {device}; {args.demo_ratio:.0%} of every batch",
            flush=True,
        )

    stats = EpisodeStats()
    sac_log = SacLog(run_log, args.log_freq, start_step, num_envs)
    for iteration in range(start_step // num_envs + 1, num_iterations + 1):
        global_step += num_envs
        t0 = time.time()
        with torch.no_grad():
            # uniform random actions only in a run's first --learning-starts steps: a run resumed later
            # than that acts with its policy, also while it refills an unsaved buffer
            if global_step <= args.learning_starts and not (args.init_from or args.residual_of):
                action = envs.sample_actions()
            else:
                action = explore(obs["rgb"], obs["state"])
        rb.add_obs(obs)
        env_action = (
            action
            if base is None
            else residual_lib.combine(obs["state"][:, -action_dim:], action, envs.action_low, envs.action_high)
        )
        next_obs, reward, terminated, truncated, info = envs.step(env_action)
        final = info.get("final_observation")
        if final is not None:
            final = randomize(final)  # the finished episode's randomization, before it is resampled
            if base is not None and residual_lib.check_episodes_end_together(terminated | truncated):
                final = with_base(final)  # the base's action in the last observation, then a fresh base
                base.reset()
        dr.resample(terminated | truncated)
        next_obs = with_base(randomize(next_obs))
        rb.add_step(action, reward, *bootstrap_flags(terminated, truncated, args.bootstrap_at_done), final)
        stats.add(info)
        obs = next_obs
        sac_log.rollout_s += time.time() - t0

        # ---- updates (--utd gradient steps per env step), logging
        unfreezer.maybe_unfreeze(global_step, upd.optimizers["q"], run_log.log)
        updater.maybe_update(rb, num_envs, global_step)
        sac_log.maybe_log(global_step, stats, updater, rb, force=iteration == num_iterations)

        # ---- evaluation + checkpoints (last.pt every eval, best.pt by eval success)
        evaluator.maybe_evaluate(global_step, force=iteration == num_iterations)

    evaluator.finish(global_step)
    return close_run(run_log, envs, eval_envs)


def load_policy(ckpt: dict, device: torch.device):
    """Rebuild the deterministic policy (tanh of the Gaussian mean) from a checkpoint (evaluate.py)."""
    policy = PixelPolicy(**ckpt["model_kwargs"]).to(device)
    policy.load_state_dict(ckpt["state_dict"])
    policy.eval()
    extra = ckpt.get("extra", {})
    if residual_lib.CKPT_KEY not in extra:
        return policy.deterministic
    base = residual_lib.base_from_checkpoint(extra[residual_lib.CKPT_KEY], device)
    return residual_lib.ResidualPolicy(base, policy.deterministic, extra["action_low"], extra["action_high"]).to(device)


if __name__ == "__main__":
    run(main, tyro.cli(Args))
