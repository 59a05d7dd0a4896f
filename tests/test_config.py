"""Every class of config error: one message naming the key, the value and what is allowed."""

import pytest

import engine
from engine.config import Plan, parse_override, short_float
from engine.errors import ConfigError


def bad(preset="mnist", **overrides):
    with pytest.raises(ConfigError) as info:
        engine.load_spec(preset, {k.replace("__", "."): v for k, v in overrides.items()})
    return str(info.value)


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"optim__lrr": 0.1}, ['optim.lrr = 0.1', 'did you mean "optim.lr"']),
        ({"optim__lr": -0.001}, ["optim.lr = -0.001", "must be > 0"]),
        ({"optim__lr": 0}, ["optim.lr = 0", "must be > 0"]),
        ({"optim__lr": "fast"}, ['optim.lr = "fast"', "must be a number"]),
        ({"train__epochs": 0}, ["train.epochs = 0", "must be an integer in [1, 100_000_000]"]),
        ({"train__epochs": 2.5}, ["train.epochs = 2.5", "must be an integer"]),
        ({"train__epochs": True}, ["train.epochs = true", "must be an integer"]),
        ({"train__seeds": []}, ["train.seeds = []", "non-empty list"]),
        ({"train__seeds": [0, "1"]}, ['train.seeds = [0, "1"]', "a list of integers"]),
        ({"train__seeds": 3}, ["train.seeds = 3", "a list of integers"]),
        ({"train__device": "gpu"}, ['train.device = "gpu"', '"auto", "cpu", "cuda" or "cuda:N"']),
        ({"data__source": "imagenet"}, ['data.source = "imagenet"', '"mnist-3v8", "cifar10-5", "imagefolder", "synthetic"']),
        ({"data__download": "yes"}, ['data.download = "yes"', "true or false"]),
        ({"data__n_train": 999}, ["data.n_train = 999", "multiple of 2: the 2 classes are balanced"]),
        ({"data__source": "imagefolder"}, ['data.source = "imagefolder"', 'model.kind = "mlp" takes "mnist-3v8" or "synthetic"']),
        ({"data__classes": ["3", "8"]}, ['data.classes = ["3", "8"]', 'must be [] for data.source = "mnist-3v8"']),
        ({"data__mean": [0.5, 0.5, 0.5]}, ["data.mean = [0.5, 0.5, 0.5]", "must be [] for data.source", "normalised per channel"]),
        ({"data__classes": ["cat"]}, ['data.classes = ["cat"]', "at least two distinct class names or indices"]),
        ({"data__classes": [1, True]}, ["data.classes = [1, true]", "a list of names (strings) or indices (integers)"]),
        ({"data__std": [1.0, 0.0, 1.0]}, ["data.std = [1.0, 0.0, 1.0]", "3 numbers > 0"]),
        ({"probes__ntk_subset": 2000}, ["probes.ntk_subset = 2000", "<= data.n_train (1000)"]),
        ({"probes__every": -1}, ["probes.every = -1", "in [0, 100_000_000]"]),
        ({"model__width": 0}, ["model.width = 0", "in [1, 1_048_576]"]),
        ({"analysis__stable_from": 0.95}, ["analysis.stable_from = 0.95", "< analysis.stable_to"]),
        ({"bogus__key": 1}, ["bogus.key = 1", "unknown key", "tables are data, model"]),
        ({"model": 3}, ["model = 3", "must be a table"]),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(overrides, words):
    message = bad(**overrides)
    for word in words:
        assert word in message, message


def test_unknown_key_in_a_preset_file_names_the_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[optim]\nkind = "gd"\nmomentun = 0.9\n')
    message = bad(str(path))
    assert str(path) in message and "optim.momentun = 0.9" in message and "allowed: kind, lr" in message


def test_toml_syntax_error_gives_line_and_column(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('[train]\nepochs = \n')
    message = bad(str(path))
    assert "not valid TOML" in message and "line 2" in message and "column" in message


def test_unknown_preset_lists_the_known_ones():
    message = bad("mnsit")
    assert 'did you mean "mnist"' in message and "ablation" in message and "mnist" in message


def test_missing_preset_file():
    assert "no such file" in bad("/nowhere/at/all.toml")


def test_a_bad_run_entry_names_the_run(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text("[[runs]]\nmodel.width = 64\n[[runs]]\nmodel.width = -4\n")
    message = bad(str(path))
    assert "[[runs]] #2" in message and "model.width = -4" in message


@pytest.mark.parametrize("text", ["optim.lr", "=3", ""])
def test_set_without_equals_is_an_error(text):
    with pytest.raises(ConfigError, match="table.key=value"):
        parse_override(text)


def test_set_values_are_toml_or_else_strings():
    assert parse_override("optim.lr=2.5e-4") == ("optim.lr", 2.5e-4)
    assert parse_override("train.seeds=[0, 1]") == ("train.seeds", [0, 1])
    assert parse_override("train.device=cpu") == ("train.device", "cpu")
    assert parse_override('data.source="synthetic"') == ("data.source", "synthetic")
    assert parse_override("data.download=true") == ("data.download", True)


def test_preset_values_and_defaults(make_spec):
    spec = make_spec()
    assert (spec.model.width, spec.model.depth, spec.optim.lr, spec.train.epochs) == (128, 4, 1e-3, 3000)
    assert (spec.probes.every, spec.probes.ntk_subset, spec.data.n_train) == (10, 100, 1000)


def test_ablation_plan_is_five_runs_with_plain_labels(make_spec):
    runs = Plan.of(make_spec("ablation")).runs
    assert [r.label for r in runs] == ["m=128 η=1e-3", "m=256 η=1e-3", "m=512 η=1e-3", "m=1024 η=1e-3", "m=1024 η=2.5e-4"]
    assert [r.model.width for r in runs] == [128, 256, 512, 1024, 1024]
    assert all(r.runs == () and r.train.seeds == [0] for r in runs)


def test_seeds_multiply_runs_and_each_run_spec_is_a_preset(make_spec, tmp_path):
    runs = Plan.of(make_spec(train__seeds=[0, 1, 2])).runs
    assert [r.label for r in runs] == ["m=128 η=1e-3 seed=0", "m=128 η=1e-3 seed=1", "m=128 η=1e-3 seed=2"]
    import tomli_w

    path = tmp_path / "again.toml"
    path.write_text(tomli_w.dumps(runs[1].to_dict()))
    assert engine.load_spec(str(path)) == runs[1]


def test_short_float():
    assert [short_float(x) for x in (1e-3, 2.5e-4, 0.05, 1.0)] == ["1e-3", "2.5e-4", "0.05", "1"]
