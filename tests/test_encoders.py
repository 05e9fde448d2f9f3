"""The encoder ladder (lib/encoders.py, lib/timm_encoder.py, lib/encoder_weights.py, lib/timm_compat.py):
timm without torchvision, preprocessing on the device, multi-camera and rgbd, freezing, unfreezing at a
step, the frozen-feature cache of ppo_rgb.py, weight files and their errors, and checkpoints of every
encoder type of every pixel script reloading through evaluate.py's path. Tiny images and models."""

from __future__ import annotations

import copy
import importlib.util
import sys
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO_ROOT, assert_one_error_line, run_script

from cleanrl_style import bc, ppo_rgb, sac_rgb
from cleanrl_style.lib import encoder_weights as weights_lib
from cleanrl_style.lib import encoders as enc_lib
from cleanrl_style.lib.checkpoints import load_checkpoint, load_policy_checked, save_checkpoint
from cleanrl_style.lib.nets import NatureCNN
from cleanrl_style.lib.ppo_update import ppo_update
from cleanrl_style.lib.runs import UserError
from cleanrl_style.lib.timm_compat import import_timm
from cleanrl_style.lib.timm_encoder import BACKBONES, TIMM_VERSION, Backbone, TimmEncoder

CPU = torch.device("cpu")
# small input sizes: resnet18 at 32 px (a 1x1 final map), DINOv2 ViT-S/14 at 28 px (2x2 patches)
SMALL = {"resnet18": 32, "dinov2-vits14": 28}
# a tiny stand-in for DINOv2 (same timm class and code path, 2 blocks of width 32) for the weight-file tests
TINY_VIT = Backbone(
    "vit_small_patch14_dinov2", "test", 28, patch=14, timm_kwargs=dict(depth=2, embed_dim=32, num_heads=2)
)


def cfg(name: str, adapter: str = "linear", size=None) -> dict:
    return dict(name=name, image_size=size or SMALL.get(name, 28), adapter=adapter)


def images(b=2, c=3, h=64, w=64, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, h, w), dtype=torch.uint8, generator=g)


def encoder_args(**kw) -> SimpleNamespace:
    base = dict(
        encoder="nature",
        encoder_weights="none",
        encoder_image_size=None,
        encoder_adapter="attn-pool",
        freeze_encoder=False,
        unfreeze_after=None,
        unfreeze_blocks=1,
        encoder_lr=None,
        cudagraphs=False,
        resume=None,
    )
    return SimpleNamespace(**dict(base, **kw))


@pytest.fixture
def tiny_vit(monkeypatch):
    monkeypatch.setitem(BACKBONES, "tiny-vit", TINY_VIT)
    return "tiny-vit"


# ----------------------------------------------------------------------------- timm without torchvision
def test_timm_imports_without_leaving_a_torchvision_behind():
    timm = import_timm()
    assert timm.__version__ == TIMM_VERSION
    assert torch.__version__.split("+")[0] == "2.13.0"  # the pinned torch, untouched by installing timm
    tv_installed = importlib.util.find_spec("torchvision") is not None
    if not tv_installed:  # the stand-in served timm's import only: nobody else sees a torchvision
        assert not [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]
    m = timm.create_model("resnet18", pretrained=False, num_classes=0).eval()
    assert m(torch.zeros(1, 3, 32, 32)).shape == (1, 512)


# ----------------------------------------------------------------------------- preprocessing, cameras, rgbd
@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA"))]
)
@pytest.mark.parametrize("name", ["resnet18", "dinov2-vits14"])
def test_preprocessing_on_the_device_resizes_and_normalises(name, device):
    enc = enc_lib.make_image_encoder(6, 48, 64, 16, cfg(name)).to(device)
    seen, forward_features = {}, enc.backbone.forward_features

    def spy(x):  # what the backbone is given
        seen["x"] = x
        return forward_features(x)

    enc.backbone.forward_features = spy
    spec = BACKBONES[name]
    mean = torch.tensor(spec.mean)
    x = (mean * 255).round().to(torch.uint8).view(1, 3, 1, 1).repeat(2, 2, 48, 64).to(device)  # 2 cameras
    before = x.clone()
    out = enc(x)
    got = seen["x"]
    s = SMALL[name]
    assert got.shape == (4, 3, s, s) and got.dtype == torch.float32 and got.device == x.device  # B*k images
    assert out.shape == (2, 16) and out.device == x.device
    # (round(255 m) / 255 - m) / std: within half a grey level of 0, after the resize of a constant image
    assert got.abs().max() < 0.5 / 255 / min(spec.std) + 1e-6
    assert torch.equal(x, before)  # the uint8 observation is not modified


def test_each_camera_goes_through_the_backbone_on_its_own():
    enc = enc_lib.make_image_encoder(6, 64, 64, 16, cfg("resnet18")).eval()
    x = images(c=6)
    swapped = x[:, [3, 4, 5, 0, 1, 2]]
    with torch.no_grad():
        f, g = enc_lib.backbone_features(enc, x), enc_lib.backbone_features(enc, swapped)
    assert f.shape == (2, 2, 512)
    torch.testing.assert_close(f[:, 0], g[:, 1])
    torch.testing.assert_close(f[:, 1], g[:, 0])


def test_rgbd_and_non_rgb_channel_counts_are_refused():
    with pytest.raises(UserError, match="3 channels per camera"):
        enc_lib.make_image_encoder(4, 64, 64, 16, cfg("resnet18"))
    with pytest.raises(UserError, match="depth"):
        enc_lib.check_encoder_flags(encoder_args(encoder="resnet18"), "rgbd", 3e-4)
    with pytest.raises(UserError, match="patch size 14"):
        enc_lib.check_encoder_flags(encoder_args(encoder="dinov2-vits14", encoder_image_size=100), "rgb", 3e-4)
    p = run_script(
        "cleanrl_style/sac_rgb.py", "--obs-mode", "rgbd", "--encoder", "resnet18", "--sim-backend", "cpu", timeout=120
    )
    assert p.returncode == 2
    assert_one_error_line(p.stderr, "--encoder resnet18", "depth")


def test_encoder_flag_checks_and_resolved_defaults():
    a = encoder_args(encoder="dinov2-vits14", freeze_encoder=True, unfreeze_after=100)
    enc_lib.check_encoder_flags(a, "rgb", 3e-4)
    assert a.encoder_image_size == 224 and a.encoder_lr == pytest.approx(3e-5)  # written back
    for bad, match in (
        (dict(unfreeze_after=5), "needs --freeze-encoder"),
        (dict(encoder_lr=1e-4), "needs --unfreeze-after"),
        (dict(encoder_weights="published"), "no published weights"),
        (dict(encoder_image_size=64), "nature sees the camera image"),
        (dict(encoder="resnet50"), "--encoder"),
        (dict(freeze_encoder=True, unfreeze_after=5, cudagraphs=True), "cudagraphs"),
    ):
        with pytest.raises(UserError, match=match):
            enc_lib.check_encoder_flags(encoder_args(**bad), "rgb", 3e-4)
    with pytest.raises(UserError, match="not to state observations"):  # bc.py from state
        enc_lib.check_encoder_flags(encoder_args(freeze_encoder=True), "state", 1e-3)
    with pytest.raises(UserError, match="not to --encoder keypoints"):
        enc_lib.check_encoder_flags(encoder_args(encoder="keypoints", freeze_encoder=True), "rgb", 1e-3, ("keypoints",))


# ----------------------------------------------------------------------------- freezing
@pytest.mark.parametrize("name", ["nature", "resnet18", "dinov2-vits14"])
def test_frozen_backbone_gets_no_gradient_and_is_in_no_optimizer(name):
    agent = ppo_rgb.Agent(
        3, 64, 64, state_dim=5, action_dim=2, feature_dim=16, encoder=None if name == "nature" else cfg(name)
    )
    enc_lib.freeze_backbone(agent.encoder)
    optimizer = torch.optim.Adam(enc_lib.trainable(agent.parameters()), lr=1e-3)
    in_opt = {id(p) for g in optimizer.param_groups for p in g["params"]}
    backbone = list(enc_lib.backbone_modules(agent.encoder).parameters())
    assert backbone and not any(id(p) in in_opt for p in backbone)
    before = [p.detach().clone() for p in backbone]
    _, logp, _, value = agent.get_action_and_value({"rgb": images(), "state": torch.randn(2, 5)})
    (logp.sum() + value.sum()).backward()
    optimizer.step()
    assert all(p.grad is None for p in backbone)
    assert all(torch.equal(a, b) for a, b in zip(before, backbone))
    adapter = [p for n, p in agent.encoder.named_parameters() if n.startswith(("fc.", "adapter."))]
    assert adapter and all(p.grad is not None for p in adapter)


def test_sac_critic_optimizer_holds_no_frozen_encoder_parameter():
    from cleanrl_style.lib.nets import QEnsemble, QNetwork
    from cleanrl_style.lib.sac_update import make_sac_updates

    policy = sac_rgb.PixelPolicy(
        3, 64, 64, 5, 2, feature_dim=16, hidden_dim=16, state_in_dim=5, encoder=cfg("resnet18")
    )
    enc_lib.freeze_backbone(policy.encoder.cnn)
    qnets = QEnsemble(lambda: QNetwork(policy.encoder.out_dim, 2, 16), 2, CPU)
    args = SimpleNamespace(
        cudagraphs=False,
        compile=False,
        q_lr=1e-3,
        policy_lr=1e-3,
        alpha=0.2,
        alpha_lr=1e-3,
        autotune=True,
        target_entropy=None,
        bc_coef=0.0,
    )
    upd = make_sac_updates(policy.actor, qnets, args, 2, CPU, encoder=policy.encoder)
    held = {id(p) for o in upd.optimizers.values() for g in o.param_groups for p in g["params"]}
    backbone = list(policy.encoder.cnn.backbone.parameters())
    assert not any(id(p) in held for p in backbone)
    assert all(id(p) in held for p in policy.encoder.cnn.adapter.parameters())
    before = [p.detach().clone() for p in backbone]
    obs = {"rgb": images(4), "state": torch.randn(4, 5)}
    from tensordict import TensorDict

    batch = TensorDict(
        obs=TensorDict(obs, [4]),
        next_obs=TensorDict(obs, [4]),
        action=torch.rand(4, 2),
        reward=torch.rand(4),
        discount=torch.full((4,), 0.8),
        batch_size=[4],
    )
    upd.actor(upd.critic(batch))
    assert all(torch.equal(a, b) for a, b in zip(before, backbone))


def test_frozen_batch_norm_uses_stored_statistics_in_train_mode():
    enc = enc_lib.make_image_encoder(3, 64, 64, 16, cfg("resnet18")).train()
    bn = enc.backbone.bn1
    stats = bn.running_mean.clone()
    enc(images(4))
    assert not bn.training and torch.equal(bn.running_mean, stats)
    with torch.no_grad():  # the same function for a batch of one (acting) and of four (learning)
        x = images(4)
        torch.testing.assert_close(enc(x[:1]), enc(x)[:1], atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- unfreezing
@pytest.mark.parametrize(
    ("name", "k", "want"), [("resnet18", 2, ["layer3", "layer4"]), ("dinov2-vits14", 1, ["blocks.11+norm"])]
)
def test_unfreeze_at_step_n_makes_exactly_the_last_k_blocks_trainable_at_their_lr(name, k, want):
    enc = enc_lib.make_image_encoder(3, 64, 64, 16, cfg(name))
    enc_lib.freeze_backbone(enc)
    optimizer = torch.optim.Adam(enc_lib.trainable(enc.parameters()), lr=1e-3)
    logged = []
    unfreezer = enc_lib.Unfreezer(enc, after=10, num_blocks=k, lr=2e-5, script="test")
    assert [n for n, _ in unfreezer.blocks] == want
    assert not unfreezer.maybe_unfreeze(9, optimizer, lambda s, m: logged.append((s, m)))
    assert len(optimizer.param_groups) == 1
    assert unfreezer.maybe_unfreeze(10, optimizer, lambda s, m: logged.append((s, m)))
    assert not unfreezer.maybe_unfreeze(11, optimizer)  # once
    chosen = {id(p) for _, ps in unfreezer.blocks for p in ps}
    group = optimizer.param_groups[1]
    assert group["lr"] == 2e-5 and {id(p) for p in group["params"]} == chosen
    for n, p in enc.backbone.named_parameters():
        assert p.requires_grad == (id(p) in chosen), n
    assert logged == [
        (
            10,
            {
                "charts/encoder_unfrozen_blocks": k,
                "charts/encoder_trainable_params": sum(p.numel() for p in group["params"]),
            },
        )
    ]
    before = {n: p.detach().clone() for n, p in enc.backbone.named_parameters()}
    optimizer.zero_grad()
    enc(images()).pow(2).sum().backward()
    optimizer.step()
    changed = {n for n, p in enc.backbone.named_parameters() if not torch.equal(p, before[n])}
    names = {n for n, p in enc.backbone.named_parameters() if id(p) in chosen}
    assert changed and changed <= names  # nothing outside the chosen blocks moved


def test_unfreeze_follows_the_cosine_schedule_and_rejects_too_many_blocks():
    enc = enc_lib.make_image_encoder(3, 64, 64, 16, None)  # nature: 3 conv blocks
    enc_lib.freeze_backbone(enc)
    optimizer = torch.optim.AdamW(enc_lib.trainable(enc.parameters()), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    unfreezer = enc_lib.Unfreezer(enc, after=5, num_blocks=1, lr=1e-4, script="bc")
    ratios = []
    for it in range(1, 9):
        unfreezer.maybe_unfreeze(it, optimizer, scheduler=scheduler)
        optimizer.step()
        scheduler.step()
        if it >= 5:
            main_lr, enc_lr = scheduler.get_last_lr()
            ratios.append(enc_lr / main_lr)
    assert [n for n, _ in unfreezer.blocks] == ["convs.4"]
    assert 0 < enc_lr < 1e-4  # decays from --encoder-lr
    assert ratios == pytest.approx([ratios[0]] * len(ratios))  # with the main group's cosine shape
    with pytest.raises(UserError, match="1..3"):
        enc_lib.Unfreezer(enc, after=5, num_blocks=4, lr=1e-4, script="bc")


# ----------------------------------------------------------------------------- the feature cache (ppo_rgb.py)
def _ppo_args():
    return SimpleNamespace(
        update_epochs=2,
        target_kl=None,
        clip_coef=0.2,
        clip_vloss=False,
        norm_adv=True,
        ent_coef=0.0,
        vf_coef=0.5,
        max_grad_norm=0.5,
    )


@pytest.mark.parametrize("encoder", [None, cfg("resnet18", "linear"), cfg("resnet18", "attn-pool")])
def test_cached_features_give_the_same_actions_and_the_same_update_as_images(encoder):
    torch.manual_seed(0)
    agent = ppo_rgb.Agent(3, 64, 64, state_dim=4, action_dim=2, feature_dim=16, encoder=encoder)
    enc_lib.freeze_backbone(agent.encoder)
    twin = copy.deepcopy(agent)
    obs = {"rgb": images(8), "state": torch.randn(8, 4)}
    with torch.no_grad():
        cached = {"feat": enc_lib.backbone_features(agent.encoder, obs["rgb"]), "state": obs["state"]}
        torch.testing.assert_close(agent.act(cached, deterministic=True), agent.act(obs, deterministic=True))
        action = torch.randn(8, 2)
        for a, b in zip(agent.get_action_and_value(cached, action)[1:], agent.get_action_and_value(obs, action)[1:]):
            torch.testing.assert_close(a, b)
    # one PPO update from the cached storage and one from the images, same minibatches: same weights
    from tensordict import TensorDict

    rollout = dict(
        b_actions=action, b_logprobs=torch.randn(8), b_adv=torch.randn(8), b_ret=torch.randn(8), b_val=torch.randn(8)
    )
    for net, store in ((agent, cached), (twin, obs)):
        torch.manual_seed(1)
        opt = torch.optim.Adam(enc_lib.trainable(net.parameters()), lr=1e-3)
        ppo_update(net, opt, TensorDict(store, [8]), *rollout.values(), _ppo_args(), 4, lambda o: dict(o.items()))
    for (n, p), q in zip(agent.state_dict().items(), twin.state_dict().values()):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4, msg=n)


# ----------------------------------------------------------------------------- weights
def test_weight_files_round_trip(tiny_vit, tmp_path, monkeypatch):
    timm = import_timm()
    src = enc_lib.make_image_encoder(3, 64, 64, 16, cfg(tiny_vit))
    torch.save(src.backbone.state_dict(), tmp_path / "b.pt")
    from safetensors.torch import save_file

    save_file(src.backbone.state_dict(), str(tmp_path / "b.safetensors"))
    for f in ("b.pt", "b.safetensors"):
        dst = enc_lib.make_image_encoder(3, 64, 64, 16, cfg(tiny_vit))
        assert "backbone weights" in enc_lib.load_encoder_weights(dst, str(tmp_path / f), tiny_vit)
        for (n, p), q in zip(src.backbone.state_dict().items(), dst.backbone.state_dict().values()):
            assert torch.equal(p, q), n
    # float16 files (fetch_encoder_weights.py --half) load into the float32 backbone
    save_file({k: v.half() for k, v in src.backbone.state_dict().items()}, str(tmp_path / "b16.safetensors"))
    dst = enc_lib.make_image_encoder(3, 64, 64, 16, cfg(tiny_vit))
    enc_lib.load_encoder_weights(dst, str(tmp_path / "b16.safetensors"), tiny_vit)
    assert dst.backbone.patch_embed.proj.weight.dtype == torch.float32
    torch.testing.assert_close(
        dst.backbone.patch_embed.proj.weight, src.backbone.patch_embed.proj.weight, atol=1e-3, rtol=1e-3
    )
    # published: a full model (classifier head, trained at 56 px) from the cache dir, resampled and trimmed
    monkeypatch.setenv(weights_lib.WEIGHTS_DIR_ENV, str(tmp_path / "cache"))
    full = timm.create_model(TINY_VIT.timm_name, pretrained=False, num_classes=5, img_size=56, **TINY_VIT.timm_kwargs)
    path = weights_lib.published_path(tiny_vit)
    path.parent.mkdir()
    save_file(full.state_dict(), str(path))
    dst = enc_lib.make_image_encoder(3, 64, 64, 16, cfg(tiny_vit))
    assert "published" in enc_lib.load_encoder_weights(dst, "published", tiny_vit)
    torch.testing.assert_close(dst.backbone.blocks[1].mlp.fc2.weight, full.blocks[1].mlp.fc2.weight)
    assert dst.backbone.pos_embed.shape[1] == 1 + 4  # resampled from 4x4 to 2x2 patches


def test_weight_file_errors_are_one_line(tiny_vit, tmp_path, monkeypatch):
    monkeypatch.setenv(weights_lib.WEIGHTS_DIR_ENV, str(tmp_path / "nothing"))
    enc = enc_lib.make_image_encoder(3, 64, 64, 16, cfg(tiny_vit))
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    torch.save({"a": 1}, tmp_path / "dict.pt")
    torch.save(enc_lib.make_image_encoder(3, 64, 64, 16, cfg("resnet18")).backbone.state_dict(), tmp_path / "r18.pt")
    cases = {
        "published": "not cached",
        str(tmp_path / "missing.pt"): "no such file",
        str(tmp_path / "junk.pt"): "corrupt or not a torch file",
        str(tmp_path / "dict.pt"): "neither a cleanrl_style checkpoint nor a state dict",
        str(tmp_path / "r18.pt"): "does not fit the tiny-vit backbone",
    }
    for weights, match in cases.items():
        with pytest.raises(UserError, match=match) as e:
            enc_lib.load_encoder_weights(enc, weights, tiny_vit)
        assert e.value.code == 1 and "\n" not in str(e.value)
    with pytest.raises(UserError, match="scripts/fetch_encoder_weights.py --encoder tiny-vit"):
        enc_lib.load_encoder_weights(enc, "published", tiny_vit)


def _save(path, script, model_kwargs, state_dict, args=None):
    save_checkpoint(
        path, script=script, args=args or {}, env={}, model_kwargs=model_kwargs, state_dict=state_dict, step=7
    )
    return str(path)


def test_encoder_weights_from_our_own_checkpoints(tmp_path):
    """The in-domain rung: the image encoder of a bc / sac_rgb / ppo_rgb checkpoint, into any pixel script."""
    policy = sac_rgb.PixelPolicy(
        3, 64, 64, 5, 2, feature_dim=16, hidden_dim=16, state_in_dim=5, encoder=cfg("resnet18")
    )
    sac_ckpt = _save(tmp_path / "sac.pt", "sac_rgb", dict(encoder=cfg("resnet18")), policy.state_dict())
    agent = ppo_rgb.Agent(3, 64, 64, state_dim=5, action_dim=2, feature_dim=16, encoder=cfg("resnet18"))
    assert "sac_rgb.py, step 7" in enc_lib.load_encoder_weights(agent.encoder, sac_ckpt, "resnet18")
    for (n, p), q in zip(policy.encoder.cnn.state_dict().items(), agent.encoder.state_dict().values()):
        assert torch.equal(p, q), n
    # nature: a BC encoder's model.encoder.cnn.* weights (what --init-from takes)
    kwargs = dict(
        model=dict(
            state_dim=5,
            action_dim=2,
            obs_horizon=1,
            chunk_size=1,
            hidden_dim=16,
            head="gaussian",
            image_shape=[3, 64, 64],
            feature_dim=16,
        ),
        n_keep=5,
    )
    bc_policy = bc.build_policy(kwargs, dict(temporal_ensemble=False, exec_horizon=1), CPU)
    bc_ckpt = _save(tmp_path / "bc.pt", "bc", kwargs, bc_policy.state_dict())
    nature = NatureCNN(3, 64, 64, 16)
    enc_lib.load_encoder_weights(nature, bc_ckpt, "nature")
    assert torch.equal(nature.convs[0].weight, bc_policy.model.encoder.cnn.convs[0].weight)
    # mismatches
    for weights, enc, name, match in (
        (bc_ckpt, agent.encoder, "resnet18", "its image encoder is 'nature'"),
        (sac_ckpt, NatureCNN(3, 64, 64, 16), "nature", "its image encoder is 'resnet18'"),
        (_save(tmp_path / "ppo.pt", "ppo", {}, {}), nature, "nature", "has no image encoder"),
    ):
        with pytest.raises(UserError, match=match):
            enc_lib.load_encoder_weights(enc, weights, name)
    other = ppo_rgb.Agent(3, 64, 64, state_dim=5, action_dim=2, feature_dim=8, encoder=cfg("resnet18"))
    with pytest.raises(UserError, match="does not fit"):  # another --feature-dim
        enc_lib.load_encoder_weights(other.encoder, sac_ckpt, "resnet18")


def test_missing_weights_fail_in_one_line_before_any_env(tmp_path):
    env = {"ENCODER_WEIGHTS_DIR": str(tmp_path)}
    import os

    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        p = run_script(
            "cleanrl_style/ppo_rgb.py",
            "--encoder",
            "resnet18",
            "--encoder-weights",
            "published",
            "--sim-backend",
            "cpu",
            timeout=120,
        )
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert p.returncode == 1
    assert_one_error_line(p.stderr, "not cached", "python scripts/fetch_encoder_weights.py --encoder resnet18")
    p = run_script(
        "cleanrl_style/bc.py",
        "--obs-mode",
        "rgb",
        "--demo-path",
        "x.h5",
        "--encoder",
        "resnet18",
        "--encoder-weights",
        str(tmp_path / "none.pt"),
        "--sim-backend",
        "cpu",
        timeout=120,
    )
    assert p.returncode == 1
    assert_one_error_line(p.stderr, "no such file")


# ----------------------------------------------------------------------------- checkpoints reload (evaluate.py's path)
ENCODER_CASES = {"nature": None, "resnet18": cfg("resnet18", "attn-pool"), "dinov2-vits14": cfg("dinov2-vits14")}


def _build(script: str, encoder):
    """A policy of `script` as its main builds it, its checkpoint fields, and an obs batch."""
    obs = {"rgb": images(2), "state": torch.randn(2, 5)}
    if script == "ppo_rgb":
        kw = dict(in_channels=3, height=64, width=64, state_dim=5, action_dim=2, feature_dim=16, encoder=encoder)
        agent = ppo_rgb.Agent(**kw)
        return kw, agent.state_dict(), dict(frame_stack=1, include_state=True), lambda o: agent.act(o, True), obs
    if script == "sac_rgb":
        kw = dict(
            in_channels=3,
            height=64,
            width=64,
            state_dim=5,
            action_dim=2,
            feature_dim=16,
            hidden_dim=16,
            state_in_dim=5,
            encoder=encoder,
        )
        policy = sac_rgb.PixelPolicy(**kw)
        return kw, policy.state_dict(), {}, policy.deterministic, obs
    kw = dict(
        model=dict(
            state_dim=5,
            action_dim=2,
            obs_horizon=1,
            chunk_size=1,
            hidden_dim=16,
            head="gaussian",
            image_shape=[3, 64, 64],
            feature_dim=16,
            encoder=(encoder or {}).get("name", "nature"),
            encoder_config=encoder,
        ),
        n_keep=5,
    )
    args = dict(temporal_ensemble=False, exec_horizon=1)
    policy = bc.build_policy(kw, args, CPU)
    policy.norm.load_state_dict(bc.Normalizer.fit(torch.arange(5), torch.randn(50, 5), torch.randn(50, 2)).state_dict())
    policy.eval()
    return kw, policy.state_dict(), args, policy, obs


@pytest.mark.parametrize("script", ["ppo_rgb", "sac_rgb", "bc"])
@pytest.mark.parametrize("name", list(ENCODER_CASES))
def test_checkpoint_of_each_encoder_reloads_through_evaluates_loader(script, name, tmp_path):
    torch.manual_seed(0)
    kw, sd, args, act, obs = _build(script, ENCODER_CASES[name])
    path = _save(tmp_path / "c.pt", script, kw, sd, args)
    ckpt = load_checkpoint(path)
    again = load_policy_checked(ckpt, CPU, path)
    with torch.no_grad():
        want = act(obs)
        if hasattr(act, "reset"):
            act.reset()
        torch.testing.assert_close(again(obs), want)
    if name == "nature":  # the default's checkpoint layout is what it always was
        prefix = {"ppo_rgb": "encoder.", "sac_rgb": "encoder.cnn.", "bc": "model.encoder.cnn."}[script]
        assert {k[len(prefix) :] for k in sd if k.startswith(prefix)} == set(NatureCNN(3, 64, 64, 16).state_dict())


# ----------------------------------------------------------------------------- end to end (envs)
TINY_PPO = dict(
    env_id="PushCube",
    num_envs=1,
    num_eval_envs=1,
    image_size=64,
    total_timesteps=40,
    num_steps=10,
    num_minibatches=2,
    eval_freq=0,
    num_eval_episodes=1,
    max_episode_steps=10,
    sim_backend="cpu",
    encoder="resnet18",
    encoder_image_size=32,
    encoder_adapter="linear",
    feature_dim=16,
    freeze_encoder=True,
    unfreeze_after=20,
)


@pytest.mark.slow
def test_ppo_rgb_feature_cache_run_matches_the_image_run_and_evaluate_reloads_it(tmp_path):
    """Frozen resnet18 with the cache, then unfrozen at step 20 (the cache dropped); the same run without the
    cache ends with the same weights; evaluate.py (CLI) reloads the checkpoint; sac_rgb.py starts from its
    encoder (--encoder-weights PATH, the in-domain rung)."""
    dirs = {}
    for cache in (True, False):
        dirs[cache] = ppo_rgb.main(ppo_rgb.Args(**TINY_PPO, cache_features=cache, runs_dir=str(tmp_path / str(cache))))
    a, b = (load_checkpoint(dirs[c] / "last.pt")["state_dict"] for c in (True, False))
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-4, rtol=1e-3, msg=k)
    metrics = (dirs[True] / "metrics.csv").read_text()
    assert "20," in metrics.split("charts/encoder_unfrozen_blocks")[0].splitlines()[-1]
    ckpt = dirs[True] / "last.pt"
    p = run_script(
        "cleanrl_style/evaluate.py",
        "--checkpoint",
        str(ckpt),
        "--num-episodes",
        "1",
        "--sim-backend",
        "cpu",
        "--max-episode-steps",
        "3",
        "--out-dir",
        str(tmp_path),
    )
    assert p.returncode == 0, p.stderr[-2000:]
    run_dir = sac_rgb.main(
        sac_rgb.Args(
            env_id="PushCube",
            num_envs=1,
            num_eval_envs=1,
            image_size=64,
            total_timesteps=12,
            learning_starts=8,
            batch_size=4,
            buffer_size=50,
            eval_freq=0,
            num_eval_episodes=1,
            max_episode_steps=5,
            sim_backend="cpu",
            encoder="resnet18",
            encoder_image_size=32,
            encoder_adapter="linear",
            feature_dim=16,
            hidden_dim=16,
            freeze_encoder=True,
            encoder_weights=str(ckpt),
            runs_dir=str(tmp_path / "sac"),
        )
    )
    sac = load_checkpoint(run_dir / "last.pt")["state_dict"]
    ppo = load_checkpoint(ckpt)["state_dict"]
    assert torch.equal(sac["encoder.cnn.backbone.conv1.weight"], ppo["encoder.backbone.conv1.weight"])  # frozen


def test_backbone_names_stay_out_of_the_nature_default():
    """--encoder nature builds lib/nets.NatureCNN itself, whatever the other flags' defaults."""
    assert isinstance(enc_lib.make_image_encoder(3, 64, 64, 16, enc_lib.encoder_config(encoder_args())), NatureCNN)
    assert isinstance(enc_lib.make_image_encoder(3, 64, 64, 16, cfg("resnet18")), TimmEncoder)


def test_init_from_a_bc_checkpoint_adopts_its_timm_encoder(tmp_path):
    """sac_rgb.py --init-from a bc.py --policy gaussian checkpoint with --encoder resnet18: the SAC policy
    takes that encoder's architecture and weights, and acts as the BC policy did."""
    from cleanrl_style.lib import finetune

    torch.manual_seed(0)
    kw, sd, args, bc_policy, obs = _build("bc", cfg("resnet18", "attn-pool"))
    env = dict(
        env_id="PushCube-v1",
        obs_mode="rgb",
        control_mode="pd_ee_delta_pos",
        action_dim=2,
        obs_shapes={"rgb": [3, 64, 64], "state": [5]},
    )
    save_checkpoint(tmp_path / "bc.pt", script="bc", args=args, env=env, model_kwargs=kw, state_dict=sd, step=1)
    init = finetune.init_spec(str(tmp_path / "bc.pt"), "sac_rgb", env)
    run_args = encoder_args()
    enc_lib.adopt_config(run_args, init["encoder_config"])
    assert run_args.encoder == "resnet18" and run_args.encoder_image_size == 32
    policy = sac_rgb.PixelPolicy(
        3,
        64,
        64,
        init["state_dim"],
        2,
        init["feature_dim"],
        init["hidden_dim"],
        state_in_dim=5,
        encoder=enc_lib.encoder_config(run_args),
    )
    assert "image encoder" in finetune.load_init(init, policy)
    with torch.no_grad():
        torch.testing.assert_close(policy.deterministic(obs), bc_policy(obs))


def test_throughput_bench_appends_one_row_per_setting(tmp_path):
    sys.path.insert(0, str(REPO_ROOT))
    from bench import encoder_throughput

    out = tmp_path / "t.csv"
    rows = encoder_throughput.main(
        encoder_throughput.Args(
            encoders=("nature",),
            modes=("forward", "train"),
            batch=2,
            min_time=0.01,
            device="cpu",
            notes="test",
            out=str(out),
        )
    )
    assert [(r["input_size"], r["mode"]) for r in rows] == [
        (64, "forward"),
        (64, "train"),
        (128, "forward"),
        (128, "train"),
    ]
    import csv

    with open(out, newline="") as f:
        got = list(csv.DictReader(f))
    assert len(got) == 4 and all(float(r["frames_per_s"]) > 0 and r["notes"] == "test" and r["device"] for r in got)


@pytest.mark.slow
def test_feature_cache_bench_runs_pairs_and_appends_one_row_per_run(tmp_path):
    sys.path.insert(0, str(REPO_ROOT))
    from bench import feature_cache, reproduce

    out = tmp_path / "cache.csv"
    args = feature_cache.Args(
        pairs=1, encoder="nature", encoder_image_size=None, image_size=36, num_steps=4, iterations=2,
        update_epochs=2, sim_backend="cpu", notes="test", out=str(out),
    )  # fmt: skip
    rows = feature_cache.main(args)
    assert [(r["pair"], r["cache_features"]) for r in rows] == [(1, True), (1, False)]
    import csv

    with open(out, newline="") as f:
        got = list(csv.DictReader(f))
    assert list(got[0]) == list(feature_cache.COLUMNS) and len(got) == 2
    for r in got:
        assert float(r["update_s_mean"]) > 0 and float(r["rollout_s_mean"]) > 0 and float(r["sps_final"]) > 0
        assert r["command"].endswith("--freeze-encoder --[no-]cache-features") and "--runs-dir" not in r["command"]
    table = reproduce.feature_cache_table(got)  # what docs/encoders.md renders from such rows
    assert table[4].startswith("| 1 | on |") and table[4].endswith("x |") and table[5].startswith("| 1 | off |")


def test_feature_cache_bench_refuses_bad_values():
    p = run_script("bench/feature_cache.py", "--pairs", "0")
    assert p.returncode == 2
    assert_one_error_line(p.stderr, "--pairs must be > 0")
