"""MLP head training: learns, early-stops on validation, restores the best weights, is deterministic."""

import numpy as np
import pytest
import torch

from tsfmlab.evaluation.classification import classification_scores
from tsfmlab.training.classifier import CatBoostParams, MLPParams, fit, fit_catboost, mlp_head, predict_logits

P = MLPParams([16], 0.0, True, 1e-2, 0.0, 60, 8, 10, 0)


def blobs(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 5)).astype(np.float32) * 0.5 + np.eye(3, 5, dtype=np.float32)[y] * 3
    return x, y


def train_once(p=P, val_seed=2):
    torch.manual_seed(0)
    (x, y), (xv, yv) = blobs(60, 1), blobs(20, val_seed)
    model = mlp_head(x, 3, p)
    data = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in ((x, y), (xv, yv))]
    result = fit(model, model, [{"params": model.parameters(), "lr": p.lr}], *data, p)
    return model, result


def test_learns_a_separable_problem_deterministically():
    model, result = train_once()
    xt, yt = blobs(100, 3)
    pred = predict_logits(model, torch.from_numpy(xt), 32).argmax(1).numpy()
    assert classification_scores(yt, pred)["accuracy"] > 0.9
    model2, result2 = train_once()
    assert result.history == result2.history
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_early_stopping_restores_the_best_validation_epoch():
    p = MLPParams([16], 0.0, False, 5e-2, 0.0, 200, 8, 5, 0)
    model, result = train_once(p, val_seed=9)
    val = [h["val_loss"] for h in result.history]
    assert result.epochs_run < 200 and result.epochs_run - 1 - result.best_epoch == p.patience
    assert min(val) <= result.best_val_loss <= min(val) + 1e-6  # improvements under 1e-6 do not count
    assert result.best_val_loss == val[result.best_epoch]
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
    clf = fit_catboost((x, y), (xv, yv), CatBoostParams(300, 3, 0.1, 32, 20, 1, 0))
    assert clf.get_best_iteration() < 299
    assert (clf.predict(blobs(50, 3)[0]).ravel() == blobs(50, 3)[1]).mean() > 0.9


def test_log_gets_each_epoch_index_with_its_row():
    torch.manual_seed(0)
    (x, y), (xv, yv) = blobs(60, 1), blobs(20, 2)
    model = mlp_head(x, 3, P)
    logged = []
    data = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in ((x, y), (xv, yv))]
    result = fit(model, model, [{"params": model.parameters(), "lr": P.lr}], *data, P,
                 lambda epoch, row: logged.append((epoch, row)))  # fmt: skip
    assert [e for e, _ in logged] == list(range(result.epochs_run))  # the curves' step: the epoch
    assert [row for _, row in logged] == result.history
