"""Presets + `--set key=value` overrides -> one typed, validated experiment spec.

A preset is a TOML file with the tables of DESIGN.md §4. `load_spec` returns the *plan*
spec (it may hold `[[runs]]`); `Plan.of` expands it into one resolved spec per run,
each of which is itself a valid preset that reproduces that run alone.
"""

from __future__ import annotations

import copy
from collections import Counter
import dataclasses
import difflib
import itertools
import math
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from engine.errors import CONTROL, ConfigError
from engine.kinds import CHOOSES_CLASSES, IMAGE_SOURCES, KINDS, ONE_PER_CLASS, SOURCES, class_count

# ---------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """What values a key allows: a predicate and the words that describe it."""

    check: Callable[[Any], bool]
    allowed: str


def one_of(*options: str) -> Rule:
    return Rule(lambda v: v in options, "must be one of " + ", ".join(f'"{o}"' for o in options))


def above(low: float) -> Rule:
    return Rule(lambda v: v > low, f"must be > {low:g}")


def between(low: int, high: int) -> Rule:
    """An integer in [low, high]: the upper bound keeps a typo (1e12 for 1e2) from reaching
    the allocator; the memory estimate at preflight judges what fits."""
    return Rule(lambda v: low <= v <= high, f"must be an integer in [{low:_}, {high:_}]")


def within(low: float, high: float) -> Rule:
    return Rule(lambda v: low <= v < high, f"must be in [{low:g}, {high:g})")


def fraction() -> Rule:
    return Rule(lambda v: 0.0 <= v <= 1.0, "must be a fraction in [0, 1]")


TEXT_LIMIT = 20_000  # description and guide text: shown as text, never as markup; bounded

DEVICE = Rule(
    lambda v: v in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", v) is not None,
    'must be "auto", "cpu", "cuda" or "cuda:N"',
)
NON_EMPTY = Rule(lambda v: len(v) > 0, "must be a non-empty list of integers")
MAX_WIDTH = 1_048_576
MAX_EPOCHS = 100_000_000
MAX_JOBS = 256  # runs at once: processes of one machine, or Ray tasks
MAX_INPUTS = 10_000_000
CLASSES = Rule(
    lambda v: len(set(map(str, v))) == len(v) and len(v) != 1 and all(isinstance(c, str) or c >= 0 for c in v),
    "must be [] or a list of at least two distinct class names or indices >= 0",
)
CHANNELS = Rule(lambda v: len(v) in (0, 3), "must be [] or 3 numbers, one per channel (R, G, B)")
WIDTHS = Rule(lambda v: len(v) > 0 and 1 <= min(v) and max(v) <= MAX_WIDTH, f"must be a non-empty list of integers in [1, {MAX_WIDTH:_}]")


def key(default: Any, rule: Rule | None = None, doc: str = "") -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"rule": rule, "doc": doc})
    return field(default=default, metadata={"rule": rule, "doc": doc})


# ---------------------------------------------------------------- the spec


DEFAULT_ROOT = "~/.cache/lplr-tui/data"


@dataclass(frozen=True)
class DataSpec:
    source: str = key("mnist-3v8", one_of(*SOURCES), "mnist-3v8, cifar10-5 (torchvision's CIFAR-10), imagefolder (a folder per class) or synthetic")
    root: str = key(DEFAULT_ROOT, doc="where torchvision data and caches live; for imagefolder, the tree of class folders")
    download: bool = key(False, doc="let torchvision download the data set when it is not under root")
    n_train: int = key(1000, between(2, MAX_INPUTS), "training images, the same number from each class")
    classes: list[int | str] = key([], CLASSES, "cifar10-5, imagefolder: the classes, by name or index ([]: every class folder of imagefolder, cifar10-5's first five); synthetic: names as many random classes")
    mean: list[float] = key([], CHANNELS, "cifar10-5, imagefolder: per-channel mean to subtract ([]: computed on the chosen images)")
    std: list[float] = key([], Rule(lambda v: len(v) in (0, 3) and all(s > 0 for s in v), "must be [] or 3 numbers > 0, one per channel (R, G, B)"),
                           "cifar10-5, imagefolder: per-channel standard deviation to divide by ([]: computed on the chosen images)")


@dataclass(frozen=True)
class ModelSpec:
    kind: str = key("mlp", one_of(*KINDS))
    width: int = key(128, between(1, MAX_WIDTH))
    widths: list[int] = key([], WIDTHS, "a plan over widths: one run per width (and per [[runs]] entry); each sets the kind's width key")
    depth: int = key(4, between(1, 1000), "number of hidden layers")
    beta: float = key(1.0, above(0), "Softplus sharpness")
    base_width: int = key(16, between(1, 4096), "resnet-gn: channels of the first stage (then x2, x4)")
    groups: int = key(8, between(1, 4096), "resnet-gn: GroupNorm groups")


@dataclass(frozen=True)
class OptimSpec:
    kind: str = key("gd", one_of("gd", "sgd"))
    lr: float = key(1e-3, above(0), "the (base) step size")
    lr_scale: float = key(0.0, within(0.0, 1e6), "if > 0: the step is lr_scale/β₀, β₀ = λ_max(∇²L) at θ_0 measured before the run (as advise does); optim.lr is then set to it")
    momentum: float = key(0.0, within(0.0, 1.0), "heavy-ball momentum; 0 is plain gradient descent")
    schedule: str = key("constant", one_of("constant", "cosine"), "cosine: lr·(1 + cos(π·epoch/epochs))/2")
    batch_size: int = key(128, between(1, MAX_INPUTS), "sgd: inputs per step")


@dataclass(frozen=True)
class TrainSpec:
    epochs: int = key(3000, between(1, MAX_EPOCHS))
    seeds: list[int] = key([0], NON_EMPTY)
    device: str = key("auto", DEVICE)
    diverge_factor: float = key(1e6, above(1), "loss above this multiple of the first loss: diverged")
    checkpoint_every: int = key(500, between(0, MAX_EPOCHS), "epochs between checkpoints (0: only when interrupted)")
    tf32: bool = key(False, doc="CUDA: let float32 matmuls and convolutions use TF32 (faster, ~1e-3 relative)")
    jobs: int = key(1, between(1, MAX_JOBS), "runs of the plan at once, each in a process of its own (--jobs overrides it); plan-wide")
    threads: int = key(0, between(0, 1024), "CPU threads of a run (0: every core, or the cores split between --jobs); "
                       "CPU results are bit for bit the same only at the same thread count")


@dataclass(frozen=True)
class ProbesSpec:
    every: int = key(10, between(0, MAX_EPOCHS), "epochs between probes of drift and NTK (0: no such probes)")
    ntk_subset: int = key(100, between(1, 100_000), "n, the size of the fixed NTK probe subset")
    ntk_seed: int = key(0)
    micro_batch: int = key(0, between(0, MAX_INPUTS), "inputs per pass of the full-set diagnostics (0: all at once)")
    theory_every: int = key(0, between(0, MAX_EPOCHS), "epochs between the sharpness probes, β = λ_max(∇²L) (0: never)")
    ntk_full_every: int = key(0, between(0, MAX_EPOCHS), "epochs between the full-set NTK spectra, λ_min and λ_max of K_N (MLP only; 0: never)")


@dataclass(frozen=True)
class AnalysisSpec:
    stable_from: float = key(0.1, fraction(), "start of the stable regime, as a fraction of epochs")
    stable_to: float = key(0.9, fraction(), "end of the stable regime, as a fraction of epochs")


@dataclass(frozen=True)
class GuideSpec:
    """The guide's text and the thresholds of the verdicts and live annotations (each defined
    in docs/diagnostics.md). They are fixed before a run, never tuned to make a verdict pass."""

    text: str = key("", Rule(lambda v: len(v) <= TEXT_LIMIT, f"must be at most {TEXT_LIMIT} characters"), "what the experiment tests and what to watch, in words")
    decay_margin: float = key(10.0, above(0), "verdict: BIC difference by which a decay model must win (10: very strong)")
    sufficient_decrease: float = key(0.99, fraction(), "verdict: share of steps where L_t+1 <= L_t - (η/2)|∇L_t|² must hold")
    kernel_change: float = key(0.5, above(0), "annotate / verdict: |K_t - K_0|₂ / |K_0|₂ at most (lazy training)")
    lambda_drop: float = key(0.5, within(0.0, 1.0), "annotate / verdict: λ_min fell by more than this fraction of λ_0")
    lambda_rise: float = key(0.5, above(0), "annotate / verdict: λ_min rose by more than this fraction of λ_0")
    drift_jump: float = key(3.0, above(1), "annotate / verdict: the drift's speed rose above this multiple of its first step's")
    uphill: float = key(0.5, fraction(), "annotate / verdict: share of the drift travelled while the loss rose, at most")
    saturation: float = key(0.2, fraction(), "verdict: share of the drift added in the last 20% of epochs, below (linear growth: 0.2)")
    loss_spike: float = key(2.0, above(1), "annotate / verdict: the loss rose above this multiple of its running minimum")
    doubling_tolerance: float = key(0.25, above(0), "verdict: λ_0 per doubling of width within [2/(1+tol), 2(1+tol)]")


@dataclass(frozen=True)
class RecordSpec:
    write_interval: float = key(5.0, above(0), "seconds between rewrites of record.toml")


TABLES: dict[str, type] = {
    "data": DataSpec,
    "model": ModelSpec,
    "optim": OptimSpec,
    "train": TrainSpec,
    "probes": ProbesSpec,
    "analysis": AnalysisSpec,
    "guide": GuideSpec,
    "record": RecordSpec,
}
TOP_LEVEL = ("name", "description", "runs", "label", "sweep")
# keys a [sweep] cannot vary: names, the plan's own structure, and what has a list of its own
NOT_SWEPT = {"name": "", "description": "", "label": "", "runs": "", "sweep": "",
             "train.seeds": " (a plan over seeds: train.seeds = [0, 1, 2])", "model.widths": " (give model.widths = [...] instead)"}


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    data: DataSpec
    model: ModelSpec
    optim: OptimSpec
    train: TrainSpec
    probes: ProbesSpec
    analysis: AnalysisSpec
    guide: GuideSpec
    record: RecordSpec
    runs: tuple[dict, ...] = ()
    label: str = ""
    sweep: tuple[tuple[str, tuple], ...] = ()  # (dotted key, its values): the plan is their product

    def to_dict(self) -> dict:
        """The spec as preset tables (TOML-writable: no None anywhere)."""
        out: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.label:
            out["label"] = self.label
        for table in TABLES:
            out[table] = dataclasses.asdict(getattr(self, table))
        if not self.model.widths:  # unset: writing [] would read back as an error
            del out["model"]["widths"]
        if self.runs:
            out["runs"] = [copy.deepcopy(r) for r in self.runs]
        if self.sweep:
            out["sweep"] = {}
            for dotted, values in self.sweep:
                set_dotted(out["sweep"], dotted, list(values))
        return out


# ---------------------------------------------------------------- presets on disk


def bundled_presets_dir() -> Path:
    here = Path(__file__).resolve().parent
    installed = here / "presets"
    return installed if installed.is_dir() else here.parent / "presets"


def preset_dirs() -> list[Path]:
    """User presets in ./presets first, then the bundled ones."""
    dirs = [Path.cwd() / "presets", bundled_presets_dir()]
    return [d for i, d in enumerate(dirs) if d.is_dir() and d.resolve() not in [x.resolve() for x in dirs[:i]]]


PAPER_ORDER = ("mnist", "ablation", "cifar")


def available_presets() -> dict[str, Path]:
    """name -> path; the paper's experiments first, in its order, then the rest by name."""
    found: dict[str, Path] = {}
    for d in reversed(preset_dirs()):
        for p in sorted(d.glob("*.toml")):
            found[p.stem] = p
    rank = {name: i for i, name in enumerate(PAPER_ORDER)}
    return dict(sorted(found.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))


def find_preset(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix == ".toml" or path.exists():
        if path.is_file():
            return path
        raise ConfigError("--preset", name_or_path, "no such file")
    presets = available_presets()
    if name_or_path in presets:
        return presets[name_or_path]
    hint = difflib.get_close_matches(name_or_path, presets, n=1)
    maybe = f' (did you mean "{hint[0]}"?)' if hint else ""
    known = ", ".join(presets) or "none found"
    raise ConfigError("--preset", name_or_path, f"unknown preset{maybe}; known presets: {known}")


def shadowed(name: str, path: Path) -> Path | None:
    """The bundled preset that `path` (found for `name`) hides, if any."""
    bundled = bundled_presets_dir() / f"{name}.toml"
    if bundled.is_file() and path.resolve() != bundled.resolve():
        return bundled
    return None


def preset_origin(name_or_path: str) -> str:
    """Which file a preset name or path reads, and the bundled preset it shadows, in words."""
    path = find_preset(name_or_path)
    hidden = shadowed(name_or_path, path) if path.stem == name_or_path else None
    return f"read from {path}" + (f" (a local preset that shadows the bundled {hidden})" if hidden else "")


def read_preset(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("preset", str(path), f"is not valid TOML: {toml_problem(exc, text)}") from None
    except OSError as exc:
        raise ConfigError("preset", str(path), f"cannot be read: {exc.strerror}") from None


def toml_problem(exc: Exception, text: str) -> str:
    """tomllib's message, always with a line and column (it omits them at the end of a file)."""
    message = str(exc)
    if "(at end of document)" in message:
        lines = text.split("\n")
        where = f"(at line {len(lines)}, column {len(lines[-1]) + 1}: the end of the file)"
        message = message.replace("(at end of document)", where)
    return message


def preset_description(path: Path) -> str:
    try:
        return str(read_preset(path).get("description", ""))
    except ConfigError as exc:
        return f"(broken: {exc})"


# ---------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[str, Any]:
    """`key=value`, the value read as TOML, or as a bare string when it is not TOML."""
    if "=" not in text:
        raise ConfigError("--set", text, "must look like table.key=value, e.g. optim.lr=1e-3")
    name, raw = (s.strip() for s in text.split("=", 1))
    if not name:
        raise ConfigError("--set", text, "must look like table.key=value, e.g. optim.lr=1e-3")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return name, value


def set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(dotted, value, f"{part} is not a table")
        node = child
    node[parts[-1]] = value


def merge(base: dict, overrides: Mapping) -> dict:
    """Deep-merge nested overrides into a copy of base."""
    out = copy.deepcopy(base)
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# ---------------------------------------------------------------- validation


def all_keys() -> list[str]:
    keys = list(TOP_LEVEL)
    for table, cls in TABLES.items():
        keys += [f"{table}.{f.name}" for f in dataclasses.fields(cls)]
    return keys


def unknown_key(dotted: str, value: Any, where: str) -> ConfigError:
    hint = difflib.get_close_matches(dotted, all_keys(), n=1, cutoff=0.6)
    table = dotted.split(".")[0]
    if table in TABLES:
        names = ", ".join(f.name for f in dataclasses.fields(TABLES[table]))
        allowed = f"unknown key in [{table}]; allowed: {names}"
    else:
        allowed = "unknown key; tables are " + ", ".join(TABLES) + "; top-level keys " + ", ".join(TOP_LEVEL)
    if hint:
        allowed = f'unknown key (did you mean "{hint[0]}"?); ' + allowed.split("; ", 1)[1]
    return ConfigError(dotted, value, allowed, where)


TYPE_WORDS = {
    str: "a string", int: "an integer", float: "a number", bool: "true or false", list[int]: "a list of integers",
    list[float]: "a list of numbers", list[int | str]: "a list of names (strings) or indices (integers)",
}


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def coerce(dotted: str, value: Any, typ: Any, where: str) -> Any:
    words = TYPE_WORDS.get(typ, str(typ))
    if typ is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(dotted, value, "must be a finite number", where)
        return float(value)
    if typ is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if typ is bool and isinstance(value, bool):
        return value
    if typ is str and isinstance(value, str):
        if CONTROL.search(value):
            raise ConfigError(dotted, value, "must not contain control characters", where)
        return value
    if typ == list[int] and isinstance(value, list) and all(is_int(v) for v in value):
        return list(value)
    if typ == list[float] and isinstance(value, list) and all(is_int(v) or isinstance(v, float) for v in value):
        if not all(math.isfinite(v) for v in value):
            raise ConfigError(dotted, value, "must be finite numbers", where)
        return [float(v) for v in value]
    if typ == list[int | str] and isinstance(value, list) and all(is_int(v) or isinstance(v, str) for v in value):
        if any(isinstance(v, str) and (CONTROL.search(v) or not v) for v in value):
            raise ConfigError(dotted, value, "must hold non-empty names without control characters", where)
        return list(value)
    raise ConfigError(dotted, value, f"must be {words}", where)


def build_table(table: str, values: Any, where: str) -> Any:
    cls = TABLES[table]
    if not isinstance(values, dict):
        raise ConfigError(table, values, "must be a table", where)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    types = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        dotted = f"{table}.{name}"
        if name not in fields:
            raise unknown_key(dotted, value, where)
        typed = coerce(dotted, value, types[name], where)
        rule: Rule | None = fields[name].metadata.get("rule")
        if rule is not None and not rule.check(typed):
            raise ConfigError(dotted, value, rule.allowed, where)  # the value as the user wrote it
        kwargs[name] = typed
    return cls(**kwargs)


# A plan's name goes into file names (run directories, summaries); a label is shown in every
# table and screen. Neither may carry markup, control characters or path separators.
NAME = Rule(
    lambda v: re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", v) is not None,
    "must be 1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit",
)
LABEL = Rule(
    # Plan.of appends " seed=N" to the labels of a plan over seeds: a resumed run's spec has it
    lambda v: re.fullmatch(r"[\w .,:;=+\-*/%·()<>#@!?~^']{1,80}( seed=-?\d{1,20})?", v) is not None,
    "must be 1-80 characters: letters, digits, spaces and . , : ; = + - * / % · ( ) < > # @ ! ? ~ ^ ' "
    "(no brackets, braces, quotes, backslashes or control characters)",
)


def check_top_level(raw: dict, where: str) -> None:
    for name, value in raw.items():
        if name in TABLES:
            continue
        if name not in TOP_LEVEL:
            raise unknown_key(name, value, where)
        if name == "sweep":
            continue  # checked by sweep_of
        if name in ("name", "description", "label") and not isinstance(value, str):
            raise ConfigError(name, value, "must be a string", where)
        if name == "description" and CONTROL.search(value):
            raise ConfigError(name, value, "must not contain control characters", where)
        if name == "name" and not NAME.check(value):
            raise ConfigError(name, value, NAME.allowed, where)
        if name == "label" and value and not LABEL.check(value):
            raise ConfigError(name, value, LABEL.allowed, where)
        if name == "description" and len(value) > TEXT_LIMIT:
            raise ConfigError(name, value, f"must be at most {TEXT_LIMIT} characters", where)
    runs = raw.get("runs", [])
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise ConfigError("runs", runs, "must be an array of tables ([[runs]])", where)


def check_cross(spec: Spec, where: str) -> None:
    if spec.probes.ntk_subset > spec.data.n_train:
        raise ConfigError(
            "probes.ntk_subset", spec.probes.ntk_subset,
            f"must be <= data.n_train ({spec.data.n_train}): the subset is drawn from the training set", where,
        )
    if spec.analysis.stable_from >= spec.analysis.stable_to:
        raise ConfigError(
            "analysis.stable_from", spec.analysis.stable_from,
            f"must be < analysis.stable_to ({spec.analysis.stable_to})", where,
        )
    data, kind = spec.data, KINDS[spec.model.kind]
    if data.source not in kind.sources:
        allowed = " or ".join(f'"{f}"' for f in kind.sources)
        raise ConfigError("data.source", data.source, f'model.kind = "{kind.name}" takes {allowed}', where)
    if data.classes and data.source not in CHOOSES_CLASSES:
        raise ConfigError("data.classes", data.classes, f'must be [] for data.source = "{data.source}": only '
                          + ", ".join(f'"{s}"' for s in CHOOSES_CLASSES) + " choose their classes", where)
    if data.classes and kind.outputs != ONE_PER_CLASS:
        raise ConfigError("data.classes", data.classes, f'must be [] for model.kind = "{kind.name}": it has {kind.outputs} output(s), '
                          "not one per class", where)
    for name in ("mean", "std"):
        if getattr(data, name) and data.source not in IMAGE_SOURCES:
            raise ConfigError(f"data.{name}", getattr(data, name), f'must be [] for data.source = "{data.source}": only '
                              + " and ".join(f'"{s}"' for s in IMAGE_SOURCES) + " are normalised per channel", where)
    count = class_count(data.source, data.classes)
    if count and data.source != "synthetic" and data.n_train % count:
        raise ConfigError("data.n_train", data.n_train, f"must be a multiple of {count}: the {count} classes are balanced", where)
    problem = kind.problem(spec.model)
    if problem is not None:
        raise ConfigError(*problem, where)


def sweep_of(raw: dict, where: str) -> tuple[tuple[str, tuple], ...]:
    """The [sweep] table as (dotted key, values) pairs, checked: known keys that a sweep may
    vary, each with a non-empty list of distinct values. TOML's dotted keys nest
    (`optim.lr_scale = [...]` is {"optim": {"lr_scale": [...]}}); both forms are read."""
    table = raw.get("sweep", {})
    if not isinstance(table, dict):
        raise ConfigError("sweep", table, "must be a table of keys and lists of values, e.g. [sweep] optim.lr = [1e-3, 5e-4]", where)
    pairs: list[tuple[str, tuple]] = []
    for dotted, value in flat_items(table):
        if any(dotted == seen for seen, _ in pairs):
            raise ConfigError(f"sweep.{dotted}", value, "is given twice (as a dotted key and as a quoted one)", where)
        if dotted in NOT_SWEPT:
            raise ConfigError(f"sweep.{dotted}", value, f"cannot be swept{NOT_SWEPT[dotted]}", where)
        if dotted not in all_keys():
            raise unknown_key(dotted, value, f"{where} [sweep]".strip())
        if not isinstance(value, list) or not value:
            raise ConfigError(f"sweep.{dotted}", value, "must be a non-empty list of the values to try", where)
        if len({repr(v) for v in value}) != len(value):
            raise ConfigError(f"sweep.{dotted}", value, "must list each value once", where)
        pairs.append((dotted, tuple(value)))
    return tuple(pairs)


def sweep_points(sweep: tuple[tuple[str, tuple], ...]) -> list[dict]:
    """Every combination of the sweep's values as nested overrides ([{}] without a sweep)."""
    points = []
    for values in itertools.product(*(v for _, v in sweep)):
        point: dict = {}
        for (dotted, _), value in zip(sweep, values):
            set_dotted(point, dotted, value)
        points.append(point)
    return points


def validate(raw: dict, where: str = "") -> Spec:
    """A raw preset dict -> Spec, or a ConfigError naming the first bad key."""
    check_top_level(raw, where)
    tables = {t: build_table(t, raw.get(t, {}), where) for t in TABLES}
    spec = Spec(
        name=raw.get("name", "unnamed"),
        description=raw.get("description", ""),
        runs=tuple(raw.get("runs", [])),
        label=raw.get("label", ""),
        sweep=sweep_of(raw, where),
        **tables,
    )
    for i, run in enumerate(spec.runs or [{}]):
        for point in sweep_points(spec.sweep) if spec.sweep else []:
            validate(merge(merge(strip_plan(raw), run), point), f"{where} [sweep]".strip() + (f" [[runs]] #{i + 1}" if spec.runs else ""))
        if spec.runs:
            validate(merge(strip_plan(raw), run), f"{where} [[runs]] #{i + 1}".strip())
    check_cross(spec, where)
    return spec


def flat_items(tree: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in tree.items():
        out += flat_items(v, f"{prefix}{k}.") if isinstance(v, dict) else [(f"{prefix}{k}", v)]
    return out


def lenient(cls: type, values: Any) -> Any:
    """A table from a record written by another version or tool: the keys this version knows
    and accepts; anything else is left at its default."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    types = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in (values.items() if isinstance(values, dict) else ()):
        if name not in fields:
            continue
        try:
            typed = coerce(name, value, types[name], "")
        except ConfigError:
            continue
        rule: Rule | None = fields[name].metadata.get("rule")
        if rule is None or rule.check(typed):
            kwargs[name] = typed
    return cls(**kwargs)


def known_guide(raw: dict) -> dict:
    """A record's spec with the [guide] keys of other versions dropped (thresholds renamed or
    retired since), so an old run still resumes and its log still reads."""
    names = {f.name for f in dataclasses.fields(GuideSpec)}
    guide = raw.get("guide", {})
    return {**raw, "guide": {k: v for k, v in guide.items() if k in names}} if isinstance(guide, dict) else raw


def strip_plan(raw: dict) -> dict:
    return {k: v for k, v in raw.items() if k not in ("runs", "sweep")}


# ---------------------------------------------------------------- public


def load_spec(preset: str | Path, overrides: Mapping[str, Any] | None = None) -> Spec:
    """A preset name or path, and a mapping of dotted keys to values -> a validated Spec."""
    path = find_preset(str(preset))
    raw = read_preset(path)
    raw.setdefault("name", path.stem)
    overrides = dict(overrides or {})
    for dotted, value in overrides.items():
        if dotted.startswith("sweep."):  # --set sweep.optim.lr=[1e-3,5e-4]: one key of the sweep, replaced
            sweep = raw.setdefault("sweep", {})
            if not isinstance(sweep, dict):
                raise ConfigError("sweep", sweep, "must be a table", "--set")
            set_dotted(sweep, dotted[len("sweep."):], value)  # nested, as TOML reads the preset's own
            continue
        if dotted.split(".")[0] not in TABLES and dotted not in TOP_LEVEL:
            raise unknown_key(dotted, value, "--set")
        set_dotted(raw, dotted, value)
    try:
        return validate(raw, str(path))
    except ConfigError as exc:
        if exc.key in overrides or f"sweep.{exc.key}" in overrides or exc.key.removeprefix("sweep.") in overrides:
            raise ConfigError(exc.key, exc.value, exc.allowed, "--set") from None  # blame the override, not the preset file
        raise


@dataclass(frozen=True)
class Plan:
    """A preset expanded into its runs: each `[[runs]]` entry × each of `model.widths` × each
    seed, every run a Spec of its own (one width, one seed, no `[[runs]]`). The preset as
    written stays apart, in `preset`: the plan's name, its plan-wide thresholds, and what the
    picker edits."""

    preset: Spec
    runs: tuple[Spec, ...]

    @property
    def name(self) -> str:
        return self.preset.name

    @classmethod
    def of(cls, preset: Spec) -> "Plan":
        base = strip_plan(preset.to_dict())
        several_seeds = len(preset.train.seeds) > 1
        runs = []
        for entry in list(preset.runs) or [{}]:
            for point in sweep_points(preset.sweep):
                for width in preset.model.widths or [None]:
                    for seed in preset.train.seeds:
                        raw = merge(merge(base, entry), point)
                        raw["model"].pop("widths", None)
                        if width is not None:  # the kind's own width: the MLP's width, the CNN's base width
                            raw["model"][KINDS[preset.model.kind].width_key.split(".", 1)[1]] = width
                        raw["train"]["seeds"] = [seed]
                        run = validate(raw)
                        if entry.get("label"):  # the entry's own label, and the width it runs at
                            label = entry["label"] + ("" if width is None else f" {KINDS[run.model.kind].label(run.model)}")
                        else:
                            label = default_label(run)
                        label += sweep_label(run, point, label)
                        runs.append(dataclasses.replace(run, label=label + (f" seed={seed}" if several_seeds else "")))
        counts = Counter(r.label for r in runs)
        for label, count in counts.items():
            if count > 1:  # two runs the records, tables and figures could not tell apart
                raise ConfigError("label", label, f"is the label of {count} runs of the plan: they differ in nothing "
                                  "their labels show (with optim.lr_scale, optim.lr is not used); give each [[runs]] entry a "
                                  "label, or remove the duplicate", preset.name)
            if not LABEL.check(label):  # a sweep over many keys, or over text: the records would refuse it
                raise ConfigError("label", label, LABEL.allowed + "; sweep fewer keys, or give [[runs]] entries labels",
                                  preset.name)
        return cls(preset, tuple(runs))

    def resumed(self, name: str, label: str) -> "Plan":
        """The plan of one run resumed: its first run, under the plan's name and its label."""
        return Plan(dataclasses.replace(self.preset, name=name), (dataclasses.replace(self.runs[0], label=label),))


def default_label(spec: Spec) -> str:
    step = f"η·β₀={short_float(spec.optim.lr_scale)}" if spec.optim.lr_scale > 0 else f"η={short_float(spec.optim.lr)}"
    return f"{KINDS[spec.model.kind].label(spec.model)} {step}"


def sweep_label(run: Spec, point: dict, label: str) -> str:
    """What a run's label must add to tell it apart in a sweep: each swept key that the label
    does not show already (the width and the step are in the default label)."""
    shown = {KINDS[run.model.kind].width_key, "optim.lr", "optim.lr_scale"} if label == default_label(run) else set()
    parts = []
    for dotted, value in flat_items(point):
        if dotted not in shown:
            text = short_float(value) if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)
            parts.append(f"{dotted.split('.')[-1]}={text}")
    return "".join(" " + p for p in parts)


def short_float(x: float) -> str:
    """1e-3, 2.5e-4, 0.05 -> '1e-3', '2.5e-4', '0.05'."""
    if x != 0 and (abs(x) < 1e-2 or abs(x) >= 1e4):
        mantissa, exp = f"{x:.3e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exp)}"
    return f"{x:g}"
