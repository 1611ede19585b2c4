"""S2D video teacher: names and shapes of the published checkpoints, safe strict loading, the forward pass.

Full-size checks are limited to construction, keys and a save / load round trip; everything that runs the
network uses the small configuration with random values in every tensor (0/1 initial values and
``fovea.smooth`` perturbed, as the spec advises, so that a wrong norm or a wrong smoothing cannot hide).
"""

from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from liser.models.mobilefacenet import UNUSED_STAGES, MobileFaceNet
from liser.models.s2d import S2D, S2DConfig, pad_clip, preprocess_clip, preprocess_frames
from liser.models.s2d_checkpoint import (
    CheckpointMismatchError,
    UnsafeCheckpointError,
    load_mobilefacenet,
    load_s2d,
    load_s2d_checkpoint,
    map_static_keys,
    s2d_state_dict_from_checkpoint,
    save_s2d,
)

torch.set_num_threads(1)


# --- the spec's table ------------------------------------------------------------------------------------------


def spec_state_dict_shapes(classes: int = 7) -> dict[str, tuple[int, ...]]:
    """Every key and shape of the spec's state-dict table, for the full-size network."""
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, 768),
        "pos_embed": (1, 197, 768),
        "temporal_embedding": (1, 16, 768),
        "patch_embed.proj.weight": (768, 3, 16, 16),
        "patch_embed.proj.bias": (768,),
        "patch_embed_prompt.proj.weight": (768, 128, 1, 1),
        "patch_embed_prompt.proj.bias": (768,),
    }
    for i in range(12):
        shapes |= {f"prompt_norms.{i}.weight": (768,), f"prompt_norms.{i}.bias": (768,)}
    for i in range(12):
        p = f"prompt_blocks.{i}."
        shapes |= {
            p + "conv0_0.weight": (8, 768, 1, 1),
            p + "conv0_0.bias": (8,),
            p + "conv0_1.weight": (8, 768, 1, 1),
            p + "conv0_1.bias": (8,),
            p + "conv1x1.weight": (768, 8, 1, 1),
            p + "conv1x1.bias": (768,),
            p + "fovea.smooth": (1,),
            p + "TMA.T_Adapter.D_fc1.weight": (192, 768),
            p + "TMA.T_Adapter.D_fc1.bias": (192,),
            p + "TMA.T_Adapter.D_fc2.weight": (768, 192),
            p + "TMA.T_Adapter.D_fc2.bias": (768,),
            p + "TMA.T_Adapter.attn.qkv.weight": (576, 192),
            p + "TMA.T_Adapter.attn.proj.weight": (192, 192),
            p + "TMA.T_Adapter.attn.proj.bias": (192,),
            p + "TMA.norm.weight": (768,),
            p + "TMA.norm.bias": (768,),
            p + "TMA.S_Adapter.D_fc1.weight": (192, 768),
            p + "TMA.S_Adapter.D_fc1.bias": (192,),
            p + "TMA.S_Adapter.D_fc2.weight": (768, 192),
            p + "TMA.S_Adapter.D_fc2.bias": (768,),
        }
    for i in range(12):
        p = f"blocks.{i}."
        shapes |= {
            p + "norm1.weight": (768,),
            p + "norm1.bias": (768,),
            p + "attn.qkv.weight": (2304, 768),
            p + "attn.qkv.bias": (2304,),
            p + "attn.proj.weight": (768, 768),
            p + "attn.proj.bias": (768,),
            p + "norm2.weight": (768,),
            p + "norm2.bias": (768,),
            p + "mlp.fc1.weight": (3072, 768),
            p + "mlp.fc1.bias": (3072,),
            p + "mlp.fc2.weight": (768, 3072),
            p + "mlp.fc2.bias": (768,),
        }
    shapes |= {
        "ln_post.weight": (768,),
        "ln_post.bias": (768,),
        "head.fc_cls.weight": (classes, 768),
        "head.fc_cls.bias": (classes,),
    }
    return shapes


# --- helpers ---------------------------------------------------------------------------------------------------


def randomize_(module: torch.nn.Module, seed: int) -> None:
    """Random values in every floating tensor; 0/1-initialised ones and ``fovea.smooth`` moved well off their init."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict(keep_vars=True).items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype)
            if name.endswith("fovea.smooth"):
                tensor.copy_(2.0 + 13.0 * torch.rand(tensor.shape, generator=generator, dtype=tensor.dtype))
            elif name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator, dtype=tensor.dtype))
            elif tensor.ndim <= 1:  # norms, biases, PReLU slopes
                tensor.add_(0.3 * noise)
            else:
                tensor.add_(0.05 * noise)


def random_clips(config: S2DConfig, batch: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, 3, config.frames, config.image_size, config.image_size)
    return torch.randn(shape, generator=generator, dtype=dtype)


def published_layout(state: dict[str, torch.Tensor]) -> dict:
    """What the fine-tuned S2D files hold."""
    return {
        "model": state,
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
        "epoch": 24,
        "scaler": {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 120},
        "args": argparse.Namespace(model="s2d", nb_classes=7, num_frames=16, lr=1e-3, data_set="FERV39k"),
    }


class CustomObject:
    """A class that safe loading must not build."""

    def __init__(self) -> None:
        self.value = 3


class Payload:
    """Pickles as a call to ``os.system``: loading it unsafely would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def full_model() -> S2D:
    return S2D(S2DConfig.full())


@pytest.fixture(scope="module")
def small() -> S2D:
    """The small network, random everywhere, float64, eval mode."""
    model = S2D(S2DConfig.small())
    randomize_(model, seed=1)
    randomize_(model.landmark, seed=2)
    return model.double().eval()


# --- full size: names, shapes, count, strict round trip ----------------------------------------------------------


def test_full_size_has_exactly_the_spec_keys_and_shapes(full_model: S2D) -> None:
    state = full_model.state_dict()
    expected = spec_state_dict_shapes()
    assert len(expected) == 419
    assert len(state) == 419
    assert {key: tuple(tensor.shape) for key, tensor in state.items()} == expected
    assert not full_model.pos_embed.requires_grad  # frozen, still saved
    assert full_model.prompt_blocks[3].fovea.smooth.item() == 10.0
    assert full_model.blocks[0].norm1.eps == 1e-6 and full_model.prompt_blocks[0].TMA.norm.eps == 1e-5
    assert full_model.config.landmark_size == 112


def test_full_size_parameter_count(full_model: S2D) -> None:
    implied = sum(int(np.prod(shape)) for shape in spec_state_dict_shapes().values())
    count = sum(tensor.numel() for tensor in full_model.state_dict().values())
    print(f"full-size S2D (C = 7): {count:,} parameters ({count / 1e6:.4f} M), {len(full_model.state_dict())} tensors")
    assert count == implied
    assert abs(count / 1e6 - 95.06) < 0.01
    assert sum(p.numel() for p in full_model.parameters()) == count  # the landmark branch is not among them


def test_full_size_published_layout_round_trip(full_model: S2D, tmp_path: Path) -> None:
    path = tmp_path / "s2d_ferv39k.pth"
    torch.save(published_layout(full_model.state_dict()), path)
    fresh = S2D(S2DConfig.full())
    info = load_s2d_checkpoint(path, fresh)
    assert info.layout == "fine-tuned" and info.epoch == 24 and info.args["data_set"] == "FERV39k"
    assert info.initialised == ()
    for key, tensor in full_model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], tensor), key


# --- strict and safe loading --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda state: state.pop("blocks.1.mlp.fc2.bias"), ["missing key 'blocks.1.mlp.fc2.bias'"]),
        (
            lambda state: state.__setitem__("head.fc_cls.weight", torch.zeros(11, 96)),
            ["mis-shaped key 'head.fc_cls.weight'", "(11, 96)", "(7, 96)"],
        ),
        (lambda state: state.__setitem__("decoder.weight", torch.zeros(3)), ["unexpected key 'decoder.weight'"]),
    ],
    ids=["missing", "mis-shaped", "unexpected"],
)
def test_mismatched_checkpoint_is_refused_naming_the_key(tmp_path: Path, change, named: list[str]) -> None:
    source = S2D(S2DConfig.small())
    state = dict(source.state_dict())
    change(state)
    path = tmp_path / "bad.pth"
    torch.save(published_layout(state), path)
    target = S2D(S2DConfig.small())
    before = {key: tensor.clone() for key, tensor in target.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as refused:
        load_s2d_checkpoint(path, target)
    for text in named:
        assert text in str(refused.value)
    assert all(torch.equal(target.state_dict()[key], tensor) for key, tensor in before.items())  # nothing loaded


def test_arbitrary_objects_are_refused_and_never_run(tmp_path: Path) -> None:
    state = S2D(S2DConfig.small()).state_dict()
    custom = tmp_path / "custom.pth"
    torch.save({**published_layout(state), "extra": CustomObject()}, custom)
    with pytest.raises(UnsafeCheckpointError, match="CustomObject"):
        load_s2d_checkpoint(custom, S2D(S2DConfig.small()))

    marker = tmp_path / "pwned"
    payload = tmp_path / "payload.pth"
    with open(payload, "wb") as handle:
        pickle.dump(Payload(marker), handle, protocol=2)  # a plain pickle, as torch's legacy format
    torch.save({"model": state, "args": Payload(marker)}, tmp_path / "payload_zip.pth")
    for path in (payload, tmp_path / "payload_zip.pth"):
        with pytest.raises(UnsafeCheckpointError, match="system"):
            load_s2d_checkpoint(path, S2D(S2DConfig.small()))
    assert not marker.exists()


def test_published_layout_with_namespace_is_accepted(small: S2D, tmp_path: Path) -> None:
    path = tmp_path / "ok.pth"
    torch.save(published_layout(small.state_dict()), path)
    fresh = S2D(S2DConfig.small()).double()
    info = load_s2d_checkpoint(path, fresh)
    assert info.args["nb_classes"] == 7
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in small.state_dict().items())


def test_static_layout_key_mapping() -> None:
    fabricated = {
        "norm.weight": torch.ones(4),
        "norm.bias": torch.zeros(4),
        "blocks.0.norm1.weight": torch.ones(4),
        "landmark.conv1.conv.weight": torch.zeros(64, 3, 3, 3),
        "landmark_feats.proj": torch.zeros(2),
        "cls_token": torch.zeros(1, 1, 4),
    }
    assert set(map_static_keys(fabricated)) == {"ln_post.weight", "ln_post.bias", "blocks.0.norm1.weight", "cls_token"}
    with pytest.raises(CheckpointMismatchError, match="ln_post.weight"):
        map_static_keys({"norm.weight": torch.ones(4), "ln_post.weight": torch.ones(4)})

    prefixed = {"module." + key: tensor for key, tensor in fabricated.items()}
    for checkpoint in ({"model_state_dict": fabricated}, {"model": prefixed, "epoch": 3}):
        state, layout = s2d_state_dict_from_checkpoint(checkpoint)
        assert layout == "static" and "ln_post.weight" in state and "norm.weight" not in state


def test_static_layout_checkpoint_loads(small: S2D, tmp_path: Path) -> None:
    state = small.state_dict()
    static = {("norm." + k[len("ln_post.") :] if k.startswith("ln_post.") else k): v for k, v in state.items()}
    static |= {"landmark.conv1.conv.weight": torch.zeros(64, 3, 3, 3), "landmark.conv1.bn.weight": torch.ones(64)}
    path = tmp_path / "affectnet.pth"
    torch.save({"model_state_dict": static, "epoch": 7}, path)
    fresh = S2D(S2DConfig.small()).double()
    assert load_s2d_checkpoint(path, fresh).layout == "static"
    assert torch.equal(fresh.ln_post.weight, small.ln_post.weight)

    # an image model lacks the temporal parts: refused unless the caller names them
    image_only = {k: v for k, v in static.items() if k != "temporal_embedding" and ".TMA." not in k}
    torch.save({"model_state_dict": image_only}, path)
    with pytest.raises(CheckpointMismatchError, match="missing key 'temporal_embedding'"):
        load_s2d_checkpoint(path, S2D(S2DConfig.small()))
    temporal_parts = ("temporal_embedding", "prompt_blocks.*.TMA.*")
    info = load_s2d_checkpoint(path, S2D(S2DConfig.small()), allow_missing=temporal_parts)
    assert "temporal_embedding" in info.initialised and "prompt_blocks.2.TMA.norm.bias" in info.initialised


def test_mobilefacenet_file_loads_skipping_unused_stages(tmp_path: Path) -> None:
    source = MobileFaceNet()
    randomize_(source, seed=3)
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    unused = {
        "conv_45.conv.conv.weight": torch.zeros(512, 128, 1, 1),
        "conv_5.model.0.project.bn.weight": torch.ones(128),
        "conv_6_sep.conv.weight": torch.zeros(512, 128, 1, 1),
        "output_layer.linear.weight": torch.zeros(136, 512),
    }
    path = tmp_path / "mobilefacenet_model_best.pth.tar"
    torch.save({"state_dict": state | unused, "epoch": 50, "best_nme": 0.03}, path)
    target = MobileFaceNet()
    assert set(load_mobilefacenet(path, target)) == set(unused)
    assert {key.split(".")[0] for key in unused} == set(UNUSED_STAGES)
    for key, tensor in state.items():
        assert torch.equal(target.state_dict()[key], tensor), key

    torch.save({"state_dict": {k: v for k, v in state.items() if k != "conv_4.model.5.project.conv.weight"}}, path)
    with pytest.raises(CheckpointMismatchError, match="missing key 'conv_4.model.5.project.conv.weight'"):
        load_mobilefacenet(path, MobileFaceNet())
    torch.save({"state_dict": state | {"conv_6_dw.conv.weight": torch.zeros(512, 1, 7, 7)}}, path)
    with pytest.raises(CheckpointMismatchError, match="unexpected key 'conv_6_dw.conv.weight'"):
        load_mobilefacenet(path, MobileFaceNet())


def test_safetensors_round_trip(small: S2D, tmp_path: Path) -> None:
    path = tmp_path / "teacher.safetensors"
    save_s2d(path, small, classes=list("ABCDEFG"), epochs=3)
    loaded, classes, info = load_s2d(path)
    assert classes == list("ABCDEFG") and info == {"epochs": 3} and loaded.config == small.config
    assert len(loaded.state_dict()) == len(small.state_dict())
    clips = random_clips(small.config, 2, seed=5)
    assert torch.equal(loaded.double()(clips), small(clips))  # landmark branch restored too

    from safetensors.torch import save_file

    save_file({"cls_token": torch.zeros(1)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointMismatchError, match="not a LiSER S2D checkpoint"):
        load_s2d(tmp_path / "foreign.safetensors")


# --- MobileFaceNet -------------------------------------------------------------------------------------------


def test_mobilefacenet_shape_names_and_frozen() -> None:
    model = MobileFaceNet()
    frames = torch.randn(2, 3, 112, 112, requires_grad=True)
    maps = model(frames)
    assert maps.shape == (2, 128, 14, 14) and maps.grad_fn is None
    assert model(torch.randn(1, 3, 56, 56)).shape == (1, 128, 7, 7)
    keys = set(model.state_dict())
    for key in (
        "conv1.conv.weight",
        "conv1.prelu.weight",
        "conv2_dw.bn.running_mean",
        "conv_23.conv.conv.weight",
        "conv_23.conv_dw.prelu.weight",
        "conv_23.project.bn.running_var",
        "conv_3.model.3.conv_dw.conv.weight",
        "conv_34.project.conv.weight",
        "conv_4.model.5.project.bn.weight",
    ):
        assert key in keys, key
    assert model.state_dict()["conv_23.conv_dw.conv.weight"].shape == (128, 1, 3, 3)
    assert model.state_dict()["conv_34.conv.conv.weight"].shape == (256, 64, 1, 1)
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.train().training and not any(m.training for m in model.modules())


# --- the forward pass on the small random network -----------------------------------------------------------------


def reference_forward(
    state: dict[str, torch.Tensor], c: S2DConfig, clips: torch.Tensor, maps: torch.Tensor
) -> torch.Tensor:
    """A literal reading of the spec's forward pass on raw tensors (no timm, 1×1 convs on spatial maps)."""
    batch, _, frames, size, _ = clips.shape
    n, width, g = batch * frames, c.width, c.grid

    def norm(x, name, eps=1e-6):
        return F.layer_norm(x, (width,), state[name + ".weight"], state[name + ".bias"], eps)

    def linear(x, name):
        return F.linear(x, state[name + ".weight"], state.get(name + ".bias"))

    def conv1x1(tokens, name):
        grid = tokens.transpose(1, 2).reshape(n, -1, g, g)
        return F.conv2d(grid, state[name + ".weight"], state[name + ".bias"]).flatten(2).transpose(1, 2)

    def attention(x, name, heads):
        rows, length, w = x.shape
        q, k, v = linear(x, name + ".qkv").view(rows, length, 3, heads, w // heads).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-1, -2) * (w // heads) ** -0.5, dim=-1)
        return linear((weights @ v).transpose(1, 2).reshape(rows, length, w), name + ".proj")

    def prompt_block(i, img, lmk):
        p = f"prompt_blocks.{i}."
        u = conv1x1(img, p + "conv0_0")
        fovea = torch.softmax(state[p + "fovea.smooth"] * u, dim=1) * u
        spatial = conv1x1(fovea + conv1x1(lmk, p + "conv0_1"), p + "conv1x1")
        hidden = F.gelu(linear(img, p + "TMA.T_Adapter.D_fc1")).view(batch, frames, g * g, -1)
        across_time = torch.stack(
            [
                linear(
                    attention(hidden[b].transpose(0, 1), p + "TMA.T_Adapter.attn", c.adapter_heads),
                    p + "TMA.T_Adapter.D_fc2",
                ).transpose(0, 1)
                for b in range(batch)
            ]
        ).reshape(n, g * g, width)
        bottleneck = F.gelu(linear(norm(across_time, p + "TMA.norm", 1e-5), p + "TMA.S_Adapter.D_fc1"))
        temporal = linear(bottleneck, p + "TMA.S_Adapter.D_fc2")
        return spatial, temporal

    images = clips.permute(0, 2, 1, 3, 4).reshape(n, 3, size, size)
    x = F.conv2d(images, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=c.patch_size)
    x = x.flatten(2).transpose(1, 2)
    a = F.conv2d(
        maps.reshape(n, -1, g, g), state["patch_embed_prompt.proj.weight"], state["patch_embed_prompt.proj.bias"]
    )
    a = a.flatten(2).transpose(1, 2)
    s, t = prompt_block(0, norm(x, "prompt_norms.0"), norm(a, "prompt_norms.0"))
    x, a = x + t + s, s
    x = torch.cat([state["cls_token"].expand(n, 1, width), x], dim=1) + state["pos_embed"]
    x = x + state["temporal_embedding"][0].repeat(batch, 1)[:, None, :]  # row b·T + t gets temporal_embedding[t]
    for i in range(c.depth):
        if i >= 1:
            s, t = prompt_block(i, norm(x, f"prompt_norms.{i - 1}")[:, 1:], norm(a, "prompt_norms.0"))
            a = s
            x = torch.cat([x[:, :1], x[:, 1:] + t + s], dim=1)
        p = f"blocks.{i}."
        x = x + attention(norm(x, p + "norm1"), p + "attn", c.heads)
        x = x + linear(F.gelu(linear(norm(x, p + "norm2"), p + "mlp.fc1")), p + "mlp.fc2")
    x = norm(x, "ln_post")
    return linear(x[:, 0].reshape(batch, frames, width).mean(dim=1), "head.fc_cls")


def test_forward_matches_a_literal_reading_of_the_spec(small: S2D) -> None:
    clips = random_clips(small.config, 2, seed=6)
    maps = small.landmark_features(clips)
    expected = reference_forward(small.state_dict(), small.config, clips, maps)
    torch.testing.assert_close(small(clips, maps), expected, rtol=1e-9, atol=1e-9)
    assert not torch.allclose(expected, torch.zeros_like(expected))


def test_landmark_branch_input_and_order(small: S2D) -> None:
    c = small.config
    clips = random_clips(c, 2, seed=7)
    maps = small.landmark_features(clips)
    assert maps.shape == (2, c.frames, 128, c.grid, c.grid)
    frame = F.interpolate(clips[1, :, 5][None], size=(c.landmark_size,) * 2, mode="bilinear", align_corners=True)
    torch.testing.assert_close(maps[1, 5], small.landmark(frame)[0])
    torch.testing.assert_close(small(clips), small(clips, maps))
    assert "landmark" not in "".join(small.state_dict()) and small.landmark.conv1.conv.weight.dtype == torch.float64


def test_last_prompt_norm_has_no_effect(small: S2D) -> None:
    model = S2D(small.config).double().eval()
    model.load_state_dict(small.state_dict())
    object.__setattr__(model, "_landmark", small.landmark)
    clips = random_clips(small.config, 2, seed=8)
    before = model(clips)
    last = model.prompt_norms[-1]
    with torch.no_grad():
        last.weight.normal_(), last.bias.normal_()
    assert torch.equal(model(clips), before)
    with torch.no_grad():
        model.prompt_norms[0].weight.normal_()
    assert not torch.allclose(model(clips), before)  # the test can see a norm that is used


def test_outputs_do_not_depend_on_batch_order_or_company(small: S2D) -> None:
    clips = random_clips(small.config, 3, seed=9)
    logits = small(clips)
    order = torch.tensor([2, 0, 1])
    torch.testing.assert_close(small(clips[order]), logits[order], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(small(clips[1:2]), logits[1:2], rtol=1e-10, atol=1e-10)


def test_frame_order_matters_only_through_temporal_embedding(small: S2D) -> None:
    model = S2D(small.config).double().eval()
    model.load_state_dict(small.state_dict())
    object.__setattr__(model, "_landmark", small.landmark)
    clips = random_clips(small.config, 2, seed=10)
    order = torch.randperm(small.config.frames, generator=torch.Generator().manual_seed(0))
    shuffled = clips[:, :, order]
    assert not torch.allclose(model(shuffled), model(clips))
    with torch.no_grad():  # frames and their temporal embeddings permuted together: the same clip
        model.temporal_embedding.copy_(small.temporal_embedding[:, order])
    torch.testing.assert_close(model(shuffled), small(clips), rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        model.temporal_embedding.zero_()
    torch.testing.assert_close(model(shuffled), model(clips), rtol=1e-10, atol=1e-10)


def test_eval_outputs_finite_and_probabilities_sum_to_one(small: S2D) -> None:
    clips = random_clips(small.config, 2, seed=11)
    probabilities = small.predict_proba(clips)
    assert probabilities.shape == (2, 7) and torch.isfinite(small(clips)).all()
    torch.testing.assert_close(probabilities.sum(dim=-1), torch.ones(2, dtype=torch.float64))
    assert torch.equal(small(clips), small(clips))  # eval: dropout off


def test_small_model_trains_a_step() -> None:
    model = S2D(S2DConfig.small()).train()
    clips = random_clips(model.config, 2, seed=12, dtype=torch.float32)
    F.cross_entropy(model(clips), torch.tensor([0, 3])).backward()
    assert model.head.fc_cls.weight.grad is not None and model.pos_embed.grad is None
    assert not any(p.requires_grad for p in model.landmark.parameters()) and not model.landmark.training


# --- preprocessing ----------------------------------------------------------------------------------------------


def test_short_clip_is_padded_with_its_last_frame() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(10, 120, 100, 3), dtype=np.uint8)
    padded = pad_clip(frames, 16)
    assert padded.shape == (16, 120, 100, 3)
    assert np.array_equal(padded[:10], frames) and all(np.array_equal(f, frames[9]) for f in padded[10:])
    assert torch.equal(pad_clip(torch.from_numpy(frames), 16), torch.from_numpy(padded))
    assert pad_clip(frames, 8) is frames

    clip = preprocess_clip(frames, S2DConfig.small())
    assert clip.shape == (3, 16, 112, 112) and clip.dtype == torch.float32
    assert all(torch.equal(clip[:, t], clip[:, 9]) for t in range(10, 16))
    with pytest.raises(ValueError, match="windows"):
        preprocess_clip(np.zeros((17, 8, 8, 3), np.uint8), S2DConfig.small())


def test_preprocessing_normalises_like_imagenet() -> None:
    frames = np.empty((2, 224, 224, 3), np.uint8)
    frames[...] = (200, 100, 50)
    clip = preprocess_frames(frames, 112)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    expected = (torch.tensor([200, 100, 50]) / 255 - mean) / std
    assert clip.shape == (3, 2, 112, 112)
    torch.testing.assert_close(clip[:, 1, 50, 60], expected.float())
    torch.testing.assert_close(preprocess_frames(frames, 224)[:, 0, 0, 0], expected.float())
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frames(frames.astype(np.float32), 224)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="heads"):
        S2DConfig(width=100)
    with pytest.raises(ValueError, match="patch_size"):
        S2DConfig(image_size=100)
    assert S2DConfig.small().landmark_size == 56 and S2DConfig.full(classes=11).classes == 11
