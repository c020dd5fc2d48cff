"""``WITH (tune = N)``: a seeded random search over the architecture's and the training's
options, judged on the validation rows, that keeps the best as the version.

Trial 0 is the options as written (the defaults where none is given), so tuning never
keeps a version that did worse on the validation rows than the statement without
``tune``. Trials 1..N-1 draw each tuned option from :data:`SPACE` with a generator seeded
by ``seed``, so the same statement on the same rows tries the same options. Each trial
trains with early stopping on the validation rows and without the refit; its score is the
task's headline metric on them (accuracy, R², MAE, ...). The best trial's options then
train the version as any TRAIN does (the refit on every training row included, where it
applies), so the version is what ``TRAIN MODEL ... WITH (<the best options>)`` gives.

Options the statement gives are not tuned; ``tune_options`` names the ones to tune (every
one of :data:`SPACE` the architecture has, by default). ``tune_seconds`` bounds the
search: no trial starts once it is spent (a trial under way finishes), and a budget that
the first trial alone outlasts is an error with nothing written.

Every trial is kept in the version's ``metrics.tuning`` (options, score, epochs,
seconds), so what was tried is a query on the registry, and ``dbml.plot.tuning`` draws it.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from typing import Any, Callable

import numpy as np

from dbml.errors import OptionError
from dbml.options import Option

__all__ = ["SPACE", "tunable", "check", "draw", "search"]

Draw = Callable[[np.random.Generator, int], Any]  # (generator, training rows) -> a value


def _log_uniform(lo: float, hi: float) -> Draw:
    return lambda rng, rows: float(f"{math.exp(rng.uniform(math.log(lo), math.log(hi))):.3g}")


def _uniform(lo: float, hi: float) -> Draw:
    return lambda rng, rows: round(float(rng.uniform(lo, hi)), 3)


def _choice(values: list[Any]) -> Draw:
    return lambda rng, rows: values[int(rng.integers(len(values)))]


def _batch_size(rng: np.random.Generator, rows: int) -> int:
    """Rows per step, at most an eighth of the training rows (eight steps an epoch)."""
    sizes = [b for b in (32, 64, 128, 256, 512) if b <= max(32, rows // 8)]
    return sizes[int(rng.integers(len(sizes)))]


# (option name, option type) -> how a trial draws it; ranges after RealMLP's and TabM's
# search spaces (Holzmüller et al. 2024, Gorishniy et al. 2024), narrowed for CPU budgets
SPACE: dict[tuple[str, str], Draw] = {
    ("lr", "float"): _log_uniform(2e-4, 1e-2),
    ("weight_decay", "float"): _log_uniform(1e-6, 1e-1),
    ("dropout", "float"): _uniform(0.0, 0.5),
    ("batch_size", "int"): _batch_size,
    ("hidden", "int_list"): _choice([[64], [128], [128, 64], [256, 128], [256, 256], [512, 256], [256, 256, 128]]),
    ("hidden", "int"): _choice([32, 64, 128, 256]),
    ("layers", "int"): _choice([1, 2, 3]),
    ("channels", "int_list"): _choice([[16, 32], [32, 64], [64, 128]]),
    ("factors", "int"): _choice([16, 32, 64]),
}


def tunable(declared: tuple[Option, ...]) -> list[str]:
    """The names of the declared options the search can draw."""
    return [o.name for o in declared if (o.name, o.type) in SPACE]


def check(name: str, options: dict[str, Any], given: dict[str, Any], declared: tuple[Option, ...], architecture: str,
          streams: bool, workers: int, elsewhere: bool) -> list[str]:  # fmt: skip
    """The options the search of TRAIN MODEL ``name`` draws; an OptionError for a search it cannot run."""
    given = {k.lower() for k in given}
    asked = options["tune_options"]
    for key in ("tune_seconds", "tune_options"):
        if key in given and not options["tune"]:
            raise OptionError(f"option '{key}' of TRAIN MODEL {name} needs option 'tune' (the number of trials)")
    if not options["tune"]:
        return []
    can = tunable(declared)
    if asked is not None:
        asked = [a.lower() for a in asked]
        for a in asked:
            if a not in {o.name for o in declared}:
                raise OptionError(f"option 'tune_options' of TRAIN MODEL {name} names '{a}', which USING {architecture} "
                                  f"does not have; it tunes {', '.join(can)}")  # fmt: skip
            if a not in can:
                raise OptionError(f"option 'tune_options' of TRAIN MODEL {name} names '{a}', which the search does not "
                                  f"draw; it tunes {', '.join(can)}")  # fmt: skip
            if a in given:
                raise OptionError(f"option '{a}' of TRAIN MODEL {name} is given and named in tune_options: "
                                  "give a value or tune it, not both")  # fmt: skip
        chosen = list(dict.fromkeys(asked))
        if not chosen:
            raise OptionError(f"option 'tune_options' of TRAIN MODEL {name} is empty; name the options to tune "
                              f"({', '.join(can)}) or leave it out")  # fmt: skip
    else:
        chosen = [c for c in can if c not in given]
    if not chosen:
        raise OptionError(f"TRAIN MODEL {name} gives every option the search could draw ({', '.join(can)}); "
                          "leave some out or drop tune")  # fmt: skip
    if options["validation"] <= 0:
        raise OptionError(f"option 'tune' of TRAIN MODEL {name} judges trials on the validation rows; "
                          "validation = 0 holds none out")  # fmt: skip
    if streams:
        raise OptionError(f"option 'tune' of TRAIN MODEL {name} is not available with streaming yet: each trial would "
                          "read the source again; tune on a sample that fits (streaming = false), then train with the "
                          "options it chose")  # fmt: skip
    if workers > 1 or elsewhere:
        raise OptionError(f"option 'tune' of TRAIN MODEL {name} runs its trials in this process; "
                          "give workers = 1 (and train on Spark with the options it chose)")  # fmt: skip
    return chosen


def draw(chosen: list[str], declared: tuple[Option, ...], seed: int, trials: int, rows: int) -> list[dict[str, Any]]:
    """The drawn options of trials 1..``trials``-1 (trial 0 draws none), the same for the
    same seed and number of training rows."""
    types = {o.name: o for o in declared}
    rng = np.random.default_rng([int(seed), 0x7475])
    out = []
    for _ in range(trials - 1):
        out.append({c: types[c].coerce(SPACE[(c, types[c].type)](rng, rows)) for c in chosen})
    return out


def better(score: float | None, best: float | None, lower: bool) -> bool:
    """Whether ``score`` beats ``best`` (a trial that measured nothing never does; ties keep the earlier)."""
    if score is None or not math.isfinite(score):
        return False
    if best is None:
        return True
    return score < best if lower else score > best


def search(p, run: Callable[[Any], tuple], headline: str, lower: bool, chosen: list[str], declared,
           rows: int) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """Run the trials of plan ``p`` (``run(plan)``: (network, logs, seconds, batch size, metrics)
    of one trial, without the refit; ``rows``: the training rows); returns (the best
    trial's plan, ``metrics.tuning``)."""
    options = p.options
    budget = options["tune_seconds"]
    drawn = [{}] + draw(chosen, declared, options["seed"], options["tune"], rows)
    started = time.perf_counter()
    trials: list[dict[str, Any]] = []
    best, best_score, stopped = 0, None, None
    for i, changes in enumerate(drawn):
        if i and budget is not None and time.perf_counter() - started >= budget:
            stopped = "tune_seconds"
            break
        # one network per trial unless option ensemble asks for more: the best options then train the version
        trial = dataclasses.replace(p, options={**options, **changes, "refit": False, "ensemble": options.get("ensemble") or 1})
        _, logs, seconds, batch_size, metrics = run(trial)
        score = metrics.get(headline)
        score = float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None
        shown = {c: (trial.options[c] if c != "batch_size" else batch_size) for c in chosen}
        trials.append({"trial": i, "options": shown, "score": score, "epochs": len(logs), "seconds": round(seconds, 3)})
        if better(score, best_score, lower):
            best, best_score = i, score
        if options["verbose"]:
            print(f"tune {p.name}: trial {i + 1}/{len(drawn)} {headline} {score if score is not None else 'n/a'}"
                  f"{' (best so far)' if best == i else ''}  {shown}", file=sys.stderr, flush=True)  # fmt: skip
        if i == 0 and budget is not None and time.perf_counter() - started > budget and len(drawn) > 1:
            raise OptionError(
                f"option 'tune_seconds' = {budget:g} of TRAIN MODEL {p.name} is too small for one trial: the first "
                f"took {time.perf_counter() - started:.1f} s; raise it, lower epochs, or drop tune (nothing was saved)"
            )
    chosen_plan = dataclasses.replace(p, options={**options, **drawn[best]})
    return chosen_plan, {
        "metric": headline,
        "lower_is_better": lower,
        "tuned": chosen,
        "trials": trials,
        "best_trial": best,
        "seconds": round(time.perf_counter() - started, 3),
        "budget_seconds": budget,
        "stopped_by": stopped,
    }
