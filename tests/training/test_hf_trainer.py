from pathlib import Path

import pytest

from tests.conftest import differing_files
from tsfmlab.training.hf_trainer import checkpoint_dir, last_checkpoint, run_key


def save_checkpoint(path, ranks=(), state='{"global_step": 1}\n'):
    """What the Trainer writes into a checkpoint that bears on resuming: the RNG state of ``ranks``
    (``None``: a single process), then ``trainer_state.json`` (``None``: not yet)."""
    import torch

    path.mkdir(parents=True)
    for rank in ranks:
        torch.save(
            {"cpu": torch.random.get_rng_state()}, path / f"rng_state{'' if rank is None else f'_{rank}'}.pth"
        )
    if state is not None:
        (path / "trainer_state.json").write_text(state)


def test_only_checkpoints_the_trainer_finished_are_resumed(tmp_path):
    assert last_checkpoint(tmp_path / "none") is None
    save_checkpoint(tmp_path / "checkpoint-5", [None])
    save_checkpoint(tmp_path / "checkpoint-10", [None])
    save_checkpoint(tmp_path / "checkpoint-15", [None], state=None)  # killed before the Trainer's state
    save_checkpoint(tmp_path / "checkpoint-20", [None], state='{"global_step": 2')  # killed while writing it
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")

    # torchrun: each rank writes its RNG state, the others with no barrier before rank 0's trainer state
    runs = tmp_path / "torchrun"
    save_checkpoint(runs / "checkpoint-5", [0, 1])
    save_checkpoint(runs / "checkpoint-10", [0])  # rank 1 was killed before writing its RNG state
    save_checkpoint(runs / "checkpoint-15", [0, 1])
    rng = (runs / "checkpoint-15" / "rng_state_1.pth").read_bytes()
    (runs / "checkpoint-15" / "rng_state_1.pth").write_bytes(rng[: len(rng) // 2])  # ... or while writing it
    assert last_checkpoint(runs, 2) == str(runs / "checkpoint-5")
    assert last_checkpoint(runs) is None  # a single process needs rng_state.pth


def test_checkpoints_are_keyed_by_params():
    a = {"lr": 1e-3, "steps": 10}
    assert run_key(a) == run_key(dict(reversed(list(a.items()))))
    assert checkpoint_dir("teacher", a) != checkpoint_dir("teacher", {**a, "lr": 2e-3})


def test_a_resumed_callback_logs_the_checkpoints_history_as_it_was_logged(tmp_path):
    """Resumed at step 4, the dvclive callback starts afresh, logs the log history the checkpoint holds,
    then the rest: its files (curves and summary) are those of a run never interrupted, whatever the
    killed run left (rows after the checkpoint, a torn row, a torn summary)."""
    from types import SimpleNamespace

    from tsfmlab.training.hf_trainer import dvclive_callback

    history = [
        {"loss": 0.5, "grad_norm": 1.5, "learning_rate": 1e-3, "epoch": 0.5, "step": 2},
        {"loss": 0.25, "grad_norm": 1.25, "learning_rate": 5e-4, "epoch": 1.0, "step": 4},
        {"eval_loss": 0.75, "epoch": 1.0, "step": 4},  # epoch again at the same step: logged once
        {"loss": 0.125, "grad_norm": 1.0, "learning_rate": 0.0, "epoch": 1.5, "step": 6},
        {"train_runtime": 9.9, "train_samples_per_second": 9.9, "train_loss": 9.9, "epoch": 1.5, "step": 6},
    ]

    def state(upto):
        return SimpleNamespace(
            global_step=history[upto - 1]["step"], log_history=history[:upto], is_world_process_zero=True
        )

    def log(callback, upto):
        logs = {k: v for k, v in history[upto - 1].items() if k != "step"}
        callback.on_log(None, state(upto), None, logs=logs)

    uninterrupted = dvclive_callback(tmp_path / "uninterrupted", summary=True)
    uninterrupted.on_train_begin(
        None, SimpleNamespace(global_step=0, log_history=[], is_world_process_zero=True), None
    )
    for upto in range(1, len(history) + 1):
        log(uninterrupted, upto)
    uninterrupted.on_train_end(None, state(len(history)), None)

    killed = tmp_path / "resumed"
    interrupted = dvclive_callback(killed, summary=True)
    for upto in range(1, 5):  # up to step 6, past the checkpoint at step 4; then killed
        log(interrupted, upto)
    (killed / "plots" / "metrics" / "loss.tsv").write_text("step\tloss\n2\t0.5\n4\t0.25\n6\t0.1")  # torn
    (killed / "metrics.json").write_text('{"step": 6, "lo')  # torn
    resumed = dvclive_callback(killed, summary=True)
    resumed.on_train_begin(None, state(3), None)  # the checkpoint at step 4 holds three entries
    for upto in (4, 5):
        log(resumed, upto)
    resumed.on_train_end(None, state(len(history)), None)

    assert differing_files(killed, tmp_path / "uninterrupted", ["plots", "metrics.json"]) == []
    loss = (killed / "plots" / "metrics" / "loss.tsv").read_text()
    assert loss == "step\tloss\n2\t0.5\n4\t0.25\n6\t0.125\n"
    assert (killed / "plots" / "metrics" / "epoch.tsv").read_text() == "step\tepoch\n2\t0.5\n4\t1.0\n6\t1.5\n"
    mean = (0.5 * 2 + 0.25 * 2 + 0.125 * 2) / 6  # the run's mean loss, not the Trainer's figure
    assert (killed / "plots" / "metrics" / "train" / "loss.tsv").read_text() == f"step\tloss\n6\t{mean}\n"
    assert not list(killed.rglob("*runtime*")) and not list(killed.rglob("*per_second*"))


# ---- the checkpoint key covers the run's inputs


def write_tree(root, files: dict[str, bytes]):
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_inputs_digest_follows_every_file_of_the_inputs(tmp_path, monkeypatch):
    from tsfmlab.training.hf_trainer import inputs_digest

    files = {"a.arrow": b"x" * 100_000, "sub/b.json": b"{}", "sub/deeper/c.bin": b"\0\1"}
    write_tree(tmp_path / "here" / "corpus", files)
    write_tree(tmp_path / "there" / "corpus", dict(reversed(list(files.items()))))  # in another order
    monkeypatch.chdir(tmp_path / "there")
    elsewhere = inputs_digest(["corpus"])
    monkeypatch.chdir(tmp_path / "here")
    digest = inputs_digest(["corpus"])
    assert digest == elsewhere and len(digest) == 64  # the same files: the same digest
    assert inputs_digest([Path("corpus").resolve()]) != digest  # the input's name counts

    one = Path("corpus")
    (one / "sub/b.json").write_bytes(b"{ }")  # edited
    assert inputs_digest([one]) != digest
    (one / "sub/b.json").write_bytes(b"{}")
    assert inputs_digest([one]) == digest
    (one / "sub/b.json").rename(one / "sub/b2.json")  # renamed
    assert inputs_digest([one]) != digest
    (one / "sub/b2.json").rename(one / "sub/b.json")
    (one / "extra").write_bytes(b"")  # added (even empty)
    assert inputs_digest([one]) != digest
    (one / "extra").unlink()
    assert inputs_digest([one]) == digest

    assert inputs_digest([one / "a.arrow"]) != inputs_digest([one / "sub/b.json"])  # single files
    assert inputs_digest(["amazon/chronos-t5-small"]) == inputs_digest(["amazon/chronos-t5-small"])
    assert inputs_digest(["amazon/chronos-t5-small"]) != inputs_digest(["amazon/chronos-t5-base"])


def test_checkpoints_are_keyed_by_input_contents(tmp_path):
    params = {"lr": 1e-3}
    data = write_tree(tmp_path / "corpus", {"part-0.arrow": b"old corpus"})
    key = run_key(params, [data])
    assert run_key(params) != key and run_key(params, [data]) == key
    (data / "part-0.arrow").write_bytes(b"new corpus")
    assert run_key(params, [data]) != key
    assert checkpoint_dir("distill", params, [data]).parent == checkpoint_dir("distill", params).parent


# ---- tiny training runs: dvclive steps, interruption and resume


class Interrupted(Exception):
    pass


def tiny_fit(work, corpus_dir, max_steps=6, save_steps=2, log_steps=1, interrupt_at=None):
    """Train a tiny Chronos-T5 on the series in ``corpus_dir/series.npy`` (the run's input) with
    :func:`fit` in ``work``; with ``interrupt_at`` the run dies once the Trainer has done that many
    steps (after their logs and checkpoints). Returns the stats and the global step training began at."""
    import numpy as np
    from transformers import TrainerCallback

    from tests.conftest import tiny_chronos
    from tsfmlab.models.loading import inner_model
    from tsfmlab.training.chronos_data import ChronosWindowDataset
    from tsfmlab.training.hf_trainer import TrainParams, fit

    pipeline = tiny_chronos(context_length=32, prediction_length=8, num_layers=1, num_decoder_layers=1)
    corpus = list(np.load(corpus_dir / "series.npy"))
    dataset = ChronosWindowDataset(
        [corpus], [1.0], pipeline.tokenizer, 32, 8, min_past=8, shuffle_buffer_length=0, seed=0
    )
    train = TrainParams(
        max_steps=max_steps, save_steps=save_steps, log_steps=log_steps, per_device_train_batch_size=4,
        gradient_accumulation_steps=1, learning_rate=1e-3, optim="adamw_torch", lr_scheduler_type="linear",
        warmup_ratio=0.0, weight_decay=0.0, max_grad_norm=1.0, dataloader_num_workers=0,
        mixed_precision="no", tf32=False, torch_compile=False, gradient_checkpointing=False, distributed="ddp",
        seed=0,
    )  # fmt: skip
    began = []

    class Watch(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            began.append(state.global_step)

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == interrupt_at:
                raise Interrupted

        def on_train_end(self, args, state, control, **kwargs):
            if state.global_step == interrupt_at:
                raise Interrupted  # after the last step's checkpoint and the run's summary log

    model = inner_model(pipeline).train()
    _, stats = fit(
        model, dataset, train, "tiny", {"run": "tiny"}, work / "live", callbacks=[Watch()], inputs=[corpus_dir],
    )  # fmt: skip
    return stats, began[0], model


def write_corpus(path, seed):
    import numpy as np

    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    np.save(path / "series.npy", np.cumsum(rng.normal(size=(8, 80)), axis=1).astype(np.float32))
    return path


def curve(live, name="loss") -> list[int]:
    """The ``step`` column of a dvclive curve."""
    import csv

    with (live / "plots" / "metrics" / f"{name}.tsv").open() as f:
        return [int(row["step"]) for row in csv.DictReader(f, delimiter="\t")]


def checkpoints(work) -> list[str]:
    return sorted(p.name for p in (work / ".checkpoints" / "tiny").glob("*/checkpoint-*"))


def strictly_increasing(steps) -> bool:
    return all(a < b for a, b in zip(steps, steps[1:]))


def test_curves_step_is_the_trainers_global_step(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    stats, began, _ = tiny_fit(tmp_path, write_corpus(tmp_path / "corpus", 0), max_steps=6, log_steps=2)
    assert stats["steps"] == 6 and not stats["resumed"] and began == 0
    live = tmp_path / "live"
    for name in ("loss", "grad_norm", "learning_rate", "epoch"):
        assert curve(live, name) == [2, 4, 6], name  # logging_steps 2: N, 2N, 3N; epoch logged once a step
    assert curve(live, "train/loss") == [6]  # the run's mean loss, at its last step
    assert not (live / "metrics.json").exists()  # curves only: a stage's metrics are its own file


@pytest.mark.parametrize(
    "save_steps, log_steps, interrupt_at, resumed_from",
    [(2, 1, 3, 2), (4, 3, 5, 4), (2, 1, 6, 4)],
    ids=["after-a-checkpoint", "between-logs", "after-the-last-step"],
)
def test_a_resumed_run_gives_the_bytes_of_an_uninterrupted_one(
    tmp_path, monkeypatch, one_thread, save_steps, log_steps, interrupt_at, resumed_from
):
    """Killed after ``interrupt_at`` of 6 steps and started again: the run resumes from its newest
    checkpoint, and its weights, summary figures and curves are those of a run never interrupted."""
    import torch

    monkeypatch.chdir(tmp_path)
    corpus = write_corpus(tmp_path / "corpus", 0)
    steps = {"save_steps": save_steps, "log_steps": log_steps}
    expected, _, uninterrupted = tiny_fit(tmp_path / "uninterrupted", corpus, **steps)
    with pytest.raises(Interrupted):
        tiny_fit(tmp_path / "resumed", corpus, interrupt_at=interrupt_at, **steps)
    assert checkpoints(tmp_path) == [f"checkpoint-{resumed_from}"]  # the Trainer's rotation kept one
    with (tmp_path / "resumed" / "live" / "plots" / "metrics" / "loss.tsv").open("a") as f:
        f.write("9\t0.")  # and a row a kill tore
    stats, began, model = tiny_fit(tmp_path / "resumed", corpus, **steps)
    assert began == resumed_from and stats.pop("resumed") and not expected.pop("resumed")
    del stats["samples_per_second"], expected["samples_per_second"]  # wall-clock: printed only
    assert stats == expected and stats["steps"] == 6
    weights, reference = model.state_dict(), uninterrupted.state_dict()
    assert all(torch.equal(weights[k], reference[k]) for k in reference)
    assert differing_files(tmp_path / "resumed", tmp_path / "uninterrupted", ["live"]) == []
    assert strictly_increasing(curve(tmp_path / "resumed" / "live"))
    assert checkpoints(tmp_path) == []  # removed once the run completed


def test_a_run_killed_while_the_trainer_saves_resumes_from_the_previous_checkpoint(
    tmp_path, monkeypatch, one_thread
):
    """Killed while the Trainer wrote ``trainer_state.json`` (its last file) into the checkpoint at step 4:
    that checkpoint is not resumed, the one at step 2 (not yet rotated away) is, to the same bytes."""
    import torch
    from transformers import TrainerState

    monkeypatch.chdir(tmp_path)
    corpus = write_corpus(tmp_path / "corpus", 0)
    expected, _, uninterrupted = tiny_fit(tmp_path / "uninterrupted", corpus)
    save = TrainerState.save_to_json

    def killed_at_4(self, json_path):
        if self.global_step == 4:
            Path(json_path).write_text('{"global_step": 4, "lo')
            raise Interrupted
        save(self, json_path)

    monkeypatch.setattr(TrainerState, "save_to_json", killed_at_4)
    with pytest.raises(Interrupted):
        tiny_fit(tmp_path / "resumed", corpus)
    monkeypatch.setattr(TrainerState, "save_to_json", save)
    assert checkpoints(tmp_path) == ["checkpoint-2", "checkpoint-4"]
    stats, began, model = tiny_fit(tmp_path / "resumed", corpus)
    assert began == 2 and stats.pop("resumed") and not expected.pop("resumed")
    del stats["samples_per_second"], expected["samples_per_second"]
    assert stats == expected
    weights, reference = model.state_dict(), uninterrupted.state_dict()
    assert all(torch.equal(weights[k], reference[k]) for k in reference)
    assert differing_files(tmp_path / "resumed", tmp_path / "uninterrupted", ["live"]) == []


def test_a_checkpoint_of_other_inputs_is_never_resumed(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    corpus = write_corpus(tmp_path / "corpus", 0)
    with pytest.raises(Interrupted):
        tiny_fit(tmp_path, corpus, interrupt_at=3)
    (stale,) = (tmp_path / ".checkpoints" / "tiny").iterdir()
    write_corpus(corpus, 1)  # the input was regenerated while the run was down
    stats, began, _ = tiny_fit(tmp_path, corpus)
    assert not stats["resumed"] and began == 0 and stats["steps"] == 6  # the checkpoint was not loaded
    assert curve(tmp_path / "live") == [1, 2, 3, 4, 5, 6]  # a fresh curve, not the stale run's rows
    # the fresh run's checkpoints went at its end; the stale one, under its own key, was left unused
    assert list((tmp_path / ".checkpoints" / "tiny").iterdir()) == [stale]
    assert last_checkpoint(stale) == str(stale / "checkpoint-2")
