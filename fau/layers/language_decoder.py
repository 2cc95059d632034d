"""The soft-attention LSTM decoder of VL-FAU's language auxiliaries, "similar to image captioning
(Ge et al., 2019; Xu et al., 2015)" (thesis §5.3.2): teacher forcing for training, greedy and beam
decoding for inference.

One step, from the previous word s_{i-1} and state (h_{i-1}, c_{i-1}) over features V (B, N, d):

    α_i = softmax_N(W^a ReLU(W^v V + W^h h_{i-1}))                                   (eq. 5.4)
    (h_i, c_i) = LSTMCell([E(s_{i-1}) : α_i V], (h_{i-1}, c_{i-1}))                 (eq. 5.5)
    p(s_i) = softmax(W^s dropout(h_i))                                              (eq. 5.6)

Eq. 5.5 as printed feeds [α_i V : h_{i-1}] and no previous word although the losses (eqs. 5.10–5.11)
condition on s_[0:t-1]; we feed the previous word's embedding as "Show, Attend and Tell" does
(ours: docs/fau.md, decision 'previous word input'), with h_0, c_0 linear maps of mean(V) and
dropout before W^s (decision 'decoder details'). The word embedding E and the output projection
W^s live in a `WordLayer` the caller passes in, so the global and the local decoder can share one
("a shared learnable parameter W^s", eq. 5.6; decision 'shared output projection'). Token
sequences are ``[start, w_1, ..., <eos>, <pad>...]`` as `fau.language.vocab` encodes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class WordLayer(nn.Module):
    """Word embedding E (vocabulary → `embed`) and output projection W^s (`hidden` → vocabulary).

    Ids in `never` (``<pad>`` and the start tokens) can be read but never produced: their logits
    are -inf, in teacher forcing and decoding alike.
    """

    def __init__(self, vocab_size: int, embed: int, hidden: int, pad: int, never: Sequence[int] = ()) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed, padding_idx=pad)
        self.output = nn.Linear(hidden, vocab_size)
        banned = torch.zeros(vocab_size, dtype=torch.bool)
        banned[[pad, *never]] = True
        self.register_buffer("banned", banned, persistent=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Word logits W^s h (..., vocabulary)."""
        return self.output(hidden).masked_fill(self.banned, float("-inf"))


@dataclass
class Decoded:
    """Decoder output: generated ids (B, L) after the start token (``<pad>`` after ``<eos>``), their
    summed log-likelihood (B,) up to and including ``<eos>``, and the attention weights (B, L, N)."""

    tokens: torch.Tensor
    log_likelihood: torch.Tensor
    attention: torch.Tensor


class AttentionLSTMDecoder(nn.Module):
    """Soft-attention LSTM decoder over spatial features (see the module docstring)."""

    def __init__(self, feature_dim: int, hidden: int, embed: int, attention: int, dropout: float) -> None:
        super().__init__()
        self.att_v = nn.Linear(feature_dim, attention)           # W^v
        self.att_h = nn.Linear(hidden, attention)                # W^h
        self.att_a = nn.Linear(attention, 1)                     # W^a
        self.init_h = nn.Linear(feature_dim, hidden)
        self.init_c = nn.Linear(feature_dim, hidden)
        self.cell = nn.LSTMCell(embed + feature_dim, hidden)
        self.dropout = nn.Dropout(dropout)

    def _start(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean = features.mean(dim=1)
        return self.att_v(features), self.init_h(mean), self.init_c(mean)

    def _step(self, words: WordLayer, previous: torch.Tensor, features: torch.Tensor, keys: torch.Tensor,
              h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step (eqs. 5.4–5.5): → (h_i, c_i, α_i (B, N), context α_i V (B, d))."""
        alpha = torch.softmax(self.att_a(F.relu(keys + self.att_h(h).unsqueeze(1))).squeeze(-1), dim=-1)
        context = torch.bmm(alpha.unsqueeze(1), features).squeeze(1)
        h, c = self.cell(torch.cat([words.embedding(previous), context], dim=-1), (h, c))
        return h, c, alpha, context

    def forward(self, features: torch.Tensor, inputs: torch.Tensor, words: WordLayer,
                lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher forcing: `features` (B, N, d), `inputs` (B, T) = the target sequence without its
        last id → word logits (B, T, vocab), attention (B, T, N) and contexts α_t V (B, T, d).

        With `lengths` (B,), the number of target ids each row is scored on, a row stops being
        stepped after its last one ("decode lengths", as in Show, Attend and Tell): its later
        states, attention and contexts are zeros, which no loss reads (they sit under ``<pad>``
        targets). The scored positions are the same as without `lengths`; only the work shrinks
        (most descriptions are far shorter than the longest in a batch)."""
        batch, steps = inputs.shape
        if lengths is None:
            order, active = None, [batch] * steps
        else:
            lengths = lengths.clamp(0, steps)
            order = torch.argsort(lengths, descending=True, stable=True)
            features, inputs = features[order], inputs[order]
            active = (lengths > torch.arange(steps, device=lengths.device)[:, None]).sum(dim=1).tolist()  # rows still running at t
        keys, h, c = self._start(features)
        states, alphas, contexts = [], [], []
        for t in range(steps):
            n = active[t]
            if n == 0:
                break
            h, c, alpha, context = self._step(words, inputs[:n, t], features[:n], keys[:n], h[:n], c[:n])
            states.append(h)
            alphas.append(alpha)
            contexts.append(context)
        stacked = [_stack_padded(x, batch, steps) for x in (states, alphas, contexts)]
        if order is not None:
            unsort = torch.argsort(order)
            stacked = [x[unsort] for x in stacked]
        hidden, attention, context = stacked
        return words(self.dropout(hidden)), attention, context

    @torch.no_grad()
    def greedy(self, features: torch.Tensor, start: torch.Tensor, max_len: int, words: WordLayer,
               eos: int, pad: int) -> Decoded:
        """Arg-max decoding (eq. 5.6) of at most `max_len` tokens per sequence from the start ids (B,)."""
        keys, h, c = self._start(features)
        previous, done = start, torch.zeros_like(start, dtype=torch.bool)
        score = features.new_zeros(start.shape[0])
        tokens, alphas = [], []
        for _ in range(max_len):
            h, c, alpha, _ = self._step(words, previous, features, keys, h, c)
            log_probs = torch.log_softmax(words(h), dim=-1)
            best, token = log_probs.max(dim=-1)
            score = score + torch.where(done, torch.zeros_like(best), best)
            token = torch.where(done, torch.full_like(token, pad), token)
            tokens.append(token)
            alphas.append(alpha)
            done = done | (token == eos)
            previous = token
            if bool(done.all()):
                break
        return Decoded(torch.stack(tokens, dim=1), score, torch.stack(alphas, dim=1))

    @torch.no_grad()
    def beam(self, features: torch.Tensor, start: torch.Tensor, max_len: int, words: WordLayer,
             eos: int, pad: int, size: int) -> Decoded:
        """Beam search (thesis §5.3.2: "the beam search ... can be used"; width: docs/fau.md, decision
        'decoding lengths') of at most `max_len` tokens: keeps
        the `size` best prefixes by summed log-probability; a finished prefix (``<eos>``) keeps its
        score and is extended only by ``<pad>``; returns the best of the final beam (no length
        normalisation, so scores compare with greedy decoding directly)."""
        batch, size = start.shape[0], max(1, size)
        keys, h, c = self._start(features)
        expand = lambda x: x.repeat_interleave(size, dim=0)  # noqa: E731 - (B, ...) → (B·k, ...)
        features, keys, h, c = expand(features), expand(keys), expand(h), expand(c)
        previous = expand(start)
        scores = features.new_full((batch, size), float("-inf"))
        scores[:, 0] = 0.0
        done = torch.zeros(batch, size, dtype=torch.bool, device=start.device)
        history = start.new_zeros(batch, size, 0)
        attention = features.new_zeros(batch, size, 0, features.shape[1])
        vocab = words.output.out_features
        rows = torch.arange(batch, device=start.device).unsqueeze(1)
        for _ in range(max_len):
            h, c, alpha, _ = self._step(words, previous, features, keys, h, c)
            log_probs = torch.log_softmax(words(h), dim=-1).view(batch, size, vocab)
            finished = torch.full_like(log_probs[0, 0], float("-inf"))
            finished[pad] = 0.0
            log_probs = torch.where(done.unsqueeze(-1), finished, log_probs)
            candidates = (scores.unsqueeze(-1) + log_probs).view(batch, size * vocab)
            scores, index = candidates.topk(size, dim=-1)
            source, token = index // vocab, index % vocab
            history = torch.cat([history[rows, source], token.unsqueeze(-1)], dim=-1)
            step_attention = alpha.view(batch, size, -1)[rows, source].unsqueeze(2)
            attention = torch.cat([attention[rows, source], step_attention], dim=2)
            done = done[rows, source] | (token == eos)
            flat = (rows * size + source).view(-1)
            h, c, previous = h[flat], c[flat], token.view(-1)
            if bool(done.all()):
                break
        best = scores.argmax(dim=-1)
        pick = torch.arange(batch, device=start.device)
        return Decoded(history[pick, best], scores[pick, best], attention[pick, best])


def _stack_padded(rows: list[torch.Tensor], batch: int, steps: int) -> torch.Tensor:
    """Per-step tensors (n_t, ...) with n_t non-increasing → (batch, steps, ...), zeros past each row's end."""
    full = [x if x.shape[0] == batch else torch.cat([x, x.new_zeros(batch - x.shape[0], *x.shape[1:])]) for x in rows]
    out = torch.stack(full, dim=1)
    if out.shape[1] < steps:
        out = torch.cat([out, out.new_zeros(batch, steps - out.shape[1], *out.shape[2:])], dim=1)
    return out
