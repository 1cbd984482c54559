"""Keras 3 (torch backend) with TrackmuxCallback: a real ``fit()`` with validation, batch
logs every 2 batches and epoch logs on one step axis."""

from __future__ import annotations

from _framework_runs import Scripts, by_step, offline_run, wandb_run
from trackmux import JobStatus

FIT = """
    import numpy as np
    import keras
    import trackmux
    from trackmux.integrations.keras import TrackmuxCallback

    keras.utils.set_random_seed(0)
    trackmux.init(name="tiny-keras", config={"units": 8})
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    model.fit(x, x.sum(axis=1), epochs=2, batch_size=8, validation_split=0.25, verbose=0,
              callbacks=[TrackmuxCallback(log_every=2)])
"""


def test_fit_logs_batches_and_epochs_on_one_step_axis(scripts: Scripts) -> None:
    scripts.run(FIT)
    stored = offline_run(scripts.data_dir)
    assert stored["state"] == JobStatus.FINISHED
    assert stored["config"]["units"] == 8  # from init, kept when fit added its own
    assert stored["config"]["epochs"] == 2 and stored["config"]["steps"] == 3
    assert stored["config"]["optimizer"] == "Adam"
    assert stored["config"]["model/num_parameters"] == 4 * 8 + 8 + 8 + 1

    steps = by_step(stored["rows"])
    assert sorted(s for s in steps if "batch/loss" in steps[s]) == [2, 4, 6]
    assert sorted(s for s in steps if "epoch/loss" in steps[s]) == [3, 6]
    assert {"epoch/val_loss", "epoch/mae", "epoch/val_mae", "epoch/epoch",
            "epoch/learning_rate"} <= set(steps[3])
    assert steps[6]["epoch/epoch"] == 1
    assert abs(steps[3]["epoch/learning_rate"] - 0.01) < 1e-9

    remote = wandb_run(scripts.fake, stored["id"])
    assert remote["state"] == "finished" and remote["name"] == "tiny-keras"
    assert remote["config"] == stored["config"]
    assert by_step(remote["rows"]) == steps
