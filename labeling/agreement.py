"""Inter-annotator agreement: Cohen's κ for each pair of annotators, Fleiss' κ and
Krippendorff's α over a project, each with a percentile-bootstrap interval over comparisons.

Pure numpy, no Django: ``project_agreement`` takes one row per answer (which comparison,
which annotator, what it said) and returns plain JSON values, null where a statistic is
undefined (one category used, fewer than two answers to compare). The statistics are
written once, vectorised over leading axes, so that the point estimate and every
bootstrap resample are the same function of summed counts.

Bootstrap: comparisons are resampled with replacement. Comparisons with the same answers
are grouped into patterns first, so a resample is a multinomial draw of how often each
pattern occurs (exactly the same distribution as drawing comparisons one by one), and the
cost depends on the number of distinct patterns, not of comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 1000
SEED = 20170612  # fixed: the same answers always give the same intervals
PAIRS_PER_DRAW = 256  # Cohen's κ pairs bootstrapped together (bounds the draw's memory)
# Cohen's κ tables drawn in all (about 2 µs each): with more than 150 pairs of annotators
# each pair gets fewer resamples, and none (no interval) below PAIR_RESAMPLES_FLOOR.
PAIR_DRAWS = 150_000
PAIR_RESAMPLES_FLOOR = 100


# --- the statistics --------------------------------------------------------------------------
def cohen_kappa(tables: np.ndarray) -> np.ndarray:
    """Cohen's κ of contingency tables ``(..., C, C)`` (rows: the first rater's category,
    columns: the second's): κ = (p_o - p_e) / (1 - p_e), Cohen 1960, eq. 1. NaN where the
    table is empty or p_e = 1 (both raters used one and the same category)."""
    tables = np.asarray(tables, dtype=float)
    n = tables.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        p_o = np.trace(tables, axis1=-2, axis2=-1) / n
        p_e = (tables.sum(axis=-1) * tables.sum(axis=-2)).sum(axis=-1) / n**2
        kappa = (p_o - p_e) / (1 - p_e)
    return np.where(np.isclose(p_e, 1) | (n == 0), np.nan, kappa)


def fleiss_kappa(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Fleiss' κ, Fleiss 1971, eqs. 2-9: κ = (P̄ - P̄_e) / (1 - P̄_e) with
    P_i = (Σ_j n_ij² - m_i) / (m_i (m_i - 1)), P̄ the mean of P_i, p_j = Σ_i n_ij / Σ_i m_i and
    P̄_e = Σ_j p_j². ``counts`` ``(P, C)``: a unit's answers per category (units with two or
    more); ``weights`` ``(..., P)``: how many units have each row. Each unit uses its own
    number of answers m_i (Fleiss takes one n for all; the same when every m_i = n). NaN
    where P̄_e = 1 (one category) or there is no unit."""
    counts = np.asarray(counts, dtype=float)
    weights = np.asarray(weights, dtype=float)
    m = counts.sum(axis=1)  # (P,)
    agreement = ((counts**2).sum(axis=1) - m) / (m * (m - 1))  # P_i, (P,)
    units = weights.sum(axis=-1)  # (...,)
    totals = weights @ counts  # (..., C)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_bar = (weights @ agreement) / units
        p = totals / totals.sum(axis=-1, keepdims=True)
        p_e = (p**2).sum(axis=-1)
        kappa = (p_bar - p_e) / (1 - p_e)
    return np.where(np.isclose(p_e, 1) | (units == 0), np.nan, kappa)


def coincidences(counts: np.ndarray) -> np.ndarray:
    """Krippendorff's coincidences of units ``(..., V)`` (each unit's values counted per
    value): o_ck = n_c (n_k - [c = k]) / (m - 1), Krippendorff 2011, "Computing
    Krippendorff's Alpha-Reliability", section C. Units with fewer than two values pair
    nothing and give zeros. Returns ``(..., V, V)``."""
    counts = np.asarray(counts, dtype=float)
    m = counts.sum(axis=-1)[..., None, None]
    pairs = counts[..., :, None] * counts[..., None, :]
    pairs -= counts[..., :, None] * np.eye(counts.shape[-1])  # a value is not paired with itself
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(m >= 2, pairs / (m - 1), 0.0)


def krippendorff_alpha(coincidence: np.ndarray, level: str) -> np.ndarray:
    """Krippendorff's α of coincidence matrices ``(..., V, V)`` over values in increasing
    order: α = 1 - (n - 1) Σ o_ck δ²_ck / Σ n_c n_k δ²_ck (Krippendorff 2011, section C),
    with δ²_ck = [c ≠ k] for ``level="nominal"`` and
    δ²_ck = (Σ_{g=c..k} n_g - (n_c + n_k) / 2)² for ``"ordinal"`` (section E). NaN where
    the expected disagreement is 0 (a single value) or fewer than two values pair."""
    o = np.asarray(coincidence, dtype=float)
    n_c = o.sum(axis=-1)  # (..., V)
    n = n_c.sum(axis=-1)  # (...,)
    if level == "nominal":
        delta2 = 1.0 - np.eye(o.shape[-1])
    elif level == "ordinal":
        through = np.cumsum(n_c, axis=-1)  # Σ_{g ≤ k} n_g
        low = np.minimum.outer(*(np.arange(o.shape[-1]),) * 2)
        high = np.maximum.outer(*(np.arange(o.shape[-1]),) * 2)
        between = through[..., high] - through[..., low] + n_c[..., low]  # Σ_{g=c..k} n_g
        delta2 = (between - (n_c[..., :, None] + n_c[..., None, :]) / 2) ** 2
    else:
        raise ValueError(f"level must be 'nominal' or 'ordinal'; got {level!r}.")
    observed = (o * delta2).sum(axis=(-2, -1))
    expected = (n_c[..., :, None] * n_c[..., None, :] * delta2).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = 1 - (n - 1) * observed / expected
    return np.where(np.isclose(expected, 0) | (n < 2), np.nan, alpha)


# --- bootstrap -------------------------------------------------------------------------------
def resample_weights(weights: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """``(resamples, P)``: how often each pattern occurs in a resample of the units with
    replacement, where ``weights`` ``(P,)`` counts the units of each pattern."""
    weights = np.asarray(weights, dtype=np.int64)
    total = int(weights.sum())
    if total == 0:
        return np.zeros((resamples, len(weights)), dtype=np.int64)
    return rng.multinomial(total, weights / total, size=resamples)


def percentile_interval(samples: np.ndarray, confidence: float = CONFIDENCE) -> np.ndarray:
    """The percentile interval ``(..., 2)`` of bootstrap samples ``(..., B)``, over the
    resamples where the statistic is defined (linear interpolation, as np.percentile);
    NaN where fewer than half are. Vectorised: np.nanpercentile loops over rows."""
    ordered = np.sort(np.asarray(samples, dtype=float), axis=-1)  # NaN sorts last
    defined = np.isfinite(ordered).sum(axis=-1)  # (...,)
    tail = (1 - confidence) / 2
    bounds = []
    for q in (tail, 1 - tail):
        position = q * np.maximum(defined - 1, 0)
        below = np.floor(position).astype(np.int64)[..., None]
        above = np.minimum(below + 1, np.maximum(defined - 1, 0)[..., None])
        low = np.take_along_axis(ordered, below, axis=-1)[..., 0]
        high = np.take_along_axis(ordered, above, axis=-1)[..., 0]
        bounds.append(low + (high - low) * (position - below[..., 0]))
    bounds = np.stack(bounds, axis=-1)
    return np.where((defined * 2 >= ordered.shape[-1])[..., None], bounds, np.nan)


# --- a project's answers to the figures ------------------------------------------------------
@dataclass(frozen=True)
class Answers:
    """One row per answer that agreement counts (no skips, no gold, no imports).

    ``unit`` (N,): the comparison, 0..U-1; ``rater`` (N,): the annotator, 0..A-1, in the
    order their names sort; ``category`` (N,): the nominal outcome, 0 for a tie and i for
    the comparison's i-th item (by id) ranked first; ``places`` (N, K): the place each of
    the comparison's items (by id) was given, 1 best, 1.5 for both items of a tied pair,
    0 past the comparison's own K."""

    unit: np.ndarray
    rater: np.ndarray
    category: np.ndarray
    places: np.ndarray


def project_agreement(
    answers: Answers,
    names: list[str],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> tuple[dict, list[dict | None]]:
    """The project's agreement, and each annotator's Cohen's κ against all the others
    (one table summed over their pairs; None without shared comparisons).

    Fleiss' κ and Cohen's κ use the nominal categories; Krippendorff's α too when every
    comparison is a pair, and otherwise (a project with K > 2 rankings) the ordinal
    places of each item, a unit being a (comparison, item)."""
    ranking = bool((answers.places[:, 2:] > 0).any())
    level = "ordinal" if ranking else "nominal"
    rng = np.random.default_rng(seed)
    counts, units = _unit_patterns(answers.unit, answers.category)  # (P, C), (P,)
    resampled = resample_weights(units, rng, resamples)  # (B, P)
    fleiss = fleiss_kappa(counts, units)
    fleiss_ci = percentile_interval(fleiss_kappa(counts, resampled), confidence)
    if ranking:
        o, alpha_units = _ordinal_patterns(answers)
        alpha_resampled = resample_weights(alpha_units, rng, resamples)
    else:
        o, alpha_units, alpha_resampled = coincidences(counts), units, resampled
    alpha = krippendorff_alpha(np.tensordot(alpha_units, o, axes=1), level)
    alpha_ci = percentile_interval(
        krippendorff_alpha(np.tensordot(alpha_resampled, o, axes=1), level), confidence
    )
    pairs, pooled, pair_resamples = _cohen_pairs(answers, names, rng, resamples, confidence)
    figures = {
        "comparisons": int(units.sum()),
        "answers": int(counts.sum(axis=1) @ units),
        "fleiss_kappa": _number(fleiss),
        "fleiss_kappa_ci": _interval(fleiss_ci),
        "krippendorff_alpha": _number(alpha),
        "krippendorff_alpha_ci": _interval(alpha_ci),
        "alpha_level": level,
        "cohen_kappa": pairs,
        "confidence": confidence,
        "resamples": resamples,
        "pair_resamples": pair_resamples,
    }
    return figures, pooled


def _unit_patterns(unit: np.ndarray, category: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Comparisons with two or more answers as distinct rows ``(P, C)`` of answers per
    category (the categories that occur), and how many comparisons have each row."""
    used, column = _compact(category)
    units = int(unit.max()) + 1 if len(unit) else 0
    counts = np.bincount(unit * len(used) + column, minlength=units * len(used))
    counts = counts.reshape(units, len(used))
    counts = counts[counts.sum(axis=1) >= 2]
    if not len(counts):
        return np.zeros((0, len(used))), np.zeros(0, dtype=np.int64)
    return distinct_rows(counts)


def _ordinal_patterns(answers: Answers) -> tuple[np.ndarray, np.ndarray]:
    """The coincidences ``(P, V, V)`` of each distinct comparison (summed over its items,
    the units of α, with the places in increasing order), and how many comparisons have
    them. Comparisons are the resampled units, since their items' places depend on each
    other."""
    k = answers.places.shape[1]
    row, item = np.nonzero(answers.places)
    places, value = np.unique(answers.places[row, item], return_inverse=True)
    v = len(places)
    units = int(answers.unit.max()) + 1
    cell = (answers.unit[row] * k + item) * v + value
    counts = np.bincount(cell, minlength=units * k * v).reshape(units, k * v)
    counts = counts[(counts.reshape(units, k, v).sum(axis=2) >= 2).any(axis=1)]
    if not len(counts):
        return np.zeros((0, v, v)), np.zeros(0, dtype=np.int64)
    rows, weights = distinct_rows(counts)
    return coincidences(rows.reshape(-1, k, v)).sum(axis=1), weights


def distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a non-negative integer matrix and how often each occurs, as
    ``np.unique(rows, axis=0, return_counts=True)`` (in another order): through one int64
    key per row when the values fit, which sorts several times faster."""
    base = int(rows.max()) + 1
    if base ** rows.shape[1] >= 2**62:
        return np.unique(rows, axis=0, return_counts=True)
    powers = base ** np.arange(rows.shape[1], dtype=np.int64)
    keys, counts = _counted(rows.astype(np.int64) @ powers)
    return (keys[:, None] // powers) % base, counts


def _cohen_pairs(answers: Answers, names, rng, resamples, confidence):
    """Cohen's κ per pair of annotators who answered the same comparisons, per annotator
    against all the others pooled, and the resamples each pair's interval had."""
    if not len(answers.unit):
        return {}, [None] * len(names), resamples
    used, category = _compact(answers.category)
    c, a = len(used), len(names)
    order = np.argsort(answers.unit, kind="stable")  # rows mostly come in comparison order
    unit = answers.unit[order]
    said = (answers.rater * c + category)[order]  # who and what: orders as the raters do
    keys = []
    for offset in range(1, _largest_group(unit)):  # each answer with the later ones of its unit
        same = unit[offset:] == unit[:-offset]
        one, other = said[:-offset][same], said[offset:][same]
        # a pair's first annotator is the one whose name sorts first
        keys.append(np.minimum(one, other) * (a * c) + np.maximum(one, other))
    keys = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
    found, n = _counted(keys)
    first_said, second_said = np.divmod(found, a * c)
    cell = (first_said % c) * c + second_said % c
    found = (first_said // c * a + second_said // c) * c * c + cell  # (pair, cell)
    pair_ids, cells = np.unique(found // (c * c), return_inverse=True)
    tables = np.zeros((len(pair_ids), c * c), dtype=np.int64)
    tables[cells, found % (c * c)] = n
    tables = tables.reshape(-1, c, c)
    kappas = cohen_kappa(tables)
    resamples = min(resamples, PAIR_DRAWS // max(len(tables), 1))
    if resamples < PAIR_RESAMPLES_FLOOR:
        resamples = 0
    intervals = np.full((len(pair_ids), 2), np.nan)
    for start in range(0, len(pair_ids) if resamples else 0, PAIRS_PER_DRAW):
        chunk = tables[start : start + PAIRS_PER_DRAW].reshape(-1, c * c)
        sizes = chunk.sum(axis=1)
        draws = rng.multinomial(sizes[:, None], (chunk / sizes[:, None])[:, None, :],
                                size=(len(chunk), resamples))  # fmt: skip
        samples = cohen_kappa(draws.reshape(len(chunk), resamples, c, c))
        intervals[start : start + len(chunk)] = percentile_interval(samples, confidence)
    pairs = {}
    for pair, table, kappa, interval in zip(pair_ids, tables, kappas, intervals, strict=True):
        first, second = divmod(int(pair), a)
        pairs[f"{names[first]}|{names[second]}"] = {
            "kappa": _number(kappa),
            "n": int(table.sum()),
            "ci": _interval(interval),
        }
    pooled_tables = np.zeros((a, c, c), dtype=np.int64)
    np.add.at(pooled_tables, pair_ids // a, tables)
    np.add.at(pooled_tables, pair_ids % a, tables.transpose(0, 2, 1))
    pooled = [
        {"kappa": _number(kappa), "n": int(table.sum())} if table.sum() else None
        for table, kappa in zip(pooled_tables, cohen_kappa(pooled_tables), strict=True)
    ]
    return pairs, pooled, resamples


def _compact(category: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the categories that occur, each answer's index among them), for small integers."""
    occurs = np.bincount(category) > 0
    return np.flatnonzero(occurs), (np.cumsum(occurs) - 1)[category]


def _counted(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_counts=True)``, by counting when the keys are few."""
    if len(keys) and int(keys.max()) <= 4 * len(keys) + 2**16:
        counts = np.bincount(keys)
        found = np.flatnonzero(counts)
        return found, counts[found]
    return np.unique(keys, return_counts=True)


def _largest_group(unit: np.ndarray) -> int:
    return int(np.bincount(unit).max()) if len(unit) else 0


def _number(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _interval(bounds) -> list[float] | None:
    low, high = (float(b) for b in bounds)
    return [low, high] if np.isfinite(low) and np.isfinite(high) else None
