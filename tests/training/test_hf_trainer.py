from tsfmlab.training.hf_trainer import COMPLETE, checkpoint_dir, last_checkpoint, run_key


def test_only_complete_checkpoints_are_resumed(tmp_path):
    assert last_checkpoint(tmp_path / "none") is None
    for step in (5, 10, 15):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-5" / COMPLETE).touch()
    (tmp_path / "checkpoint-10" / COMPLETE).touch()  # 15 was being written when the run died
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")


def test_checkpoints_are_keyed_by_params():
    a = {"lr": 1e-3, "steps": 10}
    assert run_key(a) == run_key(dict(reversed(list(a.items()))))
    assert checkpoint_dir("teacher", a) != checkpoint_dir("teacher", {**a, "lr": 2e-3})


def test_marker_prunes_older_checkpoints_only_after_marking(tmp_path):
    from types import SimpleNamespace

    from tsfmlab.training.hf_trainer import checkpoint_marker

    for step in (5, 10):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-5" / COMPLETE).touch()
    args = SimpleNamespace(output_dir=str(tmp_path))
    state = SimpleNamespace(global_step=10, is_world_process_zero=True)
    checkpoint_marker().on_save(args, state, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-10"]
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")


def test_resuming_survives_a_half_written_dvclive_summary(tmp_path):
    from tsfmlab.training.hf_trainer import dvclive_callback

    (tmp_path / "metrics.json").write_text('{"step": 3, "lo')  # killed while dvclive wrote it
    callback = dvclive_callback(tmp_path, resume=True)
    assert callback.live.summary == {} and not (tmp_path / "metrics.json").exists()
    (tmp_path / "metrics.json").write_text('{"step": 3}')
    assert dvclive_callback(tmp_path, resume=True).live.summary == {"step": 3}
