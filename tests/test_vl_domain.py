"""The vision-language domain: dual encoders, pair sets, bi-trajectory matching, experts, runs.

Fixtures are written by the test in their real layouts (tests/vl_fixtures.py: JPEGs + Karpathy
JSON / COCO JSON / Flickr8k CSV) and the text encoder is a tiny randomly initialised BERT saved to
a temporary folder. Everything is tiny so the file runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("PIL")

from vl_fixtures import TINY_OPEN_CLIP_CFG, write_coco, write_flickr8k, write_karpathy, write_tiny_bert  # noqa: E402

import mmdd  # noqa: E402
from mmdd.core.errors import ConfigError  # noqa: E402
from mmdd.core.matchers import MATCHERS, MatchingContext  # noqa: E402
from mmdd.core.matchers.trajectory import group_loss  # noqa: E402
from mmdd.core.trajectories import ExpertBuffer  # noqa: E402
from mmdd.domains.vision_language import PairSet, load_vl_data  # noqa: E402
from mmdd.domains.vision_language.configs import BiTMConfig, DualEncoderConfig, LoRAConfig  # noqa: E402
from mmdd.domains.vision_language.matching import bi_groups  # noqa: E402
from mmdd.domains.vision_language.networks import build_dual_encoder, contrastive_loss  # noqa: E402
from mmdd.domains.vision_language.synthetic import pairs_for_budget, split_targets  # noqa: E402
from mmdd.domains.vision_language.training import ContrastiveTask, PairTensors, retrieval  # noqa: E402
from mmdd.experts import generate_experts  # noqa: E402
from mmdd.run import build_matcher, load_config, open_run, setup, stage_plan  # noqa: E402
from fresh_load import load_in_fresh_process  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def bert(tmp_path_factory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("bert") / "model")


def recipe(root: Path, bert: Path, tmp: Path, dataset: dict | None = None, **method) -> dict:
    dataset = dataset or {"name": "flickr8k_csv", "root": str(root), "val_fraction": 0.2, "test_fraction": 0.2}
    return {
        "name": "vl-test", "domain": "vision_language",
        "dataset": {**dataset, "image_size": 8,
                    "text": {"encoder": "hf", "model": str(bert), "pooling": "mean", "cache_dir": str(tmp / "cache")}},
        "network": {"name": "dual_encoder", "depth": 1, "width": 4, "embed_dim": 8},
        "method": {"name": "bitm", "iterations": 4, "syn_steps": 2, "expert_epochs": 1, "max_start_epoch": 2,
                   "lr_inputs": 1.0, "lr_text": 1.0, "lr_sim": 0.1, "lr_lr": 1e-5, **method},
        "budget": {"ipc": 6}, "synthetic": {"learn_lr": True, "lr_init": 0.01},
        "experts": {"dir": str(tmp / "experts"), "num_experts": 2, "epochs": 3, "batch_size": 8},
        "evaluation": {"epochs": 2, "seeds": 2, "baselines": ["random", "full"], "batch_size": 8, "full_epochs": 1},
        "checkpoint": {"every": 2}, "output_dir": str(tmp / "run"),
    }


@pytest.fixture(scope="module")
def flickr(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("flickr8k")
    write_flickr8k(root, n_images=20)
    return root


# --------------------------------------------------------------------------- loaders through recipes


def write_layout(layout: str, root: Path) -> dict:
    """A tiny data set in one of the three pair layouts under ``root``; its recipe ``dataset`` section."""
    if layout == "karpathy":
        write_karpathy(root)
        return {"name": "karpathy", "root": str(root), "json": "dataset_tiny.json"}
    if layout == "coco_captions":
        files = write_coco(root)
        return {"name": "coco_captions", "root": str(root), "annotations": {s: str(p) for s, p in files.items()}}
    write_flickr8k(root, n_images=12)
    return {"name": "flickr8k_csv", "root": str(root)}


@pytest.mark.parametrize("layout", ["karpathy", "coco_captions", "flickr8k_csv"])
def test_each_layout_loads_through_a_recipe(layout, bert, tmp_path):
    root = tmp_path / "data"
    dataset = write_layout(layout, root)
    cfg = load_config(recipe(root, bert, tmp_path, dataset))
    data = load_vl_data(cfg.dataset)
    assert data.train.images.shape[1:] == (3, 8, 8)
    assert data.train.text.shape == (data.train.caption_image.numel(), 32)  # tiny BERT hidden size
    assert data.test.num_images >= 1
    # captions of each image stay with it, and the normalisation is the train split's
    assert len(data.captions["train"]) == data.train.text.shape[0]
    assert torch.allclose(data.train.images.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)


def test_recipes_of_the_domain_validate():
    cfg = load_config("vision_language/flickr8k-bitm-pairs100", ["profile=cpu+lors"])
    assert cfg.method.similarity and cfg.network.name == "dual_encoder" and cfg.dataset.image_size == 32
    with pytest.raises(ConfigError, match="groups"):
        load_config("vision_language/flickr8k-bitm-pairs100", ["method.groups={a: [x]}"])


# --------------------------------------------------------------------------- pieces


def test_contrastive_loss_identity_targets_equal_infonce():
    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(5, 4, generator=g), dim=1)
    txt = torch.nn.functional.normalize(torch.randn(5, 4, generator=g), dim=1)
    plain = contrastive_loss(img, txt, 0.1)
    assert torch.allclose(plain, contrastive_loss(img, txt, 0.1, torch.eye(5)))
    assert not torch.allclose(plain, contrastive_loss(img, txt, 0.1, torch.full((5, 5), 0.2)))


def test_lors_weighted_bce_on_a_hand_computed_case():
    """LoRS' WBCE: BCE of sigmoid(cos/τ) against S, the mean over S > ½ and the mean over the rest averaged."""
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    targets = torch.tensor([[0.9, 0.2], [0.1, 0.7]])
    logits = (img @ txt.t()) / 0.5  # [[1.2, 0], [1.6, 2]]

    def bce(z: float, y: float) -> float:
        p = 1 / (1 + math.exp(-z))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    pos = (bce(1.2, 0.9) + bce(2.0, 0.7)) / 2  # the diagonal: S > ½
    neg = (bce(0.0, 0.2) + bce(1.6, 0.1)) / 2
    assert float(logits[1, 0]) == pytest.approx(1.6)
    assert float(contrastive_loss(img, txt, 0.5, targets, "wbce")) == pytest.approx((pos + neg) / 2, rel=1e-6)
    # without targets (no similarity mining) every kind is the plain InfoNCE
    assert torch.equal(contrastive_loss(img, txt, 0.5, None, "wbce"), contrastive_loss(img, txt, 0.5))
    with pytest.raises(ValueError, match="kind"):
        contrastive_loss(img, txt, 0.5, targets, "bce")


def test_retrieval_recall_on_a_known_case():
    img = torch.eye(3)
    # captions 0,1 → image 0; 2 → image 1; 3 → image 2 (caption 3 scores image 0 higher: an IR miss;
    # for image 2, caption 1 of image 0 scores higher than caption 3: a TR@1 miss)
    txt = torch.tensor([[1.0, 0, 0], [0.9, 0.1, 0.6], [0, 1, 0], [1, 0, 0.5]])
    r = retrieval(img, txt, torch.tensor([0, 0, 1, 2]))
    assert r["ir@1"] == pytest.approx(3 / 4)
    assert r["tr@1"] == pytest.approx(2 / 3)  # image 2's best caption ranks second among the 4
    assert r["ir@5"] == 1.0 and r["tr@5"] == 1.0


def test_similarity_starts_at_identity_and_is_counted_in_storage():
    images, text = torch.randn(10, 3, 4, 4), torch.randn(10, 6)
    plain = PairSet(images, text)
    pair_floats = 3 * 4 * 4 + 6
    n = pairs_for_budget(10, pair_floats, True, rank=2)
    assert n == (10 * pair_floats) // (pair_floats + 5) == 9
    mined = PairSet(images[:n], text[:n], similarity=True, sim_rank=2, gen=torch.Generator().manual_seed(1))
    assert torch.equal(mined.similarity_matrix(), torch.eye(n))
    assert mined.storage_bytes() == 4 * (n * pair_floats + n + 2 * n * 2 + 2)
    assert mined.storage_bytes() <= plain.storage_bytes()
    assert set(mined.param_groups()) == {"inputs", "text", "lr", "sim"}
    _, y = mined.decode()
    t, s = split_targets(y[[4, 1, 7]], 6, n, True)
    assert torch.equal(t, text[[4, 1, 7]]) and torch.equal(s, torch.eye(3))
    # round trip through the tensors a run stores
    again = PairSet.from_tensors(mined.state_dict(), mined.metadata())
    assert torch.equal(again.similarity_matrix(), mined.similarity_matrix())


def test_symmetric_similarity_starts_at_identity_stays_symmetric_and_round_trips():
    gen = torch.Generator().manual_seed(2)
    sym = PairSet(torch.randn(5, 3, 4, 4), torch.randn(5, 6), similarity=True, sim_rank=2, gen=gen,
                  sim_symmetric=True)
    assert torch.equal(sym.similarity_matrix(), torch.eye(5))
    with torch.no_grad():
        sym.sim_right.normal_(generator=gen)  # as after some learning
    s = sym.similarity_matrix()
    assert torch.allclose(s, s.t()) and not torch.allclose(s, torch.eye(5))
    plain = PairSet(sym.images, sym.text, similarity=True, sim_rank=2, gen=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain.sim_right.copy_(sym.sim_right)
        plain.sim_left.copy_(sym.sim_left)
    assert not torch.allclose(plain.similarity_matrix(), plain.similarity_matrix().t())  # the form is not
    assert sym.storage_bytes() == plain.storage_bytes()
    again = PairSet.from_tensors(sym.state_dict(), sym.metadata())
    assert torch.equal(again.similarity_matrix(), s)


def test_groups_are_normalised_independently():
    start = {"image.w": torch.zeros(3), "text.w": torch.zeros(2)}
    target = {"image.w": torch.full((3,), 10.0), "text.w": torch.full((2,), 0.1)}
    final = {"image.w": torch.full((3,), 5.0), "text.w": torch.full((2,), 0.05)}
    members = {"image": ["image.w"], "text": ["text.w"]}
    # each group is halfway: 0.25 + 0.25, however different the scales are
    assert float(group_loss(final, start, target, members)) == pytest.approx(0.5)
    net = build_dual_encoder(DualEncoderConfig(depth=1, width=4, embed_dim=8), (3, 8, 8), 6,
                             torch.Generator().manual_seed(0))
    groups = bi_groups(net)
    assert groups["image"] and all(n.startswith("image.") for n in groups["image"])
    assert groups["text"] == ["text.weight", "text.bias"]


def test_merged_branch_normalisation_divides_the_summed_distances():
    """LoRS' --merge_loss_branches: (Σ_img + Σ_txt distances) / (Σ_img + Σ_txt start distances)."""
    from types import SimpleNamespace

    from mmdd.domains.vision_language.matching import BiTrajectoryMatcher

    start = {"image.w": torch.zeros(3), "text.w": torch.zeros(2)}
    target = {"image.w": torch.full((3,), 10.0), "text.w": torch.full((2,), 0.1)}
    final = {"image.w": torch.full((3,), 5.0), "text.w": torch.full((2,), 0.0)}
    members = {"image": ["image.w"], "text": ["text.w"]}
    groups = {mode: BiTrajectoryMatcher.loss_groups.fget(SimpleNamespace(cfg=BiTMConfig(branch_norm=mode),
                                                                          members=members))
              for mode in ("per_branch", "merged")}
    assert groups["per_branch"] == members and groups["merged"] == {"image+text": ["image.w", "text.w"]}
    assert float(group_loss(final, start, target, groups["per_branch"])) == pytest.approx(0.25 + 1.0)
    merged = (3 * 25 + 2 * 0.01) / (3 * 100 + 2 * 0.01)  # the text branch's scale barely counts
    assert float(group_loss(final, start, target, groups["merged"])) == pytest.approx(merged)


def test_lors_heads_no_image_projection_and_the_residual_text_head():
    pytest.importorskip("timm")
    cfg = DualEncoderConfig(image_encoder="timm", model="vit_tiny_patch16_224", embed_dim=192, image_projection=False,
                            text_head="residual")
    net = build_dual_encoder(cfg, (3, 32, 32), 6, torch.Generator().manual_seed(0))
    assert net.image.proj is None
    head = net.text
    t = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    h = t @ head.project.weight.t() + head.project.bias
    u = h + torch.nn.functional.gelu(h) @ head.fc.weight.t() + head.fc.bias
    expected = (u - u.mean(1, keepdim=True)) / torch.sqrt(u.var(1, unbiased=False, keepdim=True) + 1e-5)
    assert torch.allclose(net.text(t), expected, atol=1e-5)  # LayerNorm starts at weight 1, bias 0
    with pytest.raises(ConfigError, match="embedding \\(192-d\\), but network.embed_dim is 64"):
        build_dual_encoder(DualEncoderConfig(image_encoder="timm", model="vit_tiny_patch16_224", embed_dim=64,
                                             image_projection=False), (3, 32, 32), 6, torch.Generator().manual_seed(0))


def test_lors_recipes_carry_their_scripts_settings():
    flickr100 = load_config("vision_language/flickr30k-lors-pairs100")
    coco500 = load_config("vision_language/coco-lors-pairs500")
    assert (flickr100.method.lr_inputs, flickr100.method.lr_sim, flickr100.method.sim_rank,
            flickr100.method.sim_alpha, flickr100.method.batch_syn) == (100.0, 10.0, 10, 3.0, 20)
    assert flickr100.method.branch_norm == "per_branch" and coco500.method.branch_norm == "merged"
    assert (coco500.method.lr_inputs, coco500.method.lr_sim, coco500.method.sim_rank, coco500.network.temperature) == (
        5000.0, 500.0, 40, 0.1)
    for cfg in (flickr100, coco500):
        assert cfg.method.sim_loss == "wbce" and not cfg.network.image_projection and cfg.network.embed_dim == 2304
    cpu = load_config("vision_language/coco-lors-pairs500", ["profile=cpu"])
    assert cpu.network.image_encoder == "convnet" and cpu.network.image_projection and cpu.method.sim_loss == "infonce"


def _lora_net(encoder: str, tmp_path: Path):
    if encoder == "timm":
        pytest.importorskip("timm")
        cfg = DualEncoderConfig(image_encoder="timm", model="vit_tiny_patch16_224", embed_dim=8,
                                lora=LoRAConfig(enabled=True, rank=2, alpha=4.0))
    else:
        pytest.importorskip("open_clip")
        from open_clip.model import CLIP

        config = tmp_path / "tiny-clip.json"
        config.write_text(json.dumps(TINY_OPEN_CLIP_CFG))
        weights = tmp_path / "tiny-clip.pt"
        torch.save(CLIP(**TINY_OPEN_CLIP_CFG).state_dict(), weights)
        cfg = DualEncoderConfig(image_encoder="open_clip", model=str(config), weights=str(weights), embed_dim=16,
                                lora=LoRAConfig(enabled=True, rank=2, alpha=4.0))
    pytest.importorskip("peft")
    return build_dual_encoder(cfg, (3, 32, 32), 6, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("encoder", ["open_clip", "timm"])
def test_lora_mode_matches_only_adapter_weights(encoder, tmp_path):
    net = _lora_net(encoder, tmp_path)
    groups = bi_groups(net)
    assert groups["image"] and all("lora_" in n for n in groups["image"])
    frozen = [n for n, p in net.named_parameters() if not p.requires_grad]
    assert frozen and not any("lora_" in n for n in frozen)  # the base weights stay frozen
    # experts store only trainable tensors; the matcher moves only the adapters and the text head
    data = PairTensors(torch.randn(8, 3, 32, 32), torch.randn(8, 6), torch.arange(8))
    exp = BiTMConfig(expert_epochs=1, max_start_epoch=1, syn_steps=2, lr_inputs=1.0)
    from mmdd.core.trajectories import ExpertsConfig, rebuild_index, train_expert

    task, root = ContrastiveTask(), tmp_path / "experts"
    train_expert(0, ExpertsConfig(num_experts=1, epochs=2, batch_size=4, augment=False, lr=0.1), root,
                 lambda gen: _lora_net(encoder, tmp_path),
                 lambda net, opt, gen: task.epoch(net, opt, data, 4, gen, None, torch.device("cpu")))
    rebuild_index(root)
    buffer = ExpertBuffer(root)
    assert set(buffer.param_shapes) == set(groups["image"]) | set(groups["text"])
    matcher = MATCHERS.get("bitm").build(exp, MatchingContext(lambda gen: _lora_net(encoder, tmp_path), None,
                                                              torch.device("cpu"), buffer))
    assert matcher.members == groups
    syn = PairSet(data.images[:4], data.text[:4])
    loss = matcher(syn, None, torch.Generator().manual_seed(0))
    loss.backward()
    assert math.isfinite(float(loss.detach())) and syn.images.grad.abs().sum() > 0 and syn.text.grad.abs().sum() > 0


@pytest.mark.parametrize("published", [False, True])
def test_constant_memory_solver_agrees_with_exact(flickr, bert, tmp_path, published):
    lors = {"sim_loss": "wbce", "branch_norm": "merged"} if published else {}
    cfg = load_config(recipe(flickr, bert, tmp_path, similarity=True, sim_rank=2, **lors))
    generate_experts(cfg, progress=False)
    ws = setup(cfg)
    grads = {}
    for solver in ("exact", "constant_memory"):
        cfg.method.solver = solver
        syn = ws.domain.make_synthetic(ws, torch.Generator().manual_seed(0))
        with torch.no_grad():
            syn.sim_right.normal_(0, 0.5, generator=torch.Generator().manual_seed(3))  # S ≠ I, so S's gradient shows
        matcher = build_matcher(ws, stage_plan(cfg, syn)[-1])
        loss = matcher(syn, None, torch.Generator().manual_seed(5))
        loss.backward()
        grads[solver] = (float(loss.detach()), syn.images.grad.clone(), syn.text.grad.clone(), syn.sim_left.grad.clone(),
                         syn.log_lr.grad.clone())
    a, b = grads["exact"], grads["constant_memory"]
    assert a[0] == pytest.approx(b[0], rel=1e-4)
    for x, y in zip(a[1:], b[1:]):
        assert x.abs().sum() > 0 and torch.allclose(x, y, rtol=1e-3, atol=1e-6)


def test_expert_generation_refuses_a_buffer_of_other_settings_or_shorter_experts(flickr, bert, tmp_path):
    cfg = load_config(recipe(flickr, bert, tmp_path))
    cfg.experts.num_experts = 1
    generate_experts(cfg, progress=False)
    other = load_config(recipe(flickr, bert, tmp_path))
    other.experts.lr = cfg.experts.lr * 2
    with pytest.raises(ConfigError, match=r"lr: buffer .* vs recipe"):
        generate_experts(other, progress=False)
    longer = load_config(recipe(flickr, bert, tmp_path))
    longer.experts.epochs = cfg.experts.epochs + 1
    with pytest.raises(ConfigError, match=rf"experts.epochs is {cfg.experts.epochs + 1}"):
        generate_experts(longer, progress=False)


# --------------------------------------------------------------------------- runs


def test_run_resume_equals_uninterrupted_and_show_writes_gallery(flickr, bert, tmp_path):
    raw = recipe(flickr, bert, tmp_path, similarity=True, sim_rank=2)
    cfg = load_config(raw)
    buffer = generate_experts(cfg, progress=False)
    assert buffer.num_epochs == 3 and len(buffer.experts) == 2

    whole = mmdd.distill(raw, output_dir=tmp_path / "whole", progress=False)
    part = mmdd.distill(raw, output_dir=tmp_path / "part", stop_after=2, evaluate=False, progress=False)
    assert part.manifest["status"] == "interrupted"
    resumed = mmdd.distill(raw, output_dir=tmp_path / "part", resume=True, progress=False)
    for k, v in whole.synthetic.state_dict().items():
        assert torch.equal(v, resumed.synthetic.state_dict()[k]), k
    m = whole.manifest
    assert m["budget"] == {**m["budget"], "pairs": 6, "stored_pairs": 5}
    assert m["storage_bytes"] == whole.synthetic.storage_bytes()
    assert set(m["evaluation"]) == {"distilled", "random", "full"}
    res = m["evaluation"]["distilled"]
    assert len(res["values"]) == 2 and set(res["others"]) == {"ir@1", "ir@5", "ir@10", "tr@1", "tr@5", "tr@10"}
    assert all(0.0 <= v <= 1.0 for v in res["values"])

    # the artifact loads back without the run's objects; `mmdd show` renders the gallery
    again = open_run(tmp_path / "whole")
    assert torch.equal(again.synthetic.similarity_matrix(), whole.synthetic.similarity_matrix())
    from mmdd.run import render_samples

    gallery = render_samples(again)[1].gallery
    text = gallery.read_text()
    assert gallery.name == "gallery.html" and text.count("<img") == 5
    assert "item" in text  # real fixture captions ("a red photo, item 3 view 1") next to each image
    assert len(list((tmp_path / "whole" / "gallery").glob("pair_*.png"))) == 5

    info = load_in_fresh_process(tmp_path / "whole")  # image, text embedding, similarity row
    assert info["type"] == "DistilledPairs" and info["seen"] == 5
    assert info["item_shapes"] == [[3, 8, 8], [32], [5]]


def test_predict_refuses_pairs_with_a_clear_error(flickr, bert, tmp_path):
    from mmdd.predict import efficacy_curve

    with pytest.raises(ConfigError, match="no classes"):
        efficacy_curve(recipe(flickr, bert, tmp_path), progress=False)


def test_a_pairs_budget_larger_than_the_images_fails_before_any_work(flickr, bert, tmp_path):
    with pytest.raises(ConfigError, match=r"budget.ipc=500 pairs but the train split has only \d+ images"):
        mmdd.distill(recipe(flickr, bert, tmp_path), ["budget.ipc=500"], output_dir=tmp_path / "no", progress=False)
    assert not (tmp_path / "no").exists()  # refused before the run directory was made


@pytest.mark.parametrize("layout", ["karpathy", "coco_captions", "flickr8k_csv"])
def test_images_from_the_store_equal_the_in_memory_load(layout, bert, tmp_path):
    from mmdd.core.lazy import LazyRows, materialize

    root = tmp_path / "data"
    dataset = write_layout(layout, root)
    if layout == "flickr8k_csv":
        dataset["val_fraction"] = 0.2
    memory = load_vl_data(load_config(recipe(root, bert, tmp_path, dataset)).dataset)
    stored_cfg = {**dataset, "storage": "store", "store_dir": str(tmp_path / "store"), "num_workers": 2}
    stored = load_vl_data(load_config(recipe(root, bert, tmp_path, stored_cfg)).dataset)
    assert isinstance(stored.train.images, LazyRows)
    assert stored.info["mean"] == pytest.approx(memory.info["mean"], abs=1e-6)
    for name in ("train", "val", "test"):
        a, b = getattr(memory, name), getattr(stored, name)
        if a is None:
            assert b is None
            continue
        assert torch.allclose(a.images, materialize(b.images), atol=1e-5)
        assert torch.equal(a.text, b.text) and torch.equal(a.caption_image, b.caption_image)
    assert memory.captions == stored.captions
