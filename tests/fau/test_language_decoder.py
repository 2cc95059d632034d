"""VL-FAU language pieces: the template vocabulary and the soft-attention LSTM decoder (teacher
forcing, greedy and beam decoding, length limits)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from fau.aus import BP4D_AUS
from fau.language.targets import load_template
from fau.language.vocab import Vocabulary, au_token, detokenize, encode_targets, tokenize
from fau.layers.language_decoder import AttentionLSTMDecoder, WordLayer

VOCAB, FEATURES, POSITIONS = 12, 8, 5
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2


def toy(seed: int = 0, dropout: float = 0.0) -> tuple[AttentionLSTMDecoder, WordLayer]:
    torch.manual_seed(seed)
    return (AttentionLSTMDecoder(FEATURES, 16, 8, 8, dropout).eval(), WordLayer(VOCAB, 8, 16, PAD_ID, [BOS_ID]).eval())


def forced_log_likelihood(decoder, words, features, start, tokens) -> torch.Tensor:
    """Summed log p of `tokens` (up to and including <eos>) under teacher forcing."""
    inputs = torch.cat([start[:, None], tokens[:, :-1]], dim=1)
    logits, _, _ = decoder(features, inputs, words)
    log_probs = torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return (log_probs * (tokens != PAD_ID)).sum(dim=1)


def test_vocabulary_is_built_from_the_template_and_encodes_with_bos_eos_pad() -> None:
    template = load_template()
    vocab = Vocabulary.from_template(template)
    assert vocab.tokens[:4] == ("<pad>", "<bos>", "<eos>", "<unk>") and vocab.pad == 0
    assert {au_token(a) for a in template.aus} <= set(vocab.tokens)
    assert Vocabulary.from_template(template) == vocab and vocab.version == template.version
    for entry in template.aus.values():
        for text in (entry.active, entry.inactive):
            assert "<unk>" not in [vocab.tokens[vocab.id(t)] for t in tokenize(text)]
            assert detokenize(tokenize(text)) == text
    text = template.aus[12].active
    ids = vocab.encode(text, vocab.start(12), 40)
    n = len(tokenize(text))
    assert len(ids) == 41 and ids[0] == vocab.id("<au12>") and ids[n + 1] == vocab.eos
    assert ids[n + 2:] == [vocab.pad] * (39 - n)
    assert vocab.decode(ids[1:]) == text
    short = vocab.encode(text, vocab.bos, 5)
    # cut to 5 generated ids: the first 4 words and always <eos> (a cut target still teaches stopping)
    assert short == [vocab.bos, *[vocab.id(t) for t in tokenize(text)[:4]], vocab.eos]
    assert vocab.encode(None, vocab.bos, 7) == [vocab.pad] * 8


def test_encode_targets_orders_aus_and_blanks_unknown_labels() -> None:
    template = load_template()
    vocab = Vocabulary.from_template(template)
    labels = [f"AU{a}" for a in BP4D_AUS]
    local = {name: (template.aus[a].active if i == 0 else None) for i, (name, a) in enumerate(zip(labels, BP4D_AUS))}
    entries = [{"local": local, "global": "The woman raises her cheeks."}]
    out = encode_targets(vocab, entries, labels, BP4D_AUS, 40, 60, au_start=True)
    assert out["local_tokens"].shape == (1, 12, 41) and out["global_tokens"].shape == (1, 61)
    assert out["local_tokens"][0, 0, 0] == vocab.id("<au1>") and (out["local_tokens"][0, 1:] == vocab.pad).all()
    assert out["global_tokens"][0, 0] == vocab.bos
    plain = encode_targets(vocab, entries, labels, BP4D_AUS, 40, 60, au_start=False)
    assert plain["local_tokens"][0, 0, 0] == vocab.bos


def test_decoder_shapes_and_attention_is_a_distribution() -> None:
    decoder, words = toy()
    features = torch.randn(3, POSITIONS, FEATURES)
    inputs = torch.randint(1, VOCAB, (3, 6))
    logits, alpha, context = decoder(features, inputs, words)
    assert logits.shape == (3, 6, VOCAB) and alpha.shape == (3, 6, POSITIONS) and context.shape == (3, 6, FEATURES)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(3, 6))
    torch.testing.assert_close(context, torch.einsum("btn,bnd->btd", alpha, features))


def test_decode_lengths_change_no_scored_position_or_gradient() -> None:
    """With `lengths` each row stops after its last scored id: the logits, attention and contexts of
    every scored position and all gradients equal the full-length run; later positions are zeros."""
    decoder, words = toy(seed=5)
    features = torch.randn(5, POSITIONS, FEATURES, requires_grad=True)
    inputs = torch.randint(3, VOCAB, (5, 7))
    lengths = torch.tensor([3, 7, 1, 5, 3])
    scored = torch.arange(7)[None, :] < lengths[:, None]
    results = []
    for given in (None, lengths):
        decoder.zero_grad()
        features.grad = None
        logits, alpha, context = decoder(features, inputs, words, lengths=given)
        (logits.log_softmax(-1)[scored].sum() + context[scored].pow(2).sum()).backward()
        results.append((logits, alpha, context, features.grad.clone(), decoder.cell.weight_ih.grad.clone()))
    (full_logits, full_alpha, full_context, full_grad, full_wgrad), (logits, alpha, context, grad, wgrad) = results
    torch.testing.assert_close(logits[scored], full_logits[scored])
    torch.testing.assert_close(alpha[scored], full_alpha[scored])
    torch.testing.assert_close(context[scored], full_context[scored])
    assert alpha[~scored].abs().sum() == 0 and context[~scored].abs().sum() == 0
    torch.testing.assert_close(grad, full_grad)
    torch.testing.assert_close(wgrad, full_wgrad)


def test_teacher_forced_argmax_equals_greedy_tokens() -> None:
    decoder, words = toy(seed=3)
    features, start = torch.randn(4, POSITIONS, FEATURES), torch.full((4,), BOS_ID)
    greedy = decoder.greedy(features, start, 9, words, EOS_ID, PAD_ID)
    inputs = torch.cat([start[:, None], greedy.tokens[:, :-1]], dim=1)
    logits, _, _ = decoder(features, inputs, words)
    valid = greedy.tokens != PAD_ID
    assert torch.equal(logits.argmax(-1)[valid], greedy.tokens[valid])
    torch.testing.assert_close(forced_log_likelihood(decoder, words, features, start, greedy.tokens),
                               greedy.log_likelihood)


def test_trained_toy_greedy_reproduces_its_targets() -> None:
    """Overfit three feature sets to three token sequences; greedy decoding then reproduces them and
    the teacher-forced argmax agrees with the greedy tokens."""
    torch.manual_seed(0)
    decoder, words = AttentionLSTMDecoder(FEATURES, 16, 8, 8, 0.0), WordLayer(VOCAB, 8, 16, PAD_ID, [BOS_ID])
    features = torch.randn(3, POSITIONS, FEATURES)
    targets = torch.tensor([[5, 6, 7, EOS_ID, PAD_ID], [8, 8, 9, 10, EOS_ID], [11, EOS_ID, PAD_ID, PAD_ID, PAD_ID]])
    start = torch.full((3,), BOS_ID)
    optimiser = torch.optim.Adam([*decoder.parameters(), *words.parameters()], lr=2e-2)
    for _ in range(150):
        logits, _, _ = decoder(features, torch.cat([start[:, None], targets[:, :-1]], 1), words)
        loss = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=PAD_ID)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    decoder.eval()
    greedy = decoder.greedy(features, start, 8, words, EOS_ID, PAD_ID)
    assert torch.equal(greedy.tokens[:, :5], targets) and (greedy.tokens[:, 5:] == PAD_ID).all()
    logits, _, _ = decoder(features, torch.cat([start[:, None], targets[:, :-1]], 1), words)
    assert torch.equal(logits.argmax(-1)[targets != PAD_ID], targets[targets != PAD_ID])
    beam = decoder.beam(features, start, 8, words, EOS_ID, PAD_ID, size=3)
    assert torch.equal(beam.tokens[:, :5], targets)


def test_beam_log_likelihood_is_at_least_greedy_and_beam_one_is_greedy() -> None:
    decoder, words = toy(seed=5)
    features, start = torch.randn(16, POSITIONS, FEATURES), torch.full((16,), BOS_ID)
    greedy = decoder.greedy(features, start, 7, words, EOS_ID, PAD_ID)
    beam = decoder.beam(features, start, 7, words, EOS_ID, PAD_ID, size=3)
    assert (beam.log_likelihood >= greedy.log_likelihood - 1e-5).all()
    assert (beam.log_likelihood > greedy.log_likelihood + 1e-5).any()
    torch.testing.assert_close(forced_log_likelihood(decoder, words, features, start, beam.tokens), beam.log_likelihood)
    one = decoder.beam(features, start, 7, words, EOS_ID, PAD_ID, size=1)
    width = greedy.tokens.shape[1]
    assert torch.equal(one.tokens[:, :width], greedy.tokens) and (one.tokens[:, width:] == PAD_ID).all()
    torch.testing.assert_close(one.log_likelihood, greedy.log_likelihood)


def test_length_limits_are_respected() -> None:
    decoder, words = toy(seed=1)
    features, start = torch.randn(5, POSITIONS, FEATURES), torch.full((5,), BOS_ID)
    with torch.no_grad():
        words.output.bias[EOS_ID] = -1e4   # never finishes: every sequence hits the limit
    for limit in (1, 4):
        greedy = decoder.greedy(features, start, limit, words, EOS_ID, PAD_ID)
        beam = decoder.beam(features, start, limit, words, EOS_ID, PAD_ID, size=3)
        assert greedy.tokens.shape == (5, limit) and beam.tokens.shape == (5, limit)
        assert greedy.attention.shape == (5, limit, POSITIONS) and beam.attention.shape == (5, limit, POSITIONS)
        assert (greedy.tokens != PAD_ID).all() and (beam.tokens != PAD_ID).all()
