"""Paper 004's remaining analyses and baselines (limits issue, item 5) on scikit-learn digits.

1. **Hessian-row ℓ1 norms** at the global magnitude thresholds of p = 0 … 99 %
   (:func:`prunelab.limits.hessian_row_norms`, float64, first 512 training examples),
   plain and ℓ1-trained (λ = 5e-5, 004's), training seed 0; the fraction of levels below
   1e-7 (004's threshold) and below 1.28e-5 (004's, rescaled: its code's norm was
   ~1/batch-size = 1/128 of this per-example mean).
2. **TV distance** between the weight-magnitude distributions of 3 independent training
   seeds (:func:`prunelab.limits.compare_runs`: 100 shared log bins + a zero bin), with
   the KS distance and the half-split noise floor; plain and ℓ1.
3. **Weight scaling ×1…×5** (:func:`prunelab.limits.weight_scaling`, curvature held
   fixed): exact GGN spectrum of a small MLP (64-32-10, D = 2,368 < N·(C−1)) over 3
   seeds; certified Lanczos brackets on lenet300 and lenet5 (seed 0). ε = 004's
   batch-std rule. Beside it the trace-only closed form.
4. **Smart-Ratio** (at init, random within layers, trained from scratch) beside
   magnitude, LOMP and IMP at 90 / 95 / 98 %, 3 seeds. Budget: every network trains
   ``EPOCHS`` dense epochs (the same init per seed), then each sparse network gets
   ``EPOCHS − 1`` masked epochs (magnitude and LOMP: fine-tuning after one-shot pruning;
   IMP: retraining from the epoch-1 rewind point in each of its rounds 90 → 95 → 98 %);
   Smart-Ratio: ``EPOCHS`` masked epochs from the initialisation. **Rare Gems**
   (GEM-MINER, :func:`prunelab.procedures.rare_gems`): ``EPOCHS`` score epochs on the
   frozen initialisation (λ = 1e-4, score lr ``GEM_LR``), top-k, then ``EPOCHS`` masked
   epochs from the same initialisation. ``--baselines`` runs only this comparison and
   prints it as mean ± standard error over the seeds.
6. **Threshold vs IMP rounds, with / without ℓ2**: the exact p̂ (α = 1) of the small MLP
   after each of 5 IMP rounds to 98 % (rewind to epoch 1), trained with ℓ2 = 1e-3 on
   the prunable set or without, 3 seeds.

One thread by default. ``--quick`` runs a tiny version (smoke test of the script).

    .venv/bin/python experiments/paper004_analyses.py [--threads 1] [--out runs/paper004_analyses]
    .venv/bin/python experiments/paper004_analyses.py --baselines   # item 4 only, ± s.e.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from pathlib import Path

import torch

import prunelab
from prunelab.limits import compare_runs, hessian_row_norms, tv_distance, weight_scaling
from prunelab.masks import Mask
from prunelab.models.mlp import MLP
from prunelab.models.registry import init_weights
from prunelab.procedures import at_init, density_schedule, rare_gems
from prunelab.prunable import prunable_parameters
from prunelab.scores import score
from prunelab.train import TrainConfig, evaluate, train_model

MODELS = ("fc5", "lenet300", "lenet5")
SEEDS = (0, 1, 2)
SPARSITIES = (0.9, 0.95, 0.98)
EPOCHS = 10  # digits: ~96-97 % dense in 10 cosine epochs
L1 = 5e-5  # 004's λ (its configs); LOMP's dense training
ROW_SAMPLES = 512  # training examples of the Hessian rows
ALPHAS = (1.0, 2.0, 3.0, 4.0, 5.0)
SCALING_SAMPLES = 512
MAX_ITERS = 96  # Lanczos budget per probe (8 probes); a point that did not converge says so
IMP_ROUNDS = 5  # analysis 6: rounds of the exponential density schedule to 98 %
L2 = 1e-3  # analysis 6: ℓ2 penalty on the prunable set ("with ℓ2")
GEM_LAMBDA = 1e-4  # Rare Gems' λ·Σs² (the authors' sample config)
# Rare Gems' score lr: chosen on a validation split (train[:1000] vs train[1000:], seed 0,
# p = 98 %, lenet300 / fc5 / lenet5) from 0.1, 1, 3, 10, 30; the authors' 0.1 (150 CIFAR
# epochs) barely moves the scores in 10 digits epochs (21 steps each)
GEM_LR = 30.0


def mean_sd(v: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (nan for one value)."""
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else math.nan
    return m, sd


def flat_weights(net) -> torch.Tensor:
    """The prunable weights of ``net`` as one flat vector."""
    return torch.cat([p.detach().reshape(-1) for p in prunable_parameters(net).values()])


def small_mlp(data, seed: int):
    """64-32-10 ReLU MLP (D = 2,368): small enough for its exact GGN spectrum."""
    torch.manual_seed(seed)
    return init_weights(MLP(math.prod(data.input_shape), (32,), data.output_dim))


def train_runs(name, data, seed, epochs):
    """Plain and ℓ1 training from one init; the plain run's epoch-1 state for IMP."""
    torch.manual_seed(seed)
    net = prunelab.models.build(name, data) if name != "mlp32" else small_mlp(data, seed)
    init = copy.deepcopy(net)
    rewind = {}

    def keep(row):
        if row["epoch"] == 1:
            rewind.update(copy.deepcopy(net.state_dict()))

    train_model(net, data, TrainConfig(epochs=epochs, seed=seed), callback=keep)
    l1 = copy.deepcopy(init)
    train_model(l1, data, TrainConfig(epochs=epochs, seed=seed, l1=L1))
    return {"init": init, "plain": net.eval(), "l1": l1.eval(), "rewind": rewind}


def prune_and_finetune(net, data, p, epochs, seed):
    """One-shot global magnitude, then ``epochs`` masked epochs: (right after, after)."""
    work = copy.deepcopy(net)
    mask = Mask.from_scores(score(work, "magnitude"), p)
    mask.apply(work)
    before = evaluate(work, data)["accuracy"]
    train_model(work, data, TrainConfig(epochs=epochs, seed=seed), mask=mask)
    return before, evaluate(work, data)["accuracy"]


def imp_rounds(run, data, epochs, seed):
    """IMP with rewinding to epoch 1: rounds at 90 → 95 → 98 %, retrain ``epochs`` each."""
    model = copy.deepcopy(run["plain"])
    mask, out = Mask.dense(model), {}
    for p in SPARSITIES:
        mask = Mask.from_scores(score(model, "magnitude"), p, previous=mask)
        model.load_state_dict(run["rewind"])
        mask.apply(model)
        train_model(model, data, TrainConfig(epochs=epochs, seed=seed), mask=mask)
        out[p] = evaluate(model, data)["accuracy"]
    return out


def imp_limit_rounds(data, seed, epochs, l2):
    """mlp32: exact p̂ (α = 1) of the dense net and after each IMP round (5 rounds to 98 %)."""
    torch.manual_seed(seed)
    model = small_mlp(data, seed)
    rewind = {}

    def keep(row):
        if row["epoch"] == 1:
            rewind.update(copy.deepcopy(model.state_dict()))

    config = TrainConfig(epochs=epochs, seed=seed, l2=l2)
    train_model(model, data, config, callback=keep)
    out = {"sparsity": [0.0], "p_hat": [], "accuracy": [evaluate(model, data)["accuracy"]]}
    out["p_hat"].append(
        weight_scaling(model, data, (1.0,), samples=SCALING_SAMPLES).points[0].p_lower
    )
    mask = Mask.dense(model)
    retrain = TrainConfig(epochs=epochs - 1, seed=seed, l2=l2)
    for d in density_schedule(1 - SPARSITIES[-1], IMP_ROUNDS):
        mask = Mask.from_scores(score(model, "magnitude"), 1 - d, previous=mask)
        model.load_state_dict(rewind)
        mask.apply(model)
        train_model(model, data, retrain, mask=mask)
        out["sparsity"].append(mask.sparsity)
        out["accuracy"].append(evaluate(model, data)["accuracy"])
        w = weight_scaling(model, data, (1.0,), samples=SCALING_SAMPLES)
        out["p_hat"].append(w.points[0].p_lower)
    return out


def smart_ratio(run, data, p, epochs, seed):
    """Smart-Ratio mask at the run's initialisation, then ``epochs`` masked epochs."""
    net = copy.deepcopy(run["init"])
    at_init(net, data, "smart_ratio", p, train_config=TrainConfig(epochs=epochs, seed=seed),
            seed=seed, eval_train=False)  # fmt: skip
    return evaluate(net, data)["accuracy"]


def gem_miner(run, data, p, epochs, seed):
    """Rare Gems: ``epochs`` score epochs at the init, top-k, ``epochs`` masked epochs.

    Returns ``(accuracy of the masked init before training, after training)``.
    """
    net = copy.deepcopy(run["init"])
    score = TrainConfig(epochs=epochs, lr=GEM_LR, seed=seed)
    train = TrainConfig(epochs=epochs, seed=seed)
    _, rec = rare_gems(
        net, data, p, lam=GEM_LAMBDA, score_config=score, finetune=train, eval_train=False
    )
    return rec.after_prune["accuracy"], rec.after_finetune["accuracy"]


def baseline_rows(models, data, seeds, epochs, runs=None) -> list[dict]:
    """Item 4: magnitude, LOMP, IMP, Smart-Ratio and Rare Gems per model, seed, sparsity."""
    rows = []
    for m in models:
        for s in seeds:
            run = runs[(m, s)] if runs else train_runs(m, data, s, epochs)
            imp = imp_rounds(run, data, epochs - 1, s)
            for p in SPARSITIES:
                t0 = time.time()
                mag = prune_and_finetune(run["plain"], data, p, epochs - 1, s)
                lomp = prune_and_finetune(run["l1"], data, p, epochs - 1, s)
                dense = evaluate(run["plain"], data)["accuracy"]
                t1 = time.time()
                gem = gem_miner(run, data, p, epochs, s)
                row = {"model": m, "seed": s, "sparsity": p, "dense": dense,
                       "magnitude": mag, "lomp": lomp, "imp": imp[p],
                       "smart_ratio": smart_ratio(run, data, p, epochs, s),
                       "rare_gems": gem, "rare_gems_seconds": time.time() - t1,
                       "seconds": time.time() - t0}  # fmt: skip
                rows.append(row)
                print("baseline", row, flush=True)
    return rows


def _mse(v: list[float], digits: int = 1) -> str:
    """Mean ± standard error (sd / √n)."""
    m, sd = mean_sd(v)
    if math.isnan(sd):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {sd / math.sqrt(len(v)):.{digits}f}"


def print_baselines(rows, models, seeds) -> None:
    """Item 4's table with Rare Gems, mean ± s.e. over the seeds."""
    print(f"\n| model (dense) | sparsity | magnitude | LOMP | IMP | Smart-Ratio | Rare Gems "
          f"| Rare Gems before training | (n = {len(seeds)}, ± s.e.) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for m in models:
        for p in SPARSITIES:
            rs = [r for r in rows if r["model"] == m and r["sparsity"] == p]
            cells = [_mse([r["magnitude"][1] for r in rs]), _mse([r["lomp"][1] for r in rs]),
                     _mse([r["imp"] for r in rs]), _mse([r["smart_ratio"] for r in rs]),
                     _mse([r["rare_gems"][1] for r in rs]),
                     _mse([r["rare_gems"][0] for r in rs])]  # fmt: skip
            dense = _mse([r["dense"] for r in rs])
            print(f"| {m} ({dense} %) | {p:.0%} | " + " | ".join(cells) + " | |")


def init_check(data, epochs, seeds) -> None:
    """Diagnostic: is Smart-Ratio's failure on deep nets the unrescaled sparse init?

    At 90 / 95 / 98 %, from each seed's init: Smart-Ratio as is; Smart-Ratio with every layer's kept
    weights multiplied by ``1/sqrt(keep ratio)`` (restores the forward variance of a dense
    Kaiming init); and a global random mask (``random`` criterion). Test accuracy after
    ``epochs`` masked epochs, mean ± sd.
    """
    for name, p in ((m, p) for m in MODELS for p in SPARSITIES):
        cells: dict = {"smart-ratio": [], "smart-ratio rescaled": [], "random": []}
        for s in seeds:
            torch.manual_seed(s)
            init = prunelab.models.build(name, data)
            for label, crit in (("smart-ratio", "smart_ratio"), ("random", "random"),
                                ("smart-ratio rescaled", "smart_ratio")):  # fmt: skip
                net = copy.deepcopy(init)
                mask = Mask.from_scores(score(net, crit, seed=s), p)
                if label.endswith("rescaled"):
                    with torch.no_grad():
                        for n, prm in prunable_parameters(net).items():
                            prm.mul_(1.0 / float(mask.masks[n].double().mean()) ** 0.5)
                train_model(net, data, TrainConfig(epochs=epochs, seed=s), mask=mask)
                cells[label].append(evaluate(net, data)["accuracy"])
        row = " | ".join(_ms(v) for v in cells.values())
        print(f"| {name} | {p:.0%} | {row} |", flush=True)


def main() -> None:
    """Run the four analyses, print Markdown tables, write ``results.json``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/paper004_analyses")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (2 epochs, 1 seed)")
    ap.add_argument("--init-check", action="store_true", help="only the Smart-Ratio init check")
    ap.add_argument("--baselines", action="store_true", help="only item 4, with Rare Gems")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.baselines:
        epochs, seeds = (2, (0,)) if args.quick else (EPOCHS, SEEDS)
        models = ("lenet300",) if args.quick else MODELS
        start, load = time.time(), os.getloadavg()
        rows = baseline_rows(models, prunelab.data.load("digits", seed=0), seeds, epochs)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"seconds": time.time() - start, "loadavg_start": load,
                "loadavg_end": os.getloadavg(), "epochs": epochs, "seeds": list(seeds),
                "threads": args.threads, "gem_lr": GEM_LR, "gem_lambda": GEM_LAMBDA}  # fmt: skip
        (out / "baselines.json").write_text(json.dumps({"rows": rows, "meta": meta}, indent=1))
        print_baselines(rows, models, seeds)
        gem_s = sum(r["rare_gems_seconds"] for r in rows)
        print(f"\n{meta['seconds']:.0f} s ({gem_s:.0f} s in Rare Gems), load average "
              f"{load[0]:.1f} -> {os.getloadavg()[0]:.1f}")  # fmt: skip
        return None
    if args.init_check:
        print("| model | sparsity | Smart-Ratio | Smart-Ratio, rescaled init | global random |")
        print("|---|---|---|---|---|")
        return init_check(prunelab.data.load("digits", seed=0), EPOCHS, SEEDS)
    epochs, seeds = (2, (0,)) if args.quick else (EPOCHS, SEEDS)
    models = ("lenet300",) if args.quick else MODELS
    start, load = time.time(), os.getloadavg()
    data = prunelab.data.load("digits", seed=0)
    res: dict = {"rows": [], "tv": [], "scaling": [], "baselines": [], "imp_limits": []}
    runs = {(m, s): train_runs(m, data, s, epochs) for m in models for s in seeds}
    print(f"trained {len(runs)} x 2 runs in {time.time() - start:.0f} s", flush=True)

    for m in models:  # 1. Hessian-row ℓ1 norms
        for kind in ("plain", "l1"):
            t0 = time.time()
            h = hessian_row_norms(runs[(m, seeds[0])][kind], data, samples=ROW_SAMPLES, block=25)
            row = {"model": m, "training": kind, "below_1e-7": h.fraction_below,
                   "below_1.28e-5": h.fraction_below_at(1.28e-5),
                   "min": float(h.row_l1.min()), "median": float(sorted(h.row_l1)[50]),
                   "max": float(h.row_l1.max()), "seconds": time.time() - t0}  # fmt: skip
            res["rows"].append(row)
            print("rows", row, flush=True)

    for m in models:  # 2. TV distance between independent runs
        for kind in ("plain", "l1"):
            if len(seeds) < 2:
                continue
            c = compare_runs([flat_weights(runs[(m, s)][kind]) for s in seeds], seed=0)
            cross = [tv_distance(flat_weights(runs[(m, s)]["plain"]),
                                 flat_weights(runs[(m, s)]["l1"])) for s in seeds]  # fmt: skip
            res["tv"].append({"model": m, "training": kind, **c.summary(),
                              "plain_vs_l1": mean_sd(cross)})  # fmt: skip

    # Lanczos on the two mid-size nets, plain training, seed 0 (fc5's 875k weights: too
    # slow for this budget); the exact spectrum of the small MLP, both trainings, all seeds
    scale_runs = [(m, "lanczos", seeds[:1], ("plain",)) for m in models if m != "fc5"]
    for mlp_seed in seeds:  # the small MLP for the exact spectrum
        runs[("mlp32", mlp_seed)] = train_runs("mlp32", data, mlp_seed, epochs)
    scale_runs.insert(0, ("mlp32", "exact", seeds, ("plain", "l1")))
    for m, method, ss, kinds in scale_runs:  # 3. weight scaling
        for s in ss:
            for kind in kinds:
                t0 = time.time()
                w = weight_scaling(runs[(m, s)][kind], data, ALPHAS, method=method,
                                   samples=SCALING_SAMPLES, max_iters=MAX_ITERS)  # fmt: skip
                res["scaling"].append({"model": m, "seed": s, "training": kind,
                                       **w.to_dict(), "seconds": time.time() - t0})  # fmt: skip
                print(m, s, kind, [(p.alpha, round(p.p_lower, 4), round(p.p_upper, 4),
                                    round(p.p_trace, 4)) for p in w.points],
                      f"{time.time() - t0:.0f} s", flush=True)  # fmt: skip

    for s in seeds:  # 6. exact p̂ after each IMP round, with and without ℓ2
        for l2 in (0.0, L2):
            res["imp_limits"].append({"seed": s, "l2": l2,
                                      **imp_limit_rounds(data, s, epochs, l2)})  # fmt: skip
            print("imp limits", res["imp_limits"][-1], flush=True)

    res["baselines"] = baseline_rows(models, data, seeds, epochs, runs)  # 4.

    elapsed = time.time() - start
    res["meta"] = {"seconds": elapsed, "loadavg_start": load, "loadavg_end": os.getloadavg(),
                   "epochs": epochs, "seeds": list(seeds), "threads": args.threads}  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1, default=float))
    print_tables(res, models, seeds)
    print(f"\n{elapsed:.0f} s, load average {load[0]:.1f} -> {os.getloadavg()[0]:.1f}")


def _ms(v: list[float], digits: int = 1) -> str:
    m, sd = mean_sd(v)
    return f"{m:.{digits}f}" if math.isnan(sd) else f"{m:.{digits}f} ± {sd:.{digits}f}"


def print_tables(res: dict, models, seeds) -> None:
    """The Markdown tables of ``experiments/paper004_analyses.md``."""
    print("\n| model | training | rows < 1e-7 | rows < 1.28e-5 | min ‖H_t‖₁ | median | max |")
    print("|---|---|---|---|---|---|---|")
    for r in res["rows"]:
        cells = [f"{r['below_1e-7']:.2f}", f"{r['below_1.28e-5']:.2f}"]
        cells += [f"{r[k]:.2e}" for k in ("min", "median", "max")]
        print(f"| {r['model']} | {r['training']} | " + " | ".join(cells) + " |")
    if res["tv"]:
        print(f"\n| model | training | TV between runs (n = {res['tv'][0]['num_pairs']} pairs) | "
              "KS | half-split floor | TV plain vs ℓ1 (same seed) |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        for r in res["tv"]:
            f = [
                f"{r[k][0]:.3f} ± {r[k][1]:.3f}" for k in ("tv", "ks", "noise_floor", "plain_vs_l1")
            ]
            print(f"| {r['model']} | {r['training']} | " + " | ".join(f) + " |")
    print("\n| model | training | α | p̂(α) (exact or [bracket]) | trace form | n |")
    print("|---|---|---|---|---|---|")
    groups: dict = {}
    for r in res["scaling"]:
        groups.setdefault((r["model"], r["training"]), []).append(r)
    for (m, kind), rs in groups.items():
        for i, a in enumerate(ALPHAS):
            lo = [r["points"][i]["p_lower"] for r in rs]
            hi = [r["points"][i]["p_upper"] for r in rs]
            tr = [r["points"][i]["p_trace"] for r in rs]
            cell = _ms(lo, 3) if rs[0]["method"] == "exact" else f"[{_ms(lo, 3)}, {_ms(hi, 3)}]"
            if rs[0]["method"] != "exact" and not all(r["converged"] for r in rs):
                cell += " (not converged)"
            print(f"| {m} | {kind} | ×{a:g} | {cell} | {_ms(tr, 3)} | {len(rs)} |")
    if res["imp_limits"]:
        print("\n| IMP round | sparsity | p̂ without ℓ2 | accuracy | p̂ with ℓ2 | accuracy |")
        print("|---|---|---|---|---|---|")
        by = {l2: [r for r in res["imp_limits"] if r["l2"] == l2] for l2 in (0.0, L2)}
        for i, sp in enumerate(by[0.0][0]["sparsity"]):
            cells = []
            for l2 in (0.0, L2):
                cells += [_ms([r["p_hat"][i] for r in by[l2]], 3),
                          _ms([r["accuracy"][i] for r in by[l2]])]  # fmt: skip
            print(f"| {i} | {sp:.3f} | " + " | ".join(cells) + " |")
    print(f"\n| model | sparsity | magnitude | LOMP | IMP | Smart-Ratio | Rare Gems "
          f"| (n = {len(seeds)}) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for m in models:
        for p in SPARSITIES:
            rs = [r for r in res["baselines"] if r["model"] == m and r["sparsity"] == p]
            cells = [_ms([r["magnitude"][1] for r in rs]), _ms([r["lomp"][1] for r in rs]),
                     _ms([r["imp"] for r in rs]), _ms([r["smart_ratio"] for r in rs]),
                     _ms([r["rare_gems"][1] for r in rs])]  # fmt: skip
            print(
                f"| {m} ({_ms([r['dense'] for r in rs])} %) | {p:.0%} | "
                + " | ".join(cells)
                + " | |"
            )


if __name__ == "__main__":
    main()
