"""``study.json``: written atomically with exactly its keys, read back with one-line errors."""
import json
import os

import pytest

from polydl.tune import layout


def test_study_json_round_trip_and_trial_dirs(tmp_path):
    info = {"storage": "sqlite:////x/study.db", "study_name": "s", "metric": "val_loss", "direction": "minimize",
            "space": {"lr": {"distribution": "log_uniform", "low": 1e-4, "high": 1.0}}, "rounds": 2, "trials": 6,
            "sampler": "random", "seed": 0, "ignored": 1}
    layout.write_study_json(tmp_path, info)
    doc = json.loads((tmp_path / "study.json").read_text())
    assert list(doc) == list(layout.KEYS) and doc["format"] == "polydl-study" and doc["version"] == 1
    assert layout.read_study_json(tmp_path) == doc and layout.is_study_dir(tmp_path)
    assert layout.trial_dir(tmp_path, 7) == tmp_path / "trials" / "0007"
    assert layout.trial_dir(tmp_path, 12345).name == "12345"


@pytest.mark.parametrize("content, message", [(None, "has no study.json"), ("{", "is damaged"),
                                              ('{"format": "x"}', "is not a polydl study file"),
                                              ('{"format": "polydl-study", "version": 9}', "version 9"),
                                              ('{"format": "polydl-study", "version": 1}', "has no storage")])
def test_bad_study_json(tmp_path, content, message):
    if content is not None:
        (tmp_path / "study.json").write_text(content)
    with pytest.raises(layout.LayoutError, match=message):
        layout.read_study_json(tmp_path)


@pytest.mark.parametrize("kind", ["fifo", "link"])
def test_a_study_json_that_is_not_a_regular_file_is_refused(tmp_path, kind):
    if kind == "fifo":
        os.mkfifo(tmp_path / "study.json")          # read without blocking
    else:
        (tmp_path / "real.json").write_text("{}")
        os.symlink(tmp_path / "real.json", tmp_path / "study.json")
    with pytest.raises(layout.LayoutError, match="not a regular file"):
        layout.read_study_json(tmp_path)
