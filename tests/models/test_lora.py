import pytest
import torch

from tests.conftest import tokenizer_params
from tsfmlab.errors import ParamError
from tsfmlab.models.chronos_models import new_chronos_t5
from tsfmlab.models.loading import inner_model
from tsfmlab.models.lora import LoraParams, add_lora, linear_names, merged, save_adapter

TOK = tokenizer_params()
SMALL = {"d_model": 16, "d_ff": 32, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 2, "d_kv": 8}
LORA = LoraParams(r=4, alpha=8.0, dropout=0.0, target_modules=["q", "v"])


def model():
    return inner_model(new_chronos_t5("nano", TOK, overrides=SMALL, seed=0))


def batch():
    g = torch.Generator().manual_seed(0)
    return {
        "input_ids": torch.randint(2, 64, (2, 17), generator=g),
        "attention_mask": torch.ones(2, 17, dtype=torch.long),
        "labels": torch.randint(2, 64, (2, 5), generator=g),
    }


def test_only_adapter_params_get_gradients():
    peft_model = add_lora(model(), LORA, "finetune")
    peft_model.train()
    peft_model(**batch()).loss.backward()
    with_grad = {n for n, p in peft_model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert with_grad and with_grad <= trainable
    assert any(".q.lora_B" in n for n in with_grad) and any(".v.lora_B" in n for n in with_grad)


def test_merged_model_equals_base_plus_adapter(tmp_path):
    peft_model = add_lora(model(), LORA, "finetune").eval()
    with torch.no_grad():  # a non-trivial adapter (lora_B starts at zero)
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    b = batch()
    with torch.no_grad():
        expected = peft_model(**b).logits
    save_adapter(peft_model, tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    plain = merged(peft_model)
    assert not any("lora_" in n for n, _ in plain.named_parameters())
    with torch.no_grad():
        got = plain(**b).logits
        base = model().eval()(**b).logits
    merge_error = (got - expected).abs().max()
    assert merge_error <= 1e-5 * expected.abs().max()
    assert (got - base).abs().max() > 100 * merge_error  # and the adapter did change the model


def test_unknown_target_modules_fail_naming_the_param():
    assert {"q", "k", "v", "o", "wi", "wo"} <= set(linear_names(model()))
    with pytest.raises(ParamError, match=r"finetune.target_modules: \['query'\] not linear layers"):
        add_lora(model(), LoraParams(r=4, alpha=8.0, dropout=0.0, target_modules=["q", "query"]), "finetune")
