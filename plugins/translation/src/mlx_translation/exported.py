"""The ``torch.export`` artifact of an encoder-decoder and generation loops that run it.

Two programs with dynamic batch and sequence dimensions:

* ``encoder.pt2``: (input_ids, attention_mask) -> encoder hidden states
* ``decoder.pt2``: (decoder_input_ids, encoder_hidden_states, attention_mask) -> logits of every position

The decoder recomputes the whole prefix each step (no KV cache inside the program), which keeps
the exported graph free of cache objects. Greedy decoding here follows ``generate()``'s rules
(start token, pad after EOS) so its tokens can be compared one for one with eager ``generate``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ENCODER, DECODER, META = "encoder.pt2", "decoder.pt2", "exported.json"


def _wrappers(model):
    import torch

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

    return Encoder(model).eval(), Decoder(model).eval()


def export_programs(model, folder: Path) -> dict[str, Any]:
    """Export encoder and decoder of a (CPU, eval-mode) seq2seq model into ``folder``."""
    import torch

    enc, dec = _wrappers(model)
    batch = torch.export.Dim("batch", max=4096)
    src = torch.export.Dim("src", max=4096)
    tgt = torch.export.Dim("tgt", max=4096)
    # sizes of 2+ keep torch.export from specialising a dimension to 0/1
    ids = torch.full((2, 7), 5, dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    start = model.config.decoder_start_token_id
    with torch.no_grad():
        hidden = enc(ids, mask)
        dec_ids = torch.full((2, 3), start, dtype=torch.long)
        ep_enc = torch.export.export(
            enc, (ids, mask), dynamic_shapes={"input_ids": {0: batch, 1: src}, "attention_mask": {0: batch, 1: src}}
        )
        ep_dec = torch.export.export(
            dec,
            (dec_ids, hidden, mask),
            dynamic_shapes={
                "decoder_input_ids": {0: batch, 1: tgt},
                "encoder_hidden_states": {0: batch, 1: src},
                "attention_mask": {0: batch, 1: src},
            },
        )
    torch.export.save(ep_enc, str(folder / ENCODER))
    torch.export.save(ep_dec, str(folder / DECODER))
    meta = {
        "decoder_start_token_id": int(start),
        "eos_token_id": int(model.config.eos_token_id),
        "pad_token_id": int(model.config.pad_token_id),
        "vocab_size": int(model.config.vocab_size),
        "format": "torch.export (ExportedProgram, torch.export.save)",
        "torch": torch.__version__,
    }
    (folder / META).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


class ExportedSeq2Seq:
    """Greedy and beam-search generation with the exported programs (CPU)."""

    def __init__(self, folder: str | Path):
        import torch

        folder = Path(folder)
        self.meta = json.loads((folder / META).read_text())
        self.encoder = torch.export.load(str(folder / ENCODER)).module()
        self.decoder = torch.export.load(str(folder / DECODER)).module()
        self.start, self.eos, self.pad = (
            self.meta["decoder_start_token_id"],
            self.meta["eos_token_id"],
            self.meta["pad_token_id"],
        )

    def greedy(self, input_ids, attention_mask, max_new_tokens: int):
        """Token ids like ``generate(do_sample=False, num_beams=1)``: start token first, pad after EOS."""
        import torch

        with torch.no_grad():
            hidden = self.encoder(input_ids, attention_mask)
            b = input_ids.shape[0]
            out = torch.full((b, 1), self.start, dtype=torch.long)
            unfinished = torch.ones(b, dtype=torch.long)
            for _ in range(max_new_tokens):
                logits = self.decoder(out, hidden, attention_mask)[:, -1, :]
                nxt = logits.argmax(-1)
                nxt = nxt * unfinished + self.pad * (1 - unfinished)
                out = torch.cat([out, nxt[:, None]], dim=1)
                unfinished = unfinished * (nxt != self.eos).long()
                if unfinished.max() == 0:
                    break
        return out

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
