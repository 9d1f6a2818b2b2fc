"""The prompt as condition tokens, null-prompt dropout, classifier-free guidance on logits."""
import pytest
import torch

from course_lib import data
from course_lib.orders import prompt


def test_prompt_embedding_gives_four_tokens_and_accepts_null_ids():
    emb = prompt.PromptEmbedding(32)
    p = data.shapes(5, seed=0).prompts
    assert emb(p).shape == (5, 4, 32)
    null = prompt.null_prompts(5)
    assert null.tolist() == [[4, 6, 9, 2]] * 5
    assert not torch.allclose(emb(null), emb(p))
    with pytest.raises(ValueError, match=r"prompts\[:, 1\] \(color\): expected values in \[0, 6\]"):
        emb(torch.tensor([[0, 7, 0, 0]]))
    with pytest.raises(ValueError, match=r"expected shape \(B, 4\)"):
        emb(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        emb(p.float())


def test_drop_prompts_replaces_whole_rows_at_the_given_rate_and_leaves_the_input_alone():
    p = data.shapes(4000, seed=1).prompts
    before = p.clone()
    out = prompt.drop_prompts(p, 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(p, before)
    dropped = (out == prompt.NULL).all(1)
    kept = (out == p).all(1)
    assert bool((dropped | kept).all())                       # a row is all null or untouched
    assert 0.08 < dropped.float().mean().item() < 0.12
    assert torch.equal(prompt.drop_prompts(p, 0.0), p)
    assert bool((prompt.drop_prompts(p, 1.0) == prompt.NULL).all())
    again = prompt.drop_prompts(p, 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    with pytest.raises(ValueError, match=r"p: expected a number in \[0.0, 1.0\]"):
        prompt.drop_prompts(p, 1.5)


def test_cfg_logits_is_the_guidance_formula():
    c, u = torch.randn(3, 7), torch.randn(3, 7)
    assert torch.allclose(prompt.cfg_logits(c, u, 1.0), c)
    assert torch.allclose(prompt.cfg_logits(c, u, 0.0), u)
    assert torch.allclose(prompt.cfg_logits(c, u, 3.0), u + 3 * (c - u))
    with pytest.raises(ValueError, match="same shape"):
        prompt.cfg_logits(c, u[:, :5], 2.0)
    with pytest.raises(TypeError, match="scale"):
        prompt.cfg_logits(c, u, "2")
