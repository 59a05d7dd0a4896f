"""The picker's data fields and its editor of other keys: whatever the CLI can start (`run
--preset P --set key=value ...`), the picker can too, with the CLI's messages shown inline."""

from __future__ import annotations

import pytest
from engine.config import load_spec, parse_override
from engine.errors import ConfigError
from functional.test_app import until
from lplr_tui.app import LplrApp
from lplr_tui.screens.modals import ConfirmQuit, HelpScreen
from lplr_tui.screens.picker import PickerScreen, field_id


@pytest.fixture
def app(tmp_path, data_root, monkeypatch):
    """test_app's app, with start_plan capturing the spec it is given instead of running it."""
    monkeypatch.chdir(tmp_path)  # no ./presets of the developer's
    app = LplrApp(tmp_path / "results", {"data.root": data_root, "train.device": "cpu", "probes.ntk_subset": 10}, detach=False)
    app.started = []
    monkeypatch.setattr(app, "start_plan", app.started.append)
    return app


def field(picker, key: str):
    return picker.query_one("#" + field_id(key), expect_type=None)


def shown(picker, widget_id: str) -> str:
    """The text of an error line, or "" when it is hidden."""
    widget = picker.query_one("#" + widget_id)
    return str(widget.render()) if widget.display else ""


def errors(picker) -> list[str]:
    return [str(w.render()) for w in picker.query(".field-error") if w.display]


async def pick(pilot, picker, preset: str) -> None:
    picker.query_one("#presets").index = list(picker.presets).index(preset)
    await pilot.pause()


async def edit(pilot, picker, text: str) -> None:
    picker.query_one("#overrides").text = text
    await pilot.pause()
    await pilot.pause()


async def press_start(pilot, picker) -> None:
    picker.query_one("#presets").focus()
    await pilot.press("s")
    await pilot.pause()


def choices(picker) -> list[str]:
    overlay = field(picker, "data.source").query_one("SelectOverlay")
    return [str(overlay.get_option_at_index(i).prompt) for i in range(overlay.option_count)]


def cli_error(preset: str, app, **values) -> ConfigError:
    """What `lplr-tui run --preset P --set key=value` says of these values."""
    with pytest.raises(ConfigError) as caught:
        load_spec(preset, {**app.overrides, **{k.replace("__", "."): v for k, v in values.items()}})
    return caught.value


async def test_source_choices_follow_the_model_kind(app):
    async with app.run_test(size=(100, 40)) as pilot:
        picker = app.screen
        await pick(pilot, picker, "cifar")
        assert choices(picker) == ["cifar10-5", "imagefolder", "synthetic"]
        assert field(picker, "data.source").value == "cifar10-5"
        assert str(picker.query_one("#" + field_id("model.width") + "-label").render()) == "base width (channels)"
        await pick(pilot, picker, "mnist")
        assert choices(picker) == ["mnist-3v8", "synthetic"]
        assert str(picker.query_one("#" + field_id("model.width") + "-label").render()) == "width m"
        await pick(pilot, picker, "ablation")
        assert choices(picker) == ["mnist-3v8", "synthetic"]
        assert str(picker.query_one("#" + field_id("model.width") + "-label").render()) == "widths m (one per run)"
        await pick(pilot, picker, "mnist")
        with pytest.raises(Exception):  # the MLP takes no imagefolder: not among the choices
            field(picker, "data.source").value = "imagefolder"
        field(picker, "data.source").value = "synthetic"
        field(picker, "data.download").value = True
        await pilot.pause()
        assert errors(picker) == [] and str(picker.query_one("#" + field_id("data.download") + "-state").render()) == "true"
        await press_start(pilot, picker)
        (spec,) = app.started
        assert (spec.data.source, spec.data.download, spec.model.kind) == ("synthetic", True, "mlp")
        await pick(pilot, picker, "cifar")  # the base width field sets model.base_width
        field(picker, "model.width").value = "32"
        await pilot.pause()
        await press_start(pilot, picker)
        assert app.started[-1].model.base_width == 32 and app.started[-1].data.source == "cifar10-5"
        await edit(pilot, picker, 'data.source = "mnist-3v8"')  # the editor can ask what the choice cannot
        expected = cli_error("cifar", app, data__source="mnist-3v8")
        assert shown(picker, "overrides-error") == f"line 1: {expected.bare}"
        assert 'model.kind = "resnet-gn" takes "cifar10-5" or "imagefolder" or "synthetic"' in expected.bare
        await press_start(pilot, picker)
        assert len(app.started) == 2


async def test_imagefolder_root_is_checked_at_load_and_n_train_at_once(app, tmp_path):
    async with app.run_test(size=(100, 40)) as pilot:
        picker = app.screen
        await pick(pilot, picker, "cifar")
        field(picker, "data.source").value = "imagefolder"
        field(picker, "data.root").value = str(tmp_path / "no-such-tree")
        await pilot.pause()
        assert errors(picker) == []  # the tree is looked at when the data load, not here
        await press_start(pilot, picker)
        (spec,) = app.started
        assert (spec.data.source, spec.data.root) == ("imagefolder", str(tmp_path / "no-such-tree"))
        field(picker, "data.n_train").value = "1003"
        await pilot.pause()
        expected = cli_error("cifar", app, data__source="imagefolder", data__n_train=1003)
        assert "must be a multiple of 5" in expected.bare
        assert shown(picker, field_id("data.n_train") + "-error") == expected.bare
        assert errors(picker) == [expected.bare]
        await press_start(pilot, picker)
        assert len(app.started) == 1  # nothing starts
        field(picker, "data.n_train").value = "1005"
        await pilot.pause()
        assert errors(picker) == []
        await press_start(pilot, picker)
        assert app.started[-1].data.n_train == 1005


async def test_editor_lines_apply_as_the_clis_set(app):
    async with app.run_test(size=(100, 40)) as pilot:
        picker = app.screen
        await pick(pilot, picker, "mnist")
        await edit(pilot, picker, "optim.momentum = 0.5")
        assert errors(picker) == []
        await press_start(pilot, picker)
        (spec,) = app.started
        assert spec.optim.momentum == 0.5
        assert spec == load_spec("mnist", {**app.overrides, **dict([parse_override("optim.momentum=0.5")])})
        await pick(pilot, picker, "ablation")  # a plan: its widths field goes into [[runs]]
        await edit(pilot, picker, "# mine\n\noptim.momentum = 0.5\noptim.momentum = 0.25\ntrain.epochs=7")
        await press_start(pilot, picker)
        assert app.started[-1] == load_spec("ablation", {**app.overrides, "optim.momentum": 0.25, "train.epochs": 7})
        assert field(picker, "train.epochs").value == "3000"  # the field is not rewritten; the line wins
        field(picker, "optim.lr").value = "-1"  # a bad field the editor overrides: no error
        await edit(pilot, picker, "optim.lr = 3e-3")
        assert errors(picker) == []
        await press_start(pilot, picker)
        assert app.started[-1].optim.lr == 3e-3 and len(app.started) == 3
        await edit(pilot, picker, "")
        assert errors(picker) == [f"optim.lr = -1: {cli_error('mnist', app, optim__lr=-1).allowed}"]
        await press_start(pilot, picker)
        assert len(app.started) == 3


async def test_editor_errors_show_the_clis_message_and_its_line(app):
    async with app.run_test(size=(100, 40)) as pilot:
        picker = app.screen
        await pick(pilot, picker, "cifar")
        await edit(pilot, picker, '# my keys\n\ndata.classes = ["cat"]')
        expected = cli_error("cifar", app, data__classes=["cat"])
        assert shown(picker, "overrides-error") == f"line 3: {expected.bare}"
        assert shown(picker, "overrides-error").startswith('line 3: data.classes = ["cat"]: must be [] or a list of at least two')
        await press_start(pilot, picker)
        assert app.started == []
        await edit(pilot, picker, "optim.momentum = 0.5\nbogus")
        with pytest.raises(ConfigError) as caught:
            parse_override("bogus")
        assert shown(picker, "overrides-error") == f"line 2: {caught.value.bare}"
        assert "must look like table.key=value" in shown(picker, "overrides-error")
        await press_start(pilot, picker)
        assert app.started == []
        await edit(pilot, picker, 'data.classes = ["[red]cat[/red]", "dog"]\ndata.n_train = 1000')  # text, not markup
        assert errors(picker) == []
        await edit(pilot, picker, 'data.classes = ["[red]cat[/red]"]')
        assert '["[red]cat[/red]"]' in shown(picker, "overrides-error")
        await edit(pilot, picker, "optim.momentun = 0.5")  # unknown: the CLI's hint
        assert shown(picker, "overrides-error") == f"line 1: {cli_error('cifar', app, optim__momentun=0.5).bare}"
        assert 'did you mean "optim.momentum"' in shown(picker, "overrides-error")
        await edit(pilot, picker, 'data.classes = ["cat", "dog"]')
        assert errors(picker) == []
        await press_start(pilot, picker)
        assert app.started[-1].data.classes == ["cat", "dog"]


async def test_the_editor_keeps_its_lines_across_presets(app):
    async with app.run_test(size=(100, 40)) as pilot:
        picker = app.screen
        await pick(pilot, picker, "cifar")
        await edit(pilot, picker, 'data.classes = ["cat", "dog"]')
        assert errors(picker) == []
        await pick(pilot, picker, "mnist")  # checked against the new preset at once
        assert picker.query_one("#overrides").text == 'data.classes = ["cat", "dog"]'
        assert shown(picker, "overrides-error") == f"line 1: {cli_error('mnist', app, data__classes=['cat', 'dog']).bare}"
        await press_start(pilot, picker)
        assert app.started == []
        await pick(pilot, picker, "cifar")
        assert errors(picker) == []
        await press_start(pilot, picker)
        assert app.started[-1].data.classes == ["cat", "dog"]


async def test_typing_into_the_editor_triggers_no_binding(app):
    async with app.run_test(size=(100, 40)) as pilot:
        picker = app.screen
        editor = picker.query_one("#overrides")
        editor.focus()
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause()
        assert editor.text == "s" and app.started == [] and app.screen is picker
        await pilot.press("a", "w", "r", "q", "question_mark")
        await pilot.pause(0.2)
        assert editor.text == "sawrq?" and app.started == [] and app.screen is picker
        assert not isinstance(app.screen, (HelpScreen, ConfirmQuit)) and app.is_running
        assert shown(picker, "overrides-error").startswith('line 1: --set = "sawrq?": must look like')
        await pilot.press(*["backspace"] * 6)
        await until(pilot, lambda: editor.text == "")
        await pilot.press(*"train.epochs = 5")
        await until(pilot, lambda: editor.text == "train.epochs = 5")
        await pilot.press("enter")  # a new line, not a start
        await pilot.pause()
        assert app.started == [] and errors(picker) == []
        await press_start(pilot, picker)  # the same key, with the presets list focused: starts
        (spec,) = app.started
        assert spec.train.epochs == 5 and isinstance(app.screen, PickerScreen)
