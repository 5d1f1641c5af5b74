"""``polydl train``, ``evaluate`` and ``predict`` on tables: a regression with --impute, columns
matched by name, predictions in the target's units, one-line errors with nothing written."""
import csv
import io
import json

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, invoke


def _houses(path, order=("rooms", "area", "town", "price"), n=150, gap=True):
    rng = np.random.default_rng(0)
    rooms, area = rng.integers(1, 6, n), rng.normal(80, 20, n)
    town = np.array(["north", "south"])[rng.integers(0, 2, n)]
    price = 50 + 20 * rooms + 1.5 * area + 30 * (town == "north") + rng.normal(0, 5, n)
    cols = {"rooms": [str(v) for v in rooms], "area": [f"{v:.2f}" for v in area], "town": list(town),
            "price": [f"{v:.2f}" for v in price]}
    if gap:
        cols["area"][4] = "NA"
    path.write_text(",".join(order) + "\n" + "\n".join(",".join(cols[c][i] for c in order) for i in range(n)) + "\n")
    return path


@pytest.fixture(scope="module")
def house_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("houses")
    data = _houses(root / "houses.csv")
    r = invoke("train", "--dataset", data, "--loss", "mse", "--impute", "median", "--hidden", "16", "--epochs", "30",
               "--batch-size", "16", "--lr", "0.02", "--no-plot", "--out", root / "r")
    assert r.exit_code == 0, r.output
    assert "RMSE" in r.stdout and "R²" in r.stdout and "test RMSE" in r.stdout.splitlines()[-1]
    return root


def test_evaluate_a_regression_prints_rmse_mae_r2(house_run):
    r = invoke("evaluate", house_run / "r")
    assert r.exit_code == 0, r.output
    assert "test split (30 of 150 samples)" in r.stdout and "RMSE" in r.stdout and "R² " in r.stdout
    res = json.loads(invoke("evaluate", house_run / "r", "--json").stdout)
    summary = json.loads((house_run / "r" / "summary.json").read_text())
    assert res["rmse"] == pytest.approx(summary["test_rmse"]) and res["r2"] > 0.5


def test_predict_writes_the_target_in_its_units_for_a_shuffled_file(house_run, tmp_path):
    shuffled = _houses(tmp_path / "s.csv", order=("town", "price", "area", "rooms"))
    out = tmp_path / "p.csv"
    r = invoke("predict", house_run / "r", shuffled, "--out", out)
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["price"] and len(rows) == 151
    own = list(csv.reader(io.StringIO(invoke("predict", house_run / "r", house_run / "houses.csv").stdout)))
    assert own == rows  # bit for bit (round-trip exact numbers)
    assert 100 < float(rows[1][0]) < 500


def test_another_file_is_scored_whole_and_notes_go_to_stderr(house_run, tmp_path):
    other = _houses(tmp_path / "o.csv", order=("price", "town", "rooms", "area"), gap=False)
    text = other.read_text().splitlines()
    other.write_text("\n".join([text[0] + ",comment"] + [t + ",-" for t in text[1:]]) + "\n")
    r = invoke("evaluate", house_run / "r", "--dataset", other)
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("o.csv, all 150 samples") and "column 'comment' is not among the run's" in r.stderr


def test_bad_tables_are_one_line_and_nothing_is_written(house_run, tmp_path):
    data = house_run / "houses.csv"
    out = tmp_path / "o"
    assert_one_line_error(invoke("train", "--dataset", data, "--loss", "mse", "--out", out), 2,
                          "area has a missing value (empty, NA or NaN) at line 6", "--impute")
    assert_one_line_error(invoke("train", "--dataset", data, "--impute", "mean", "--out", out), 2,
                          "looks like a regression target", "--loss mse")
    assert_one_line_error(invoke("train", "--dataset", data, "--target", "town", "--loss", "mse", "--impute", "mean",
                                 "--out", out), 2, "the target town is text")
    assert_one_line_error(invoke("train", "--dataset", data, "--target", "rooms,town", "--impute", "mean",
                                 "--out", out), 2, "names several columns")
    assert_one_line_error(invoke("train", "--dataset", data, "--target", "cost", "--out", out), 2,
                          "--target 'cost' is not a column")
    assert_one_line_error(invoke("train", "--dataset", data, "--impute", "zero", "--out", out), 2, "--impute")
    assert not out.exists()
    (tmp_path / "few.csv").write_text("rooms,town\n2,north\n")
    assert_one_line_error(invoke("predict", house_run / "r", tmp_path / "few.csv"), 2, "has no column 'area'")
