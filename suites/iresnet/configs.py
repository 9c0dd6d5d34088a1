"""The configurations of ``iresnet``'s scales (``task.py`` declares the scales: grids, policies, timeouts).

Each experiment's settings sit under its name (``density_2d``, ``density_images``, ``classification``); the rest
is shared by the protocol: inversion tolerance and budget, power iterations before evaluation, the probe batch
(inversion, Lipschitz constants, estimator error), draws of the estimator, repeats of the evaluation phase, the
pairs timed against normflows.
"""

from __future__ import annotations

from typing import Any

# the step's working memory: the median of five readings (one step each), their range its spread; the memory
# checks across terms allow for that range (on a CPU a reading can catch heap growth unrelated to the step)
MEMORY_READINGS = 5

COMMON = {
    "exact_max_dim": 16,
    "inverse_tol": 1e-6,
    "inverse_max_iter": 100,
    "lipschitz_iterations": 20,
    "converge_iterations": 50,
    "probe_batch": 256,
    "eval_batch": 500,
    "n_samples": 500,
    # the training step against normflows' in the method's case (protocol.versus_normflows): 6 alternating pairs
    # at a time (the fewest whose range is a 95% interval of their median), more while that interval holds the
    # target (single steps up to 24 pairs, chunks of paired_chunk steps up to 12)
    "paired_rounds": 6,
    "paired_chunk": 5,
}


def _density_2d(blocks: int, width: int, layers: int, steps: int, batch: int, lr: float, n_test: int) -> dict[str, Any]:
    return dict(blocks=blocks, width=width, layers=layers, steps=steps, batch=batch, lr=lr, n_test=n_test,
                power_iterations=1)  # fmt: skip


def _images(stages: list | dict, steps: int, batch: int, n_train: int, n_test: int, lr: float) -> dict[str, Any]:
    return dict(stages=stages, steps=steps, batch=batch, n_train=n_train, n_test=n_test, lr=lr, alpha=0.05,
                power_iterations=1)  # fmt: skip


def _classifier(stages: list | dict, steps: int, batch: int, n_train: int, n_test: int) -> dict[str, Any]:
    return dict(stages=stages, pad_to=16, classes=10, steps=steps, batch=batch, n_train=n_train, n_test=n_test,
                lr=0.1, momentum=0.9, weight_decay=5e-4, power_iterations=1)  # fmt: skip


SMOKE = {
    **COMMON,
    "estimator_draws": 40,
    "eval_repeat": 5,
    "methods_for": {"terms": ["iresnet", "residual_flow"], "c>=1": ["iresnet"]},
    "density_2d": _density_2d(4, 32, 3, 100, 256, 1e-2, 2000),
    "density_images": _images([[2, 16]], 5, 16, 256, 64, 3e-3),
    "classification": _classifier([[1, 16], [1, 32]], 5, 16, 256, 64),
}

SMALL = {
    **COMMON,
    "estimator_draws": 200,
    "eval_repeat": 10,
    # normflows' measured setting: 8 blocks, width 128, batch 256
    "density_2d": _density_2d(8, 128, 3, 3000, 256, 1e-3, 20000),
    "density_images": _images([[2, 32], [2, 32]], 500, 64, 60000, 2000, 3e-3),
    "classification": _classifier([[2, 32], [2, 64]], 1000, 128, 60000, 10000),
}

# scripts/gpu_check.sh on one GPU, no network needed: small's 2-D setting (8 blocks of width 128, batch 256) with
# 100 training steps, 5000 test points and 40 draws of the estimator. Toy 2-D data needs no download. There every
# step is launch-bound (a few thousand small kernels), so a case is a few seconds: 9 cases (fewer without
# FrEIA and normflows).
GPU_SMOKE = {
    **SMALL,
    "estimator_draws": 40,
    "eval_repeat": 5,
    "methods_for": {"c>=1": ["iresnet"]},
    "density_2d": _density_2d(8, 128, 3, 100, 256, 1e-3, 5000),
}

FULL = {
    **COMMON,
    "eval_batch": 200,
    "estimator_draws": 1000,
    "eval_repeat": 20,
    # Residual Flows' 2-D setting: 100 blocks of width 128, Adam 1e-3, 50k iterations, batch 500
    "density_2d": _density_2d(100, 128, 4, 50000, 500, 1e-3, 100000),
    # the paper's CIFAR-10 model: 16-16-16 blocks x 512 channels, Adamax 3e-3, batch 128, 200 epochs;
    # 28x28 images take two scales (28 -> 14 -> 7)
    "density_images": _images(
        {"cifar10": [[16, 512]] * 3, "mnist": [[16, 512]] * 2, "fashion-mnist": [[16, 512]] * 2},
        200 * 390,
        128,
        60000,
        10000,
        3e-3,
    ),
    # the paper's classifier: 7-7-7 blocks, widths 32/64/128, SGD 0.1, batch 128, wd 5e-4, 200 epochs
    "classification": _classifier(
        {
            "cifar10": [[7, 32], [7, 64], [7, 128]],
            "mnist": [[7, 32], [7, 64]],
            "fashion-mnist": [[7, 32], [7, 64]],
        },
        200 * 390,
        128,
        50000,
        10000,
    ),
}
