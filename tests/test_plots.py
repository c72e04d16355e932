"""Each figure function writes a PNG of the stated size and draws what it says, on synthetic data."""

import struct

import numpy as np
import pytest
from matplotlib import colors

from mft_jax.analysis import plots
from mft_jax.errors import ConfigError
from mft_jax.neurons import NeuronLaw

EXPECTED_PIXELS = (round(plots.FIGSIZE[0] * plots.DPI), round(plots.FIGSIZE[1] * plots.DPI))


def _png_size(path):
    """(width, height) from the PNG header (IHDR chunk)."""
    with open(path, "rb") as file:
        header = file.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def _assert_png(path):
    assert path.stat().st_size > 5000  # a blank 750x600 PNG is ~2 kB; a drawn figure is larger
    assert _png_size(path) == EXPECTED_PIXELS


def _grid_law(points=41):
    """A grid quadrature of the 4-lobed 'clover' density exp(-|w|^2/2 + 2 (w1 w2)^2 e^{-|w|^2/4}) in d = 2."""
    axis = np.linspace(-3.0, 3.0, points)
    w = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    log_weight = -0.5 * np.sum(w**2, axis=1) + 2.0 * (w[:, 0] * w[:, 1]) ** 2 * np.exp(-0.25 * np.sum(w**2, axis=1))
    return NeuronLaw(w.astype(np.float32), log_weight.astype(np.float32))


def test_neuron_density_of_a_grid_law_is_a_normalised_image(tmp_path):
    law = _grid_law()
    rng = np.random.default_rng(0)
    neurons = rng.normal(size=(300, 2))
    figure = plots.neuron_density(law, neurons=neurons, path=tmp_path / "density.png")
    _assert_png(tmp_path / "density.png")
    ax = figure.axes[0]
    density = np.asarray(ax.collections[0].get_array()).reshape(41, 41)
    cell = (6.0 / 40) ** 2
    np.testing.assert_allclose(density.sum() * cell, 1.0, rtol=1e-5)  # weights / cell area: integrates to 1 (float32 weights)
    assert ax.get_xlabel() == "$w_{1}$" and ax.get_ylabel() == "$w_{2}$"
    assert len(figure.axes) == 2  # the colourbar
    assert "N = 300" in ax.get_legend().get_texts()[0].get_text()


def test_neuron_density_of_particles_is_a_weighted_histogram(tmp_path):
    rng = np.random.default_rng(1)
    law = NeuronLaw(rng.normal(size=(2000, 3)).astype(np.float32), rng.normal(size=2000).astype(np.float32))
    figure = plots.neuron_density(law, dims=(0, 2), bins=30, log=True, path=tmp_path / "particles.png")
    _assert_png(tmp_path / "particles.png")
    ax = figure.axes[0]
    assert isinstance(ax.collections[0].norm, colors.LogNorm)
    assert ax.get_ylabel() == "$w_{3}$"
    with pytest.raises(ConfigError, match="dims"):
        plots.neuron_density(law, dims=(0, 3))


def test_foreground_vs_background(tmp_path):
    rng = np.random.default_rng(2)
    background = NeuronLaw(rng.normal(size=(5000, 2)).astype(np.float32), rng.normal(size=5000).astype(np.float32))
    foreground = NeuronLaw.from_samples(rng.normal(size=(400, 2)).astype(np.float32) + 1.0)
    figure = plots.foreground_vs_background(background, foreground, max_points=1000, path=tmp_path / "clouds.png")
    _assert_png(tmp_path / "clouds.png")
    scatters = figure.axes[0].collections
    assert [len(s.get_offsets()) for s in scatters] == [1000, 400]  # weighted: 1000 draws; equal weights: itself
    assert colors.same_color(scatters[0].get_facecolor()[0][:3], colors.to_rgb(plots.BACKGROUND_COLOR))
    assert colors.same_color(scatters[1].get_facecolor()[0][:3], colors.to_rgb(plots.FOREGROUND_COLOR))


def test_distance_vs_width_shows_the_fitted_exponent(tmp_path):
    widths = np.array([32, 64, 128, 256, 512])
    distances = 2.0 * widths**-0.5
    figure = plots.distance_vs_width(widths, distances, 0.05 * distances, noise_floor=0.01, path=tmp_path / "width.png")
    _assert_png(tmp_path / "width.png")
    ax = figure.axes[0]
    texts = [text.get_text() for text in ax.get_legend().get_texts()]
    assert any("-0.50" in text for text in texts) and "noise floor" in texts
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"


def test_phase_diagram_and_order_parameter_curve(tmp_path):
    coupling = np.linspace(0.5, 2.0, 30)
    temperature = np.linspace(0.1, 1.0, 20)
    order = np.tanh(5 * (coupling[None, :] - 1.0 - 0.5 * temperature[:, None])).clip(0)
    figure = plots.phase_diagram(coupling, temperature, order, xlabel="coupling $c$", ylabel="temperature $T$",
                                 value_label=r"$\langle q \rangle$", levels=[0.5], path=tmp_path / "phase.png")
    _assert_png(tmp_path / "phase.png")
    assert figure.axes[1].get_ylabel() == r"$\langle q \rangle$"
    with pytest.raises(ConfigError, match="shape"):
        plots.phase_diagram(coupling, temperature, order.T, xlabel="c", ylabel="T", value_label="q")

    figure = plots.order_parameter_curve(coupling, order[0], 0.02 + 0 * coupling, xlabel="coupling $c$",
                                         ylabel=r"$\langle q \rangle$", label="theory", critical=1.05)
    plots.order_parameter_curve(coupling, order[0] + 0.03, xlabel="coupling $c$", ylabel=r"$\langle q \rangle$",
                                label="network", ax=figure.axes[0], path=tmp_path / "order.png")
    _assert_png(tmp_path / "order.png")
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == ["critical point", "theory", "network"]


def test_histograms_are_normalised(tmp_path):
    rng = np.random.default_rng(3)
    samples = rng.normal(size=3000)
    weighted = (rng.normal(size=3000), np.exp(rng.normal(size=3000)))
    x = np.linspace(-4, 4, 200)
    figure = plots.histograms({"network": samples, "importance": weighted}, xlabel="$w_1$",
                              theory={"theory": (x, np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi))}, path=tmp_path / "hist.png")
    _assert_png(tmp_path / "hist.png")
    ax = figure.axes[0]
    for patch in ax.patches[:2]:  # stepfilled histograms: one polygon each, area 1 (density=True)
        vertices = patch.get_xy()
        area = 0.5 * abs(np.dot(vertices[:, 0], np.roll(vertices[:, 1], 1)) - np.dot(vertices[:, 1], np.roll(vertices[:, 0], 1)))
        np.testing.assert_allclose(area, 1.0, rtol=1e-6)  # float64 histogram arithmetic
    assert ax.get_ylabel() == "density"


def test_benchmark_figure_helpers_write_json_and_the_figures_it_draws(tmp_path):
    """``io.write_results`` writes the JSON, then the figures ``make_figures`` draws from it; ``save_figure`` makes the
    folder and closes the figure; ``figure_redrawer`` names a --quick run's figure NAME_quick.png."""
    import json

    from mft_jax import io

    plt = io.pyplot()
    drawn, numbers = [], []

    def plot(results, path):
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot(results["x"], results["y"])
        numbers.append(fig.number)
        drawn.append(io.save_figure(fig, path, dpi=100))

    make_figures = io.figure_redrawer("toy", plot)
    paths = io.write_results(tmp_path / "results" / "toy.json", {"x": [0, 1, 2], "y": [1.0, 0.0, 2.0]}, make_figures, tmp_path / "figs")
    assert json.loads((tmp_path / "results" / "toy.json").read_text())["y"] == [1.0, 0.0, 2.0]
    assert paths == drawn == [tmp_path / "figs" / "toy.png"] and _png_size(paths[0]) == (300, 200)
    assert numbers[0] not in plt.get_fignums()  # closed
    assert make_figures({"quick": True, "x": [0, 1], "y": [0, 1]}, tmp_path / "figs") == [tmp_path / "figs" / "toy_quick.png"]
