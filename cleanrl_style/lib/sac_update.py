"""SAC's update steps and their schedule, shared by sac.py and sac_rgb.py (the same algorithm over
two observation types). Docs: docs/sac.md

`make_sac_updates` builds the critic and actor steps as functions of a replay batch (TensorDict in,
TensorDict of detached logs out), so that they can be compiled or captured in a CUDA graph as they
are. An `encoder` (pixels) turns a batch's observations into features and is trained by the critic
loss only (DrQ-v2): the actor step takes the detached features the critic step computed. Without
an encoder the features are the state itself. `SacUpdater` runs `--utd` gradient steps per env step
and holds what a resumable checkpoint saves (critics, optimizers, temperature, counters).

Fine-tuning from demonstrations (docs/finetune.md), all off by default:
  * `--num-q K` critics; with K > 2 the target takes the minimum of a random pair and the actor the
    ensemble mean (RLPD), with K = 2 both take the minimum (SAC);
  * batches mix demonstration and online transitions (lib/replay.mixed_sample, `--demo-ratio`);
  * `--critic-warmup-steps N`: the first N gradient steps train the critics only, so a BC-initialised
    actor is not pushed around by a random critic;
  * `--bc-coef c`: the actor loss adds c * ||mu(s) - a_demo||^2 on the batch's demo rows (mu = the
    deterministic action), linearly annealed to 0 over `--bc-decay-steps` actor steps (0 = constant);
  * `--residual-penalty c` (sac_rgb.py --residual-of, where the actor's action is a correction in
    [-scale, scale]): the actor loss adds c * ||mu(s) / scale||^2 on every row, which keeps the correction
    where the critics have data (near zero) unless they say clearly that more is better.
"""

from __future__ import annotations

import math
import time
from types import SimpleNamespace
from typing import Any, Callable, Optional

import torch
import torch.nn as nn
from tensordict import TensorDict

from cleanrl_style.lib.fast import CapturedStep, maybe_fast
from cleanrl_style.lib.nets import Actor, QEnsemble
from cleanrl_style.lib.replay import DemoReplay, mixed_sample, to_device
from cleanrl_style.lib.returns import soft_td_target
from cleanrl_style.lib.runs import UserError


def make_sac_updates(
    actor: Actor,
    qnets: QEnsemble,
    args: Any,
    action_dim: int,
    device: torch.device,
    encoder: Optional[nn.Module] = None,
    actor_encoder: Optional[nn.Module] = None,
) -> SimpleNamespace:
    """Returns a namespace: critic, actor (the two steps), optimizers {q, actor, alpha}, log_alpha and
    alpha (exp(log_alpha), updated in place so captured graphs see the new value).

    `encoder` gives the critics' features and is trained by the critic loss. `actor_encoder` (sac_rgb.py
    --critic-encoder separate) gives the actor's features instead and is never trained here: the actor acts
    on the features it was loaded with, however the critics' own encoder moves."""
    capturable = args.cudagraphs and not args.compile
    num_q = qnets.num_q
    # a frozen encoder backbone (--freeze-encoder) is in no optimizer; lib/encoders.Unfreezer adds it later
    critic_params = [p for p in encoder.parameters() if p.requires_grad] if encoder is not None else []
    critic_params += qnets.parameters()
    q_optimizer = torch.optim.Adam(critic_params, lr=args.q_lr, capturable=capturable)
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=args.policy_lr, capturable=capturable)
    # --alpha 0 (only with --no-autotune): no entropy terms; exp(-inf) is exactly 0
    log_alpha = torch.full(
        (1,), math.log(args.alpha) if args.alpha > 0 else -math.inf, device=device, requires_grad=True
    )
    alpha = log_alpha.detach().exp()
    a_optimizer = torch.optim.Adam([log_alpha], lr=args.alpha_lr, capturable=capturable)
    target_entropy = getattr(args, "target_entropy", None)
    target_entropy = -float(action_dim) if target_entropy is None else float(target_entropy)

    def features(obs: TensorDict, enc: Optional[nn.Module] = encoder) -> torch.Tensor:
        if enc is None:
            return obs["state"]
        return enc(obs["rgb"], obs["state"]) if "rgb" in obs.keys() else enc(obs["state"])

    bc_coef = torch.zeros((), device=device)  # set by SacUpdater before each actor step (annealing)
    bc_enabled = getattr(args, "bc_coef", 0.0) > 0
    residual_penalty = float(getattr(args, "residual_penalty", 0.0) or 0.0)

    def update_critic(batch: TensorDict) -> TensorDict:
        feat = features(batch["obs"])
        with torch.no_grad():
            next_feat = features(batch["next_obs"])
            next_actor_feat = next_feat if actor_encoder is None else features(batch["next_obs"], actor_encoder)
            next_action, next_log_prob = actor.sample(next_actor_feat)
            next_qs = qnets.q_target(next_feat, next_action)
            if num_q > 2:  # RLPD: the minimum of a random pair of the ensemble (argsort of uniforms: capturable)
                pair = torch.rand(num_q, device=device).argsort()[:2]
                next_qs = next_qs.index_select(0, pair)
            next_q = next_qs.min(0).values
            target = soft_td_target(batch["reward"], batch["discount"], next_q, next_log_prob, alpha)
        q = qnets.q(feat, batch["action"])  # (num_q, B)
        q_loss = (q - target).pow(2).mean(1)
        q_optimizer.zero_grad()
        q_loss.sum().backward()
        q_optimizer.step()
        q = q.detach()
        out = TensorDict(
            feat=feat.detach(),
            qf1_loss=q_loss[0].detach(),
            qf2_loss=q_loss[1].detach(),
            qf1_values=q[0].mean(),
            qf2_values=q[1].mean(),
            qf_loss=q_loss.detach().mean(),
        )
        if actor_encoder is not None:
            with torch.no_grad():
                out["actor_feat"] = features(batch["obs"], actor_encoder)
        if "demo" in batch.keys():  # the actor step's BC term needs the demo rows and their actions
            out["demo"], out["action"] = batch["demo"], batch["action"]
        return out

    def update_actor(critic_out: TensorDict) -> TensorDict:
        feat = critic_out["feat"]  # detached: no gradient from the actor reaches an encoder
        actor_feat = critic_out["actor_feat"] if actor_encoder is not None else feat
        action, log_prob = actor.sample(actor_feat)
        qs = qnets.q_frozen(feat, action)
        q = qs.mean(0) if num_q > 2 else qs.min(0).values
        actor_loss = (alpha * log_prob - q).mean()
        # the deterministic action, once, for the terms that weigh it
        mu = actor.deterministic(actor_feat) if bc_enabled or residual_penalty > 0 else None
        bc_loss = torch.zeros((), device=device)
        if bc_enabled:  # on the demo rows only; mixed_sample puts them in every batch
            w = critic_out["demo"].float()
            err = (mu - critic_out["action"]).pow(2).sum(-1)
            bc_loss = (err * w).sum() / w.sum().clamp_min(1.0)
        residual_l2 = torch.zeros((), device=device)
        if residual_penalty > 0:  # the correction's size in units of its bound, on every row
            residual_l2 = (mu / actor.action_scale).pow(2).sum(-1).mean()
        actor_optimizer.zero_grad()
        (actor_loss + bc_coef * bc_loss + residual_penalty * residual_l2).backward()
        actor_optimizer.step()
        alpha_loss = torch.zeros((), device=device)
        if args.autotune:
            alpha_loss = (-log_alpha.exp() * (log_prob.detach() + target_entropy)).mean()
            a_optimizer.zero_grad()
            alpha_loss.backward()
            a_optimizer.step()
            alpha.copy_(log_alpha.detach().exp())
        return TensorDict(
            actor_loss=actor_loss.detach(),
            alpha=alpha.detach()[0],
            alpha_loss=alpha_loss.detach(),
            bc_loss=bc_loss.detach(),
            bc_coef=bc_coef.detach().clone(),
            residual_l2=residual_l2.detach(),
        )

    return SimpleNamespace(
        critic=update_critic,
        actor=update_actor,
        log_alpha=log_alpha,
        alpha=alpha,
        bc_coef=bc_coef,
        optimizers=dict(q=q_optimizer, actor=actor_optimizer, alpha=a_optimizer),
    )


class SacUpdater:
    """`--utd` gradient steps per env step (fractions carry over), each on a fresh replay batch (mixed
    with `demos` at `--demo-ratio`; `prepare(batch)` augments it), the actor every `--policy-frequency`
    critic steps once `--critic-warmup-steps` critic steps are done, and the target critics every
    `--target-network-frequency` critic steps. Times the updates with a device sync on both sides, so
    queued rollout work never counts as update time."""

    def __init__(
        self,
        upd: SimpleNamespace,
        qnets: QEnsemble,
        args: Any,
        device: torch.device,
        prepare: Optional[Callable[[TensorDict], TensorDict]] = None,
        demos: Optional[DemoReplay] = None,
        critic_encoder: Optional[nn.Module] = None,
    ):
        """critic_encoder: the critics' own image encoder (--critic-encoder separate), saved with them."""
        self.upd, self.qnets, self.args, self.device, self.prepare = upd, qnets, args, device, prepare
        self.critic_encoder = critic_encoder
        self.demos = demos
        self.demo_ratio = getattr(args, "demo_ratio", 0.0) if demos is not None else 0.0
        self.critic_warmup = getattr(args, "critic_warmup_steps", 0)
        self.bc_coef0, self.bc_decay = getattr(args, "bc_coef", 0.0), getattr(args, "bc_decay_steps", 0)
        # --compile compiles the two update functions; --cudagraphs captures whole gradient steps (train_step)
        compile_only = SimpleNamespace(compile=args.compile, cudagraphs=False)
        self.update_critic, self.update_actor = (
            maybe_fast(upd.critic, compile_only),
            maybe_fast(upd.actor, compile_only),
        )
        self._captured: dict[tuple, CapturedStep] = {}
        self.num_updates, self.num_actor_updates, self.grad_budget, self.update_s = 0, 0, 0.0, 0.0
        self.critic_logs: Optional[TensorDict] = None
        self.actor_logs: Optional[TensorDict] = None
        self._sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.updates_from = args.learning_starts  # no gradient step until global_step exceeds this

    def maybe_update(self, rb, num_env_steps: int, global_step: int) -> None:
        """The updates of one iteration, once past `updates_from` and with a sampleable buffer."""
        if global_step > self.updates_from and rb.num_transitions > 0:
            self(rb, num_env_steps)

    def __call__(self, rb, num_env_steps: int) -> None:
        a = self.args
        self.grad_budget += a.utd * num_env_steps
        n, self.grad_budget = int(self.grad_budget), self.grad_budget - int(self.grad_budget)
        self._sync()
        t0 = time.time()
        for _ in range(n):
            self.num_updates += 1
            actor = self.num_updates > self.critic_warmup and self.num_updates % a.policy_frequency == 0
            target = self.num_updates % a.target_network_frequency == 0
            if actor:
                self.upd.bc_coef.fill_(self.bc_coef())
            if a.cudagraphs:  # one graph per kind of step, replayed without a device sync
                key = (id(rb), actor, target)
                if key not in self._captured:
                    self._captured[key] = CapturedStep(lambda rb=rb, ac=actor, tg=target: self.train_step(rb, ac, tg))
                critic_logs, actor_logs = self._captured[key]()
            else:
                critic_logs, actor_logs = self.train_step(rb, actor, target)
            self.critic_logs = critic_logs
            if actor:
                self.actor_logs = actor_logs
                self.num_actor_updates += 1
        self._sync()
        self.update_s += time.time() - t0

    def train_step(self, rb, actor: bool, target: bool) -> tuple[TensorDict, Optional[TensorDict]]:
        """One gradient step: sample a (mixed) batch, augment it, the critic step, the actor step if
        `actor`, the target update if `target`. It reads nothing back from the device (tested), which is
        what lets --cudagraphs capture all of it as one graph."""
        a = self.args
        batch = to_device(mixed_sample(rb, self.demos, a.batch_size, self.demo_ratio), self.device)
        if self.prepare is not None:
            batch = self.prepare(batch)
        critic_logs = self.update_critic(batch)
        actor_logs = self.update_actor(critic_logs) if actor else None
        if target:
            self.qnets.update_target(a.tau)
        return critic_logs, actor_logs

    def bc_coef(self) -> float:
        """The BC term's weight for the next actor step: --bc-coef, linearly down to 0 over
        --bc-decay-steps actor steps (0: constant)."""
        if self.bc_decay <= 0:
            return self.bc_coef0
        return self.bc_coef0 * max(0.0, 1.0 - self.num_actor_updates / self.bc_decay)

    def losses(self) -> dict:
        """losses/* of the last critic and actor steps (reads the device once per value)."""
        out = {}
        for td in (self.critic_logs, self.actor_logs):
            if td is not None:
                out.update({f"losses/{k}": float(v) for k, v in td.items() if v.numel() == 1})
        return out

    def state(self) -> dict:
        return dict(
            qnets=self.qnets.state_dict(),
            log_alpha=self.upd.log_alpha.detach().clone(),
            optimizers={k: o.state_dict() for k, o in self.upd.optimizers.items()},
            num_updates=self.num_updates,
            num_actor_updates=self.num_actor_updates,
            grad_budget=self.grad_budget,
            critic_encoder=self.critic_encoder.state_dict() if self.critic_encoder is not None else None,
        )

    def load_learned(self, state: dict) -> None:
        """What was learned: critics (with targets), a separate critic encoder, temperature. Tensors are
        copied in place, so the optimizers and any compiled or captured step see them. Also what
        --init-from takes from a SAC last.pt."""
        self.qnets.load_state_dict(state["qnets"])
        if self.critic_encoder is not None:
            enc = state.get("critic_encoder")
            if enc is None:
                raise UserError("this checkpoint has no separate critic encoder (it ran with --critic-encoder shared)")
            self.critic_encoder.load_state_dict(enc)
        with torch.no_grad():
            self.upd.log_alpha.copy_(state["log_alpha"])
            self.upd.alpha.copy_(self.upd.log_alpha.exp())

    def load_state(self, state: dict) -> None:
        """load_learned, plus the optimizers and counters (--resume)."""
        self.load_learned(state)
        for k, opt in self.upd.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        self.num_updates, self.grad_budget = int(state["num_updates"]), float(state["grad_budget"])
        self.num_actor_updates = int(state.get("num_actor_updates", self.num_updates // self.args.policy_frequency))


class SacLog:
    """Logs losses/, charts/ and time/ every `log_freq` env steps (and at the last iteration); the loop
    adds its rollout time to `rollout_s`. time/sps counts the steps of this process (after a resume too)."""

    def __init__(self, run_log, log_freq: int, start_step: int, num_envs: int):
        self.run_log, self.log_freq, self.start_step, self.num_envs = run_log, log_freq, start_step, num_envs
        self.last_step, self.rollout_s, self.start = start_step, 0.0, time.time()

    def maybe_log(self, global_step: int, episode_stats, updater: SacUpdater, rb, force: bool = False) -> None:
        if not force and global_step - self.last_step < self.log_freq:
            return
        iters = max(1, (global_step - self.last_step) // self.num_envs)
        logs = episode_stats.read()
        logs.update(updater.losses())
        logs.update(
            {
                "time/sps": (global_step - self.start_step) / (time.time() - self.start),
                "time/update_s": updater.update_s / iters,
                "time/rollout_s": self.rollout_s / iters,
                "time/env_fps": iters * self.num_envs / max(self.rollout_s, 1e-9),
                "charts/buffer_transitions": rb.num_transitions,
                "charts/num_updates": updater.num_updates,
            }
        )
        self.run_log.log(global_step, logs)
        success = {"train_success": logs["charts/success_once"]} if "charts/success_once" in logs else {}
        self.run_log.progress(global_step, sps=f"{logs['time/sps']:.0f}", **success)
        self.last_step, self.rollout_s, updater.update_s = global_step, 0.0, 0.0
