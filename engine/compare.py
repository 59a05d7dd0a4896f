"""Runs from different plans side by side: which keys of their specs differ, and which of those
their plans did not set out to vary.

A plan varies some keys on purpose (the ablation: the width and η; a plan over seeds: the seed).
Runs compared across plans (or days, or results directories) should differ only in those; any
other difference (another n_train, another stable regime, other data) makes the comparison
uncontrolled, and each run that carries one is flagged with the keys.
"""

from __future__ import annotations

import json
from collections import Counter

# what names or presents a run, or where it ran: not part of the experiment
NOT_THE_EXPERIMENT = ("name", "description", "label", "guide", "record", "runs", "data.root", "data.download",
                      "train.device", "train.checkpoint_every")
DATA = "data (sha256)"  # the data's contents, from the record's environment: a pseudo-key


def flat(spec: dict, prefix: str = "") -> dict[str, str]:
    """A spec as dotted keys and their values (as JSON text, so lists compare as values)."""
    out: dict[str, str] = {}
    for key, value in spec.items():
        dotted = f"{prefix}{key}"
        if any(dotted == k or dotted.startswith(k + ".") for k in NOT_THE_EXPERIMENT):
            continue
        if isinstance(value, dict):
            out.update(flat(value, dotted + "."))
        else:
            out[dotted] = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return out


def experiment_of(spec: dict, environment: dict) -> dict[str, str]:
    """The keys that make the experiment: the spec's, and the data's checksum when recorded."""
    keys = flat(spec if isinstance(spec, dict) else {})
    sha = environment.get("data_sha256") if isinstance(environment, dict) else None
    if isinstance(sha, str) and sha:
        keys[DATA] = sha
    return keys


def differing(experiments: list[dict[str, str]]) -> list[str]:
    """The keys whose values are not the same in every run (a key a run lacks counts as a value)."""
    keys = sorted({k for e in experiments for k in e})
    return [k for k in keys if len({e.get(k) for e in experiments}) > 1]


def varied_keys(experiments: list[dict[str, str]], plans: list[object]) -> list[str]:
    """The keys some plan varies among its own runs here, and the seed (varied by design)."""
    groups: dict[object, list[dict[str, str]]] = {}
    for experiment, plan in zip(experiments, plans):
        groups.setdefault(plan, []).append(experiment)
    varied = {k for members in groups.values() for k in differing(members)}
    return sorted(varied | {"train.seeds"})


def flags(experiments: list[dict[str, str]], plans: list[object]) -> tuple[list[str], list[str], list[list[str]]]:
    """(the keys that differ among the runs, those their plans vary, and per run the keys beyond
    those where it differs from the most common value, on a tie the first run's): a run with any
    is not a controlled comparison with the others."""
    keys = differing(experiments)
    varied = varied_keys(experiments, plans)
    beyond = [k for k in keys if k not in varied]
    common = {k: Counter(e.get(k) for e in experiments).most_common(1)[0][0] for k in beyond}
    return keys, [k for k in varied if k in keys], [[k for k in beyond if e.get(k) != common[k]] for e in experiments]


def shown_value(experiment: dict[str, str], key: str) -> str:
    """A key's value as a table shows it (TOML-like; the checksum shortened)."""
    raw = experiment.get(key)
    if raw is None:
        return "(unset)"
    if key == DATA:
        return raw[:12]
    value = json.loads(raw)
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (str, list)) else str(value)
