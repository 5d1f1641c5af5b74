"""The scripts in ``examples/`` run (at a small size), write their figures, and show what they say
they show: each result is checked against its formula or against what the example claims."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

import polydl
from polydl import tensor

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PNG = b"\x89PNG\r\n\x1a\n"


def load(name):
    """The example ``name`` as a module (each draws its figure with matplotlib: skipped without it)."""
    pytest.importorskip("matplotlib")
    spec = importlib.util.spec_from_file_location(f"polydl_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_png(path, name, out):
    assert path == out / name
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000


# ---------------------------------------------------------------------------- decay
@pytest.mark.slow
def test_decay_schedules_follow_their_formulas_and_decay_calms_the_weights(tmp_path, capsys):
    decay = load("decay")
    epochs, batches, lr0 = 6, 8, 0.3
    res = decay.main(["--epochs", str(epochs), "--batches", str(batches), "--lr0", str(lr0), "--hidden", "16",
                      "--last", "2", "--out", str(tmp_path)])
    assert_png(res["path"], "decay.png", tmp_path)
    e = np.repeat(np.arange(1, epochs + 1), batches)      # the epoch of every step
    t = np.arange(1, epochs * batches + 1)               # the step
    expected = {
        "constant": np.full(e.shape, lr0),
        "α0/(1 + 0.2·epoch)": lr0 / (1 + 0.2 * e),
        "0.95^epoch·α0": 0.95 ** e * lr0,
        "1/√epoch·α0": lr0 / np.sqrt(e),
        "3/√t·α0 (t: step)": 3 * lr0 / np.sqrt(t),
        "staircase ×0.5 / 5 epochs": lr0 * 0.5 ** ((e - 1) // 5),
    }
    assert set(res["runs"]) == set(expected)
    for label, alpha in expected.items():
        run = res["runs"][label]
        np.testing.assert_allclose(run["alpha"], alpha, rtol=1e-12)
        assert len(run["val_loss"]) == epochs and np.all(np.isfinite(run["val_loss"]))
        assert np.all(np.array(run["movement"]) > 0)
    base = res["runs"]["constant"]
    assert base["val_loss"][-1] < base["val_loss"][0]    # the model learns
    # at the end, the rates that have decayed the most move the weights the least
    assert res["summary"]["3/√t·α0 (t: step)"]["movement"] < res["summary"]["constant"]["movement"]
    assert res["summary"]["staircase ×0.5 / 5 epochs"]["movement"] < res["summary"]["constant"]["movement"]
    out = capsys.readouterr().out
    assert "moved/epoch" in out and "decayed schedules move the weights less" in out


# ---------------------------------------------------------------------------- saddle
def test_hessian_by_differences_of_the_autodiff_gradient_is_the_surface_hessian():
    saddle = load("saddle")

    def gradients(W):
        W = tensor(np.atleast_2d(W), requires_grad=True)
        J = W[:, 0] * W[:, 0] + (W[:, 1] * W[:, 1] - 1.0) ** 2 * 0.25
        J.sum().backward()
        return J.numpy(), W.grad

    for w, H in ((np.zeros(2), np.diag([2.0, -1.0])), (np.array([0.0, 1.0]), np.diag([2.0, 2.0])),
                 (np.array([0.3, 0.5]), np.diag([2.0, 3 * 0.25 - 1]))):
        np.testing.assert_allclose(saddle.hessian(gradients, w), H, atol=1e-8)
        np.testing.assert_allclose(saddle.hessian(gradients, w, eps=1e-7, central=False), H, atol=1e-6)
    w, J, ok = saddle.newton(gradients, np.array([0.2, 0.3]))  # Newton goes to the nearest critical point
    assert ok and np.abs(w).max() < 1e-9 and J == pytest.approx(0.25)


@pytest.mark.slow
def test_saddle_escapes_and_network_critical_points(tmp_path, capsys):
    saddle = load("saddle")
    lr = 0.05
    res = saddle.main(["--steps", "260", "--lr", str(lr), "--hidden", "1", "3", "--seeds", "3",
                       "--snapshots", "0", "100", "--out", str(tmp_path)])
    assert_png(res["path"], "saddle.png", tmp_path)
    gd = res["paths"]["gradient descent"]
    t = np.arange(len(gd))
    np.testing.assert_allclose(gd[:, 0], 1.5 * (1 - 2 * lr) ** t, rtol=1e-10, atol=1e-300)  # ∂f/∂w1 = 2 w1
    # near the saddle w2 grows by (1 + α) per step: ln(0.5/1e-4)/ln(1 + α) steps, a few more near 0.5
    estimate = math.log(0.5 / 1e-4) / math.log(1 + lr)
    left = res["left"]
    assert estimate <= left["gradient descent"] <= estimate + 10
    for faster in ("mini-batch gradient descent", "RMSprop", "Adam"):
        assert left[faster] is not None and left[faster] < left["gradient descent"]
    for h, size in res["sizes"].items():
        assert size["P"] == 4 * h + 1 and size["points"]
        for p, fraction in zip(size["points"], size["negative_fraction"]):
            assert p["grad_norm"] < 1e-9 and len(p["eigenvalues"]) == size["P"]
            assert fraction == np.mean(p["eigenvalues"] < 0)
    # the network whose hidden weights are all zero (output = mean of y) is a critical point with a
    # negative direction; it is found from the small starts, and it is the one with the largest J
    for size in res["sizes"].values():
        top = max(size["points"], key=lambda p: p["J"])
        assert (top["eigenvalues"] < 0).any()
    out = capsys.readouterr().out
    assert "steps until |w2| ≥ 0.5" in out and "share of the critical points that are saddles" in out


# ---------------------------------------------------------------------------- batchnorm
@pytest.mark.slow
def test_batchnorm_keeps_the_hidden_inputs_in_place_and_its_running_averages(tmp_path, capsys):
    bn = load("batchnorm")
    res = bn.main(["--depth", "3", "--width", "16", "--lrs", "0.1", "--epochs", "3", "--batches", "40",
                   "--out", str(tmp_path)])
    assert_png(res["path"], "batchnorm.png", tmp_path)
    plain, normed = res["results"]["none", 0.1], res["results"]["batchnorm", 0.1]
    assert not plain["diverged"] and not normed["diverged"] and len(normed["loss"]) == 3
    assert normed["mean_shift"] < plain["mean_shift"] / 3 and normed["std_shift"] < plain["std_shift"]
    t = res["test_time"][0.1]
    assert len(t["table"]) == 3
    # the running averages end near the training-set statistics, far nearer than where they started
    # (mean 0, variance 1); each batch's variance is taken around its own mean, about (m − 1)/m low
    assert t["mean_error"] < 0.25 and t["var_error"] < 0.3 and 0.85 < t["var_ratio"] < 1.02
    start_mean = max(float(np.max(np.abs(tm) / np.sqrt(tv))) for _, tm, _, tv in t["table"])
    start_var = max(float(np.max(np.abs(1 / tv - 1))) for _, _, _, tv in t["table"])
    assert t["mean_error"] < start_mean / 3 and t["var_error"] < start_var / 3
    assert "test time, α = 0.1" in capsys.readouterr().out


def test_batchnorm_probe_reads_the_activation_input_and_restores_the_running_averages():
    bn = load("batchnorm")
    polydl.manual_seed(0)
    model = polydl.nn.mlp([5, 4, 4, 3], normalizer="batchnorm")
    x = tensor(np.random.default_rng(0).normal(size=(32, 5)).astype(np.float32))
    before = [b.numpy().copy() for b in model.buffers()]
    z = bn.probe(model, x, 1)
    z_lin = x.numpy() @ model[0].weight.numpy()          # Linear without bias, then BatchNorm
    expected = (z_lin - z_lin.mean(0)) / np.sqrt(z_lin.var(0) + 1e-5)
    np.testing.assert_allclose(z, expected, atol=1e-4)
    for b, old in zip(model.buffers(), before):
        np.testing.assert_array_equal(b.numpy(), old)
    with pytest.raises(ValueError, match="2 hidden layers, not 3"):
        bn.hidden_inputs(model, x, 3)


# ---------------------------------------------------------------------------- search
@pytest.mark.slow
def test_search_budget_and_where_samples_land(tmp_path, capsys):
    search = load("search")
    res = search.main(["--epochs", "1", "--batches", "4", "--hidden", "8", "--samples", "40000",
                       "--out", str(tmp_path)])
    assert_png(res["path"], "search.png", tmp_path)
    g, r = res["searches"]["grid"], res["searches"]["random"]
    assert len(g["trials"]) == len(r["trials"]) == 25
    assert g["distinct_alphas"] == 5 and r["distinct_alphas"] == 25
    np.testing.assert_allclose(sorted({a for a, _ in g["trials"]}), [1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    assert all(1e-4 <= a <= 1 and 1e-10 <= e <= 1e-6 for a, e in r["trials"])
    assert g["best_loss"] == min(g["val_loss"]) and r["best_loss"] == min(r["val_loss"])
    s = res["shares"]
    # P(β > 0.99): uniform (0.999 − 0.99)/(0.999 − 0.9) = 1/11; 1 − β log-uniform on [1e-3, 1e-1]: 1/2
    assert s["β > 0.99"]["β uniform"] == pytest.approx(1 / 11, abs=0.01)
    assert s["β > 0.99"]["β: 1 − β log-uniform"] == pytest.approx(0.5, abs=0.015)
    # P(α < 0.1) on [1e-4, 1]: uniform (0.1 − 1e-4)/(1 − 1e-4) ≈ 0.1; log-uniform 3/4
    assert s["α < 0.1"]["α uniform"] == pytest.approx(0.1, abs=0.01)
    assert s["α < 0.1"]["α log-uniform"] == pytest.approx(0.75, abs=0.015)
    assert "5 distinct values of α" in capsys.readouterr().out


def test_search_needs_a_square_budget(capsys):
    with pytest.raises(SystemExit) as exc:
        load("search").main(["--trials", "24"])
    assert exc.value.code == 2
    assert "--trials must be a square number" in capsys.readouterr().err


# ---------------------------------------------------------------------------- softmax
@pytest.mark.slow
def test_softmax_hardmax_two_classes_and_the_gradient(tmp_path, capsys):
    softmax = load("softmax")
    res = softmax.main(["--points", "301", "--steps", "60", "--out", str(tmp_path)])
    assert_png(res["path"], "softmax.png", tmp_path)
    z = np.array([5.0, 2.0, -1.0, 3.0])
    np.testing.assert_allclose(res["softmax"], np.exp(z) / np.exp(z).sum(), rtol=1e-14)
    np.testing.assert_array_equal(res["hardmax"], [1, 0, 0, 0])
    assert res["c2_prob_diff"] <= 1e-15 and res["c2_loss_diff"] <= 1e-14     # float64 rounding
    assert res["regression_gap"] <= 1e-14
    y = np.eye(4)[0]
    np.testing.assert_allclose(res["dj_dz"], res["softmax"] - y, atol=1e-15)   # dJ/dz = ŷ − y
    np.testing.assert_allclose(res["dj_dz"], res["dj_dz_numeric"], atol=1e-8)
    assert res["gradcheck"] is True
    assert "C = 2" in capsys.readouterr().out


def test_softmax_rejects_a_label_outside_the_classes(capsys):
    with pytest.raises(SystemExit):
        load("softmax").main(["--label", "4"])
    assert "--label must be a class index in [0, 4)" in capsys.readouterr().err


# ---------------------------------------------------------------------------- coarse to fine
@pytest.mark.slow
def test_coarse_to_fine_boxes_follow_the_best_and_the_figure_shades_them(tmp_path, capsys):
    optuna = pytest.importorskip("optuna")
    c2f = load("coarse_to_fine")
    study_dir = tmp_path / "study"
    res = c2f.main(["--trials", "9", "--rounds", "3", "--epochs", "1", "--hidden", "8", "--study", str(study_dir),
                    "--out", str(tmp_path)])
    assert_png(res["path"], "coarse_to_fine.png", tmp_path)
    trials, boxes = res["trials"], res["boxes"]
    assert [t["round"] for t in trials] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{study_dir}/study.db")   # kept: an Optuna study
    recorded = study.user_attrs["boxes"]
    assert boxes == {int(r): {k: (b["low"], b["high"]) for k, b in box.items()} for r, box in recorded.items()}
    assert boxes[1] == {"lr": (1e-4, 1.0), "beta": (0.9, 0.999)}
    scale = {"lr": math.log10, "beta": lambda b: math.log10(1 - b)}     # α log-uniform, 1 − β log-uniform
    for t in trials:
        for k in ("lr", "beta"):
            lo, hi = boxes[t["round"]][k]
            assert lo <= t[k] <= hi
    for r in (2, 3):
        done = sorted((t for t in trials if t["round"] == r - 1 and t["state"] == "complete"),
                      key=lambda t: (t["val_loss"], t["number"]))
        top = done[:max(2, math.ceil(0.25 * len(done)))]
        for k in ("lr", "beta"):
            a, b = recorded[str(r - 1)][k]["scale"]
            full = sorted(scale[k](v) for v in boxes[1][k])
            xs = [scale[k](t[k]) for t in top]
            # the box of the best quarter of the round before, widened by a tenth of that round's box
            expected = (max(full[0], min(xs) - 0.1 * (b - a)), min(full[1], max(xs) + 0.1 * (b - a)))
            assert recorded[str(r)][k]["scale"] == pytest.approx(expected, abs=1e-12)
            c, d = recorded[str(r)][k]["scale"]
            assert a - 0.1 * (b - a) - 1e-12 <= c < d <= b + 0.1 * (b - a) + 1e-12   # within the box before ± margin
    # the figure shades exactly the recorded boxes, on the axes it draws (α, and 1 − β)
    for r, box in boxes.items():
        assert res["shaded"]["lr"][r] == pytest.approx(box["lr"], rel=1e-12)
        assert res["shaded"]["beta"][r] == pytest.approx(sorted(1 - v for v in box["beta"]), rel=1e-12)
    for r, info in res["rounds"].items():
        losses = sorted(t["val_loss"] for t in trials if t["round"] == r and t["state"] == "complete")
        assert info["best"] == losses[0] and info["median"] == pytest.approx(np.median(losses))
        assert info["decades"]["lr"] == pytest.approx(math.log10(box_ratio(boxes[r]["lr"])))
    # plain random search on the same budget: its first round-size trials are round 1's
    plain = res["random_trials"]
    assert [(t["lr"], t["beta"]) for t in plain[:3]] == [(t["lr"], t["beta"]) for t in trials[:3]]
    assert {t["round"] for t in plain} == {1} and len(plain) == 9
    assert res["random_best"] == min(t["val_loss"] for t in plain if t["state"] == "complete")
    out = capsys.readouterr().out
    better = min(res["rounds"][2]["best"], res["rounds"][3]["best"]) < res["rounds"][1]["best"]
    assert res["better_best"] == better
    assert ("the zoom found a better region than round 1" in out) == better
    assert ("Not as the claim has it: the zoom did not find" in out) == (not better)
    assert res["beats_random"] == (min(i["best"] for i in res["rounds"].values()) < res["random_best"])
    assert out.count("round ") >= 3 and "decades of 1 − β" in out


def box_ratio(box):
    return box[1] / box[0]


def test_coarse_to_fine_needs_rounds(capsys):
    with pytest.raises(SystemExit) as exc:
        load("coarse_to_fine").main(["--rounds", "3", "--trials", "5"])
    assert exc.value.code == 2 and "at least 2 trials per round" in capsys.readouterr().err


# ---------------------------------------------------------------------------- README
def test_the_readme_shows_every_example_and_its_committed_figure():
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    scripts = sorted(p.stem for p in EXAMPLES.glob("*.py"))
    assert scripts == ["batchnorm", "coarse_to_fine", "decay", "panda_caviar", "saddle", "search", "softmax"]
    for name in scripts:
        assert f"python examples/{name}.py" in readme and f"](figures/{name}.png)" in readme
        figure = EXAMPLES / "figures" / f"{name}.png"
        assert figure.read_bytes()[:8] == PNG and figure.stat().st_size < 200_000
    top = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    assert "](examples/README.md)" in top


# ---------------------------------------------------------------------------- panda or caviar
@pytest.mark.slow
def test_panda_caviar_babysits_one_model_and_trains_a_population(tmp_path, capsys):
    pc = load("panda_caviar")
    res = pc.main(["--epochs", "6", "--members", "4", "--hidden", "16", "--patience", "1", "--out", str(tmp_path)])
    assert_png(res["path"], "panda_caviar.png", tmp_path)
    p, c = res["panda"], res["caviar"]
    assert len(p["val_loss"]) == 6 and all(len(v) == 6 for v in c["val_loss"])
    for epoch, lr in p["changes"]:  # each change trains the next epoch at the new α, as metrics.jsonl records
        assert p["lr"][epoch - 1] == pytest.approx(lr, rel=1e-12)
    assert all(1e-4 <= lr <= 1e-1 for lr in c["lrs"]) and len(set(c["lrs"])) == 4
    assert c["final"] == min(v[-1] for v in c["val_loss"]) and c["best_lr"] == c["lrs"][c["best"]]
    assert res["better"] in ("panda", "caviar") and "the lower final validation loss" in capsys.readouterr().out
