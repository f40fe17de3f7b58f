"""The ``torch.export`` artifact of an encoder-decoder and generation loops that run it.

Programs with dynamic batch and sequence dimensions:

* ``encoder.pt2``: (input_ids, attention_mask) -> encoder hidden states, run once per batch;
* ``decoder_first.pt2``: (start ids, encoder hidden states, attention_mask) -> last-position logits,
  then for each decoder layer self-attention K, V and cross-attention K, V;
* ``decoder_step.pt2``: (last token, encoder hidden states, attention_mask, the K/V of the step
  before) -> the same outputs with the self-attention K/V one position longer (dynamic past length);
* ``decoder.pt2``: (decoder_input_ids, encoder hidden states, attention_mask) -> logits of every
  position, recomputing the prefix; beam search and the export stage's logit check use it.

The cached programs see only tensors: the wrapper rebuilds transformers' ``EncoderDecoderCache``
from them inside the traced ``forward`` (``DynamicCache.update`` per layer) and flattens the
updated cache back out, so no cache object crosses the program boundary. Greedy decoding follows
``generate()``'s rules (start token, pad after EOS) so its tokens compare one for one with eager
``generate``.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

ENCODER, DECODER, META = "encoder.pt2", "decoder.pt2", "exported.json"
FIRST_STEP, STEP = "decoder_first.pt2", "decoder_step.pt2"
KV_PER_LAYER = 4  # self K, self V, cross K, cross V


def _wrappers(model):
    import torch
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    layers = model.config.num_decoder_layers
    # transformers 5.x renamed ``past_key_values`` to ``cache`` (the old name warns, then goes in 5.40)
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    class Encoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    class Decoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, decoder_input_ids, encoder_hidden_states, attention_mask):
            out = self.m(
                encoder_outputs=(encoder_hidden_states,),
                attention_mask=attention_mask,
                decoder_input_ids=decoder_input_ids,
                use_cache=False,
            )
            return out.logits

    class CachedStep(torch.nn.Module):
        """One decoder step with the KV cache as flat tensor inputs (``first``: none) and outputs."""

        def __init__(self, m, first: bool):
            super().__init__()
            self.m, self.first = m, first

        def forward(self, decoder_input_ids, encoder_hidden_states, attention_mask, *past):
            self_c, cross_c = DynamicCache(), DynamicCache()
            if not self.first:
                for i in range(layers):
                    k = KV_PER_LAYER * i
                    self_c.update(past[k], past[k + 1], i)
                    cross_c.update(past[k + 2], past[k + 3], i)
            cache = EncoderDecoderCache(self_c, cross_c)
            if not self.first:  # the cross-attention K/V are final: T5 must reuse, not recompute them
                cache.is_updated = dict.fromkeys(range(layers), True)
            out = self.m(
                encoder_outputs=(encoder_hidden_states,),
                attention_mask=attention_mask,
                decoder_input_ids=decoder_input_ids,
                use_cache=True,
                **{cache_arg: cache},
            )
            pkv = out[cache_arg]
            flat = []
            for i in range(layers):
                s, c = pkv.self_attention_cache.layers[i], pkv.cross_attention_cache.layers[i]
                flat += [s.keys, s.values, c.keys, c.values]
            return (out.logits[:, -1, :], *flat)

    return Encoder(model).eval(), Decoder(model).eval(), CachedStep(model, True).eval(), CachedStep(model, False).eval()


def export_programs(model, folder: Path) -> dict[str, Any]:
    """Export encoder, full decoder and the two cached decoder steps of a (CPU, eval) seq2seq model."""
    import torch

    enc, dec, first, step = _wrappers(model)
    layers = model.config.num_decoder_layers
    batch = torch.export.Dim("batch", max=4096)
    src = torch.export.Dim("src", max=4096)
    tgt = torch.export.Dim("tgt", max=4096)
    past_len = torch.export.Dim("past", max=4096)
    # sizes of 2+ keep torch.export from specialising a dimension to 0/1
    ids = torch.full((2, 7), 5, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    start = model.config.decoder_start_token_id
    with torch.no_grad():
        hidden = enc(ids, mask)
        dec_ids = torch.full((2, 3), start, dtype=torch.long)
        start_ids = torch.full((2, 1), start, dtype=torch.long)
        ep_enc = torch.export.export(
            enc, (ids, mask), dynamic_shapes={"input_ids": {0: batch, 1: src}, "attention_mask": {0: batch, 1: src}}
        )
        common = {
            "decoder_input_ids": {0: batch},
            "encoder_hidden_states": {0: batch, 1: src},
            "attention_mask": {0: batch, 1: src},
        }
        ep_dec = torch.export.export(
            dec, (dec_ids, hidden, mask), dynamic_shapes={**common, "decoder_input_ids": {0: batch, 1: tgt}}
        )
        # the cached steps take ``*past``: dynamic shapes as a tuple, one entry per positional input
        ep_first = torch.export.export(first, (start_ids, hidden, mask), dynamic_shapes=tuple(common.values()))
        # a past of two positions as the example, again so the past length is not specialised to 1
        past = first(start_ids, hidden, mask)[1:]
        past = step(torch.full((2, 1), 5, dtype=torch.long), hidden, mask, *past)[1:]
        past_shapes = tuple(
            {0: batch, 2: past_len} if j % KV_PER_LAYER < 2 else {0: batch, 2: src}
            for j in range(KV_PER_LAYER * layers)
        )
        ep_step = torch.export.export(
            step,
            (torch.full((2, 1), 5, dtype=torch.long), hidden, mask, *past),
            dynamic_shapes=(*common.values(), past_shapes),
        )
    for ep, name in ((ep_enc, ENCODER), (ep_dec, DECODER), (ep_first, FIRST_STEP), (ep_step, STEP)):
        torch.export.save(ep, str(folder / name))
    meta = {
        "decoder_start_token_id": int(start),
        "eos_token_id": int(model.config.eos_token_id),
        "pad_token_id": int(model.config.pad_token_id),
        "vocab_size": int(model.config.vocab_size),
        "decoder_layers": int(layers),
        "kv_cache": f"{FIRST_STEP} then {STEP}: per layer self K, self V, cross K, cross V (batch, heads, len, d_kv)",
        "format": "torch.export (ExportedProgram, torch.export.save)",
        "torch": torch.__version__,
    }
    (folder / META).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _lean(gm):
    """Drop what torch.export's graph keeps for training but an eval-mode CPU loop never needs.

    ``aten._assert_tensor_metadata`` (a dtype/device re-check per ``.to``) and ``aten.dropout`` with
    ``train=False`` (the identity) are about a fifth of the decoder step's nodes and, at small
    batch, a large share of its time: each is a Python-dispatched op call. Removing them changes no
    value (the parity tests compare tokens); the input-shape guards of ``.module()`` stay.
    """
    graph = gm.graph
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        target = str(node.target)
        if target == "aten._assert_tensor_metadata.default":
            graph.erase_node(node)
        elif target == "aten.dropout.default" and len(node.args) >= 3 and node.args[2] is False:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    graph.eliminate_dead_code()
    gm.recompile()
    return gm


class ExportedSeq2Seq:
    """Greedy (KV-cached) and beam-search generation with the exported programs (CPU)."""

    def __init__(self, folder: str | Path):
        import torch

        folder = Path(folder)
        self.meta = json.loads((folder / META).read_text())

        def load(name: str):
            return _lean(torch.export.load(str(folder / name)).module())

        self.encoder, self.decoder = load(ENCODER), load(DECODER)
        # exports written before the KV-cache programs existed still decode, by recomputing the prefix
        cached = (folder / FIRST_STEP).exists() and (folder / STEP).exists()
        self.first_step = load(FIRST_STEP) if cached else None
        self.step = load(STEP) if cached else None
        self.start, self.eos, self.pad = (
            self.meta["decoder_start_token_id"],
            self.meta["eos_token_id"],
            self.meta["pad_token_id"],
        )

    def greedy(self, input_ids, attention_mask, max_new_tokens: int):
        """Token ids like ``generate(do_sample=False, num_beams=1)``: start token first, pad after EOS.

        The encoder runs once; each new token is one cached decoder step (past K/V in, longer K/V out).
        """
        import torch

        with torch.inference_mode():  # no autograd bookkeeping per op: it shows at batch 1
            hidden = self.encoder(input_ids, attention_mask)
            b = input_ids.shape[0]
            tokens = [torch.full((b, 1), self.start, dtype=torch.long)]
            unfinished = torch.ones(b, dtype=torch.long)
            past = None
            for _ in range(max_new_tokens):
                logits, past = self._next_logits(tokens, hidden, attention_mask, past)
                nxt = logits.argmax(-1)
                nxt = nxt * unfinished + self.pad * (1 - unfinished)
                tokens.append(nxt[:, None])
                unfinished = unfinished * (nxt != self.eos).long()
                if unfinished.max() == 0:
                    break
        return torch.cat(tokens, dim=1)

    def _next_logits(self, tokens: list, hidden, attention_mask, past: list | None):
        """Logits of the next position and the K/V cache after it (``None`` without cached programs)."""
        if self.step is None:
            import torch

            return self.decoder(torch.cat(tokens, dim=1), hidden, attention_mask)[:, -1, :], None
        if past is None:
            logits, *past = self.first_step(tokens[-1], hidden, attention_mask)
        else:
            logits, *past = self.step(tokens[-1], hidden, attention_mask, *past)
        return logits, past

    def beam(self, input_ids, attention_mask, max_new_tokens: int, num_beams: int, length_penalty: float = 1.0):
        """Beam search (scores: summed log-probs / length**length_penalty); best sequence per input."""
        import torch

        with torch.no_grad():
            b = input_ids.shape[0]
            hidden = self.encoder(input_ids, attention_mask)
            hidden = hidden.repeat_interleave(num_beams, dim=0)
            mask = attention_mask.repeat_interleave(num_beams, dim=0)
            seqs = torch.full((b * num_beams, 1), self.start, dtype=torch.long)
            scores = torch.full((b, num_beams), float("-inf"))
            scores[:, 0] = 0.0
            scores = scores.view(-1)
            done: list[list[tuple[float, list[int]]]] = [[] for _ in range(b)]
            for step in range(max_new_tokens):
                logp = torch.log_softmax(self.decoder(seqs, hidden, mask)[:, -1, :].float(), dim=-1)
                vocab = logp.shape[-1]
                cand = (scores[:, None] + logp).view(b, num_beams * vocab)
                top, idx = cand.topk(2 * num_beams, dim=-1)
                new_seqs, new_scores = [], []
                for i in range(b):
                    kept = 0
                    for s, j in zip(top[i].tolist(), idx[i].tolist(), strict=True):
                        beam_i, tok = divmod(j, vocab)
                        row = seqs[i * num_beams + beam_i]
                        if tok == self.eos:
                            if len(done[i]) < num_beams or s / (step + 1) ** length_penalty > min(
                                x[0] for x in done[i]
                            ):
                                done[i].append((s / (step + 1) ** length_penalty, row.tolist()[1:] + [tok]))
                                done[i] = sorted(done[i], reverse=True)[:num_beams]
                            continue
                        new_seqs.append(torch.cat([row, torch.tensor([tok])]))
                        new_scores.append(s)
                        kept += 1
                        if kept == num_beams:
                            break
                seqs = torch.stack(new_seqs)
                scores = torch.tensor(new_scores)
                best_open = scores.view(b, num_beams).max(-1).values / (step + 1) ** length_penalty
                if all(len(done[i]) >= num_beams and best_open[i] <= done[i][-1][0] for i in range(b)):
                    break
            results = []
            for i in range(b):
                if not done[i]:
                    k = int(scores.view(b, num_beams)[i].argmax())
                    done[i].append((0.0, seqs[i * num_beams + k].tolist()[1:]))
                results.append([self.start] + max(done[i])[1])
        return results
