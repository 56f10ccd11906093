"""One rank of an FSDP2 step on CPU (gloo), launched by test_torchrun_training.py through torchrun.

accelerate applies FSDP on GPUs only, so this worker does by hand what its FSDP2 preparation does with
the ``fsdp_config`` of ``hf_parallel.fsdp_options`` (``fully_shard`` on every block that
``block_classes`` names, then on the root), on a copy of a tiny Chronos-T5, as ``hf_trainer.fit`` does;
takes one SGD step on this rank's batch; and gathers the weights back into the unsharded original with
``gather_full_weights``. Rank 0 also takes the same step on an unsharded replica with both ranks'
batches (FSDP averages the ranks' gradients: the gradient of the mean of the two batch losses).
Writes OUT/rank-R.json (blocks, parameters held) and, on rank 0, OUT/{gathered,replica,initial}.safetensors.
"""

import copy
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from tests.conftest import tiny_chronos
from tsfmlab.models.loading import inner_model
from tsfmlab.training.hf_parallel import block_classes, gather_full_weights


def batch(rank: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + rank)
    return {
        "input_ids": torch.randint(2, 60, (4, 32), generator=g),
        "attention_mask": torch.ones(4, 32, dtype=torch.long),
        "labels": torch.randint(2, 60, (4, 9), generator=g),
    }


def sgd_step(model: torch.nn.Module, batches: list[dict]) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = sum(model(**b).loss for b in batches) / len(batches)
    loss.backward()
    optimizer.step()


def plain(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    original = inner_model(tiny_chronos(seed=0)).eval()  # eval: no dropout, so the replica can agree
    initial = plain(original)
    sharded = copy.deepcopy(original)
    blocks = block_classes(sharded)
    for module in list(sharded.modules()):
        if type(module).__name__ in blocks:
            fully_shard(module)
    fully_shard(sharded)
    params = list(sharded.parameters())
    info = {
        "world_size": dist.get_world_size(),
        "blocks": blocks,
        "sharded": all(isinstance(p, DTensor) for p in params),
        "held": sum(p.to_local().numel() for p in params),
        "total": sum(p.numel() for p in params),
    }
    sgd_step(sharded, [batch(rank)])
    gather_full_weights(sharded, original)  # a collective: every rank
    (out / f"rank-{rank}.json").write_text(json.dumps(info))
    if rank == 0:
        replica = inner_model(tiny_chronos(seed=0)).eval()
        sgd_step(replica, [batch(0), batch(1)])
        save_file(initial, str(out / "initial.safetensors"))
        save_file(plain(original), str(out / "gathered.safetensors"))
        save_file(plain(replica), str(out / "replica.safetensors"))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
