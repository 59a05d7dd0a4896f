"""The model kinds, each described in one place.

An entry says what the rest of the project needs to know of a kind: the shape of one input,
how many outputs it has, which function builds it, which data sources can feed it, which key
sets its width, how a run's label names it, which paper table reports it, and what one input
costs in memory. Adding a model kind means adding one entry here and its builder in
`engine/models.py`.

This module imports neither torch nor numpy: the config, the viewers and the tables read it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ONE_PER_CLASS = 0  # `outputs` of a classifier: one output per class of its data (one-hot targets)


@dataclass(frozen=True)
class ModelKind:
    name: str
    input_shape: tuple[int, ...]  # one input; the CNN pools globally, so it takes any H × W: this is the size synthetic images and the memory estimate use
    outputs: int  # k, or ONE_PER_CLASS
    builder: str  # "module:function(model_spec, input_shape, outputs, seed) -> nn.Module", imported when a model is built
    sources: tuple[str, ...]  # the data sources that can feed it
    width_key: str  # the key that sets its width, as a preset names it
    label: Callable[[Any], str]  # model spec -> how a run's label names the model
    table: int  # the paper's table that reports its runs: 1 (one row per run) or 2 (per seed, with a mean row)
    activations: Callable[[Any, tuple[int, ...]], int]  # (model spec, input shape) -> floats one input keeps for the backward pass
    closed_form_ntk: bool  # the NTK has a closed form without J (engine/ntk.py): cheap enough for the full-set spectrum (probes.ntk_full_every)
    problem: Callable[[Any], tuple[str, Any, str] | None] = lambda model: None  # model spec -> (key, value, what is allowed) for values the kind cannot take together

    def build(self, model_spec: Any, input_shape: tuple[int, ...], outputs: int, seed: int) -> Any:
        module, function = self.builder.split(":")
        return getattr(importlib.import_module(module), function)(model_spec, input_shape, outputs, seed)

    def width(self, model: Any) -> int:
        """The width a table reports, from a ModelSpec or a record's [model] table (0 when an
        untrusted record holds no integer there)."""
        name = self.width_key.split(".", 1)[1]
        value = model.get(name, 0) if isinstance(model, dict) else getattr(model, name)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0


def mlp_activations(model: Any, shape: tuple[int, ...]) -> int:
    """The input, and the pre-activations and outputs of each hidden layer."""
    size = 1
    for s in shape:
        size *= s
    return size + 2 * model.width * model.depth


def cnn_activations(model: Any, shape: tuple[int, ...]) -> int:
    """The stem (3 maps), then ~6 maps per block at each stage's resolution (halved per stage)."""
    c, pixels = model.base_width, shape[1] * shape[2]
    return 3 * c * pixels + 2 * 6 * (c * pixels + 2 * c * pixels // 4 + 4 * c * pixels // 16)


KINDS: dict[str, ModelKind] = {
    kind.name: kind
    for kind in (
        ModelKind(
            name="mlp",
            input_shape=(784,),
            outputs=1,
            builder="engine.models:build_mlp",
            sources=("mnist-3v8", "synthetic"),
            width_key="model.width",
            label=lambda m: f"m={m.width}",
            table=1,
            activations=mlp_activations,
            closed_form_ntk=True,
        ),
        ModelKind(
            name="resnet-gn",
            input_shape=(3, 32, 32),
            outputs=ONE_PER_CLASS,
            builder="engine.models:build_resnet_gn",
            sources=("cifar10-5", "imagefolder", "synthetic"),
            width_key="model.base_width",
            label=lambda m: f"resnet-gn w={m.base_width}",
            table=2,
            activations=cnn_activations,
            closed_form_ntk=False,
            problem=lambda m: None if m.base_width % m.groups == 0 else ("model.groups", m.groups, f"must divide model.base_width ({m.base_width})"),
        ),
    )
}


def kind_of(name: str) -> ModelKind:
    return KINDS[name]


def kind_in(model: object) -> ModelKind | None:
    """The kind a record's [model] table names, or None: a record is untrusted, its table or
    its kind may be anything."""
    name = model.get("kind", "mlp") if isinstance(model, dict) else None
    return KINDS.get(name) if isinstance(name, str) else None


# ---------------------------------------------------------------- data sources

SOURCES = ("mnist-3v8", "cifar10-5", "imagefolder", "synthetic")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_5 = CIFAR10_CLASSES[:5]  # the cifar10-5 source's classes when data.classes is empty
SYNTHETIC_CLASSES = 5  # a classifier fed synthetic data gets this many random classes
CHOOSES_CLASSES = ("cifar10-5", "imagefolder", "synthetic")  # the sources whose classes data.classes picks (synthetic: names as many random classes)
IMAGE_SOURCES = ("cifar10-5", "imagefolder")  # normalised per channel (data.mean, data.std)


def class_count(source: str, classes: list) -> int | None:
    """How many classes a data spec asks for; None when only the tree can say (an ImageFolder
    tree, all its class folders)."""
    if classes:
        return len(classes)
    return {"mnist-3v8": 2, "cifar10-5": len(CIFAR10_5), "synthetic": SYNTHETIC_CLASSES}.get(source)


def outputs_of(kind: ModelKind, source: str, classes: list) -> int:
    """k for a spec, before its data is loaded (the memory estimate): a classifier over an
    ImageFolder tree with every class folder is counted at two classes, a lower bound."""
    if kind.outputs != ONE_PER_CLASS:
        return kind.outputs
    return class_count(source, classes) or 2
