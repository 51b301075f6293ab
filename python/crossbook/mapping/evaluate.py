"""Precision and recall of a consensus over labelled pairs (the shared/pairs schema): ``crossbook pairs eval``.

A false positive is a pair labelled ``different`` that came out Verified, or a Verified pair whose polarity is not
the label's (an inverted pair traded as "same" is naked exposure too); both count against precision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from crossbook.errors import ConfigError
from crossbook.mapping.consensus import Consensus, Verdict, judge_pairs

LABELS = ("equivalent", "equivalent_inverted", "different")


@dataclass
class Score:
    pairs: int = 0
    positives: int = 0  # labelled equivalent or equivalent_inverted
    verified: int = 0
    true_positives: int = 0  # Verified with the label's polarity
    false_positives: list[str] = field(default_factory=list)  # ids: a trap Verified, or the wrong polarity
    missed: list[str] = field(default_factory=list)  # ids of true pairs left Unverified

    @property
    def precision(self) -> Decimal:
        return Decimal(1) if not self.verified else Decimal(self.true_positives) / Decimal(self.verified)

    @property
    def recall(self) -> Decimal:
        return Decimal(1) if not self.positives else Decimal(self.true_positives) / Decimal(self.positives)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["precision"] = str(self.precision.quantize(Decimal("0.001")))
        d["recall"] = str(self.recall.quantize(Decimal("0.001")))
        return d

    def line(self) -> str:
        return (f"precision {self.precision:.3f} ({self.verified - len(self.false_positives)}/{self.verified}), "
                f"recall {self.recall:.3f} ({self.true_positives}/{self.positives}), "
                f"false positives {self.false_positives or 'none'}")


def label_of(pair: Mapping[str, Any]) -> str:
    label = pair.get("label")
    if label not in LABELS:
        raise ConfigError(f"pair {pair.get('id')!r}: label must be one of {LABELS}, got {label!r}")
    return str(label)


def score(pairs: Sequence[Mapping[str, Any]], verdicts: Sequence[Verdict]) -> Score:
    s = Score(pairs=len(pairs))
    for p, v in zip(pairs, verdicts, strict=True):
        label = label_of(p)
        positive = label != "different"
        s.positives += positive
        if v.status != "Verified":
            if positive:
                s.missed.append(v.id)
            continue
        s.verified += 1
        want = "inverted" if label == "equivalent_inverted" else "same"
        if positive and v.polarity == want:
            s.true_positives += 1
        else:
            s.false_positives.append(v.id)
    return s


async def evaluate(pairs: Sequence[Mapping[str, Any]], consensus: Consensus | None = None,
                   concurrency: int = 8, on_done: Callable[[Verdict], None] | None = None
                   ) -> tuple[Score, list[Verdict]]:
    for p in pairs:
        label_of(p)  # bad labels are an error before any model is called
    verdicts = await judge_pairs(pairs, consensus, concurrency=concurrency, on_done=on_done)
    return score(pairs, verdicts), verdicts
