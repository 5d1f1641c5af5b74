"""Each member of a population stops early, keeps its best epoch and lowers its α alone, exactly as
the same run alone; a population killed at any write and run again ends as the uninterrupted one."""
import numpy as np
import pytest
from monitor_helpers import best_arrays, summary
from run_helpers import arrays, meta, metrics, tiny
from test_monitor import Killed, _killing

from polydl.training import RunResult, run
from polydl.training import checkpoint as ck
from polydl.training.population import run_population


def watched_members():
    """Members that differ in how they watch their metric (and in α, seed, dropout); float64, where a
    member equals its run alone bit for bit with the compiled kernels and with the NumPy forms."""
    return [
        tiny(epochs=12, lr=0.05, seed=0, early_stopping_patience=3, plateau_patience=1, restore_best=True,
             min_delta=0.002, dtype="float64"),
        tiny(epochs=12, lr=0.02, seed=1, monitor="val_f1", restore_best=True, dtype="float64"),
        tiny(epochs=12, lr=0.05, seed=2, dropout=0.0, plateau_patience=2, plateau_factor=0.2, warmup_epochs=2,
             dtype="float64"),
        tiny(epochs=12, lr=0.01, seed=3, dtype="float64"),
    ]


def _close(x, y) -> bool:
    """Equal, floats to 12 significant digits: the records and summaries of a member and its run alone."""
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(_close(x[k], y[k]) for k in x)
    if isinstance(x, list):
        return isinstance(y, list) and len(x) == len(y) and all(_close(u, v) for u, v in zip(x, y))
    if type(x) is float and type(y) is float:
        return x == pytest.approx(y, rel=1e-12, nan_ok=True)
    return x == y


def assert_same_member(a, b):
    xa, xb = arrays(a), arrays(b)
    assert xa.keys() == xb.keys() and all(np.array_equal(xa[k], xb[k]) for k in xa), a
    # the weights are equal to the bit; a population's losses are summed member by member, which the
    # NumPy forms (the kernels off) may round differently in the last place
    assert _close(metrics(a), metrics(b))
    ma, mb = meta(a), meta(b)
    assert ma.get("monitor") == mb.get("monitor") and ma["config"]["lr"] == mb["config"]["lr"]
    assert ma["epoch"] == mb["epoch"]
    if (b / ck.BEST).exists():
        (ea, ba), (eb, bb) = best_arrays(a), best_arrays(b)
        assert ea == eb and all(np.array_equal(ba[k], bb[k]) for k in bb)
    else:
        assert not (a / ck.BEST).exists()
    sa, sb = summary(a), summary(b)
    if "best" in sb:
        sa["best"].pop("seconds", None), sb["best"].pop("seconds", None)
    assert _close(sa, sb), (sa, sb)
    assert (a / ck.CONFIG).read_text().replace(str(a), "") == (b / ck.CONFIG).read_text().replace(str(b), "")


def test_each_member_watches_its_metric_alone_as_the_same_run_alone(tmp_path):
    configs = watched_members()
    outs = [tmp_path / f"m{k}" for k in range(len(configs))]
    got = run_population(configs, outs)
    for k, cfg in enumerate(configs):
        run(cfg, tmp_path / f"alone{k}")
        assert_same_member(outs[k], tmp_path / f"alone{k}")
        assert isinstance(got[k], RunResult)
    first = summary(outs[0])
    assert first["stopped_early"] and first["epochs"] < 12 and summary(outs[3]).get("stopped_early") is None
    assert any(r.get("event") == "plateau" for r in metrics(outs[2]))
    assert got[0].epochs == first["epochs"] and got[3].epochs == 12


@pytest.mark.slow
def test_a_population_killed_at_any_write_and_run_again_ends_as_the_uninterrupted_one(tmp_path, monkeypatch):
    configs = watched_members()[:3]
    full = [tmp_path / f"full{k}" for k in range(3)]
    with monkeypatch.context() as m:
        count = _killing(m, 0, False)
        run_population(configs, full)
    writes = count[0]
    rng = np.random.default_rng(0)
    for at in sorted(rng.choice(np.arange(8, writes + 1), size=12, replace=False)):
        outs = [tmp_path / f"k{at}_{k}" for k in range(3)]
        with monkeypatch.context() as m:
            _killing(m, int(at), bool(at % 2))
            with pytest.raises(Killed):
                run_population(configs, outs)
        got = run_population(configs, outs)
        assert all(isinstance(g, RunResult) for g in got), got
        for a, b in zip(full, outs, strict=True):
            assert_same_member(b, a)
