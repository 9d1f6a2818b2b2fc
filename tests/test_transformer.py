"""Tests of course_lib.nets.transformer: masks, shapes, causality, a learning test."""
import pytest
import torch

from course_lib.nets.transformer import GPT, Config, Transformer, make_mask


def test_masks():
    c = make_mask("causal", 4)
    assert c.dtype == torch.bool and torch.equal(c, torch.ones(4, 4, dtype=torch.bool).tril())
    assert make_mask("bidirectional", 4) is None
    b = make_mask("block_causal", 5, blocks=[1, 2, 2])
    assert b[0].tolist() == [True, False, False, False, False]
    assert b[1].tolist() == [True, True, True, False, False]          # sees its whole block
    assert b[4].tolist() == [True] * 5
    with pytest.raises(ValueError, match="sum to 4"):
        make_mask("block_causal", 5, blocks=[2, 2])
    with pytest.raises(ValueError, match="unknown mask"):
        make_mask("diagonal", 3)


def test_causal_output_does_not_depend_on_the_future():
    torch.manual_seed(0)
    tr = Transformer(Config(d_model=32, n_layer=2, n_head=4)).eval()
    x = torch.randn(2, 6, 32)
    y = tr(x, "causal")
    x2 = x.clone()
    x2[:, 4:] = torch.randn(2, 2, 32)
    y2 = tr(x2, "causal")
    assert torch.allclose(y[:, :4], y2[:, :4], atol=1e-5)
    assert not torch.allclose(y[:, 4:], y2[:, 4:], atol=1e-3)
    yb = tr(x2, "bidirectional")
    assert not torch.allclose(tr(x, "bidirectional")[:, :4], yb[:, :4], atol=1e-4)


def test_gpt_shapes_and_errors():
    gpt = GPT(Config(d_model=32, n_layer=1, n_head=2, vocab_size=11, block_size=8))
    idx = torch.randint(11, (3, 8))
    assert gpt(idx).shape == (3, 8, 11)
    with pytest.raises(ValueError, match="block_size"):
        gpt(torch.randint(11, (1, 9)))
    with pytest.raises(TypeError, match="idx: expected dtype torch.int64"):
        gpt(torch.rand(1, 4))
    with pytest.raises(ValueError, match="divisible"):
        Config(d_model=30, n_head=4)


def test_bad_token_ids_and_embeddings_name_the_argument():
    gpt = GPT(Config(d_model=16, n_layer=1, n_head=2, vocab_size=5, block_size=8))
    with pytest.raises(ValueError, match=r"idx: expected values in \[0, 4\], got values in \[0, 5\]"):
        gpt(torch.tensor([[0, 5, 1]]))
    with pytest.raises(ValueError, match=r"idx: expected values in \[0, 4\]"):
        gpt(torch.tensor([[-1, 2]]))
    with pytest.raises(ValueError, match=r"idx: expected a 2-D tensor"):
        gpt(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"idx is on cpu but the model is on meta"):
        gpt.to("meta")(torch.zeros(1, 3, dtype=torch.long))
    tr = Transformer(Config(d_model=16, n_layer=1, n_head=2))
    with pytest.raises(TypeError, match=r"x has dtype torch.float64 but the model's weights are torch.float32"):
        tr(torch.randn(1, 3, 16, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"x: expected embeddings \(B, T, 16\)"):
        tr(torch.randn(1, 3, 8))
    assert tr.double()(torch.randn(1, 3, 16, dtype=torch.float64), "causal").dtype == torch.float64


def test_gpt_learns_a_repeating_sequence():
    torch.manual_seed(0)
    gpt = GPT(Config(d_model=32, n_layer=2, n_head=2, vocab_size=5, block_size=16))
    seq = torch.arange(16) % 5
    opt = torch.optim.Adam(gpt.parameters(), lr=3e-3)
    for _ in range(150):
        x = seq[None].repeat(8, 1)
        logits = gpt(x[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 5), x[:, 1:].reshape(-1))
        opt.zero_grad(); loss.backward(); opt.step()
    assert loss.item() < 0.1, loss.item()


def test_kv_cache_gives_the_outputs_of_the_whole_causal_sequence():
    from course_lib.nets.transformer import KVCache
    torch.manual_seed(0)
    body = Transformer(Config(d_model=32, n_layer=2, n_head=4)).eval()
    x = torch.randn(3, 9, 32)
    full = body(x, "causal")                                               # (3, 9, 32)
    cache = KVCache()
    parts = [body(x[:, :4], cache=cache)]                                  # a 4-position prefix at once
    for t in range(4, 9):                                                  # then one position per call
        parts.append(body(x[:, t:t + 1], cache=cache))
    assert len(cache) == 9
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)
    with pytest.raises(ValueError, match="causal mask only"):
        body(x, "bidirectional", cache=KVCache())
    with pytest.raises(TypeError, match="KVCache"):
        body(x, cache={})
    with pytest.raises(ValueError, match="batch of 2 rows"):
        body(x[:2, :1], cache=cache)
