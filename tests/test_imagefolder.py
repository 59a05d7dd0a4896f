"""The imagefolder data source: any tree of class folders (root/<class>/<image>), read through
torchvision's ImageFolder, balanced, normalised per channel, one-hot; each class decoded once
and cached under root/.lplr-cache (an untrusted file: read without pickle, checked, rebuilt).
Every tree is built here, under tmp_path, with PIL: no network, no shared data."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import engine
import engine.data
from engine.config import DataSpec
from engine.data import CACHE_DIR, cache_path, load_data, manifest
from engine.errors import ConfigError, DataError
from engine.record import find_records, read_record
from lplr_tui.cli import app

CLASSES = ("bird", "cat", "dog")  # sorted: ImageFolder's indices 0, 1, 2
NAMES = ("a", "b", "c", "d")  # file-name order; written in reverse so that it differs from creation order
CIFAR_FIVE = ("airplane", "automobile", "bird", "cat", "deer")


def fingerprint(class_index: int, image_index: int) -> int:
    """The red value of an image's top-left pixel: which image of which class it is."""
    return 40 * (class_index + 1) + image_index


def write_image(path, mark: int, size: int = 8, fmt: str | None = None, seed: int = 0) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    pixels[0, 0, 0] = mark
    Image.fromarray(pixels).save(path, format=fmt)


def make_tree(root, classes=CLASSES, per_class: int = 4, size: int = 8, ext: str = "png"):
    """root/<class>/<a..d>.<ext>, image i of class c fingerprinted fingerprint(c, i)."""
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for i in reversed(range(per_class)):
            write_image(folder / f"{NAMES[i] if i < len(NAMES) else f'z{i:02d}'}.{ext}", fingerprint(c, i), size,
                        seed=100 * c + i)
    return root


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "tree")


def load(root, n_train: int = 6, **keys):
    return load_data(DataSpec(source="imagefolder", root=str(root), n_train=n_train, **keys), "resnet-gn")


def red_marks(data) -> list[int]:
    """The fingerprints of the images that came through (undoing the normalisation)."""
    red = data.x[:, 0, 0, 0].double() * data.std[0] + data.mean[0]
    return [int(v) for v in (red * 255).round().tolist()]


def column_of_each_row(data) -> list[int]:
    assert torch.all(data.y.sum(1) == 1) and set(data.y.unique().tolist()) <= {0.0, 1.0}
    return data.y.argmax(1).tolist()


def cli(root, results, n_train: int, *extra: str):
    args = ["run", "--preset", "cifar", "--set", 'data.source="imagefolder"', "--set", f"data.root={root}",
            "--set", f"data.n_train={n_train}", "--set", "train.epochs=1", "--set", "train.seeds=[0]",
            "--set", "probes.ntk_subset=2", "--device", "cpu", "--results", str(results)]
    for setting in extra:
        args += ["--set", setting]
    return CliRunner().invoke(app, args)


def assert_user_error(result, *words: str) -> None:
    """Exit 2, one message on stderr with every word in it, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    message = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(message) == 1, result.stderr
    for word in words:
        assert word in message[0], (word, message[0])


# ---------------------------------------------------------------- 1. loading


def test_a_tree_loads_balanced_one_hot_in_file_name_order_normalised(tree):
    data = load(tree, n_train=6)
    assert data.source == "imagefolder" and data.x.dtype == torch.float32
    assert data.x.shape == (6, 3, 8, 8) and data.y.shape == (6, 3)
    # default []: every class folder, sorted; the first 2 of each class in file-name order (a, b)
    assert data.classes == CLASSES and data.per_class == (2, 2, 2)
    assert column_of_each_row(data) == [0, 0, 1, 1, 2, 2]
    assert red_marks(data) == [fingerprint(c, i) for c in range(3) for i in (0, 1)]
    # normalised with the chosen images' own statistics: mean 0 and std 1 per channel
    assert data.x.mean(dim=(0, 2, 3)).abs().max() < 1e-5
    assert (data.x.std(dim=(0, 2, 3), unbiased=False) - 1).abs().max() < 1e-5
    assert len(data.mean) == 3 and len(data.std) == 3 and min(data.std) > 0
    assert data.path == str(tree)
    facts = data.facts()
    assert facts["data_source"] == "imagefolder" and facts["data_path"] == str(tree)
    assert facts["data_classes"] == list(CLASSES) and facts["data_per_class"] == [2, 2, 2]
    assert facts["data_mean"] == list(data.mean) and facts["data_std"] == list(data.std)
    assert len(data.sha256) == 64


def test_every_image_can_be_taken(tree):
    data = load(tree, n_train=12)
    assert data.per_class == (4, 4, 4)
    assert red_marks(data) == [fingerprint(c, i) for c in range(3) for i in range(4)]


def test_classes_by_name_and_by_index_order_the_target_columns(tree):
    data = load(tree, n_train=4, classes=["dog", 0])
    assert data.classes == ("dog", "bird") and data.per_class == (2, 2) and data.y.shape == (4, 2)
    assert column_of_each_row(data) == [0, 0, 1, 1]  # dog is column 0, as listed
    assert red_marks(data) == [fingerprint(2, 0), fingerprint(2, 1), fingerprint(0, 0), fingerprint(0, 1)]
    by_index = load(tree, n_train=4, classes=[2, "bird"])
    assert by_index.classes == data.classes and torch.equal(by_index.x, data.x) and torch.equal(by_index.y, data.y)


def test_given_mean_and_std_are_applied_not_the_images_own(tree):
    data = load(tree, n_train=6, mean=[0.5, 0.25, 0.75], std=[0.2, 0.4, 0.1])
    assert data.mean == (0.5, 0.25, 0.75) and data.std == (0.2, 0.4, 0.1)
    assert red_marks(data) == [fingerprint(c, i) for c in range(3) for i in (0, 1)]
    raw = torch.from_numpy(np.asarray(Image.open(tree / "cat" / "b.png"), dtype=np.float32) / 255).permute(2, 0, 1)
    expected = (raw - torch.tensor([0.5, 0.25, 0.75]).view(3, 1, 1)) / torch.tensor([0.2, 0.4, 0.1]).view(3, 1, 1)
    assert torch.allclose(data.x[3], expected, atol=1e-5)  # cat's second image is row 3
    assert data.x.mean(dim=(0, 2, 3)).abs().max() > 0.05  # not re-centred on the images' mean


def test_jpeg_and_grayscale_images_come_through_as_rgb(tmp_path):
    root = make_tree(tmp_path / "jpeg", classes=("x", "y"), per_class=2, size=32, ext="jpg")
    gray = root / "z"
    gray.mkdir()
    for i in range(2):
        Image.fromarray(np.full((32, 32), 60 * (i + 1), dtype=np.uint8), mode="L").save(gray / f"{i}.png")
    data = load(root, n_train=6)
    assert data.x.shape == (6, 3, 32, 32) and data.classes == ("x", "y", "z")
    raw = data.x * torch.tensor(data.std).view(1, 3, 1, 1).float() + torch.tensor(data.mean).view(1, 3, 1, 1).float()
    assert torch.allclose(raw[4], torch.full((3, 32, 32), 60 / 255), atol=1e-5)  # L -> three equal channels


# ---------------------------------------------------------------- 2. hidden entries


def test_hidden_folders_and_files_are_not_classes_or_images(tree):
    (tree / ".ipynb_checkpoints").mkdir()
    write_image(tree / ".ipynb_checkpoints" / "a.png", 1)
    (tree / CACHE_DIR).mkdir()
    (tree / CACHE_DIR / "junk.bin").write_bytes(b"\x00junk")
    (tree / "cat" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1 not an image")
    (tree / "cat" / ".ipynb_checkpoints").mkdir()
    write_image(tree / "cat" / ".ipynb_checkpoints" / "a-checkpoint.png", 7)
    (tree / "README.txt").write_text("a file at the root is no class and is not read")
    data = load(tree, n_train=12)  # every image of every class: none hidden among them
    assert data.classes == CLASSES and data.per_class == (4, 4, 4)
    assert red_marks(data) == [fingerprint(c, i) for c in range(3) for i in range(4)]
    # the hidden folder cannot be asked for either
    with pytest.raises(DataError, match=r'no class "\.ipynb_checkpoints"'):
        load(tree, n_train=4, classes=[".ipynb_checkpoints", "cat"])


def test_a_visible_stray_folder_is_a_class(tree):
    """The other side of the rule: only a leading '.' hides a folder."""
    make_tree(tree / "ipynb_checkpoints", classes=("x",))  # root/ipynb_checkpoints/x/...: nested
    data = load(tree, n_train=4, classes=["cat", "ipynb_checkpoints"])
    assert data.classes == ("cat", "ipynb_checkpoints")
    assert data.per_class == (2, 2)  # the nested images count as the class's own


def test_only_hidden_entries_under_the_root_count_not_a_hidden_root(tmp_path, monkeypatch):
    """A tree that itself lives under a hidden folder (~/.cache/...), named absolutely, relatively
    or through ~, loses none of its images."""
    make_tree(tmp_path / ".cache" / "tree")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for root in (tmp_path / ".cache" / "tree", ".cache/tree", "./.cache/tree/", "~/.cache/tree"):
        data = load(root, n_train=12)
        assert data.per_class == (4, 4, 4), root


def test_a_tree_with_only_hidden_folders_has_no_classes(tmp_path):
    root = tmp_path / "hidden"
    make_tree(root, classes=(".a", ".b"))
    with pytest.raises(DataError, match="holds no class folders"):
        load(root, n_train=4)


# ---------------------------------------------------------------- 3. the cache


def no_decoding(*args, **kwargs):
    raise AssertionError("decoded although the cache matches the files")


def counting_decode(monkeypatch) -> list:
    """engine.data.decode, recording the files of each call."""
    calls, real = [], engine.data.decode

    def decode(files, loader, root):
        calls.append(list(files))
        return real(files, loader, root)

    monkeypatch.setattr(engine.data, "decode", decode)
    return calls


def test_the_first_load_caches_each_chosen_class_and_the_second_reads_it(tree, monkeypatch):
    first = load(tree, n_train=4, classes=["cat", "dog"])
    cached = sorted((tree / CACHE_DIR).glob("class-*.npz"))
    assert cached == sorted([cache_path(tree, "cat"), cache_path(tree, "dog")])  # not bird: not chosen
    assert "rebuilt" not in first.detail and "without caching" not in first.detail
    with np.load(cached[0], allow_pickle=False) as z:
        assert z["images"].dtype == np.uint8 and z["images"].shape[0] == 4 and z["images"].shape[1:] == (8, 8, 3)
    monkeypatch.setattr(engine.data, "decode", no_decoding)
    second = load(tree, n_train=4, classes=["cat", "dog"])
    assert torch.equal(first.x, second.x) and torch.equal(first.y, second.y) and first.sha256 == second.sha256
    assert second.detail == first.detail
    with pytest.raises(AssertionError, match="decoded although"):  # the patch bites where no cache is
        load(tree, n_train=6)


def test_a_changed_file_has_its_class_decoded_again(tree, monkeypatch):
    load(tree, n_train=6)
    target = tree / "cat" / "b.png"
    before = os.stat(target)
    write_image(target, 7, seed=999)  # other pixels, another fingerprint
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns + 5_000_000_000))
    calls = counting_decode(monkeypatch)
    data = load(tree, n_train=6)
    assert [os.path.basename(os.path.dirname(c[0])) for c in calls] == ["cat"]  # bird and dog from the cache
    assert red_marks(data) == [fingerprint(0, 0), fingerprint(0, 1), fingerprint(1, 0), 7, fingerprint(2, 0), fingerprint(2, 1)]
    assert 'the cache of "cat" was rebuilt' in data.detail and "files changed" in data.detail
    calls.clear()
    again = load(tree, n_train=6)  # the rebuilt cache serves the new pixels
    assert calls == [] and torch.equal(again.x, data.x)


def test_an_added_or_removed_file_invalidates_the_cache(tree, monkeypatch):
    load(tree, n_train=6)
    write_image(tree / "dog" / "e.png", 9)
    (tree / "bird" / "d.png").unlink()
    calls = counting_decode(monkeypatch)
    data = load(tree, n_train=9)
    assert sorted(os.path.basename(os.path.dirname(c[0])) for c in calls) == ["bird", "dog"]
    assert data.per_class == (3, 3, 3)


@pytest.mark.parametrize("content", [b"garbage bytes, not a zip" * 10, b"PK\x03\x04" + b"\x00" * 40, b""],
                         ids=["garbage", "broken-zip", "empty"])
def test_a_corrupt_cache_is_rebuilt_and_said(tree, monkeypatch, content):
    first = load(tree, n_train=6)
    cache_path(tree, "dog").write_bytes(content)
    data = load(tree, n_train=6)
    assert torch.equal(data.x, first.x)
    assert 'the cache of "dog" was rebuilt: unreadable' in data.detail
    assert data.detail.count("rebuilt") == 1  # only dog's was
    monkeypatch.setattr(engine.data, "decode", no_decoding)
    assert "rebuilt" not in load(tree, n_train=6).detail  # the rebuilt cache is sound


def files_of(root, name: str) -> list[str]:
    return [str(root / name / f"{n}.png") for n in NAMES]


@pytest.mark.parametrize("images", [
    np.zeros((4, 8, 8, 3), dtype=np.float32),  # the wrong dtype
    np.zeros((3, 8, 8, 3), dtype=np.uint8),  # one image short
    np.zeros((4, 8, 8, 1), dtype=np.uint8),  # not RGB
    np.zeros((4, 8, 8), dtype=np.uint8),  # not four dimensions
    np.zeros((), dtype=np.uint8),
], ids=["float32", "count", "channels", "ndim3", "scalar"])
def test_a_cache_of_the_wrong_shape_or_dtype_is_rebuilt(tree, images):
    first = load(tree, n_train=6)
    key = manifest(files_of(tree, "cat"))  # made from these very files: only the content is wrong
    with open(cache_path(tree, "cat"), "wb") as fh:
        np.savez(fh, images=images, manifest=np.array(key))
    data = load(tree, n_train=6)
    assert torch.equal(data.x, first.x)
    assert 'the cache of "cat" was rebuilt: it holds' in data.detail and "not 4 RGB images" in data.detail


def test_a_cache_with_another_key_or_missing_arrays_is_rebuilt(tree):
    first = load(tree, n_train=6)
    good = np.load(cache_path(tree, "cat"), allow_pickle=False)["images"]
    with open(cache_path(tree, "cat"), "wb") as fh:
        np.savez(fh, images=good[::-1].copy(), manifest=np.array("made from other files"))
    data = load(tree, n_train=6)
    assert torch.equal(data.x, first.x) and 'the cache of "cat" was rebuilt: the class\'s files changed' in data.detail
    with open(cache_path(tree, "cat"), "wb") as fh:
        np.savez(fh, pixels=good)  # no images, no manifest
    data = load(tree, n_train=6)
    assert torch.equal(data.x, first.x) and 'the cache of "cat" was rebuilt: unreadable (KeyError)' in data.detail
    with open(cache_path(tree, "cat"), "wb") as fh:
        np.save(fh, good, allow_pickle=False)  # a bare .npy under the .npz's name
    data = load(tree, n_train=6)
    assert torch.equal(data.x, first.x) and 'the cache of "cat" was rebuilt: unreadable' in data.detail


class Planted:
    """Unpickled, this would create `marker`: proof that a cache ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("array", ["images", "manifest"])
def test_a_cache_never_executes_anything(tree, tmp_path, array):
    first = load(tree, n_train=6)
    marker = tmp_path / "executed"
    planted = np.empty(1, dtype=object)
    planted[0] = Planted(marker)
    arrays = {"images": np.zeros((4, 8, 8, 3), dtype=np.uint8), "manifest": np.array(manifest(files_of(tree, "bird")))}
    arrays[array] = planted
    with open(cache_path(tree, "bird"), "wb") as fh:
        np.savez(fh, **arrays)  # an object array: only pickle could read it
    data = load(tree, n_train=6)  # no exception
    assert not marker.exists()
    assert torch.equal(data.x, first.x)
    assert 'the cache of "bird" was rebuilt: unreadable (ValueError)' in data.detail
    with np.load(cache_path(tree, "bird"), allow_pickle=False) as z:  # rebuilt without objects
        assert z["images"].dtype == np.uint8


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores file permissions")
def test_an_unwritable_root_still_loads_and_says_it_did_not_cache(tree):
    os.chmod(tree, 0o555)
    try:
        data = load(tree, n_train=6)
    finally:
        os.chmod(tree, 0o755)
    assert data.per_class == (2, 2, 2) and not (tree / CACHE_DIR).exists()
    assert 'decoded "bird" without caching it' in data.detail and "Permission denied" in data.detail


def test_a_cache_that_cannot_be_written_still_loads_and_says_so(tree, monkeypatch):
    """What an unwritable root does, made so that it holds when the tests run as root too."""

    def refuse(path, write):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(engine.data, "replace_atomically", refuse)
    data = load(tree, n_train=6)
    assert data.per_class == (2, 2, 2) and not list((tree / CACHE_DIR).glob("class-*.npz"))
    for name in CLASSES:
        assert f'decoded "{name}" without caching it (Permission denied)' in data.detail


def test_a_file_where_the_cache_folder_goes_costs_only_the_cache(tree):
    (tree / CACHE_DIR).write_bytes(b"a file, not a folder")
    data = load(tree, n_train=6)
    assert data.classes == CLASSES and red_marks(data) == [fingerprint(c, i) for c in range(3) for i in (0, 1)]
    assert 'decoded "cat" without caching it' in data.detail


def test_swapped_class_folders_with_equal_names_sizes_and_mtimes_are_not_served_stale(tmp_path):
    root = tmp_path / "bmp"
    make_tree(root, classes=("cat", "dog"), per_class=2, ext="bmp")  # BMP: the size depends on the dimensions only
    for path in root.rglob("*.bmp"):
        os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))  # as a tar extracts them
    before = load(root, n_train=4)
    assert red_marks(before) == [fingerprint(0, 0), fingerprint(0, 1), fingerprint(1, 0), fingerprint(1, 1)]
    (root / "cat").rename(root / "tmp")  # the folders were mislabelled: swap them
    (root / "dog").rename(root / "cat")
    (root / "tmp").rename(root / "dog")
    after = load(root, n_train=4)
    assert red_marks(after) == [fingerprint(1, 0), fingerprint(1, 1), fingerprint(0, 0), fingerprint(0, 1)]


# ---------------------------------------------------------------- 4. bad input


def only_two_cats(root):
    (root / "cat" / "c.png").unlink()
    (root / "cat" / "d.png").unlink()


def text_named_jpg(root):
    (root / "dog" / "a.jpg").write_text("this is not a JPEG")


def notes_txt(root):
    (root / "bird" / "notes.txt").write_text("shot on a phone")


def bigger_in_class(root):
    write_image(root / "cat" / "d.png", 1, size=16)


def bigger_class(root):
    shutil.rmtree(root / "dog")
    make_tree(root / "tmp", classes=("dog",), size=16)
    shutil.move(str(root / "tmp" / "dog"), root / "dog")
    shutil.rmtree(root / "tmp")


def truncated_png(root):
    path = root / "bird" / "c.png"
    path.write_bytes(path.read_bytes()[:60])


def nothing(root):
    pass


def dangling_link(root):
    (root / "cat" / "e.png").symlink_to(root / "nowhere.png")


def control_in_a_name(root):
    (root / "dog").rename(root / "d\x1bog")


def one_class_only(root):
    for name in ("bird", "dog"):
        for f in (root / name).iterdir():
            f.unlink()
        (root / name).rmdir()


# (id, how the tree is spoilt, n_train, data.classes, words the message must hold; {root} is the tree)
BAD = [
    ("class-name-close", nothing, 4, ["dgo", "cat"],
     ['data.classes = ["dgo", "cat"]', 'no class "dgo"', '(did you mean "dog"?)', "allowed: bird, cat, dog", "indices 0-2"]),
    ("class-name-far", nothing, 4, ["zebra", "cat"],
     ['data.classes = ["zebra", "cat"]', 'no class "zebra"', "allowed: bird, cat, dog"]),
    ("index-out-of-range", nothing, 4, [5, 0],
     ["data.classes = [5, 0]", "no class 5", "allowed: indices 0-2 or the names bird, cat, dog"]),
    ("index-just-out-of-range", nothing, 4, ["cat", 3],
     ['data.classes = ["cat", 3]', "no class 3", "allowed: indices 0-2"]),
    ("too-few", only_two_cats, 9, [],
     ["data.n_train = 9", 'class "cat"', "holds 2 images", "allowed: n_train <= 6 (3 classes × 2)"]),
    ("too-few-of-all", nothing, 15, [],
     ["data.n_train = 15", 'class "bird"', "holds 4 images", "allowed: n_train <= 12"]),
    ("text-named-jpg", text_named_jpg, 6, [],
     ['data.root = "{root}"', "{root}/dog/a.jpg is not an image (UnidentifiedImageError)", "allowed: image files only"]),
    ("notes-txt", notes_txt, 6, [],
     ["{root}/bird/notes.txt is not an image", "allowed: image files only", "leading '.'"]),
    ("truncated", truncated_png, 6, [],
     ["{root}/bird/c.png is not an image", "allowed: image files only"]),
    ("sizes-within-a-class", bigger_in_class, 6, [],
     ["images of different sizes", "{root}/cat/a.png is 8×8 pixels but {root}/cat/d.png is 16×16 pixels",
      "allowed: one size for every image"]),
    ("sizes-across-classes", bigger_class, 6, [],
     ["images of different sizes", "{root}/bird/a.png is 8×8 pixels but {root}/dog/a.png is 16×16 pixels",
      "allowed: one size for every image"]),
    ("not-a-multiple", nothing, 7, [],
     ["data.n_train = 7", "must be a multiple of 3", "balanced"]),
    ("dangling-link", dangling_link, 6, [],
     ["{root}/cat/e.png cannot be read", "allowed: a tree of readable folders and image files"]),
    ("control-character-in-a-folder-name", control_in_a_name, 6, [],
     ['the class folder "d\\x1bog" has control characters', "allowed: class folder names of printable characters"]),
    ("one-class-folder", one_class_only, 4, [],
     ['holds one class folder ("cat")', "allowed: at least two classes"]),
]


@pytest.mark.parametrize("spoil, n_train, classes, words", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_input_is_a_data_error_and_exit_2(tree, tmp_path, spoil, n_train, classes, words):
    spoil(tree)
    words = [w.format(root=tree) for w in words]
    with pytest.raises(DataError) as info:
        load(tree, n_train=n_train, classes=classes)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    shown = "[" + ", ".join(f'"{c}"' if isinstance(c, str) else str(c) for c in classes) + "]"
    result = cli(tree, tmp_path / "results", n_train, f"data.classes={shown}")
    assert_user_error(result, *words)
    assert not list((tmp_path / "results").rglob("record.toml"))  # refused before any run


def test_each_check_passes_once_its_input_is_fixed(tree):
    """The passing side of the checks above."""
    only_two_cats(tree)
    assert load(tree, n_train=6).per_class == (2, 2, 2)  # the largest allowed n_train
    notes_txt(tree)
    (tree / "bird" / "notes.txt").rename(tree / "bird" / ".notes.txt")  # hidden, as the message advises
    assert load(tree, n_train=6).per_class == (2, 2, 2)
    bigger_in_class(tree)  # cat/d.png again, but 16×16
    with pytest.raises(DataError, match="different sizes"):
        load(tree, n_train=6)
    write_image(tree / "cat" / "d.png", fingerprint(1, 3))  # 8×8 like the rest
    data = load(tree, n_train=9)
    assert data.per_class == (3, 3, 3) and red_marks(data)[3:6] == [fingerprint(1, 0), fingerprint(1, 1), fingerprint(1, 3)]


def test_an_empty_class_folder_is_named(tree):
    (tree / "empty").mkdir()
    with pytest.raises(DataError) as info:
        load(tree, n_train=8)
    assert 'class "empty"' in str(info.value) and "holds no images" in str(info.value) and "data.classes" in str(info.value)
    assert load(tree, n_train=6, classes=["bird", "cat", "dog"]).classes == CLASSES  # leave it out: fine


def test_a_missing_root_is_named(tmp_path):
    missing = tmp_path / "no-such-tree"
    words = [f'data.root = "{missing}": no such directory', "allowed: a directory with one folder of images per class"]
    with pytest.raises(DataError) as info:
        load(missing)
    assert all(w in str(info.value) for w in words)
    assert_user_error(cli(missing, tmp_path / "results", 6, "data.classes=[]"), *words)
    a_file = tmp_path / "file.png"
    write_image(a_file, 1)
    with pytest.raises(DataError, match="no such directory"):
        load(a_file)


def test_a_root_without_class_folders_is_named(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    write_image(root / "a.png", 1)  # images, but not in class folders
    words = [f'data.root = "{root}": holds no class folders', "allowed: a directory with one folder of images per class"]
    with pytest.raises(DataError) as info:
        load(root)
    assert all(w in str(info.value) for w in words)
    assert_user_error(cli(root, tmp_path / "results", 6, "data.classes=[]"), *words)


def test_data_errors_leave_no_cache_behind_for_the_bad_class(tree):
    text_named_jpg(tree)
    with pytest.raises(DataError):
        load(tree, n_train=6)
    assert not cache_path(tree, "dog").exists()


# ---------------------------------------------------------------- config-level checks

CONFIG_BAD = [
    ("classes-for-mnist", "mnist", {"data.classes": ["cat", "dog"]},
     ["data.classes", '["cat", "dog"]', 'must be [] for data.source = "mnist-3v8"', '"imagefolder"']),
    ("classes-for-mlp", "mnist", {"data.source": "synthetic", "data.classes": ["cat", "dog"]},
     ["data.classes", '["cat", "dog"]', 'must be [] for model.kind = "mlp"', "not one per class"]),
    ("mean-length", "cifar", {"data.source": "imagefolder", "data.mean": [0.5, 0.5]},
     ["data.mean = [0.5, 0.5]", "must be [] or 3 numbers, one per channel"]),
    ("std-zero", "cifar", {"data.source": "imagefolder", "data.std": [0.2, 0.0, 0.2]},
     ["data.std = [0.2, 0.0, 0.2]", "must be [] or 3 numbers > 0"]),
    ("mean-for-mnist", "mnist", {"data.mean": [0.1, 0.1, 0.1]},
     ["data.mean", 'must be [] for data.source = "mnist-3v8"']),
    ("one-class", "cifar", {"data.source": "imagefolder", "data.classes": ["cat"]},
     ['data.classes = ["cat"]', "at least two distinct class names or indices >= 0"]),
    ("negative-index", "cifar", {"data.source": "imagefolder", "data.classes": [-1, 0]},
     ["data.classes = [-1, 0]", "indices >= 0"]),
    ("duplicate", "cifar", {"data.source": "imagefolder", "data.classes": ["cat", "cat"]},
     ['data.classes = ["cat", "cat"]', "distinct"]),
    ("n-train-multiple", "cifar", {"data.source": "imagefolder", "data.classes": ["bird", "cat"], "data.n_train": 7},
     ["data.n_train = 7", "must be a multiple of 2"]),
]


def toml(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return str(value)


@pytest.mark.parametrize("preset, values, words", [c[1:] for c in CONFIG_BAD], ids=[c[0] for c in CONFIG_BAD])
def test_config_rejects_and_the_cli_exits_2(tmp_path, preset, values, words):
    base = {"data.root": str(tmp_path), "train.device": "cpu", "probes.ntk_subset": 2, "data.n_train": 4}
    with pytest.raises(ConfigError) as info:
        engine.load_spec(preset, {**base, **values})
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    args = ["run", "--preset", preset, "--device", "cpu", "--results", str(tmp_path / "r")]
    for k, v in {**base, **values}.items():
        args += ["--set", f"{k}={toml(v)}"]
    assert_user_error(CliRunner().invoke(app, args), *words)


def test_config_accepts_classes_mean_and_std_for_the_image_sources(tmp_path):
    spec = engine.load_spec("cifar", {"data.source": "imagefolder", "data.root": str(tmp_path), "data.n_train": 4,
                                      "data.classes": ["cat", 2], "data.mean": [0.5, 0.4, 0.3], "data.std": [0.2, 0.2, 0.25],
                                      "probes.ntk_subset": 2})
    assert spec.data.classes == ["cat", 2] and spec.data.mean == [0.5, 0.4, 0.3] and spec.data.std == [0.2, 0.2, 0.25]
    assert engine.load_spec("cifar", {"data.source": "imagefolder", "data.classes": [], "data.n_train": 7,
                                      "probes.ntk_subset": 2}).data.n_train == 7  # the tree decides k: checked at load


# ---------------------------------------------------------------- 5. end to end


def test_two_epochs_on_a_tree_through_the_cli(tmp_path):
    root = make_tree(tmp_path / "cifar-like", classes=CIFAR_FIVE, size=32)
    args = ["run", "--preset", "cifar", "--set", 'data.source="imagefolder"', "--set", f"data.root={root}",
            "--set", "data.n_train=10", "--set", "train.epochs=2", "--set", "train.seeds=[0]",
            "--set", "probes.ntk_subset=2", "--device", "cpu", "--results", str(tmp_path / "results")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Table 2" in result.stdout
    (record,) = [read_record(p) for p in find_records([tmp_path / "results"])]
    env = record.environment
    assert record.state == "finished" and record.trajectory.epoch == [0, 1, 2]
    assert env["data_source"] == "imagefolder" and env["data_path"] == str(root)
    assert env["data_classes"] == list(CIFAR_FIVE) and env["data_per_class"] == [2] * 5
    assert len(env["data_mean"]) == 3 and len(env["data_std"]) == 3 and len(env["data_sha256"]) == 64
    assert len(list((root / CACHE_DIR).glob("class-*.npz"))) == 5


# ---------------------------------------------------------------- found while writing these tests


def test_a_negative_index_given_to_the_engine_is_named(tree):
    with pytest.raises(DataError, match=r"no class -1"):
        load(tree, n_train=4, classes=[-1, 0])


# ---------------------------------------------------------------- a resumed run trains on the same images


def test_a_resume_refuses_data_that_changed_since(tree, tmp_path):
    from engine.errors import LplrError
    from engine.record import read_record
    from test_untrusted import cancelled_at

    spec = engine.load_spec("cifar", {"data.source": "imagefolder", "data.root": str(tree), "data.classes": [],
                                      "data.n_train": 6, "train.epochs": 3, "train.seeds": [0], "probes.ntk_subset": 2,
                                      "optim.batch_size": 3, "train.device": "cpu"})
    run_dir = cancelled_at(spec, tmp_path / "results", 1)
    assert read_record(run_dir).state == "interrupted"
    write_image(tree / "cat" / "a.png", 200, seed=7)  # one of the images the run trained on, other pixels
    resumed = engine.Runner.resume(run_dir)
    with pytest.raises(LplrError) as info:
        resumed.preflight()
    assert "the data differ from what the run trained on" in str(info.value) and str(tree) in str(info.value)
    write_image(tree / "cat" / "a.png", fingerprint(1, 0), seed=100 + 0)  # the same pixels again: it resumes
    resumed = engine.Runner.resume(run_dir)
    resumed.preflight()
    resumed.start()
    list(resumed.iter_events())
    assert read_record(run_dir).state == "finished"
