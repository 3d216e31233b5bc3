"""`ckpt prune`, `ckpt pin`/`unpin` and `ckpt delete`: what is deleted, what is protected, what is asked."""

import io
import json

import pytest

from tests.cli.ckpt_cli import run
from tests.factories import add_checkpoint, make_run, seed_style_checkpoint, snapshot
from tui_trainer.engine.rundir.layout import RunLock


def names(directory):
    return sorted(p.name for p in directory.glob("*.pt"))


@pytest.fixture
def run_dir(tmp_path):
    """Steps 100..800: 200 is best, 800 latest, 300 pinned, 400 manual."""
    path = make_run(tmp_path / "run", steps=(100, 200, 500, 600, 700, 800), val_losses={200: 0.5})
    add_checkpoint(path, 300, pinned=True, val_loss=2.9)
    add_checkpoint(path, 400, kind="manual", val_loss=2.9)
    return path


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_prune_dry_run_changes_nothing(capsys, run_dir):
    before = snapshot(run_dir)
    result = run(capsys, "ckpt", "prune", run_dir, "--keep", "2", "--dry-run")
    assert result.code == 0 and snapshot(run_dir) == before
    assert [line.split()[2] for line in result.out.splitlines()[:-1]] == [
        f"step_{s:08d}.pt" for s in (100, 500, 600)  # 200 is best, 300 pinned, 400 manual
    ]
    assert result.out.splitlines()[-1].startswith("would free ")


def test_prune_keeps_best_latest_pinned_and_manual(capsys, run_dir):
    result = run(capsys, "ckpt", "prune", run_dir, "--keep", "1", "--yes")
    assert result.code == 0
    assert names(run_dir) == [f"step_{s:08d}.pt" for s in (200, 300, 400, 800)]
    assert sorted(p.name for p in run_dir.glob("*.meta.json")) == [
        f"step_{s:08d}.meta.json" for s in (200, 300, 400, 800)
    ]
    deleted = [line.split()[1] for line in result.out.splitlines() if line.startswith("deleted")]
    assert deleted == [f"step_{s:08d}.pt" for s in (100, 500, 600, 700)]
    assert result.out.splitlines()[-1].startswith("freed ")
    again = run(capsys, "ckpt", "prune", run_dir, "--keep", "1", "--yes")
    assert again.code == 0 and again.out.startswith("nothing to prune")


def test_prune_without_a_terminal_needs_yes(capsys, run_dir, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    before = snapshot(run_dir)
    result = run(capsys, "ckpt", "prune", run_dir, "--keep", "1")
    assert result.code != 0 and snapshot(run_dir) == before
    assert result.err.count("\n") == 1 and "--yes" in result.err and "--dry-run" in result.err


@pytest.mark.parametrize(("answer", "code", "kept"), [("n\n", 1, 8), ("\n", 1, 8), ("y\n", 0, 4)])
def test_prune_asks_on_a_terminal(capsys, run_dir, monkeypatch, answer, code, kept):
    monkeypatch.setattr("sys.stdin", FakeTerminal(answer))
    result = run(capsys, "ckpt", "prune", run_dir, "--keep", "1")
    assert result.code == code and len(names(run_dir)) == kept
    assert "would delete step_00000100.pt" in result.out


def test_prune_notes_a_running_trainer(capsys, run_dir):
    with RunLock(run_dir):
        result = run(capsys, "ckpt", "prune", run_dir, "--keep", "1", "--yes")
    assert result.code == 0 and result.err.startswith("note: a trainer is running")
    assert len(names(run_dir)) == 4


def test_pin_and_unpin(capsys, run_dir):
    path = run_dir / "step_00000500.pt"
    sidecar = run_dir / "step_00000500.meta.json"
    assert run(capsys, "ckpt", "pin", path).out.startswith("pinned step_00000500.pt")
    assert json.loads(sidecar.read_text())["pinned"] is True
    assert run(capsys, "ckpt", "pin", path).out == "step_00000500.pt is already pinned\n"
    run(capsys, "ckpt", "prune", run_dir, "--keep", "1", "--yes")
    assert path.exists()
    assert run(capsys, "ckpt", "unpin", path).out.startswith("unpinned step_00000500.pt")
    assert json.loads(sidecar.read_text())["pinned"] is False
    run(capsys, "ckpt", "prune", run_dir, "--keep", "1", "--yes")
    assert not path.exists()


@pytest.mark.parametrize(
    ("step", "why"), [(800, "the latest checkpoint"), (200, "the best checkpoint"), (300, "pinned")]
)
def test_delete_protected_needs_force(capsys, run_dir, step, why):
    path = run_dir / f"step_{step:08d}.pt"
    before = snapshot(run_dir)
    refused = run(capsys, "ckpt", "delete", path, "--yes")
    assert refused.code != 0 and why in refused.err and "--force" in refused.err and snapshot(run_dir) == before
    assert run(capsys, "ckpt", "delete", path, "--force", "--yes").code == 0
    assert not path.exists() and not path.with_name(f"step_{step:08d}.meta.json").exists()


def test_delete_plain_checkpoint(capsys, run_dir):
    result = run(capsys, "ckpt", "delete", run_dir / "step_00000100.pt", "--yes")
    assert result.code == 0 and result.out.startswith("deleted step_00000100.pt (")
    assert "step_00000100.pt" not in names(run_dir)


def test_delete_asks_on_a_terminal(capsys, run_dir, monkeypatch):
    monkeypatch.setattr("sys.stdin", FakeTerminal("no\n"))
    assert run(capsys, "ckpt", "delete", run_dir / "step_00000100.pt").code == 1
    assert (run_dir / "step_00000100.pt").exists()
    monkeypatch.setattr("sys.stdin", FakeTerminal("yes\n"))
    assert run(capsys, "ckpt", "delete", run_dir / "step_00000100.pt").code == 0
    assert not (run_dir / "step_00000100.pt").exists()


def test_delete_a_foreign_file_in_a_plain_folder(capsys, tmp_path):
    for step, name in enumerate(("a.pt", "b.pt", "c.pt")):
        seed_style_checkpoint(tmp_path / name, iteration=step)
    assert run(capsys, "ckpt", "delete", tmp_path / "b.pt", "--yes").code == 0  # a is best, c latest
    assert names(tmp_path) == ["a.pt", "c.pt"]


def test_metadata_names_cannot_redirect_pin_or_delete(capsys, tmp_path):
    run_dir = make_run(tmp_path / "run", steps=(100, 200))
    outside = tmp_path / "victim.pt"
    outside.write_bytes(b"precious")
    (tmp_path / "victim.meta.json").write_text("{}")
    sidecar = run_dir / "step_00000100.meta.json"
    sidecar.write_text(json.dumps(json.loads(sidecar.read_text()) | {"name": "../victim.pt"}))
    assert run(capsys, "ckpt", "pin", run_dir / "step_00000100.pt").code == 0
    assert run(capsys, "ckpt", "delete", run_dir / "step_00000100.pt", "--force", "--yes").code == 0
    assert outside.read_bytes() == b"precious" and (tmp_path / "victim.meta.json").read_text() == "{}"
    assert names(run_dir) == ["step_00000200.pt"]
