"""The ``torch.export`` artifact of an encoder-decoder and generation loops that run it.

Programs with dynamic batch and sequence dimensions:

* ``encoder.pt2``: (input_ids, attention_mask) -> encoder hidden states, run once per batch;
* ``decoder_first.pt2``: (start ids, encoder hidden states, attention_mask) -> last-position logits,
  then for each decoder layer self-attention K, V and cross-attention K, V;
* ``decoder_step.pt2``: (last token, encoder hidden states, attention_mask, the K/V of the step
  before) -> the same outputs with the self-attention K/V one position longer (dynamic past length);
* ``decoder.pt2``: (decoder_input_ids, encoder hidden states, attention_mask) -> logits of every
  position, recomputing the prefix; the export stage's logit check uses it, and decoding falls back
  to it for exports written before the cached programs existed.

The cached programs see only tensors: the wrapper rebuilds transformers' ``EncoderDecoderCache``
from them inside the traced ``forward`` (``DynamicCache.update`` per layer) and flattens the
updated cache back out, so no cache object crosses the program boundary. Greedy decoding follows
``generate()``'s rules (start token, pad after EOS) and beam search transformers' ``_beam_search``
(the self-attention cache reordered by beam each step), so their tokens compare one for one with
eager ``generate()``.
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
        # what generate(num_beams=N) reads from the model's generation config (None: transformers' default)
        "generation": {
            "length_penalty": _or(model.generation_config.length_penalty, 1.0),
            "early_stopping": _or(model.generation_config.early_stopping, False),
        },
        "kv_cache": f"{FIRST_STEP} then {STEP}: per layer self K, self V, cross K, cross V (batch, heads, len, d_kv)",
        "format": "torch.export (ExportedProgram, torch.export.save)",
        "torch": torch.__version__,
    }
    (folder / META).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _or(value, default):
    return default if value is None else value


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


def _drop_input_guard(gm) -> None:
    """Remove ``.module()``'s input-shape check (a Python walk over every input's dims, each call).

    At batch 1 it is about a twentieth of a decoder step; the step programs' inputs are built by
    the decoding loops, so a wrong shape there is a bug of the loop, not user input.
    """
    for key, hook in list(gm._forward_pre_hooks.items()):
        if getattr(hook, "__name__", "") == "_check_input_constraints_pre_hook":
            del gm._forward_pre_hooks[key]
            gm._forward_pre_hooks_with_kwargs.pop(key, None)


class ExportedSeq2Seq:
    """Greedy and beam-search generation (both KV-cached) with the exported programs (CPU)."""

    def __init__(self, folder: str | Path):
        import torch

        folder = Path(folder)
        self.meta = json.loads((folder / META).read_text())

        def load(name: str, guarded: bool = True):
            gm = _lean(torch.export.load(str(folder / name)).module())
            if not guarded:
                _drop_input_guard(gm)
            return gm

        self.encoder, self.decoder = load(ENCODER), load(DECODER)
        # exports written before the KV-cache programs existed still decode, by recomputing the prefix
        cached = (folder / FIRST_STEP).exists() and (folder / STEP).exists()
        # the step programs are called only by the loops below, with shapes taken from the encoder's
        # output and their own previous outputs: their per-call input-shape guard is dropped
        self.first_step = load(FIRST_STEP, guarded=False) if cached else None
        self.step = load(STEP, guarded=False) if cached else None
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

    def beam(
        self,
        input_ids,
        attention_mask,
        max_new_tokens: int,
        num_beams: int,
        length_penalty: float | None = None,
        early_stopping: bool | str | None = None,
    ):
        """Token ids like ``generate(num_beams=N, do_sample=False)``: the best beam per input, (batch, length).

        The encoder runs once; each step is one cached decoder step over the ``batch * num_beams``
        rows, and the self-attention K/V are reordered by the surviving beams' source rows. The
        scoring and finishing rules are transformers 5.x's ``GenerationMixin._beam_search``, tensor
        for tensor (hand-written because transformers has no beam loop that takes an outside step
        function): keep the top ``2 * num_beams`` continuations, finish those ending in EOS (or
        at ``max_new_tokens``) with score ``sum log p / length ** length_penalty``, continue the
        best ``num_beams`` unfinished ones, stop when the early-stopping heuristic says no running
        beam can beat the worst finished one. ``length_penalty`` / ``early_stopping`` default to the
        exported model's generation config (``exported.json``), as ``generate()`` does.
        """
        gen = self.meta.get("generation", {})
        lp = gen.get("length_penalty", 1.0) if length_penalty is None else length_penalty
        es = gen.get("early_stopping", False) if early_stopping is None else early_stopping
        return self._beam_loop(input_ids, attention_mask, max_new_tokens, num_beams, lp, es)

    def _beam_loop(self, input_ids, attention_mask, max_new_tokens: int, k: int, lp: float, es: bool | str):
        import torch

        with torch.inference_mode():
            b = input_ids.shape[0]
            hidden = self.encoder(input_ids, attention_mask).repeat_interleave(k, dim=0)
            mask = attention_mask.repeat_interleave(k, dim=0)
            max_length, keep = 1 + max_new_tokens, 2 * k  # one EOS id: 2 * num_beams candidates
            # generate()'s fill value is ``pad or eos``: with T5's pad id 0 that is the EOS id
            fill = self.pad or self.eos
            running = torch.full((b, k, max_length), fill, dtype=torch.long)
            running[:, :, 0] = self.start
            finished = running.clone()
            run_scores = torch.zeros((b, k))
            run_scores[:, 1:] = -1e9
            fin_scores = torch.full((b, k), -1e9)
            fin_len = torch.zeros((b, k), dtype=torch.long)  # generated tokens of each finished beam
            is_fin = torch.zeros((b, k), dtype=torch.bool)
            improvable = torch.ones((b, 1), dtype=torch.bool)
            top_mask = torch.arange(keep) < k
            offset = torch.arange(b)[:, None] * k
            past, cur = None, 1
            while True:
                logits, past = self._beam_logits(running, cur, hidden, mask, past)
                logp = torch.log_softmax(logits.float(), dim=-1)
                vocab = logp.shape[-1]
                logp = (logp.view(b, k, vocab) + run_scores[:, :, None]).view(b, -1)
                top_lp, top_idx = torch.topk(logp, keep)
                src, tok = top_idx // vocab, top_idx % vocab
                top_seqs = torch.take_along_dim(running, src[:, :, None], dim=1)
                top_seqs[:, :, cur] = tok
                hits = (tok == self.eos) | (cur + 1 >= max_length)
                # e. the best k unfinished continuations run on
                top_run = top_lp + hits.to(torch.float32) * -1.0e9
                nxt = torch.topk(top_run, k)[1]
                running = torch.take_along_dim(top_seqs, nxt[:, :, None], dim=1)
                run_scores = torch.take_along_dim(top_run, nxt, dim=1)
                beam_idx = (torch.take_along_dim(src, nxt, dim=1) + offset).view(-1)
                # f. finished candidates among the top k enter the finished set when they beat it
                just = hits & top_mask[None, :]
                fin_lp = top_lp / ((cur + 1 - 1) ** lp)
                fin_lp += (torch.all(is_fin, dim=-1, keepdim=True) & (es is True)).to(torch.float32) * -1.0e9
                fin_lp += (~improvable).to(torch.float32) * -1.0e9
                fin_lp += (~just) * -1.0e9
                merged = torch.cat((fin_scores, fin_lp), dim=1)
                sel = torch.topk(merged, k)[1]
                finished = torch.take_along_dim(torch.cat((finished, top_seqs), dim=1), sel[:, :, None], dim=1)
                fin_scores = torch.take_along_dim(merged, sel, dim=1)
                fin_len = torch.take_along_dim(torch.cat((fin_len, torch.full_like(tok, cur)), dim=1), sel, dim=1)
                is_fin = torch.take_along_dim(torch.cat((is_fin, just), dim=1), sel, dim=1)
                if past is not None:  # the surviving beams' self-attention K/V (cross K/V are equal per input)
                    past = [t if j % KV_PER_LAYER >= 2 else t.index_select(0, beam_idx) for j, t in enumerate(past)]
                cur += 1
                best_len = max_length - 1 if es == "never" and lp > 0.0 else cur - 1
                best_run = run_scores[:, :1] / (best_len**lp)
                worst_fin = torch.where(is_fin, torch.min(fin_scores, dim=1, keepdim=True)[0], -1.0e9)
                improvable = improvable & torch.any(best_run > worst_fin, dim=-1, keepdim=True)
                go_on = bool(torch.any(improvable)) and not (bool(torch.all(is_fin)) and es is True)
                if not go_on or bool(torch.all(hits)):
                    break
            out_len = 1 + int(fin_len[:, 0].max())
            return finished[:, 0, :out_len]

    def _beam_logits(self, running, cur: int, hidden, mask, past):
        """Last-position logits of every running beam (batch * beams rows) and the K/V after them."""
        flat = running.view(-1, running.shape[-1])
        if self.step is None:
            return self.decoder(flat[:, :cur], hidden, mask)[:, -1, :], None
        if past is None:
            logits, *past = self.first_step(flat[:, :1], hidden, mask)
        else:
            logits, *past = self.step(flat[:, cur - 1 : cur], hidden, mask, *past)
        return logits, past
