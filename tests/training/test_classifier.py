"""MLP head training: learns, early-stops on validation, restores the best weights, is deterministic."""

import numpy as np
import pytest
import torch

from tsfmlab.evaluation.baselines import CatBoostParams
from tsfmlab.evaluation.baselines import fit_catboost_classifier as fit_catboost
from tsfmlab.evaluation.classification import classification_scores
from tsfmlab.training.classifier import MLPParams, fit, mlp_head, predict_logits

P = MLPParams(
    hidden_sizes=[16],
    dropout=0.0,
    batch_norm=True,
    lr=1e-2,
    weight_decay=0.0,
    epochs=60,
    batch_size=8,
    patience=10,
    seed=0,
)


def blobs(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 5)).astype(np.float32) * 0.5 + np.eye(3, 5, dtype=np.float32)[y] * 3
    return x, y


def train_once(p=P, val_seed=2, log_dir=None, first_epoch=0, model=None):
    torch.manual_seed(0)
    (x, y), (xv, yv) = blobs(60, 1), blobs(20, val_seed)
    model = model or mlp_head(x, 3, p)
    data = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in ((x, y), (xv, yv))]
    result = fit(model, model, [{"params": list(model.parameters()), "lr": p.lr}], *data, p, log_dir, first_epoch)
    return model, result


def test_learns_a_separable_problem_deterministically():
    model, result = train_once()
    xt, yt = blobs(100, 3)
    pred = predict_logits(model, torch.from_numpy(xt), 32).argmax(1).numpy()
    assert classification_scores(yt, pred)["accuracy"] > 0.9
    model2, result2 = train_once()
    assert result == result2 and result.best_epoch >= 0
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_early_stopping_restores_the_best_validation_epoch():
    p = P.model_copy(update={"batch_norm": False, "lr": 5e-2, "epochs": 200, "patience": 5})
    model, result = train_once(p, val_seed=9)
    assert result.epochs_run < 200 and result.epochs_run - 1 - result.best_epoch == p.patience
    xv, yv = blobs(20, 9)
    restored = torch.nn.functional.cross_entropy(
        predict_logits(model, torch.from_numpy(xv), 8), torch.from_numpy(yv)
    )
    assert restored.item() == pytest.approx(result.best_val_loss, rel=1e-5)


def test_scores_on_a_hand_checked_example():
    # recall: class 0 1/2, class 1 2/2, class 2 0/1 (class 3 only predicted: no recall)
    # F1 over {0, 1, 2, 3}: 2/3, 4/5, 0, 0
    s = classification_scores(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 3]))
    assert s == {"accuracy": 0.6, "balanced_accuracy": 0.5, "macro_f1": round((2 / 3 + 4 / 5) / 4, 6)}


def test_catboost_uses_the_validation_split_for_early_stopping():
    (x, y), (xv, yv) = blobs(60, 1), blobs(20, 2)
    clf = fit_catboost(
        (x, y),
        (xv, yv),
        CatBoostParams(
            iterations=300,
            depth=3,
            learning_rate=0.1,
            border_count=32,
            early_stopping_rounds=20,
            thread_count=1,
            seed=0,
        ),
    )
    assert clf.get_best_iteration() < 299
    assert (clf.predict(blobs(50, 3)[0]).ravel() == blobs(50, 3)[1]).mean() > 0.9


def read_curve(path):
    rows = path.read_text().splitlines()[1:]
    return [(int(r.split("\t")[0]), float(r.split("\t")[1])) for r in rows]  # (step, value)


def test_curves_are_logged_per_epoch_and_a_second_phase_continues_them(tmp_path):
    model, first = train_once(log_dir=tmp_path)
    curve = tmp_path / "plots/metrics/val/loss.tsv"
    steps = [s for s, _ in read_curve(curve)]
    assert steps == list(range(first.epochs_run))  # the curves' step: the epoch
    assert dict(read_curve(curve))[first.best_epoch] == pytest.approx(first.best_val_loss, rel=1e-6)
    # a warm-started second phase: never worse than its start, its curves after the first phase's
    _, second = train_once(log_dir=tmp_path, first_epoch=first.epochs_run, model=model)
    assert second.best_val_loss <= first.best_val_loss + 1e-7
    steps = [s for s, _ in read_curve(curve)]
    assert steps == list(range(first.epochs_run + second.epochs_run))


def test_a_killed_second_phase_reruns_to_the_same_weights_results_and_curves(tmp_path, monkeypatch):
    """Lightning fits keep no checkpoints: a stage killed in the second phase runs both phases again,
    to the weights, results and curves of an uninterrupted run."""
    from tests.conftest import Killed, differing_files, kill_at_epoch
    from tsfmlab.training import classifier

    p = P.model_copy(update={"epochs": 4})

    def both_phases(log_dir):
        model, first = train_once(p, log_dir=log_dir)
        model, second = train_once(p, log_dir=log_dir, first_epoch=first.epochs_run, model=model)
        return model, (first, second)

    expected_model, expected = both_phases(tmp_path / "uninterrupted")

    def killing_trainer(*args, first_epoch=0, **kwargs):  # kills the second phase
        callbacks = [kill_at_epoch(2)] if first_epoch else []
        return make_trainer(*args, first_epoch=first_epoch, callbacks=callbacks, **kwargs)

    make_trainer = classifier.make_trainer
    with monkeypatch.context() as patch:
        patch.setattr(classifier, "make_trainer", killing_trainer)
        with pytest.raises(Killed):
            both_phases(tmp_path / "rerun")
    assert len(read_curve(tmp_path / "rerun/plots/metrics/val/loss.tsv")) == 4 + 2
    model, results = both_phases(tmp_path / "rerun")
    assert results == expected
    weights, reference = model.state_dict(), expected_model.state_dict()
    assert all(torch.equal(weights[k], reference[k]) for k in reference)
    assert differing_files(tmp_path / "rerun", tmp_path / "uninterrupted", ["plots"]) == []
