import pytest
import torch
from safetensors.torch import load_file, load_model

from tests.factories import (
    add_checkpoint,
    bare_state_dict,
    cuda_saved_checkpoint,
    make_run_dir,
    seed_style_checkpoint,
    TiedModel,
    tied_checkpoint,
    tiny_model,
)
from tui_trainer.engine.errors import CheckpointCorrupt, UnsafeCheckpoint
from tui_trainer.engine.tools.export import ExportError, export_weights, pt_ready, resolve_format, safetensors_ready


@pytest.fixture
def ours(tmp_path):
    run = make_run_dir(tmp_path / "run")
    return add_checkpoint(run, 300, val_loss=1.5).path


def test_safetensors_export_holds_exactly_the_model_weights(tmp_path, ours):
    result = export_weights(ours, tmp_path / "w.safetensors")
    loaded = load_file(tmp_path / "w.safetensors")
    expected = tiny_model(300).state_dict()
    assert loaded.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(loaded[key], tensor)
    assert result.fmt == "safetensors"
    assert result.tensors == 2 and result.parameters == 15
    assert result.weights_bytes == (tmp_path / "w.safetensors").stat().st_size
    assert result.checkpoint_bytes == ours.stat().st_size
    assert result.weights_bytes < result.checkpoint_bytes


def test_pt_export_is_a_plain_state_dict(tmp_path, ours):
    result = export_weights(ours, tmp_path / "w.pth")
    loaded = torch.load(tmp_path / "w.pth", weights_only=True)
    assert result.fmt == "pt"
    assert set(loaded) == {"weight", "bias"}
    tiny_model().load_state_dict(loaded)


@pytest.mark.parametrize("make", [seed_style_checkpoint, bare_state_dict])
def test_foreign_layouts_export(tmp_path, make):
    source = make(tmp_path / "foreign.pt")
    export_weights(source, tmp_path / "w.safetensors")
    assert set(load_file(tmp_path / "w.safetensors")) == {"weight", "bias"}


def test_tied_weights_export_to_safetensors_once(tmp_path):
    source = tied_checkpoint(tmp_path / "tied.pt")
    result = export_weights(source, tmp_path / "tied.safetensors")
    loaded = load_file(tmp_path / "tied.safetensors")
    assert set(loaded) == {"embed.weight", "norm.weight", "norm.bias"}  # as Hugging Face writes a tied head
    assert result.tied == (("head.weight", "embed.weight"),)
    assert result.parameters == 10 * 6 + 6 + 6  # the tied weight counted once
    model = TiedModel()
    load_model(model, tmp_path / "tied.safetensors", strict=True)  # safetensors restores the tie
    assert torch.equal(model.head.weight, loaded["embed.weight"]) and model.head.weight is model.embed.weight


def test_tied_weights_stay_tied_in_pt(tmp_path):
    export_weights(tied_checkpoint(tmp_path / "tied.pt"), tmp_path / "w.pt")
    loaded = torch.load(tmp_path / "w.pt", weights_only=True)
    assert loaded["embed.weight"].data_ptr() == loaded["head.weight"].data_ptr()


def test_views_and_non_contiguous_tensors_are_made_safe():
    base = torch.arange(12.0).reshape(3, 4)
    state = {"a": base, "t": base.t(), "row": base[1], "again": base}
    ready, skipped = safetensors_ready({**state, "note": "text"})
    assert skipped == ("note",)
    assert all(t.is_contiguous() for t in ready.values())
    pointers = [t.untyped_storage().data_ptr() for t in ready.values()]
    assert len(set(pointers)) == len(pointers)
    for key, tensor in state.items():
        assert torch.equal(ready[key], tensor)
    plain = pt_ready(state)
    assert plain["again"] is base and plain["row"].untyped_storage().nbytes() == 16


def test_cuda_saved_checkpoint_exports_on_cpu(tmp_path):
    source = cuda_saved_checkpoint(tmp_path / "gpu.pt")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(source, weights_only=True)
    export_weights(source, tmp_path / "w.safetensors")
    assert load_file(tmp_path / "w.safetensors")["weight"].device.type == "cpu"


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [
        ("w.safetensors", None, "safetensors"),
        ("w.PT", None, "pt"),
        ("w.pth", "pt", "pt"),
        ("weights", None, "safetensors"),
        ("w.bin", "pt", "pt"),
    ],
)
def test_format_from_flag_or_suffix(name, fmt, expected):
    assert resolve_format(name, fmt) == expected


@pytest.mark.parametrize(
    ("name", "fmt"), [("w.pt", "safetensors"), ("w.safetensors", "pt"), ("w.bin", None), ("w.pt", "onnx")]
)
def test_bad_format_is_refused(name, fmt):
    with pytest.raises(ExportError):
        resolve_format(name, fmt)


def test_refuses_to_overwrite_unless_asked(tmp_path, ours):
    out = tmp_path / "w.safetensors"
    out.write_bytes(b"keep me")
    with pytest.raises(ExportError, match="already exists"):
        export_weights(ours, out)
    assert out.read_bytes() == b"keep me"
    export_weights(ours, out, overwrite=True)
    assert set(load_file(out)) == {"weight", "bias"}


def test_refuses_to_replace_the_checkpoint_itself(ours):
    with pytest.raises(ExportError, match="checkpoint"):
        export_weights(ours, ours, fmt="pt", overwrite=True)


@pytest.mark.parametrize("out", ["missing/w.safetensors", "run", "run/run.json/w.pt"])
def test_refuses_unusable_out_paths(tmp_path, ours, out):
    with pytest.raises(ExportError):
        export_weights(ours, tmp_path / out)


@pytest.mark.parametrize(
    ("content", "error"),
    [(b"", CheckpointCorrupt), (b"PK\x03\x04 truncated zip", CheckpointCorrupt)],
)
def test_a_failed_export_leaves_nothing_behind(tmp_path, content, error):
    source = tmp_path / "bad.pt"
    source.write_bytes(content)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(error):
        export_weights(source, tmp_path / "w.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_malicious_checkpoint_is_refused_before_writing(tmp_path):
    from tests.factories import malicious_checkpoint

    marker = tmp_path / "pwned"
    source = malicious_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(UnsafeCheckpoint, match="refused"):
        export_weights(source, tmp_path / "w.safetensors")
    assert not marker.exists()
    assert not (tmp_path / "w.safetensors").exists()
