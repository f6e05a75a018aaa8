"""`ebmctl sample` streams its samples to one safetensors file batch by batch: memory does not grow with --n."""

from __future__ import annotations

import gc
import json

import pytest
import torch
from safetensors.torch import load_file

import ebmctl.services.runtime.loading as loading_module
import ebmctl.services.sample as sample_service
from ebmctl.checkpoints import load_tensors, read_meta, save_tensors
from ebmctl.recipes import resolve_spec
from ebmctl.runs import resolve_run
from ebmctl.samples_file import StreamingTensorWriter, iter_rows, streaming_tensor_file
from ebmctl.services.runtime.loading import load_run
from ebmctl.services.sample import SampleOptions, sample
from ebmctl.services.train import train

# ------------------------------------------------------------------------------------------------ the writer


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.uint8, torch.int64])
def test_a_streamed_file_is_the_file_save_tensors_writes(tmp_path, dtype):
    x = (torch.rand(11, 3, 4, 5) * 200).to(dtype)
    meta = {"kind": "samples", "settings": {"n": 11, "noise": None, "step_size": 0.5}, "where": "runs/é"}
    path = tmp_path / "samples.safetensors"
    with streaming_tensor_file(path, "samples", 11, meta) as writer:
        for chunk in x.split(4):
            writer.write(chunk)
    whole = tmp_path / "whole.safetensors"
    save_tensors(whole, {"samples": x}, meta)
    assert path.read_bytes() == whole.read_bytes()
    assert torch.equal(load_file(str(path))["samples"], x)
    tensors, read = load_tensors(path)
    assert torch.equal(tensors["samples"], x) and read == meta and read_meta(path) == meta
    assert torch.equal(torch.cat(list(iter_rows(path, "samples", 3))), x)


def test_an_interrupted_stream_leaves_the_previous_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "samples.safetensors"
    save_tensors(path, {"samples": torch.ones(2, 2)}, {"old": True})
    with pytest.raises(KeyboardInterrupt), streaming_tensor_file(path, "samples", 6, {}) as writer:
        writer.write(torch.zeros(3, 2))
        raise KeyboardInterrupt
    with pytest.raises(ValueError, match="3 of 6 rows"), streaming_tensor_file(path, "samples", 6, {}) as writer:
        writer.write(torch.zeros(3, 2))
    with pytest.raises(ValueError), streaming_tensor_file(path, "samples", 6, {}) as writer:
        writer.write(torch.zeros(3, 2))
        writer.write(torch.zeros(3, 3))  # another row shape
    with pytest.raises(ValueError), streaming_tensor_file(path, "samples", 2, {}) as writer:
        writer.write(torch.zeros(3, 2))  # more rows than announced
    assert load_tensors(path)[1] == {"old": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.safetensors"]


# ------------------------------------------------------------------------------------------------ ebmctl sample


@pytest.fixture(scope="module")
def run_ref(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    spec = resolve_spec("quickstart", ["train.batch_size=8", "sampler.steps=2", "train.checkpoint_every=2",
                                       "train.sample_every=100", "buffer.size=20", "method.kl_chains=4",
                                       "method.entropy_min_buffer=10", "method.entropy_refs=5"], {"train.steps": 2})
    run = train(spec, runs_root=root, device="cpu").run_dir
    return resolve_run(str(run), root)


def _recording(monkeypatch, on_call=None, keep=True):
    """Wrap the loaded method's sample(): record each batch it returns, or only its size without ``keep`` (and
    call ``on_call`` with the number of batches drawn before)."""
    batches: list[torch.Tensor] = []

    def loading(ref, device):
        run = load_run(ref, device)
        inner = run.method.sample

        def recorded(n, **kwargs):
            if on_call is not None:
                on_call(len(batches))
            x = inner(n, **kwargs)
            batches.append(x.detach().cpu().clone() if keep else torch.empty(len(x), 0))
            return x

        run.method.sample = recorded
        return run

    monkeypatch.setattr(loading_module, "load_run", loading)
    return batches


def test_sample_streams_the_seeded_samples_into_one_file(run_ref, monkeypatch):
    batches = _recording(monkeypatch)
    result = sample(run_ref, SampleOptions(n=10, steps=1, batch_size=3, seed=5), device="cpu")
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    path = result.out_dir / "samples.safetensors"
    tensors, meta = load_tensors(path)
    expected = torch.cat(batches)
    assert torch.equal(tensors["samples"], expected) and tensors["samples"].shape == (10, 3, 32, 32)
    # the same bytes as writing the whole tensor at once, with the metadata (and digest) ebmctl always writes
    whole = result.out_dir / "whole.safetensors"
    save_tensors(whole, {"samples": expected}, meta)
    assert path.read_bytes() == whole.read_bytes()
    whole.unlink()
    assert set(meta) == {"kind", "run", "settings", "checkpoint_step"} and meta["kind"] == "samples"
    assert meta["settings"]["n"] == 10 and meta["checkpoint_step"] == 2 and meta["run"] == str(run_ref.run_dir)
    assert (result.out_dir / "grid.png").is_file() and (result.out_dir / "result.json").is_file()
    assert not [p for p in result.out_dir.iterdir() if p.name.endswith(".tmp")]


def test_sample_writes_each_batch_to_disk_as_it_is_drawn(run_ref, monkeypatch):
    sizes = []

    def on_call(k):  # before batch k is drawn, the k batches before it are already on disk
        (tmp,) = [p for p in run_ref.run_dir.glob("sample/*/.samples.safetensors.*.tmp")]
        sizes.append(tmp.stat().st_size)

    _recording(monkeypatch, on_call)
    sample(run_ref, SampleOptions(n=8, steps=1, batch_size=2), device="cpu")
    header = sizes[1] - 2 * 3 * 32 * 32 * 4
    assert sizes == [0, header + 24576, header + 2 * 24576, header + 3 * 24576]


def _live_tensor_bytes() -> int:
    """The bytes of every CPU tensor storage reachable now."""
    gc.collect()
    storages = {}
    for obj in gc.get_objects():
        if type(obj) in (torch.Tensor, torch.nn.Parameter) and obj.device.type == "cpu":
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def test_sample_memory_does_not_grow_with_n(run_ref, monkeypatch):
    monkeypatch.setattr(sample_service, "GRID_SAMPLES", 4)  # the grid's share of memory, made small
    peaks = {}
    for n in (16, 64):
        seen: list[int] = []

        def measure(k: int, seen: list[int] = seen) -> None:
            if k % 4 == 3:
                seen.append(_live_tensor_bytes())

        gc.collect()
        _recording(monkeypatch, measure, keep=False)
        sample(run_ref, SampleOptions(n=n, steps=1, batch_size=4), device="cpu")
        peaks[n] = max(seen)
    batch_bytes = 4 * 3 * 32 * 32 * 4  # the samples of one batch
    # 48 more samples kept in memory would be 12 batches more
    assert peaks[64] - peaks[16] < 2 * batch_bytes, peaks


def test_an_interrupted_sample_keeps_its_finished_batches_and_nothing_else(run_ref, monkeypatch):
    from ebmctl.services.runtime.stopping import Interrupted

    stop_at = {"k": 2}

    def stop(k):
        if k == stop_at["k"]:
            raise KeyboardInterrupt

    batches = _recording(monkeypatch, stop)
    with pytest.raises(Interrupted) as err:
        sample(run_ref, SampleOptions(n=8, steps=1, batch_size=2, out="kept"), device="cpu")
    assert err.value.exit_code == 130 and "after 4 of 8 samples" in err.value.message
    tensors, meta = load_tensors(run_ref.run_dir / "kept" / "samples.safetensors")
    assert torch.equal(tensors["samples"], torch.cat(batches[:2]))
    assert meta["settings"]["n"] == 4 and meta["settings"]["n_requested"] == 8  # what the file holds
    assert json.loads((run_ref.run_dir / "kept" / "result.json").read_text())["n"] == 4
    stop_at["k"], batches[:] = 0, []  # before the first batch is finished: nothing to keep, no folder left
    before = set(run_ref.run_dir.rglob("*"))
    with pytest.raises(Interrupted, match="nothing was saved"):
        sample(run_ref, SampleOptions(n=8, steps=1, batch_size=2), device="cpu")
    assert set(run_ref.run_dir.rglob("*")) <= before | {run_ref.run_dir / "sample"}
    assert not list(run_ref.run_dir.rglob("*.tmp"))


def test_a_stopped_stream_keeps_the_rows_written(tmp_path):
    x = torch.rand(1000, 3)
    path = tmp_path / "samples.safetensors"
    with streaming_tensor_file(path, "samples", 1000, {"kind": "samples"}) as writer:
        writer.write(x[:120])
        writer.write(x[120:250])
        assert writer.keep_written() == 250
    tensors, meta = load_tensors(path)  # the digest checks out
    assert torch.equal(tensors["samples"], x[:250]) and meta == {"kind": "samples"}
    assert torch.equal(load_file(str(path))["samples"], x[:250])


@pytest.mark.parametrize(("note", "chunk"), [("", 1 << 24), ("a longer note than the header had room for " * 40, 1 << 24),
                                             ("a longer note " * 40, 100)])
def test_a_stopped_stream_saves_the_metadata_it_ends_with(tmp_path, monkeypatch, note, chunk):
    monkeypatch.setattr(StreamingTensorWriter, "move_chunk", chunk)  # 100: rows move in 30 overlapping chunks
    x = torch.rand(1000, 3)
    path = tmp_path / "samples.safetensors"
    with streaming_tensor_file(path, "samples", 1000, {"kind": "samples", "n": 1000}) as writer:
        writer.write(x[:120])
        writer.write(x[120:250])
        writer.keep_written({"kind": "samples", "n": 250, "n_requested": 1000, "note": note})
    tensors, meta = load_tensors(path)  # the digest checks out, and the rows moved intact past a longer header
    assert torch.equal(tensors["samples"], x[:250])
    assert meta == {"kind": "samples", "n": 250, "n_requested": 1000, "note": note}
    assert torch.equal(load_file(str(path))["samples"], x[:250])
