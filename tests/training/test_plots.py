"""curves.png and schedule plots."""
import pytest

from polydl.training import plots

pytest.importorskip("matplotlib")


def test_plot_curves_writes_a_png(tmp_path):
    history = [{"epoch": e, "lr": 0.1 / e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_accuracy": 0.5 + e / 10,
                "val_accuracy": None if e == 1 else 0.5, "lr_changed": e == 2} for e in (1, 2, 3)]
    assert plots.plot_curves(history, tmp_path / "c.png", "title")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_a_regression_gets_an_rmse_mae_panel_beside_r2(tmp_path):
    history = [{"epoch": e, "lr": 0.01, "train_loss": 1 / e, "val_loss": 1.1 / e, "val_rmse": 3 / e, "val_mae": 2 / e,
                "val_r2": 1 - 1 / e} for e in (1, 2, 3)]
    assert plots.plot_curves(history, tmp_path / "r.png")
    assert plots.plot_curves([{k: v for k, v in r.items() if not k.startswith("val_r")} | {"train_accuracy": 0.5}
                              for r in history], tmp_path / "c.png")
    # four panels (loss, RMSE / MAE, R², α) 16 inches wide at 100 dpi, against three in 12 inches
    assert int.from_bytes((tmp_path / "r.png").read_bytes()[16:20], "big") == 1600
    assert int.from_bytes((tmp_path / "c.png").read_bytes()[16:20], "big") == 1200


def test_plot_schedule_writes_a_png(tmp_path):
    assert plots.plot_schedule([1, 2, 3], [0.3, 0.2, 0.1], tmp_path / "s.png", "inverse_time")
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_without_matplotlib_nothing_is_written(tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_mpl(name, *a, **k):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    assert not plots.available()
    assert not plots.plot_curves([{"epoch": 1, "lr": 0.1}], tmp_path / "c.png")
    assert not plots.plot_schedule([1], [0.1], tmp_path / "s.png", "x")
    assert list(tmp_path.iterdir()) == []
    assert "pip install 'polydl[plot]'" in plots.MISSING_NOTE
