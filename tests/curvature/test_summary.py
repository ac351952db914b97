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
        "layer_ritz.csv",  # per_layer=True: the per-layer spectra and their plot
        "layer_spectral_density.png",
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


@pytest.mark.parametrize("name", ["mlp-ce", "conv-mse"])
def test_per_layer_spectra_equal_the_dense_diagonal_blocks(name, tmp_path):
    """SLQ per layer against a block-diagonal dense float64 reference.

    With as many Lanczos steps as a block's dimension every chain is exact (or breaks
    down at an invariant subspace, also exact), so each run's measure reproduces every
    moment ``ẑᵀ A_llᵏ ẑ`` of its normalised start vector, its Ritz values with weight
    are eigenvalues of the dense block, its largest Ritz value is the block's largest
    eigenvalue, and the per-run traces ``D_l · Σ τθ`` are ``zᵀ A_ll z`` of the same
    Rademacher starts: the per-layer numbers of the dense block-diagonal matrix.
    """
    from prunelab.curvature.estimate import probe_rows

    c = make_case(name)
    dense = c.dense_hessian()
    s = spectrum_summary(
        c.model, c.loss_fn, c.batches, num_iters=128, num_runs=3, seed=5, per_layer=True,
        cache=True,
    )  # fmt: skip
    names = list(s.layer_spectra)
    assert names == list(s.layer_traces) == [n.rpartition(".")[0] for n in c.names]
    slices, start = [], 0
    for n in c.names:
        k = dict(c.model.named_parameters())[n].numel()
        slices.append(slice(start, start + k))
        start += k
    blocks = [dense[sl, sl] for sl in slices]
    block_diag = torch.block_diag(*blocks)
    ref_eigs = torch.linalg.eigvalsh(block_diag)
    scale = float(ref_eigs.abs().max())
    traces = []
    for layer, A in zip(names, blocks, strict=True):
        ls = s.layer_spectra[layer]
        d = A.shape[0]
        lam = torch.linalg.eigvalsh(A)
        assert ls.dim == d and ls.measure.num_iters == d
        assert abs(ls.top_eigenvalue - float(lam.max())) <= 1e-8 * scale, layer
        z = probe_rows(5, 0, 3, d, torch.float64, torch.device("cpu"))
        zhat = z / z.norm(dim=1, keepdim=True)
        mu = ls.measure
        for r in range(3):
            n = int(mu.lengths[r])
            theta, tau = mu.nodes[r, :n], mu.weights[r, :n]
            Ak = torch.eye(d, dtype=torch.float64)
            for k in range(6):
                want = float(zhat[r] @ Ak @ zhat[r])
                got = float((tau * theta**k).sum())
                assert abs(got - want) <= 1e-8 * scale**k, (layer, r, k)
                Ak = Ak @ A
            seen = theta[tau > 1e-10]
            gap = (seen[:, None] - lam[None, :]).abs().min(1).values
            assert float(gap.max()) <= 1e-7 * scale, layer
        per_run = torch.stack([z[r] @ A @ z[r] for r in range(3)])
        assert abs(ls.trace.value - float(per_run.mean())) <= 1e-9 * scale * d
        assert abs(ls.trace.stderr - float(per_run.std() / 3**0.5)) <= 1e-9 * scale * d
        traces.append(ls.trace.value)
    # the union of the blocks' top eigenvalues is the block-diagonal matrix's top one
    assert abs(max(s.layer_spectra[n].top_eigenvalue for n in names) - float(ref_eigs.max())) <= (
        1e-8 * scale
    )
    z_all = torch.cat(
        [probe_rows(5, 0, 3, b.shape[0], torch.float64, torch.device("cpu")) for b in blocks], 1
    )
    want_total = float(torch.stack([z @ block_diag @ z for z in z_all]).mean())
    assert abs(sum(traces) - want_total) <= 1e-9 * scale * dense.shape[0]

    d = s.to_dict()
    assert set(d["layer_spectra"]) == set(names)
    for layer in names:
        entry = d["layer_spectra"][layer]
        mu = SpectralMeasure.from_dict(entry["measure"])
        assert torch.equal(mu.nodes, s.layer_spectra[layer].measure.nodes)
        assert entry["top_eigenvalue"] == s.layer_spectra[layer].top_eigenvalue
        assert entry["trace"]["value"] == s.layer_spectra[layer].trace.value
    json.dumps(d)  # plain JSON

    paths = write_spectrum_report(s, tmp_path)
    assert paths["layer_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(paths["layer_csv"].open()))
    assert {r["layer"] for r in rows} == set(names)
    assert len(rows) == sum(int(s.layer_spectra[n].measure.lengths.sum()) for n in names)
    assert (
        json.loads(paths["json"].read_text())["layer_spectra"][names[0]]["dim"]
        == blocks[0].shape[0]
    )


def test_without_per_layer_no_layer_files_and_progress_changes_nothing(tmp_path, capsys):
    c = make_case("mlp-mse")
    quiet = spectrum_summary(c.model, c.loss_fn, c.batches, num_iters=6, num_runs=2, cache=True)
    assert quiet.layer_spectra is None and quiet.to_dict()["layer_spectra"] is None
    assert set(write_spectrum_report(quiet, tmp_path)) == {"json", "csv", "png"}
    loud = spectrum_summary(
        c.model, c.loss_fn, c.batches, num_iters=6, num_runs=2, cache=True, progress=True
    )
    assert "Lanczos" in capsys.readouterr().err  # the bar went to stderr
    assert quiet.to_dict() == loud.to_dict()
