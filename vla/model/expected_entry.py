"""Expected-entry decoding of trajectory tokens: a minimum-Bayes-risk choice per token.

Greedy decoding writes, at each trajectory step, the single likeliest codebook entry. A small
model trained on a few thousand segments spreads its probability over many entries and the
likeliest one is usually entry 0 ("carry on with the prior"), even when most of the mass says
"brake a little" through several neighbouring entries. Expected-entry decoding instead takes
the probability-weighted mean of *all* entries in the codec's own feature space (for the k-means
codec: the segment's offsets from the kinematic prior, its yaw change and end-speed change, the
space its k-means ran in) and writes the entry nearest that mean. Under squared error in that
space this is the choice with the least expected loss among the entries (the mean is the
Bayes-optimal point; the nearest entry is its best approximation the vocabulary can write).

It runs after the output grammar: a step is a trajectory step when every token the grammar
leaves allowed (finite logit) is a trajectory token, so the rule needs no state of its own and
applies alike to transformers ``generate`` and to a vLLM batch. Other steps are untouched.

Simplifications: each token is chosen given the entries already written (no joint search over
the sequence); the mean is taken in feature space, not over decoded trajectories, so the
chaining of later segments from this one's end state is not part of the expectation.
"""

from __future__ import annotations

import numpy as np

TRAJECTORY_DECODINGS = ("greedy", "expected")


def check_trajectory_decoding(name: str, greedy: bool = True, constrained: bool = True) -> str:
    """``name`` if it is a known decoding usable with this request (expected-entry decoding
    needs greedy decoding under the output grammar), else a ValueError saying why."""
    if name not in TRAJECTORY_DECODINGS:
        raise ValueError(f"trajectory decoding must be one of {TRAJECTORY_DECODINGS}, "
                         f"got {name!r}")
    if name == "expected" and not (greedy and constrained):
        raise ValueError("trajectory_decoding=expected needs constrained greedy decoding "
                         "(temperature 0, the output grammar)")
    return name


def entry_features_of(codec) -> np.ndarray:
    """The codec's entries as points, or a ValueError naming a codec that has none."""
    features = codec.entry_features()
    if features is None:
        raise ValueError(f"expected-entry decoding needs a codebook codec; "
                         f"{codec.name} ids are not entries of one space")
    features = np.asarray(features, dtype=np.float32)
    if features.shape[0] != codec.vocab_size:
        raise ValueError(f"{codec.name}: {features.shape[0]} entry features for "
                         f"{codec.vocab_size} ids")
    return features


class ExpectedEntryLogitsProcessor:
    """At trajectory steps, keep only the entry nearest the expected entry (see module doc).

    ``traj_token_ids[i]`` is the token id of codec id ``i``; ``features[i]`` its point.
    Callable as a transformers ``LogitsProcessor`` and, through :meth:`apply`, on any batch of
    logits ``(rows, vocab)`` that the grammar has already masked.
    """

    def __init__(self, features: np.ndarray, traj_token_ids: np.ndarray):
        import torch

        features = np.asarray(features, dtype=np.float32)
        traj_token_ids = np.asarray(traj_token_ids, dtype=np.int64)
        if features.ndim != 2 or features.shape[0] != len(traj_token_ids):
            raise ValueError(f"features {features.shape} do not match "
                             f"{len(traj_token_ids)} trajectory tokens")
        self.features = torch.from_numpy(features)
        self.traj_ids = torch.from_numpy(traj_token_ids)

    def __call__(self, input_ids, scores):
        return self.apply(scores)

    def trajectory_rows(self, scores):
        """Rows whose allowed tokens (finite logits) are all trajectory tokens, and >= 2 of them."""
        import torch

        finite = torch.isfinite(scores)
        allowed_traj = finite[:, self.traj_ids.to(scores.device)].sum(dim=1)
        return (allowed_traj == finite.sum(dim=1)) & (allowed_traj >= 2)

    def apply(self, scores):
        import torch

        rows = self.trajectory_rows(scores)
        if not bool(rows.any()):
            return scores
        ids = self.traj_ids.to(scores.device)
        feats = self.features.to(scores.device)
        logits = scores[rows][:, ids].float()
        probs = torch.softmax(logits, dim=-1)               # masked entries get 0
        mean = probs @ feats                                # (r, D)
        dist = torch.cdist(mean, feats)                     # (r, K)
        dist[~torch.isfinite(logits)] = float("inf")        # only entries the grammar allows
        chosen = ids[dist.argmin(dim=-1)]
        kept = scores[rows].gather(1, chosen[:, None])
        masked = torch.full_like(scores[rows], -float("inf"))
        masked.scatter_(1, chosen[:, None], kept)
        scores[rows] = masked
        return scores
