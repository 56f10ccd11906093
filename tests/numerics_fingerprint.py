"""Hashes of what the stages compute on CPU, one line of JSON: the same on every x86-64 CPU under
``numerics.portable: true``. Run from a directory whose params.yaml has the numerics section:

    python tests/numerics_fingerprint.py                                # this CPU
    qemu-x86_64 -cpu EPYC-Rome .venv/bin/python tests/numerics_fingerprint.py   # an emulated AMD CPU

tests/test_numerics_cpus.py runs it natively and as an Intel and an AMD CPU model and compares.
"""

import tsfmlab  # noqa: F401, I001 -- first: pins the CPU numerics before numpy/torch load
import hashlib
import json
import sys
import time

import numpy as np
import torch

from tsfmlab import numerics


def digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = a.detach().contiguous().numpy() if isinstance(a, torch.Tensor) else np.ascontiguousarray(a)
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def kernels() -> dict[str, str]:
    """GEMMs of the models' shapes (short sides included: MKL takes other paths there), the element-wise
    ops MKL's vector math serves, softmax and layer norm."""
    g = torch.Generator().manual_seed(0)
    out = {}
    for m, k, n in [(1, 256, 1024), (7, 33, 129), (64, 256, 256), (128, 64, 64), (256, 512, 256)]:
        out[f"mm_{m}x{k}x{n}"] = digest(torch.randn(m, k, generator=g) @ torch.randn(k, n, generator=g))
    out["bmm"] = digest(torch.bmm(torch.randn(8, 64, 32, generator=g), torch.randn(8, 32, 64, generator=g)))
    x = torch.randn(8 * 1024 + 3, generator=g)
    f = torch.nn.functional
    for name, op in {
        "exp": torch.exp, "log": lambda v: torch.log(v.abs() + 1e-3), "sqrt": lambda v: torch.sqrt(v.abs()),
        "rsqrt": lambda v: torch.rsqrt(v.abs() + 1e-3), "erf": torch.erf, "tanh": torch.tanh,
        "sigmoid": torch.sigmoid, "gelu": f.gelu, "silu": f.silu, "softplus": f.softplus,
    }.items():  # fmt: skip
        out[name] = digest(op(x))
    y = torch.randn(16, 512, generator=g)
    out["softmax"] = digest(torch.softmax(y, -1), torch.log_softmax(y, -1))
    out["layer_norm"] = digest(f.layer_norm(y, (512,)), f.rms_norm(y, (512,)))
    out["numpy"] = digest(np.exp(y.numpy()), y.numpy().astype(np.float64) @ y.numpy().T.astype(np.float64))
    return out


def optimizer_steps() -> dict[str, str]:
    """Three steps of each AdamW implementation on a small MLP."""
    out = {}
    for variant in ("foreach", "fused"):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 10))
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, **{variant: True})
        x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        out[f"adamw_{variant}"] = digest(*net.parameters())
    return out


def teacher_steps(n_steps: int = 2, n_series: int = 2, context_length: int = 32) -> dict[str, str]:
    """A few steps of the default teacher (params.yaml's architecture and tokenizer; a small batch and a
    short context) on a small corpus, with the stage's optimizer and gradient clipping."""
    from tsfmlab.models.chronos_models import TokenizerParams, new_chronos_t5
    from tsfmlab.params import load_params, parse_section

    t = load_params("params.yaml")["teacher"]
    tok = parse_section(TokenizerParams, {**t["tokenizer"], "context_length": context_length}, "teacher.tokenizer")
    m = t["model"]
    pipeline = new_chronos_t5(
        m["size"], tok, m["tie_embeddings"], m["overrides"], 0, m["embedding_init"], m["position_init"],
        m["decoder_init"],
    )  # fmt: skip
    model = pipeline.model.model.train()
    rng = np.random.default_rng(0)
    steps = np.arange(tok.context_length + tok.prediction_length)
    series = torch.tensor(
        np.stack([np.sin(steps / p) * a + rng.standard_normal(steps.size) * 0.1
                  for p, a in zip(rng.uniform(2, 20, n_series), rng.uniform(0.5, 5, n_series))]),
        dtype=torch.float32,
    )  # fmt: skip
    tokenizer = pipeline.tokenizer
    ids, mask, scale = tokenizer.context_input_transform(series[:, : tok.context_length])
    labels, label_mask = tokenizer.label_input_transform(series[:, tok.context_length :], scale)
    labels[~label_mask] = -100
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    losses = []
    for _ in range(n_steps):
        opt.zero_grad()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.detach())
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, labels=labels).logits
    return {"teacher_steps": digest(torch.stack(losses), *model.parameters(), logits)}


def catboost_fit() -> dict[str, str]:
    """CatBoost as the classification and energy stages fit it: one thread, a fixed seed."""
    from catboost import CatBoostClassifier

    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 16))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    clf = CatBoostClassifier(iterations=30, depth=4, thread_count=1, random_seed=0, verbose=False,
                             allow_writing_files=False, loss_function="MultiClass")  # fmt: skip
    clf.fit(x[:90], y[:90], eval_set=(x[90:], y[90:]))
    return {"catboost": digest(clf.predict_proba(x))}


def numba_paths() -> dict[str, str]:
    """numba-compiled code that feeds outputs: dysts right-hand sides (polynomial and trigonometric) on many
    states, and aeon's MiniRocket features. Compiled for the pinned target and cached, so an emulated CPU
    runs the machine code the native run compiled (compiling under emulation takes minutes)."""
    import dysts.flows
    import numba
    from aeon.transformations.collection.convolution_based import MiniRocket

    out = {}
    states = np.random.default_rng(0).standard_normal((3, 4096)) * 5
    for name in ("Lorenz", "Thomas"):
        system = getattr(dysts.flows, name)()
        rhs = numba.njit(cache=True)(type(system)._rhs.py_func)
        out[f"dysts_{name.lower()}"] = digest(*rhs(*states, 0.0, *system.param_list))
    x = np.sin(np.linspace(0, 20, 4 * 64)).reshape(4, 1, 64) + np.arange(4).reshape(4, 1, 1) * 0.1
    out["minirocket"] = digest(np.asarray(MiniRocket(n_kernels=84, random_state=0).fit_transform(x)))
    return out


PARTS = {"kernels": kernels, "optimizer": optimizer_steps, "teacher": teacher_steps,
         "catboost": catboost_fit, "numba": numba_paths}  # fmt: skip


if __name__ == "__main__":
    numerics.check()
    torch.set_num_threads(torch.get_num_threads())
    names = sys.argv[1:] or list(PARTS)
    result = {}
    for name in names:
        start = time.perf_counter()
        result.update(PARTS[name]())
        print(f"{name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    print(json.dumps(result, sort_keys=True))
