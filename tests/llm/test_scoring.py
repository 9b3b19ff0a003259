import math

import torch
from transformers import LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

from llmrec.config import LoraSettings
from llmrec.llm.backbone import add_lora, is_encoder_decoder
from llmrec.llm.scoring import answer_logits, answer_loss, answer_targets, p_yes


def tiny_llama(vocab=50):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def tiny_t5(vocab=50):
    torch.manual_seed(0)
    config = T5Config(vocab_size=vocab, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, pad_token_id=0,
                      decoder_start_token_id=0)
    return T5ForConditionalGeneration(config).eval()


class Wrapper(torch.nn.Module):
    """A wrapper with no .config of its own (as DDP or a SISA ensemble) that passes every argument on."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, **kwargs):
        return self.inner(**kwargs)


def test_answer_logits_match_the_unpadded_last_position():
    model = tiny_llama()
    short, long = torch.tensor([5, 6, 7]), torch.tensor([9, 8, 7, 6, 5, 4])
    pad = 0
    input_ids = torch.stack([torch.cat([torch.full((3,), pad), short]), long])
    attention_mask = (torch.arange(6) >= torch.tensor([[3], [0]])).long()
    got = answer_logits(model, input_ids, attention_mask)
    assert got.shape == (2, 50)
    with torch.no_grad():
        for row, ids in enumerate([short, long]):
            full = model(input_ids=ids[None]).logits[0, -1]
            torch.testing.assert_close(got[row], full, atol=1e-5, rtol=1e-4)


def test_only_the_answer_position_reaches_the_lm_head():
    model = tiny_llama()
    seen = []
    model.lm_head.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    answer_logits(model, torch.ones(4, 9, dtype=torch.long), torch.ones(4, 9, dtype=torch.long))
    assert seen == [torch.Size([4, 1, 50])]


def test_p_yes_is_a_two_way_softmax():
    logits = torch.tensor([[0.0, 2.0, 0.0, 100.0], [0.0, -1.0, 1.0, 0.0]])
    probs = p_yes(logits, yes_id=1, no_id=2)
    torch.testing.assert_close(probs, torch.tensor([1 / (1 + math.exp(-2)), 1 / (1 + math.exp(2))]))


def test_answer_loss_is_cross_entropy_on_the_answer_token():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]])
    labels = torch.tensor([1, 0])  # row 0 wants yes (id 2), row 1 wants no (id 0)
    assert answer_targets(labels, yes_id=2, no_id=0).tolist() == [2, 0]
    expected = (-(3.0 - math.log(math.exp(1) + math.exp(2) + math.exp(3))) + math.log(3)) / 2
    assert math.isclose(answer_loss(logits, labels, yes_id=2, no_id=0).item(), expected, rel_tol=1e-6)
    assert answer_loss(torch.tensor([[0.0, 0.0, 50.0]]), torch.tensor([1]), 2, 0).item() < 1e-6


def test_an_encoder_decoder_is_scored_as_one_through_any_wrapper():
    t5 = tiny_t5()
    ids, mask = torch.tensor([[0, 5, 6, 7], [8, 9, 10, 11]]), torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    with torch.no_grad():
        expected = answer_logits(t5, ids, mask)
        for wrapped in (Wrapper(t5), Wrapper(Wrapper(t5)), add_lora(tiny_t5(), LoraSettings(r=2)).eval()):
            assert is_encoder_decoder(wrapped)
            torch.testing.assert_close(answer_logits(wrapped, ids, mask), expected)  # fresh LoRA: B = 0
    assert not is_encoder_decoder(Wrapper(tiny_llama())) and not is_encoder_decoder(torch.nn.Linear(2, 2))
