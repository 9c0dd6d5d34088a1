"""The settings of the task's scales: the smoke and small models (Fashion-MNIST) and the paper's three models.

Every key is read by ``protocol.case_config``; a grid point overrides the scale's settings (e.g. ``tol``).
``PAIRS`` is the number of alternating timings of a backward against the one-step backward at every scale.
"""

PAIRS = 30

MNIST_LIKE = {
    "classes": 10,
    "latent_layers": 2,
    "data_blocks": 0,
    "pool": 3,
    "contraction": 0.5,
    "max_iter": 50,
    "batch": 100,
    "weight_decay": 0.0,
    "augment": False,
}
# smoke: a stride-3 stem instead of full-resolution convolutions then pooling (a 10x10 latent): Q costs
# little, so the latent solve and its backward, what the methods differ in, dominate the step as in the
# paper's models
SMOKE = {
    **MNIST_LIKE,
    "dataset": "fashion-mnist",
    "channels": 16,
    "data_width": 16,
    "stem_stride": 3,
    "pool": 1,
    "n_train": 2000,
    "n_test": 1000,
    "epochs": 1,  # the epoch's time is what smoke checks (against torchdeq's IFT); accuracy is checked above smoke
    "lr": 3e-3,
}
# gpu-smoke (scripts/gpu_check.sh, one GPU, no network needed): smoke's model on synthetic Fashion-MNIST-shaped
# data (no Debian package, no download there), one epoch on half the images. Each T evaluation is a few kernel
# launches (launch-bound), so a case's work is a few seconds: about 8 cases (10 with torchdeq).
GPU_SMOKE = {**SMOKE, "n_train": 1000, "n_test": 500, "epochs": 1}
SMALL = {
    **MNIST_LIKE,
    "dataset": "fashion-mnist",
    "channels": 32,
    "data_width": 16,
    "n_train": 20000,
    "n_test": 5000,
    "epochs": 5,
    "lr": 1e-3,
}
# The paper's three models (section 5, appendix) and the authors' training scripts (github.com/Typal-Research/
# jacobian_free_backprop: Adam, batch 100, epochs, learning rates, weight decay, CIFAR-10 StepLR(200, 0.5)).
FULL_MODELS = {
    "mnist": {
        **MNIST_LIKE,
        "channels": 32,
        "data_width": 16,
        "tol": 0.1,
        "epochs": 200,
        "lr": 1e-4,
        "n_train": 60000,
        "n_test": 10000,
    },
    "svhn": {
        **MNIST_LIKE,
        "channels": 64,
        "latent_layers": 2,
        "data_width": 64,
        "data_blocks": 3,
        "pool": 4,
        "contraction": 0.9,
        "tol": 1e-4,
        "max_iter": 200,
        "epochs": 100,
        "lr": 1e-4,
        "weight_decay": 2e-4,
        "n_train": 73257,
        "n_test": 26032,
    },
    "cifar10": {
        **MNIST_LIKE,
        "channels": 35,
        "latent_layers": 5,
        "data_width": 35,
        "data_blocks": 8,
        "pool": 4,
        "contraction": 0.5,
        "tol": 0.1,
        "max_iter": 50,
        "epochs": 1000,
        "lr": 1e-3,
        "weight_decay": 1e-3,
        "lr_step": 200,
        "lr_gamma": 0.5,
        "augment": True,
        "n_train": 50000,
        "n_test": 10000,
    },
}
