"""spectrum_summary / write_spectrum_report: the library side of ``prunelab spectrum``."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from cases import make_case

from prunelab.curvature import SpectralMeasure, spectrum_summary
from prunelab.errors import PrunelabError
from prunelab.experiments.report.spectrum import write_spectrum_report


def test_summary_numbers_against_dense_and_report_files(tmp_path):
    c = make_case("mlp-ce")
    dense = c.dense_hessian()
    s = spectrum_summary(
        c.model, c.loss_fn, c.batches, num_iters=63, num_runs=6, seed=0, per_layer=True, cache=True
    )
    lam = torch.linalg.eigvalsh(dense)
    assert abs(s.top_eigenvalue - float(lam.max())) <= 1e-8 * float(lam.abs().max())
    assert s.top_residual <= 1e-6 * float(lam.abs().max())
    exact = float(dense.trace())
    assert abs(s.trace.value - exact) < 4 * s.trace.stderr
    assert set(s.layer_traces) == {"0", "2"}
    assert s.dim == 63 and s.num_examples == 12 and s.params == ["0.weight", "2.weight"]
    assert s.settings["num_iters"] == 63 and s.settings["operator"] == "hessian"

    paths = write_spectrum_report(s, tmp_path / "report")
    assert {p.name for p in (tmp_path / "report").iterdir()} == {
        "spectrum.json",
        "ritz.csv",
        "spectral_density.png",
    }
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(paths["json"].read_text())
    mu = SpectralMeasure.from_dict(data["measure"])
    assert torch.equal(mu.nodes, s.measure.nodes) and torch.equal(mu.weights, s.measure.weights)
    assert data["top_eigenvalue"] == s.top_eigenvalue
    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == int(s.measure.lengths.sum())
    first = [r for r in rows if r["run"] == "0"]
    assert abs(sum(float(r["weight"]) for r in first) - 1.0) < 1e-12


def test_summary_with_other_operators_and_bad_operator():
    c = make_case("conv-ce")
    s = spectrum_summary(c.model, c.loss_fn, c.batches, num_iters=5, num_runs=2, operator="ggn")
    assert s.top_eigenvalue > 0 and s.trace.value > 0  # GGN of cross-entropy is PSD
    with pytest.raises(PrunelabError, match="valid choices: hessian, ggn, fisher"):
        spectrum_summary(c.model, c.loss_fn, c.batches, operator="kfac")


def test_report_leaves_no_temporary_files_on_failure(tmp_path, monkeypatch):
    c = make_case("mlp-mse")
    s = spectrum_summary(c.model, c.loss_fn, c.batches, num_iters=4, num_runs=2)
    import prunelab.experiments.report.spectrum as summary_mod

    def broken(_):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(summary_mod, "_plot", broken)
    with pytest.raises(RuntimeError, match="plot failed"):
        write_spectrum_report(s, tmp_path)
    assert not list(tmp_path.glob(".*tmp")) and not (tmp_path / "spectral_density.png").exists()
