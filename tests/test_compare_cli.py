"""``mft-jax compare``: two output directories side by side."""

import json

import numpy as np
import pytest

from mft_jax import cli
from mft_jax.io import save_neurons, write_json
from mft_jax.neurons import NeuronLaw


def law_dir(path, w, loss_file=None):
    save_neurons(path / "neurons.npz", NeuronLaw.from_samples(w))
    if loss_file:
        write_json(path / loss_file[0], loss_file[1])
    return str(path)


def test_compare_writes_distances_floors_and_losses(tmp_path, capsys):
    rng = np.random.default_rng(0)
    theory = law_dir(tmp_path / "t", rng.normal(size=(400, 2)).astype(np.float32), ("solution.json", {"loss": 0.25}))
    shifted = law_dir(tmp_path / "e", rng.normal(size=(200, 2)).astype(np.float32) + [1.5, 0.0], ("train.json", {"final_loss_mean": 0.3}))
    assert cli.main(["compare", theory, shifted, "--out", str(tmp_path / "out"), "--repeats", "4"]) == 0
    report = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert report["loss"] == {"theory": 0.25, "empirical": 0.3}
    # A shift of 1.5 prior standard deviations is far outside the sampling noise of 200 neurons.
    for name in ("sliced_wasserstein", "sinkhorn", "energy", "mmd"):
        row = report[name]
        assert row["distance"] > row["noise_floor"] + 5 * row["noise_floor_std"], name
    assert "noise floor" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [(["--symmetry", "mirror"], "--symmetry 'mirror' is unknown"), (["--repeats", "1"], "--repeats must be >= 2")])
def test_compare_bad_arguments_exit_2(tmp_path, capsys, extra, message):
    law = law_dir(tmp_path, np.zeros((4, 2), np.float32))
    assert cli.main(["compare", law, law, "--out", str(tmp_path / "o"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_compare_missing_neurons_exit_2(tmp_path, capsys):
    assert cli.main(["compare", str(tmp_path / "nothing"), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no neuron file" in capsys.readouterr().err
