"""ZCA whitening (MTT's preprocessing): the transform, and a run that distils in the whitened space."""

from __future__ import annotations

import torch

import mmdd
from mmdd.core.seeding import make_generator
from mmdd.core.zca import ZCA
from mmdd.run import load_config, render_samples, setup


def test_whitening_decorrelates_and_inverts():
    gen = make_generator(0)
    mixing = torch.randn(16, 16, generator=gen)
    images = (torch.randn(4000, 16, generator=gen) @ mixing).view(4000, 1, 4, 4) + 3.0  # correlated pixels
    zca = ZCA.fit(images, epsilon=1e-6)
    white = zca.apply(images).flatten(1)
    cov = white.T @ white / (white.shape[0] - 1)
    torch.testing.assert_close(cov, torch.eye(16), atol=2e-3, rtol=0)  # identity covariance
    torch.testing.assert_close(white.mean(0), torch.zeros(16), atol=1e-4, rtol=0)
    torch.testing.assert_close(zca.invert(zca.apply(images)), images, atol=1e-3, rtol=0)
    torch.testing.assert_close(zca.whiten, zca.whiten.T)  # ZCA, unlike PCA whitening, is symmetric
    strong = ZCA.fit(images, epsilon=10.0).apply(images).flatten(1)  # ε shrinks the small directions' gain
    assert strong.var(0).max() < 1.0


def test_a_whitened_run_distils_in_the_whitened_space_and_renders_pixels(tiny_recipe, tmp_path):
    tiny_recipe["dataset"]["zca"] = True
    tiny_recipe["method"]["iterations"] = 1
    tiny_recipe["method"]["lr_inputs"] = 1e-12  # the set stays its real initialisation: renders must show those images
    ws = setup(load_config(tiny_recipe))
    assert ws.data.info["zca"]["epsilon"] == 0.1 and "zca" in ws.data.transforms
    flat = ws.data.train.inputs.flatten(1)
    cov = flat.T @ flat / (flat.shape[0] - 1)
    assert cov.diagonal().mean() < 1.0  # whitened (ε = 0.1 keeps it below the identity's 1)
    run = mmdd.distill(tiny_recipe, output_dir=tmp_path / "run", progress=False, evaluate=False)
    assert run.manifest["data"]["zca"]["epsilon"] == 0.1
    view, _ = render_samples(run)
    pixels = view.images
    assert pixels.min() >= 0 and pixels.max() <= 1
    plain = tiny_recipe | {"dataset": {"name": "digits"}}
    unwhite = mmdd.distill(plain, output_dir=tmp_path / "plain", progress=False, evaluate=False)
    torch.testing.assert_close(pixels, render_samples(unwhite)[0].images, atol=1e-3, rtol=0)  # same real images
