"""The table of model kinds drives the config, the builders, the memory estimate and the
tables: each entry's facts hold for the model it builds."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import engine
from engine.config import load_spec
from engine.errors import ConfigError
from engine.footprint import parameter_count
from engine.judge import width_of
from engine.kinds import KINDS, ONE_PER_CLASS, SOURCES, outputs_of
from engine.models import count_params

PRESET_OF = {"mlp": "mnist", "resnet-gn": "cifar"}


def spec_of(kind: str, **values):
    return load_spec(PRESET_OF[kind], {"data.source": "synthetic", "data.n_train": 100, "probes.ntk_subset": 4, **values})


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_kind_builds_what_its_entry_says(name):
    kind = KINDS[name]
    spec = spec_of(name)
    k = outputs_of(kind, spec.data.source, spec.data.classes)
    model = engine.build_model(spec)
    out = model(torch.randn(3, *kind.input_shape))
    assert out.shape == (3, k)
    assert parameter_count(spec) == count_params(model)  # the meta-device count is the real one
    assert kind.width(spec.model) == kind.width(dataclasses.asdict(spec.model)) == width_of(spec.to_dict()) > 0
    from engine.config import Plan

    assert Plan.of(spec).runs[0].label.startswith(kind.label(spec.model) + " η=")


def test_a_classifier_has_one_output_per_class_of_its_data():
    spec = spec_of("resnet-gn", **{"data.classes": ["a", "b", "c"], "data.n_train": 99})
    assert engine.build_model(spec)(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    assert engine.build_model(spec, outputs=7)(torch.randn(2, 3, 32, 32)).shape == (2, 7)  # as the loaded data has it
    assert KINDS["resnet-gn"].outputs == ONE_PER_CLASS and KINDS["mlp"].outputs == 1


@pytest.mark.parametrize("name", sorted(KINDS))
def test_the_config_takes_exactly_the_sources_the_entry_lists(name):
    for source in SOURCES:
        values = {"data.source": source, "data.n_train": 100, "probes.ntk_subset": 4}
        if source in KINDS[name].sources:
            assert load_spec(PRESET_OF[name], values).data.source == source
        else:
            with pytest.raises(ConfigError) as info:
                load_spec(PRESET_OF[name], values)
            assert info.value.key == "data.source" and f'model.kind = "{name}" takes' in str(info.value)


def test_a_kinds_own_check_names_its_key():
    with pytest.raises(ConfigError) as info:
        spec_of("resnet-gn", **{"model.groups": 5})
    assert (info.value.key, info.value.value) == ("model.groups", 5) and "must divide model.base_width (16)" in str(info.value)
    assert spec_of("resnet-gn", **{"model.groups": 4}).model.groups == 4


def test_a_plan_over_widths_sets_each_kinds_own_width_key():
    from engine.config import Plan

    runs = Plan.of(spec_of("resnet-gn", **{"model.widths": [8, 32], "model.groups": 4, "train.seeds": [0]})).runs
    assert [r.model.base_width for r in runs] == [8, 32] and len({r.label for r in runs}) == 2
    assert [r.model.width for r in Plan.of(spec_of("mlp", **{"model.widths": [8, 32]})).runs] == [8, 32]
