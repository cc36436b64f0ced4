"""Published IMDer results, shown beside ours in reproduction tables.

Source: Wang, Li, Cui, "Incomplete Multimodality-Diffused Emotion Recognition",
NeurIPS 2023, Table 1 (CMU-MOSI and CMU-MOSEI, missing rates 0.0-0.7;
Acc-2 and F1 are the non-zero ("Non0") variants; all values ×100).
"""

from __future__ import annotations

PAPER_CITATION = ("Wang, Li, Cui. Incomplete Multimodality-Diffused Emotion Recognition. "
                  "NeurIPS 2023, Table 1")

MISSING_RATES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)

# dataset -> missing rate -> (Acc-2, F1, Acc-7)
IMDER_PUBLISHED: dict[str, dict[float, tuple[float, float, float]]] = {
    "mosi": dict(zip(MISSING_RATES, [
        (85.7, 85.6, 45.3), (84.9, 84.8, 44.8), (83.5, 83.4, 44.3), (81.2, 81.0, 42.5),
        (78.6, 78.5, 39.7), (76.2, 75.9, 37.9), (74.7, 74.0, 35.8), (71.9, 71.2, 33.4),
    ])),
    "mosei": dict(zip(MISSING_RATES, [
        (85.1, 85.1, 53.4), (84.8, 84.6, 53.1), (82.7, 82.4, 52.0), (81.3, 80.7, 51.3),
        (79.3, 78.1, 50.0), (79.0, 77.4, 49.2), (78.0, 75.5, 48.5), (77.3, 74.6, 47.6),
    ])),
}

# Our metric keys that correspond to the paper's columns.
PAPER_COLUMNS = (("Acc-2", "Non0_acc_2"), ("F1", "Non0_F1_score"), ("Acc-7", "Mult_acc_7"))


def published(method: str, dataset: str, missing_rate: float) -> tuple[float, float, float] | None:
    """The paper's (Acc-2, F1, Acc-7) for a method/dataset/missing rate, or ``None`` if not published."""
    if method.lower() != "imder":
        return None
    table = IMDER_PUBLISHED.get(dataset.lower(), {})
    return table.get(round(float(missing_rate), 2))
