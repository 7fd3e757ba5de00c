"""How well a pretrained model fits its trained-on texts vs held-out ones (the numbers in `pretrain.json`).

Each text is scored alone, without special tokens, from its second token on, exactly as the privacy study
scores it; NLLs are in nats.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any


def sample_nlls(
    model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int, device: str, batch_size: int = 32
) -> tuple[list[float], list[int]]:
    """Per text: (summed NLL in nats, tokens scored). Each text is scored alone, without special tokens,
    from its second token on (as the privacy study scores it), truncated to `max_length` tokens."""
    from quantrisk.scoring import score_token_ids

    ids_all = [x[:max_length] for x in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
    sums, counts = [0.0] * len(ids_all), [0] * len(ids_all)
    keep = [i for i, x in enumerate(ids_all) if len(x) >= 2]
    # the scoring engine (length-bucketed batches, output head in blocks, in-place log-softmax): 3.9 -> 3.2 s
    # for the 600 evaluation texts of a tiny model on 2 cores, against a padded batch + full cross-entropy
    scores = score_token_ids(model, [ids_all[i] for i in keep], batch_size=batch_size, max_length=max_length,
                             pad_id=tokenizer.pad_token_id, device=device)
    for i, sc in zip(keep, scores, strict=True):
        sums[i] = float(-sc.logprobs.sum())
        counts[i] = len(sc.logprobs)
    return sums, counts


def mean_nll(model: Any, tokenizer: Any, texts: Sequence[str], *, seq_len: int, device: str, batch_size: int = 32) -> float:
    """Token-weighted mean NLL (nats/token) of `texts`, each scored alone (see `sample_nlls`)."""
    sums, counts = sample_nlls(model, tokenizer, texts, max_length=seq_len, device=device, batch_size=batch_size)
    return sum(sums) / max(sum(counts), 1)


def evaluate_split(
    model: Any, tokenizer: Any, inside: Sequence[str], outside: Sequence[str], *, max_length: int, device: str,
    exposures: Sequence[int] | None = None,
) -> dict[str, Any]:
    """How well the model fits the texts it was trained on (`inside`) vs held-out ones (`outside`):
    token-weighted mean NLL of each (nats/token), their gap, and the ROC-AUC of the LOSS score
    (higher = member: minus the per-text mean NLL) and of the zlib score (that over zlib bytes).
    With `exposures` (one k per inside text): also `auc_by_exposure[str(k)]`, the LOSS AUC of the inside texts
    seen k times vs all outside texts, and `members_by_exposure[str(k)]`, how many were scored."""
    import numpy as np

    from quantrisk.stats import fast_auc

    s_in, c_in = sample_nlls(model, tokenizer, inside, max_length=max_length, device=device)
    s_out, c_out = sample_nlls(model, tokenizer, outside, max_length=max_length, device=device)
    out: dict[str, Any] = {"member_nll": sum(s_in) / max(sum(c_in), 1), "nonmember_nll": sum(s_out) / max(sum(c_out), 1)}
    out["nll_gap"] = out["nonmember_nll"] - out["member_nll"]
    ks = list(exposures) if exposures is not None else [1] * len(inside)
    keep = [(s / c, t, y, k) for s, c, t, y, k in zip(s_in + s_out, c_in + c_out, [*inside, *outside],
                                                       [1] * len(inside) + [0] * len(outside),
                                                       ks + [0] * len(outside), strict=True) if c > 0]
    labels = np.array([y for _, _, y, _ in keep])
    if 0 < labels.sum() < len(labels):
        loss = np.array([-m for m, _, _, _ in keep])
        zlib_bytes = np.array([len(zlib.compress(t.encode("utf-8"))) for _, t, _, _ in keep], dtype=float)
        out["auc_loss"] = fast_auc(loss, labels)
        out["auc_zlib"] = fast_auc(loss / zlib_bytes, labels)
        if exposures is not None:
            kk = np.array([k for *_, k in keep])
            out["auc_by_exposure"], out["members_by_exposure"] = {}, {}
            for k in sorted(set(kk[labels == 1].tolist())):
                sel = (labels == 0) | (kk == k)
                out["auc_by_exposure"][str(k)] = fast_auc(loss[sel], labels[sel])
                out["members_by_exposure"][str(k)] = int((kk == k).sum())
    return out
