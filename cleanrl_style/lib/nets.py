"""Networks shared by several scripts. A change here changes the checkpoints of every script that
uses the class: keep parameter names (state-dict keys) stable, or convert old keys on load
(tests/test_layout.py loads checkpoints written before this module existed).

  layer_init, tanh_mlp       PPO's orthogonal-init tanh MLPs
  mlp                        ReLU MLP (SAC heads, BC)
  RunningMeanStd             running observation statistics (buffers: saved in checkpoints)
  StateNorm                  fixed selection + standardisation of state dims (BC's statistics in RL)
  NatureCNN, PixelEncoder    the image encoder (uint8 in, /255 inside) and image+state features
                             (other image encoders: lib/encoders.py)
  Actor                      tanh-Gaussian policy head (SAC, and BC --policy gaussian)
  QNetwork, QEnsemble        critics, evaluated together with vmap, with target copies
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn

from cleanrl_style.lib.runs import UserError


def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias: float = 0.0) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def tanh_mlp(inp: int, hidden: int, out: int, out_std: float) -> nn.Sequential:
    """PPO's MLP: 3 tanh hidden layers, orthogonal init, a small-std output layer."""
    return nn.Sequential(
        layer_init(nn.Linear(inp, hidden)),
        nn.Tanh(),
        layer_init(nn.Linear(hidden, hidden)),
        nn.Tanh(),
        layer_init(nn.Linear(hidden, hidden)),
        nn.Tanh(),
        layer_init(nn.Linear(hidden, out), std=out_std),
    )


class RunningMeanStd(nn.Module):
    """Running observation statistics (parallel-variance update); kept as buffers so they live in
    the state dict and therefore in every checkpoint."""

    def __init__(self, shape: tuple, clip: float = 10.0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("var", torch.ones(shape))
        self.register_buffer("count", torch.tensor(1e-4))
        self.clip = clip

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        b_mean, b_var, b_count = x.mean(0), x.var(0, unbiased=False), x.shape[0]
        delta, tot = b_mean - self.mean, self.count + b_count
        self.mean += delta * b_count / tot
        self.var.copy_((self.var * self.count + b_var * b_count + delta.pow(2) * self.count * b_count / tot) / tot)
        self.count.copy_(tot)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / torch.sqrt(self.var + 1e-8)).clamp(-self.clip, self.clip)


class StateNorm(nn.Module):
    """Fixed (not learned) input transform of the state vector: keep the dims `keep`, then subtract
    `mean` and divide by `std`. Buffers, so it travels in the state dict. Built as the identity (all
    dims, mean 0, std 1); an RL policy initialised from a BC checkpoint takes BC's own selection and
    dataset statistics, so the transferred layers see the inputs they were trained on."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        if out_dim > in_dim:
            raise ValueError(f"StateNorm keeps at most {in_dim} dims (asked for {out_dim})")
        self.in_dim, self.out_dim = in_dim, out_dim
        self.register_buffer("keep", torch.arange(out_dim))
        self.register_buffer("mean", torch.zeros(out_dim))
        self.register_buffer("std", torch.ones(out_dim))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return (state[..., self.keep] - self.mean) / self.std


class NatureCNN(nn.Module):
    """The DQN Nature conv stack; sizes its linear layer with a dummy forward, so any image size
    >= 36x36 (square or not) works. uint8 in, float features out (the /255 happens here)."""

    def __init__(self, in_channels: int, height: int, width: int, feature_dim: int = 256):
        super().__init__()
        if min(height, width) < 36:
            raise UserError(f"NatureCNN needs images of at least 36x36 (got {height}x{width})")
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = self.convs(torch.zeros(1, in_channels, height, width)).shape[1]
        self.fc = nn.Sequential(nn.Linear(n_flat, feature_dim), nn.ReLU())

    def forward(self, rgb_uint8: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(rgb_uint8.float() / 255.0))


class PixelEncoder(nn.Module):
    """NatureCNN features of the uint8 image (any size >= 36x36, square or not), concatenated
    with the proprioceptive state when state_dim > 0. With `state_in_dim` (the env's state size) the
    state first goes through a StateNorm down to `state_dim` dims (sac_rgb.py; identity unless the run
    starts from a BC policy); without it the state is used as given (bc.py normalises it itself).
    `image_encoder` replaces the NatureCNN (lib/encoders.make_image_encoder: uint8 in, `.out_dim` out);
    it stays under the name `cnn`, so the state-dict keys of every encoder are `cnn.*`."""

    def __init__(
        self,
        in_channels: int,
        height: int,
        width: int,
        state_dim: int,
        feature_dim: int = 256,
        state_in_dim: Optional[int] = None,
        image_encoder: Optional[nn.Module] = None,
    ):
        super().__init__()
        self.cnn = image_encoder if image_encoder is not None else NatureCNN(in_channels, height, width, feature_dim)
        self.state_dim = state_dim
        self.state_norm = StateNorm(state_in_dim, state_dim) if state_in_dim is not None else None
        self.out_dim = getattr(self.cnn, "out_dim", feature_dim) + state_dim

    def forward(self, rgb: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        x = self.cnn(rgb)
        if not self.state_dim:
            return x
        return torch.cat([x, self.state_norm(state) if self.state_norm is not None else state], dim=-1)


LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def mlp(inp: int, hidden: int, out: int, layers: int = 3, layer_norm: bool = False) -> nn.Sequential:
    """SAC's and BC's MLP: `layers` ReLU hidden layers (optionally LayerNorm), default init."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods.append(nn.Linear(inp if i == 0 else hidden, hidden))
        if layer_norm:
            mods.append(nn.LayerNorm(hidden))
        mods.append(nn.ReLU())
    mods.append(nn.Linear(hidden, out))
    return nn.Sequential(*mods)


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy over a feature vector (state, or image features + state).
    The action bounds are buffers, so they travel in the state dict and the checkpoint."""

    def __init__(self, in_dim: int, action_dim: int, hidden_dim: int = 256):
        super().__init__()
        self.net = mlp(in_dim, hidden_dim, 2 * action_dim)
        self.register_buffer("action_scale", torch.ones(action_dim))
        self.register_buffer("action_bias", torch.zeros(action_dim))

    def set_action_bounds(self, low: torch.Tensor, high: torch.Tensor) -> "Actor":
        self.action_scale.copy_((high - low) / 2)
        self.action_bias.copy_((high + low) / 2)
        return self

    @torch.no_grad()
    def set_log_std(self, log_std: float, flag: str = "--init-log-std") -> "Actor":
        """Make the policy's log-std `log_std` for every input (the log-std outputs' weights zeroed, their
        bias set through the squashing in forward): a BC-trained actor never learned its std, and the
        std it happens to have decides how much exploration destroys of what it learned."""
        if not LOG_STD_MIN < log_std < LOG_STD_MAX:
            raise UserError(f"{flag} must be in ({LOG_STD_MIN}, {LOG_STD_MAX}) (got {log_std})")
        last = self.net[-1]
        a = last.out_features // 2
        last.weight[a:].zero_()
        last.bias[a:].fill_(math.atanh(2 * (log_std - LOG_STD_MIN) / (LOG_STD_MAX - LOG_STD_MIN) - 1))
        return self

    @torch.no_grad()
    def zero_mean(self) -> "Actor":
        """Zero the mean outputs' weights and biases, so the deterministic action is exactly the centre of
        the bounds for every input (sac_rgb.py --residual-of: a correction that starts at none)."""
        last = self.net[-1]
        a = last.out_features // 2
        last.weight[:a].zero_()
        last.bias[:a].zero_()
        return self

    def fix_log_std(self, log_std: float) -> "Actor":
        """set_log_std, and keep it there (--fixed-log-std): gradient hooks zero the log-std rows' gradients
        of the output layer, so no optimizer step moves them (Adam's moments stay 0 for those rows) while
        the mean trains as before. The std lives in the weights, so checkpoints carry it; call again after
        building the actor in a resumed run (the hooks are not saved)."""
        self.set_log_std(log_std, flag="--fixed-log-std")
        if getattr(self, "_log_std_hooks", None) is None:
            last = self.net[-1]
            keep = torch.ones(last.out_features, device=last.weight.device)
            keep[last.out_features // 2 :] = 0
            self._log_std_hooks = (
                last.weight.register_hook(lambda g: g * keep[:, None]),
                last.bias.register_hook(lambda g: g * keep),
            )
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(x).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1)
        return mean, log_std

    def sample(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterized action in the env's bounds and its log-probability (B,)."""
        mean, log_std = self(x)
        std = log_std.exp()
        u = mean + std * torch.randn_like(mean)
        y = torch.tanh(u)
        # Gaussian log-density of u, minus the log-Jacobian of a = scale * tanh(u) + bias
        log_prob = (-0.5 * ((u - mean) / std).pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - torch.log(self.action_scale * (1 - y.pow(2)) + 1e-6).sum(-1)
        return y * self.action_scale + self.action_bias, log_prob

    def deterministic(self, x: torch.Tensor) -> torch.Tensor:
        mean, _ = self(x)
        return torch.tanh(mean) * self.action_scale + self.action_bias


class QNetwork(nn.Module):
    def __init__(self, in_dim: int, action_dim: int, hidden_dim: int = 256, layer_norm: bool = True):
        super().__init__()
        self.net = mlp(in_dim + action_dim, hidden_dim, 1, layer_norm=layer_norm)

    def forward(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, action], dim=-1)).squeeze(-1)


class QEnsemble:
    """num_q critics with stacked parameters, evaluated in one call with `torch.vmap` over
    `torch.func.functional_call`, plus a target copy updated in place with a fused `lerp_`
    (LeanRL style: no Python loop over critics, nothing that reads the device).

        ens.q(x, a)          # (num_q, B), gradients reach the critics
        ens.q_frozen(x, a)   # same values, no gradients into the critics (actor loss)
        ens.q_target(x, a)   # target critics
    """

    def __init__(self, make: Callable[[], nn.Module], num_q: int, device: torch.device):
        self.num_q = num_q
        stacked, _ = torch.func.stack_module_state([make().to(device) for _ in range(num_q)])
        self.params = {k: nn.Parameter(v.detach().clone()) for k, v in stacked.items()}
        self.target = {k: v.detach().clone() for k, v in self.params.items()}
        self.module = make().to("meta")  # a shell: only its forward is used, with the stacked params
        self._vmapped = torch.vmap(self._one, (0, None, None))

    def _one(self, params: dict, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self.module, params, (x, action))

    def q(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self._vmapped(self.params, x, action)

    def q_frozen(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self._vmapped({k: v.detach() for k, v in self.params.items()}, x, action)

    def q_target(self, x: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self._vmapped(self.target, x, action)

    def parameters(self) -> list:
        return list(self.params.values())

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        torch._foreach_lerp_(list(self.target.values()), [p.detach() for p in self.params.values()], tau)

    def state_dict(self) -> dict:
        return dict(
            params={k: v.detach().clone() for k, v in self.params.items()},
            target={k: v.clone() for k, v in self.target.items()},
        )

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        for k, v in state["params"].items():
            self.params[k].copy_(v)
        for k, v in state["target"].items():
            self.target[k].copy_(v)
