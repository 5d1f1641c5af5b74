"""The README's search section is accurate: its space file is a valid space for its run.toml,
and its progress lines have the form ``polydl tune`` prints."""
import re
from pathlib import Path

from polydl.training import load_data
from polydl.tune.space import Space
from polydl_cli.train import resolve_config

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
SECTION = README[README.index("## Hyperparameter search"):]


def test_the_space_file_fits_the_run_toml(tmp_path):
    blocks = {b.splitlines()[0].split(":")[0]: b for b in re.findall(r"```toml\n(.*?)```", README, re.S)}
    (tmp_path / "run.toml").write_text(blocks["# run.toml"])
    (tmp_path / "space.toml").write_text(blocks["# space.toml"])
    space = Space.from_toml(tmp_path / "space.toml")
    assert list(space) == ["lr", "beta", "schedule_params.factor", "optimizer"]
    base = resolve_config(tmp_path / "run.toml", {})
    space.check(base, train_size=len(load_data(base).y_train))


def test_the_progress_lines_have_the_printed_form():
    (block,) = [b for b in re.findall(r"```console\n(.*?)```", SECTION, re.S)]
    lines = block.splitlines()
    assert lines[1].startswith("tuning lr, beta1, hidden, batch_size over 30 trials (3 rounds, random sampling; ")
    trial = re.compile(r"trial \d+  round \d/3  lr=\S+ beta1=\S+ hidden=\d+ batch_size=\d+  val_loss \S+  "
                       r"best \S+ \(trial \d+\)$")
    assert sum(bool(trial.match(x)) for x in lines) == 3
    assert any(x.startswith("study 'moons': 30 trials (30 complete, 0 pruned, 0 failed); best val_loss") for x in lines)
    assert (Path(__file__).resolve().parents[2] / "docs" / "tune.png").read_bytes().startswith(b"\x89PNG")
