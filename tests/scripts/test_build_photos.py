"""scripts/build_photos.py on small inputs the tests write themselves (no .deb needed)."""

import csv
import importlib.util
import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_photos.py"


@pytest.fixture(scope="module")
def bp():
    spec = importlib.util.spec_from_file_location("build_photos", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_photos"] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules["build_photos"]


def write_rcc(tree: dict, version: int = 3, compress: tuple = ()) -> bytes:
    """A Qt .rcc file from a nested dict {name: bytes | dict}, written independently of the
    reader: nodes in breadth-first order, each directory's children contiguous."""
    node_size = 14 if version == 1 else 22
    names, name_offsets = b"", {}
    payload = b""
    nodes = []  # (name, flags, a, b) with a, b = count, first child | territory+lang, offset

    def name_offset(name: str) -> int:
        nonlocal names
        if name not in name_offsets:
            name_offsets[name] = len(names)
            encoded = name.encode("utf-16-be")
            names += struct.pack(">HI", len(name), 0) + encoded
        return name_offsets[name]

    queue = [("", tree, "")]
    nodes.append(None)
    index_of = {"": 0}
    while queue:
        name, content, path = queue.pop(0)
        children = sorted(content.items())
        first = len(nodes)
        nodes[index_of[path]] = (name, 0x02, len(children), first)
        for child, value in children:
            child_path = f"{path}/{child}"
            index_of[child_path] = len(nodes)
            if isinstance(value, dict):
                nodes.append(None)
                queue.append((child, value, child_path))
            else:
                body = value
                flags = 0
                if child_path in compress:
                    body = struct.pack(">I", len(value)) + zlib.compress(value)
                    flags = 0x01
                nodes.append((child, flags, 0, len(payload)))
                payload += struct.pack(">I", len(body)) + body
    header_size = 24 if version >= 3 else 20
    tree_bytes = b""
    for name, flags, a, b in nodes:
        offset = name_offset(name) if name else 0
        if flags & 0x02:
            tree_bytes += struct.pack(">IHII", offset, flags, a, b)
        else:
            tree_bytes += struct.pack(">IHHHI", offset, flags, 0, 0, b)
        tree_bytes += b"\0" * (node_size - 14)
    tree_at = header_size
    payload_at = tree_at + len(tree_bytes)
    names_at = payload_at + len(payload)
    header = b"qres" + struct.pack(">4I", version, tree_at, payload_at, names_at)
    if version >= 3:
        header += struct.pack(">I", 1 if compress else 0)
    return header + tree_bytes + payload + names


def test_rcc_nested_and_zlib_entries(bp):
    photo = bytes(range(256)) * 40
    data = write_rcc(
        {"gcompris": {"src": {"a.txt": b"plain", "deep": {"b.webp": photo, "c": {"d": b"x"}}}}},
        compress=("/gcompris/src/deep/b.webp",),
    )
    files = bp.read_rcc(data)
    assert files == {
        "/gcompris/src/a.txt": b"plain",
        "/gcompris/src/deep/b.webp": photo,
        "/gcompris/src/deep/c/d": b"x",
    }


def test_rcc_version_1_nodes(bp):
    assert bp.read_rcc(write_rcc({"x": {"y": b"1"}}, version=1)) == {"/x/y": b"1"}


def test_rcc_refuses_what_it_cannot_read(bp):
    with pytest.raises(bp.BuildError, match="qres"):
        bp.read_rcc(b"nope" + bytes(20))
    data = bytearray(write_rcc({"f": b"abc"}))
    # the file node is the second of the tree; set its zstd flag
    flags_at = 24 + 22 + 4
    data[flags_at:flags_at + 2] = struct.pack(">H", 0x04)
    with pytest.raises(bp.BuildError, match="zstd"):
        bp.read_rcc(bytes(data))


INDEX = b"""<?xml version="1.0" encoding="UTF-8"?>
<KPhotoAlbum version="8"><images>
  <image file="tall.jpg" label="tall" angle="90" width="2" height="3">
    <options><option name="People"><value value="Jesper"/></option></options>
  </image>
  <image description="flat one" file="flat.jpg" width="3" height="2"/>
</images></KPhotoAlbum>"""


def test_rotation_from_index(bp):
    index = bp.kphotoalbum_index(INDEX)
    assert index["tall.jpg"]["angle"] == 90 and index["tall.jpg"]["people"] == ["Jesper"]
    assert index["flat.jpg"]["angle"] == 0 and index["flat.jpg"]["description"] == "flat one"
    # 3x2 image, red top-left pixel: a clockwise quarter turn puts it top-right.
    img = Image.new("RGB", (3, 2), "blue")
    img.putpixel((0, 0), (255, 0, 0))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    turned = bp.decode(buf.getvalue(), index["tall.jpg"]["angle"])
    assert turned.size == (index["tall.jpg"]["width"], index["tall.jpg"]["height"])
    assert turned.getpixel((1, 0)) == (255, 0, 0)
    assert bp.decode(buf.getvalue(), 270).getpixel((0, 2)) == (255, 0, 0)


def scene(seed: int, size=(320, 240)) -> Image.Image:
    """A smooth random colour picture (low frequencies dominate, as in photographs)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def photo(bp, name, img, seed=0):
    raw = io.BytesIO()
    img.save(raw, "PNG")
    p = bp.Photo("pkg", "1", f"src/{name}", name, "cat", name,
                 bp.Licensing("CC0-1.0", "someone"), raw.getvalue())
    p.image, p.original_size = img, img.size
    return p


def test_near_duplicates_found_and_distinct_photos_kept(bp):
    a = scene(1, (400, 300))
    copy = a.crop((10, 8, 390, 292)).resize((200, 150), Image.Resampling.LANCZOS)
    photos = [photo(bp, "a_big", a), photo(bp, "a_small", copy), photo(bp, "b", scene(2)),
              photo(bp, "c", scene(3))]
    kept, dropped = bp.drop_duplicates(photos)
    assert [p.name for p in kept] == ["a_big", "b", "c"]
    assert [(d.name, k.name) for d, k, _ in dropped] == [("a_small", "a_big")]
    assert dropped[0][2] <= bp.DUPLICATE_MAX_DISTANCE


def test_image_writing_is_deterministic(bp):
    img = scene(4, (300, 500))
    out = bp.resized(img)
    assert out.size == (256, 427)  # shorter side 256, aspect kept, nothing cropped
    first, second = bp.encode_jpeg(out), bp.encode_jpeg(bp.resized(scene(4, (300, 500))))
    assert first == second
    with Image.open(io.BytesIO(first)) as shipped:
        assert shipped.format == "JPEG" and shipped.mode == "RGB"
        assert "exif" not in shipped.info and "icc_profile" not in shipped.info
        assert shipped.layer[0][1:3] == shipped.layer[1][1:3] == (1, 1)  # 4:4:4


def test_split_is_fixed_and_stratified(bp):
    photos = []
    for category, n in (("x", 20), ("y", 9), ("z", 2)):
        for i in range(n):
            p = photo(bp, f"{category}{i}", scene(100 + i, (8, 8)))
            p.original += category.encode()  # distinct originals
            p.category = category
            photos.append(p)
    split = bp.assign_split(photos)
    assert split == bp.assign_split(list(reversed(photos)))
    for category, n_test in (("x", 4), ("y", 2), ("z", 1)):
        assert sum(split[p.name] == "test" for p in photos if p.category == category) == n_test
    assert bp.assign_split(photos, seed="another seed") != split


def test_manifest_rows(bp, tmp_path):
    p = photo(bp, "pkg_one", scene(5))
    p.rotation = 90
    shipped = bp.encode_jpeg(bp.resized(p.image))
    row = bp.manifest_row(p, shipped, "test")
    assert tuple(row) == bp.MANIFEST_COLUMNS
    assert row["file"] == "images/pkg_one.jpg" and row["split"] == "test"
    assert (row["original_width"], row["original_height"], row["rotation"]) == ("320", "240", "90")
    assert row["sha256"] == bp.sha256(shipped) and row["sha256_original"] == bp.sha256(p.original)
    other = dict(row, file="images/a.jpg")
    bp.write_manifest([row, other], tmp_path / "manifest.csv")
    with open(tmp_path / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == ["images/a.jpg", "images/pkg_one.jpg"]
    assert tuple(rows[0]) == bp.MANIFEST_COLUMNS


def test_readme_licences_and_spellings(bp):
    readme = bp.parse_readme(
        "Copyright: A\nLicense: CC-BY-SA 4.0\nFiles:\nx.svg\ny.svg\n\n"
        "Copyright: B\nFiles: pig.webp\nSource: https://example.org/pig\nLicense: Public domain\n"
    )
    assert readme[0]["files"] == ["x.svg", "y.svg"]
    assert readme[1]["files"] == ["pig.webp"] and readme[1]["source"] == "https://example.org/pig"
    assert bp.normalise_licence(readme[0]["license"]) == "CC-BY-SA-4.0"
    assert bp.normalise_licence("Public domain") == "public-domain"
    assert bp.normalise_licence("GPLv2+") == "GPL-2+"
    with pytest.raises(bp.BuildError, match="unknown licence"):
        bp.normalise_licence("Some licence")


def test_greyscale_photo_is_caught(bp):
    grey = scene(6).convert("L").convert("RGB")
    assert bp.chroma_p99(grey) < bp.GREY_LIMIT < bp.chroma_p99(scene(6))
