#!/usr/bin/env python3
"""Build the harness's photo collection from Debian packages, reproducibly.

    python scripts/build_photos.py --debs /work/debs --out harness/data/photos

Without ``--debs`` the packages are fetched with ``apt-get download`` into a temporary folder.
The script reads each ``.deb`` in Python (python-debian), picks the colour photographs named
below (including WebP files inside GCompris's Qt ``.rcc`` resource files), applies stored
rotations, leaves out the files listed in ``EXCLUDED`` (renders, drawings, greyscale...), drops
near-duplicates by perceptual hash, resizes to a 256 px shorter side and writes JPEG q95 4:4:4,
a manifest with a fixed stratified split, the packages' copyright files, licence texts and an
attribution file. Running it twice gives byte-identical output.
"""

from __future__ import annotations

import argparse
import configparser
import csv
import fnmatch
import hashlib
import io
import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import imagehash
import numpy as np
from debian import copyright as dep5
from debian.debfile import DebFile
from PIL import Image, ImageCms

PACKAGES = (
    "gcompris-qt-data",
    "kphotoalbum",
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "mate-backgrounds",
    "plasma-workspace-wallpapers",
    "palapeli-data",
)
# Short prefix of each shipped file name, so a name says where the photo came from.
TAGS = {
    "gcompris-qt-data": "gc",
    "kphotoalbum": "kpa",
    "lomiri-wallpapers-16.04": "lom",
    "lomiri-wallpapers-20.04": "lom",
    "mate-backgrounds": "mate",
    "plasma-workspace-wallpapers": "plasma",
    "palapeli-data": "pal",
}

SHORT_SIDE = 256
JPEG_QUALITY = 95
# Two photos whose 64-bit DCT hashes (imagehash.phash) differ in at most this many bits are one
# photo at another size or crop. Checked on these packages: 4 pairs at <= 10, the next pair (12)
# is two different photographs.
DUPLICATE_MAX_DISTANCE = 10
TEST_FRACTION = 0.22
SPLIT_SEED = "colorization-harness photos v1"

MANIFEST_COLUMNS = (
    "file", "category", "split", "package", "version", "source_path", "original_width",
    "original_height", "rotation", "licence", "credit", "sha256_original", "sha256",
)

# --- what is taken from GCompris ------------------------------------------------------------
GCOMPRIS_RCC = "usr/share/gcompris-qt/rcc/"
GCOMPRIS_ACTIVITIES = (
    "erase", "explore_farm_animals", "explore_world_animals", "explore_world_music",
    "explore_monuments", "categorization", "details",
)
# Coarse scene label of each GCompris folder (rcc path below src/activities/, without the file).
GCOMPRIS_CATEGORIES = {
    "erase/resource": "animals",
    "explore_farm_animals/resource/animals": "domestic-animals",
    "explore_world_animals/resource/animals": "animals",
    "explore_world_music/resource/music": "music",
    "explore_monuments/resource/*": "landmarks",
    "categorization/resource/images/fishes": "fish",
    "categorization/resource/images/monuments": "landmarks",
    "categorization/resource/images/others": "objects",
    "categorization/resource/images/tools": "objects",
    "categorization/resource/images/renewable": "energy",
    "categorization/resource/images/alphabets": "objects",
    "categorization/resource/images/numbers": "objects",
    "details/resource/image": "landmarks",
}
# Upstream README typos: the README entry (value) that describes the shipped file (key). Each was
# checked by hand: the README's source URL names the same monument as the file.
README_ALIASES = {
    # README says "audaPalatina"; its source is Trier_Konstantinbasilika (the Aula Palatina).
    "/gcompris/src/activities/explore_monuments/resource/germany/aulaPalatina.webp":
        "/gcompris/src/activities/explore_monuments/resource/germany/audaPalatina.webp",
}
# Single GCompris photos whose folder label is wrong for the picture: erase mixes farm and wild
# animals (keyed by the name of the shipped file).
CATEGORY_OVERRIDES = {
    name: "domestic-animals"
    for name in ("gc_erase_alpaca", "gc_erase_calf", "gc_erase_camels", "gc_erase_goat",
                 "gc_erase_gosling", "gc_erase_horse", "gc_erase_kitten")
}

# Coarse scene label of each kphotoalbum demo photo and each wallpaper, by file stem (kphotoalbum)
# or (package, stem / wallpaper folder); chosen by looking at each picture.
KPA_CATEGORIES = {
    **dict.fromkeys(("anne_helene", "bar55", "bar55_2", "cold_water", "grand_canyon_1",
                     "grand_canyon_2", "jesper", "jesper_2", "new_wave_1", "new_wave_2", "pool",
                     "pool_2", "qt-logo", "wayne"), "people"),
    **dict.fromkeys(("grand_canyon_3", "skagen", "skagen_2", "snow", "sunset"), "landscape"),
    **dict.fromkeys(("donna", "donna_2", "spiff", "spiff_2"), "domestic-animals"),
    "blackie": "fish",  # an eel in an aquarium
}
_LOM16, _LOM20 = "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04"
_MATE, _PLASMA, _PAL = "mate-backgrounds", "plasma-workspace-wallpapers", "palapeli-data"
WALLPAPER_CATEGORIES = {
    (_LOM16, "Bridge_by_Sander_Klootwijk"): "landscape",
    (_LOM16, "Dragonfly_by_Bolly"): "nature",
    (_LOM16, "Picture_0B_by_freespace"): "objects",
    (_LOM16, "Picture_1A_by_freespace"): "objects",
    (_LOM16, "Wine_by_Jakkub_Mede"): "objects",
    (_LOM16, "aitzgorri_by_Aitzol_Berasategi"): "landscape",
    (_LOM16, "free_by_Peter_Nerlich"): "objects",
    (_LOM16, "friends_by_Aitzol_Berasategi"): "domestic-animals",
    (_LOM16, "greentock_by_Peter_Nerlich"): "objects",
    (_LOM16, "life_by_Aitzol_Berasategi"): "landscape",
    (_LOM16, "picosdeeuropa_by_Aitzol_Berasategi"): "landscape",
    (_LOM16, "seeding_by_Clements_Engelhardt"): "nature",
    (_LOM16, "sunset_by_Aitzol_Berasategi"): "landscape",
    (_LOM20, "Kleiber_by_Lukas_Baubkus"): "animals",
    **{(_MATE, n): "nature" for n in ("Aqua", "Blinds", "FreshFlower", "Garden", "GreenMeadow",
                                      "LadyBird", "RainDrops", "TwoWings", "Wood",
                                      "YellowFlower")},
    (_MATE, "Dune"): "landscape",
    (_MATE, "Storm"): "landscape",
    (_PLASMA, "ColorfulCups"): "objects",
    (_PLASMA, "DarkestHour"): "landscape",
    (_PLASMA, "EveningGlow"): "landscape",
    (_PLASMA, "FallenLeaf"): "nature",
    (_PLASMA, "Kite"): "landscape",
    (_PLASMA, "OneStandsOut"): "nature",
    (_PLASMA, "Path"): "landscape",
    (_PLASMA, "summer_1am"): "landscape",
    (_PAL, "castle-maintenon"): "landmarks",
    (_PAL, "cincinnati-bridge"): "landmarks",
    (_PAL, "citrus-fruits"): "objects",
    (_PAL, "european-honey-bee"): "nature",
    (_PAL, "panther-chameleon-female"): "animals",
}

# --- files left out, each with its reason (package, path inside the package) -----------------
# Every candidate was looked at on a contact sheet; these are not colour photographs.
_RENDER = "render / digital art, not a photograph"
_ABSTRACT = "abstract colour pattern, no scene"
_GREY = "greyscale photograph: no colour to learn or score"
EXCLUDED = {
    ("gcompris-qt-data", "usr/share/gcompris-qt/rcc/explore_monuments.rcc:/gcompris/src/"
     "activities/explore_monuments/resource/usa/castleClinton.webp"):
        _GREY + " (1961 black-and-white aerial view)",
    (_LOM16, "usr/share/backgrounds/analogpattern_by_Peter_Nerlich.jpg"): _ABSTRACT,
    (_LOM16, "usr/share/backgrounds/umang_by_Abhishek_Mudgal.jpg"): _ABSTRACT,
    (_LOM20, "usr/share/backgrounds/Fossa_by_Jasper_Roks.jpg"): _RENDER,
    (_LOM20, "usr/share/backgrounds/Infinite-Sea_by_Aury88.jpg"): _RENDER,
    (_LOM20, "usr/share/backgrounds/Painting-Colors_by__herobrine7gamer.jpg"): _ABSTRACT,
    **{
        (_PLASMA, f"usr/share/wallpapers/{wall}/contents/images/{size}"): reason
        for wall, size, reason in (
            ("Altai", "5120x2880.png", _RENDER),
            ("Autumn", "2560x1600.jpg", _RENDER + " (illustration)"),
            ("BytheWater", "2560x1600.jpg", _RENDER + " (illustration)"),
            ("Canopee", "3840x2160.png", _RENDER),
            ("Cascade", "3840x2160.png", _RENDER),
            ("Cluster", "3840x2160.png", _RENDER),
            ("ColdRipple", "2560x1600.jpg", _GREY),
            ("Elarun", "2560x1600.png", _RENDER),
            ("Flow", "5120x2880.jpg", _RENDER),
            ("FlyingKonqui", "2560x1600.png", _RENDER + " (drawing)"),
            ("Grey", "2560x1600.jpg", _GREY),
            ("Honeywave", "5120x2880.jpg", _RENDER),
            ("IceCold", "5120x2880.png", _RENDER),
            ("Kay", "5120x2880.png", _RENDER),
            ("Kokkini", "3840x2160.png", _RENDER),
            ("MilkyWay", "5120x2880.png", _RENDER),
            ("Opal", "3840x2160.png", _RENDER),
            ("PastelHills", "3200x2000.jpg", _RENDER),
            ("Patak", "5120x2880.png", _RENDER),
            ("SafeLanding", "5120x2880.jpg", _RENDER + " (illustration)"),
            ("Shell", "5120x2880.jpg", _RENDER),
            ("Volna", "5120x2880.jpg", _RENDER),
        )
    },
}


class BuildError(RuntimeError):
    """Raised when the packages do not contain what the builder expects."""


# --- Qt resource (.rcc) files ----------------------------------------------------------------
RCC_COMPRESSED = 0x01
RCC_DIRECTORY = 0x02
RCC_COMPRESSED_ZSTD = 0x04


def read_rcc(data: bytes) -> dict[str, bytes]:
    """Return ``{path: bytes}`` for every file in a Qt binary resource (``.rcc``) file.

    Format (Qt's rcc): header ``qres``, then big-endian uint32 version, tree offset, data offset
    and names offset, plus a uint32 flags word from version 3 on. Tree nodes are 14 bytes
    (version 1) or 22 bytes (version >= 2, with an 8-byte modification time): uint32 name offset,
    uint16 flags, then for a directory uint32 child count and uint32 index of its first child,
    for a file uint16 territory, uint16 language and uint32 data offset. A name is uint16 length,
    uint32 hash and UTF-16BE characters. A data entry is a uint32 size and the bytes; with the
    zlib flag those are a uint32 uncompressed length and a zlib stream. Zstandard entries
    (version 3 flag 0x04) are refused with a clear error.
    """
    if data[:4] != b"qres":
        raise BuildError("not a Qt resource file (no 'qres' magic)")
    version, tree, payload, names = struct.unpack_from(">4I", data, 4)
    if version not in (1, 2, 3):
        raise BuildError(f"unsupported .rcc format version {version}")
    node_size = 14 if version == 1 else 22

    def name_at(offset: int) -> str:
        (length,) = struct.unpack_from(">H", data, names + offset)
        start = names + offset + 6
        return data[start:start + 2 * length].decode("utf-16-be")

    files: dict[str, bytes] = {}
    seen: set[int] = set()

    def walk(index: int, prefix: str) -> None:
        if index in seen:
            raise BuildError(f"corrupt .rcc tree: node {index} visited twice")
        seen.add(index)
        node = tree + index * node_size
        name_offset, flags = struct.unpack_from(">IH", data, node)
        path = f"{prefix}/{name_at(name_offset)}" if index else ""
        if flags & RCC_DIRECTORY:
            count, first = struct.unpack_from(">II", data, node + 6)
            for child in range(first, first + count):
                walk(child, path)
            return
        (offset,) = struct.unpack_from(">I", data, node + 10)
        (size,) = struct.unpack_from(">I", data, payload + offset)
        body = data[payload + offset + 4:payload + offset + 4 + size]
        if len(body) != size:
            raise BuildError(f"{path}: data entry runs past the end of the file")
        if flags & ~(RCC_COMPRESSED | RCC_COMPRESSED_ZSTD):
            raise BuildError(f"{path}: unknown .rcc node flags {flags:#x}")
        if flags & RCC_COMPRESSED_ZSTD:
            raise BuildError(f"{path}: zstd-compressed .rcc entries are not supported")
        if flags & RCC_COMPRESSED:
            (expected,) = struct.unpack_from(">I", body)
            body = zlib.decompress(body[4:])
            if len(body) != expected:
                raise BuildError(f"{path}: zlib entry gave {len(body)} bytes, not {expected}")
        files[path] = body

    walk(0, "")
    return files


# --- licences --------------------------------------------------------------------------------
def normalise_licence(text: str) -> str:
    """Map the licence spellings found in the packages to one SPDX-like (Debian-style) id."""
    t = " ".join(text.split())
    if t.lower() in ("public domain", "public-domain"):
        return "public-domain"
    if t.upper() in ("CC0", "CC0-1.0"):
        return "CC0-1.0"
    if t in ("FDL", "GNU-FDL"):  # palapeli's .desktop files give no version
        return "GFDL"
    m = re.fullmatch(r"(L?GPL)v(\d)(\+?)", t)  # GPLv2+, LGPLv3
    if m:
        return f"{m.group(1)}-{m.group(2)}{m.group(3)}"
    m = re.fullmatch(r"CC[- ]BY((?:[- ]SA)?)[- ](\d\.\d)", t, re.IGNORECASE)
    if m:
        return "CC-BY" + ("-SA" if m.group(1) else "") + "-" + m.group(2)
    if re.fullmatch(r"(CC-BY(-SA)?-\d\.\d|GFDL-NIV-1\.2\+?|L?GPL-[23](\.\d)?\+?)", t):
        return t
    raise BuildError(f"unknown licence spelling {text!r}: add it to normalise_licence")


def one_line(text: str) -> str:
    return "; ".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


def parse_readme(text: str) -> list[dict[str, str | list[str]]]:
    """Parse GCompris's per-folder README: blank-line separated stanzas of ``Key: value`` fields;
    ``Files`` lists paths (relative to the README's folder) on its line and the lines after it."""
    stanzas = []
    for block in re.split(r"\n\s*\n", text.strip()):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            m = re.match(r"^([A-Za-z]+):\s*(.*)$", line)
            if m:
                key = m.group(1).lower()
                fields[key] = m.group(2).strip()
            elif key is not None:
                fields[key] = (fields[key] + "\n" + line.strip()).strip()
        if "files" in fields:
            stanza: dict[str, str | list[str]] = dict(fields)
            stanza["files"] = fields["files"].split()
            stanzas.append(stanza)
    return stanzas


@dataclass
class Licensing:
    licence: str
    credit: str
    source: str = ""  # where the photo came from (URL), if stated
    notes: str = ""  # the stanza's comment, modifications already made upstream, etc.


def dep5_lookup(cr: dep5.Copyright, path: str, allow_catch_all: bool) -> Licensing | None:
    """The DEP-5 ``Files:`` stanza for ``path`` (the last matching one, as DEP-5 says);
    None if none matches, or only ``Files: *`` when ``allow_catch_all`` is false."""
    para = cr.find_files_paragraph(path)
    if para is None or (not allow_catch_all and tuple(para.files) == ("*",)):
        return None
    return Licensing(
        licence=normalise_licence(para.license.synopsis),
        credit=one_line(para.copyright or ""),
        notes=one_line(para.comment or ""),
    )


# --- reading packages ------------------------------------------------------------------------
@dataclass
class Package:
    name: str
    version: str
    files: dict[str, bytes]  # path inside the package (no leading ./) -> bytes

    @property
    def copyright(self) -> bytes:
        return self.files[f"usr/share/doc/{self.name}/copyright"]


def read_deb(path: Path, wanted) -> Package:
    """Read a .deb in Python: its name, version and the data files for which ``wanted(path)``."""
    deb = DebFile(str(path))
    control = deb.debcontrol()
    name, version = control["Package"], control["Version"]
    doc = f"usr/share/doc/{name}/copyright"
    files = {}
    with deb.data.tgz() as tar:
        for member in tar:
            member_path = member.name.removeprefix("./")
            if member.isfile() and (member_path == doc or wanted(member_path)):
                files[member_path] = tar.extractfile(member).read()
    if doc not in files:
        raise BuildError(f"{path.name}: no {doc}")
    return Package(name, version, files)


def find_debs(debs: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for deb in sorted(debs.glob("*.deb")):
        name = deb.name.split("_")[0]
        if name in PACKAGES:
            if name in found:
                raise BuildError(f"two .deb files for {name} in {debs}")
            found[name] = deb
    missing = [p for p in PACKAGES if p not in found]
    if missing:
        raise BuildError(f"no .deb for {', '.join(missing)} in {debs}")
    return found


def apt_download(dest: Path) -> Path:
    subprocess.run(["apt-get", "download", *PACKAGES], cwd=dest, check=True)
    return dest


# --- candidate photos ------------------------------------------------------------------------
@dataclass
class Photo:
    package: str
    version: str
    source_path: str
    name: str  # shipped file stem
    category: str
    title: str
    lic: Licensing
    original: bytes
    rotation: int = 0  # degrees clockwise applied to the original
    image: Image.Image | None = field(default=None, repr=False)
    original_size: tuple[int, int] = (0, 0)


def slug(text: str) -> str:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def gcompris_category(rel_dir: str) -> str:
    for pattern, category in GCOMPRIS_CATEGORIES.items():
        if fnmatch.fnmatchcase(rel_dir, pattern):
            return category
    raise BuildError(f"no category for GCompris folder {rel_dir}")


DETAILS_PAINTINGS = ("Van_Gogh", "VincentVanGogh", "Gogh", "Portrait", "Eglise")


def gcompris_wanted(entry: str) -> bool:
    """Photo entries of the chosen activities (rcc paths below /gcompris/src/activities/)."""
    parts = PurePosixPath(entry).parts
    if len(parts) < 6 or parts[4] not in GCOMPRIS_ACTIVITIES or not entry.endswith(".webp"):
        return False
    if parts[4] == "details":
        stem = PurePosixPath(entry).stem
        return stem.endswith("_background") and not stem.startswith(DETAILS_PAINTINGS)
    return True


def collect_gcompris(pkg: Package) -> list[Photo]:
    cr = dep5.Copyright(io.StringIO(pkg.copyright.decode()))
    photos, unlicensed = [], []
    for rcc_path in sorted(p for p in pkg.files if p.startswith(GCOMPRIS_RCC)):
        if PurePosixPath(rcc_path).stem not in GCOMPRIS_ACTIVITIES:
            continue
        entries = read_rcc(pkg.files[rcc_path])
        readmes = {
            str(PurePosixPath(p).parent): parse_readme(b.decode())
            for p, b in entries.items() if PurePosixPath(p).name == "README"
        }
        for entry in sorted(e for e in entries if gcompris_wanted(e)):
            source = f"{rcc_path}:{entry}"
            lic = gcompris_licensing(entry, readmes, cr)
            if lic is None:
                unlicensed.append(source)
                continue
            rel = PurePosixPath(entry).relative_to("/gcompris/src/activities")
            activity = rel.parts[0]
            short = {"explore_farm_animals": "farm", "explore_world_animals": "world",
                     "explore_world_music": "music", "explore_monuments": "mon",
                     "categorization": "cat"}.get(activity, activity)
            stem = rel.stem.removesuffix("_background")
            group = rel.parent.name if activity in ("categorization", "explore_monuments") else ""
            name = "_".join(s for s in ("gc", short, slug(group), slug(stem)) if s)
            category = CATEGORY_OVERRIDES.get(name, gcompris_category(str(rel.parent)))
            photos.append(Photo(pkg.name, pkg.version, source, name, category, rel.stem, lic,
                                entries[entry]))
    if unlicensed:
        raise BuildError("no README entry and no Files: stanza other than '*' in the copyright "
                         "file names these photos:\n  " + "\n  ".join(unlicensed))
    return photos


def gcompris_licensing(entry: str, readmes: dict, cr: dep5.Copyright) -> Licensing | None:
    """Licence of a GCompris photo: the nearest README that names it (upstream's per-file
    statement, shipped beside it), else a specific Files: stanza of debian/copyright (the rcc
    WebP was built from ``src/...`` with another image extension). The catch-all ``Files: *``
    (the program's GPL-3+) is never taken for a photo."""
    path = PurePosixPath(README_ALIASES.get(entry, entry))
    for folder in [path.parent, *path.parent.parents]:
        for stanza in readmes.get(str(folder), []):
            if str(path.relative_to(folder)) in stanza["files"]:
                return Licensing(
                    licence=normalise_licence(stanza["license"]),
                    credit=one_line(stanza.get("copyright", "")),
                    source=stanza.get("source", ""),
                    notes=one_line(stanza.get("comments", stanza.get("comment", ""))),
                )
    for ext in (".jpg", ".jpeg", ".png", ".JPG", ".webp"):
        upstream = PurePosixPath(entry).with_suffix(ext).relative_to("/gcompris")
        lic = dep5_lookup(cr, str(upstream), False)
        if lic is not None:
            return lic
    return None


KPA_DEMO = "usr/share/kphotoalbum/demo/"
# kphotoalbum's copyright file is not machine-readable (not DEP-5). It says the package is
# "GPL version 2 ... or any later version" and names its upstream authors.
KPA_LICENSING = Licensing(
    licence="GPL-2+",
    credit="Jesper K. Pedersen <blackie@kde.org> and the KPhotoAlbum authors "
    "(see kphotoalbum.copyright)",
)
KPA_ROTATIONS = {0: None, 90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180,
                 270: Image.Transpose.ROTATE_90}


def kphotoalbum_index(xml: bytes) -> dict[str, dict]:
    """``{file: {"angle", "label", "description", "people", "width", "height"}}`` from
    KPhotoAlbum's index.xml (width and height are those of the rotated picture).

    ``angle`` is the clockwise rotation, in degrees, that KPhotoAlbum applies when showing it."""
    root = ET.fromstring(xml)
    out = {}
    for image in root.iter("image"):
        angle = int(image.get("angle", "0")) % 360
        if angle not in KPA_ROTATIONS:
            raise BuildError(f"index.xml: {image.get('file')} has angle {angle}, not a right angle")
        people = [
            v.get("value") for opt in image.iter("option") if opt.get("name") == "People"
            for v in opt.iter("value")
        ]
        out[image.get("file")] = {
            "angle": angle, "label": image.get("label", ""),
            "description": image.get("description", ""), "people": people,
            "width": int(image.get("width", "0")), "height": int(image.get("height", "0")),
        }
    return out


def rotate_clockwise(img: Image.Image, angle: int) -> Image.Image:
    op = KPA_ROTATIONS[angle]
    return img if op is None else img.transpose(op)


def collect_kphotoalbum(pkg: Package) -> list[Photo]:
    index = kphotoalbum_index(pkg.files[KPA_DEMO + "index.xml"])
    photos = []
    demo_jpg = re.escape(KPA_DEMO) + r"[^/]+\.jpg"
    for path in sorted(p for p in pkg.files if re.fullmatch(demo_jpg, p)):
        fname = PurePosixPath(path).name
        if fname not in index:
            raise BuildError(f"{path} is not in demo/index.xml")
        info = index[fname]
        with Image.open(io.BytesIO(pkg.files[path])) as img:
            w, h = img.size
        shown = (h, w) if info["angle"] in (90, 270) else (w, h)
        if (info["width"], info["height"]) not in ((0, 0), shown):
            raise BuildError(f"{path}: index.xml size {info['width']}x{info['height']} is not the "
                             f"rotated size {shown[0]}x{shown[1]}")
        category = KPA_CATEGORIES.get(PurePosixPath(path).stem, "")
        title = info["description"] or info["label"]
        photos.append(Photo(pkg.name, pkg.version, path, "kpa_" + slug(PurePosixPath(path).stem),
                            category, one_line(title), KPA_LICENSING, pkg.files[path],
                            rotation=info["angle"]))
    return photos


def collect_copyright_files(pkg: Package, paths: list[str], upstream_path, title,
                            name, category) -> list[Photo]:
    """Photos licensed by the package's DEP-5 copyright file (``Files: *`` allowed)."""
    cr = dep5.Copyright(io.StringIO(pkg.copyright.decode()))
    photos = []
    for path in paths:
        lic = dep5_lookup(cr, upstream_path(path), True)
        if lic is None:
            raise BuildError(f"{pkg.name}: no Files: stanza for {upstream_path(path)}")
        photos.append(Photo(pkg.name, pkg.version, path, name(path), category(path), title(path),
                            lic, pkg.files[path]))
    return photos


def _stem(path: str) -> str:
    return PurePosixPath(path).stem


def collect_lomiri(pkg: Package) -> list[Photo]:
    series = pkg.name.rsplit("-", 1)[1]
    paths = sorted(p for p in pkg.files
                   if re.fullmatch(r"usr/share/backgrounds/[^/]+_by_[^/]+\.jpg", p))
    return collect_copyright_files(
        pkg, paths,
        upstream_path=lambda p: f"{series}/{PurePosixPath(p).name}",
        title=lambda p: _stem(p).replace("_by_", " by ").replace("_", " "),
        name=lambda p: "lom_" + slug(_stem(p).split("_by_")[0]),
        category=lambda p: WALLPAPER_CATEGORIES.get((pkg.name, _stem(p)), ""),
    )


MATE_NATURE = "usr/share/backgrounds/mate/nature/"


def collect_mate(pkg: Package) -> list[Photo]:
    paths = sorted(p for p in pkg.files if p.startswith(MATE_NATURE) and p.endswith(".jpg"))
    return collect_copyright_files(
        pkg, paths,
        upstream_path=lambda p: p.removeprefix("usr/share/backgrounds/mate/"),
        title=_stem,
        name=lambda p: "mate_" + slug(_stem(p)),
        category=lambda p: WALLPAPER_CATEGORIES.get((pkg.name, _stem(p)), ""),
    )


PLASMA = "usr/share/wallpapers/"


def collect_plasma(pkg: Package) -> list[Photo]:
    """The largest ``contents/images/`` size of each wallpaper; credit adds metadata.json's
    author, and the notes its licence statement (debian/copyright gives GPL-2+ for all)."""
    sizes: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for p in pkg.files:
        m = re.fullmatch(re.escape(PLASMA) + r"([^/]+)/contents/images/(\d+)x(\d+)\.(?:jpg|png)", p)
        if m:
            sizes[m.group(1)].append((int(m.group(2)) * int(m.group(3)), p))
    paths = {max(v)[1]: wall for wall, v in sizes.items()}
    photos = collect_copyright_files(
        pkg, sorted(paths),
        upstream_path=lambda p: p.removeprefix(PLASMA),
        title=lambda p: paths[p],
        name=lambda p: "plasma_" + slug(paths[p]),
        category=lambda p: WALLPAPER_CATEGORIES.get((pkg.name, paths[p]), ""),
    )
    for photo in photos:
        title, authors, licence, meta_file = plasma_metadata(pkg, paths[photo.source_path])
        photo.title = title
        photo.lic.credit = f"{authors} ({meta_file}); {photo.lic.credit} (debian/copyright)"
        photo.lic.notes = f"{meta_file} gives the licence as {licence}"
    return photos


def plasma_metadata(pkg: Package, wallpaper: str) -> tuple[str, str, str, str]:
    """(name, authors, licence, file) from a wallpaper's metadata.json or metadata.desktop."""
    base = f"{PLASMA}{wallpaper}/"
    if base + "metadata.json" in pkg.files:
        meta = json.loads(pkg.files[base + "metadata.json"])["KPlugin"]
        authors = ", ".join(a["Name"] for a in meta.get("Authors", []))
        return meta["Name"], authors, meta["License"], "metadata.json"
    desktop = configparser.ConfigParser(interpolation=None)
    desktop.optionxform = str
    desktop.read_string(pkg.files[base + "metadata.desktop"].decode())
    entry = desktop["Desktop Entry"]
    return (entry["Name"], entry["X-KDE-PluginInfo-Author"], entry["X-KDE-PluginInfo-License"],
            "metadata.desktop")


PALAPELI = "usr/share/palapeli/collection/"


def collect_palapeli(pkg: Package) -> list[Photo]:
    """Each puzzle photo with the author, source and licence of its ``.desktop`` file."""
    photos = []
    for path in sorted(p for p in pkg.files if p.startswith(PALAPELI) and p.endswith(".desktop")):
        desktop = configparser.ConfigParser(interpolation=None)
        desktop.optionxform = str
        desktop.read_string(pkg.files[path].decode())
        entry = desktop["Desktop Entry"]
        image = PALAPELI + desktop["Job"]["Image"]
        lic = Licensing(
            licence=normalise_licence(entry["X-KDE-PluginInfo-License"]),
            credit=entry["X-KDE-PluginInfo-Author"],
            source=entry.get("X-KDE-PluginInfo-Website", ""),
        )
        title = ", ".join(t for t in (entry["Name"], entry.get("Comment", "")) if t)
        photos.append(Photo(pkg.name, pkg.version, image, "pal_" + slug(_stem(image)),
                            WALLPAPER_CATEGORIES.get((pkg.name, _stem(image)), ""), title, lic,
                            pkg.files[image]))
    return photos


COLLECTORS = {
    "gcompris-qt-data": (lambda p: p.startswith(GCOMPRIS_RCC), collect_gcompris),
    "kphotoalbum": (lambda p: p.startswith(KPA_DEMO), collect_kphotoalbum),
    "lomiri-wallpapers-16.04": (lambda p: p.startswith("usr/share/backgrounds/"), collect_lomiri),
    "lomiri-wallpapers-20.04": (lambda p: p.startswith("usr/share/backgrounds/"), collect_lomiri),
    "mate-backgrounds": (lambda p: p.startswith(MATE_NATURE), collect_mate),
    "plasma-workspace-wallpapers": (
        lambda p: p.startswith(PLASMA) and ("/contents/images/" in p or "/metadata." in p),
        collect_plasma),
    "palapeli-data": (lambda p: p.startswith(PALAPELI), collect_palapeli),
}


def collect(debs: Path) -> tuple[list[Package], list[Photo], list[tuple[str, str, str]]]:
    """Read every package; return them, the kept candidate photos and ``(package, path,
    reason)`` for each candidate left out by ``EXCLUDED``."""
    packages, photos, excluded = [], [], []
    for name, deb in find_debs(debs).items():
        wanted, collector = COLLECTORS[name]
        pkg = read_deb(deb, wanted)
        packages.append(pkg)
        for photo in collector(pkg):
            reason = EXCLUDED.get((pkg.name, photo.source_path))
            if reason:
                excluded.append((pkg.name, photo.source_path, reason))
            else:
                photos.append(photo)
    unused = set(EXCLUDED) - {(p, s) for p, s, _ in excluded}
    if unused:
        raise BuildError(f"EXCLUDED names files the packages do not have: {sorted(unused)}")
    return packages, photos, excluded


# --- images ----------------------------------------------------------------------------------
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def decode(data: bytes, rotation: int = 0) -> Image.Image:
    """Decode to an sRGB RGB image (converting from an embedded ICC profile), then rotate
    clockwise by ``rotation`` degrees. EXIF orientation is not applied: none of these packages
    sets it to anything but 1."""
    with Image.open(io.BytesIO(data)) as src:
        src.load()
        orientation = src.getexif().get(0x0112, 1)
        if orientation != 1:
            raise BuildError(f"EXIF orientation {orientation} is not handled")
        icc = src.info.get("icc_profile")
        img = src.convert("RGB") if src.mode != "RGB" else src.copy()
    if icc:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        img = ImageCms.profileToProfile(img, profile, SRGB, outputMode="RGB")
    return rotate_clockwise(img, rotation)


def resized(img: Image.Image, short_side: int = SHORT_SIDE) -> Image.Image:
    """Scale (Lanczos, aspect kept, nothing cropped) so the shorter side is ``short_side``."""
    w, h = img.size
    scale = short_side / min(w, h)
    size = (short_side, round(h * scale)) if w <= h else (round(w * scale), short_side)
    return img.resize(size, Image.Resampling.LANCZOS)


def encode_jpeg(img: Image.Image) -> bytes:
    """JPEG quality 95, 4:4:4 (no chroma subsampling), no EXIF or ICC metadata."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False, progressive=False)
    return buf.getvalue()


def near_duplicates(hashes: dict[str, imagehash.ImageHash],
                    max_distance: int = DUPLICATE_MAX_DISTANCE) -> list[tuple[str, str, int]]:
    """All pairs ``(a, b, distance)`` (a < b) whose hashes differ in <= max_distance bits."""
    keys = sorted(hashes)
    return [
        (a, b, hashes[a] - hashes[b])
        for i, a in enumerate(keys) for b in keys[i + 1:]
        if hashes[a] - hashes[b] <= max_distance
    ]


def drop_duplicates(photos: list[Photo]) -> tuple[list[Photo], list[tuple[Photo, Photo, int]]]:
    """Keep the largest copy (most original pixels; then the first name) of each group of
    near-duplicates. Returns the kept photos and ``(dropped, kept, distance)``."""
    by_name = {p.name: p for p in photos}
    hashes = {p.name: imagehash.phash(p.image) for p in photos}
    parent = {n: n for n in by_name}

    def root(n: str) -> str:
        while parent[n] != n:
            n = parent[n]
        return n

    pairs = near_duplicates(hashes)
    for a, b, _ in pairs:
        parent[root(a)] = root(b)
    groups: dict[str, list[Photo]] = defaultdict(list)
    for p in photos:
        groups[root(p.name)].append(p)
    dropped: list[tuple[Photo, Photo, int]] = []
    keep = set()
    for members in groups.values():
        best = min(members, key=lambda p: (-p.original_size[0] * p.original_size[1], p.name))
        keep.add(best.name)
        for p in members:
            if p is not best:
                dropped.append((p, best, hashes[p.name] - hashes[best.name]))
    return [p for p in photos if p.name in keep], sorted(dropped, key=lambda d: d[0].name)


def chroma_p99(img: Image.Image) -> float:
    """99th percentile, over a 64 px thumbnail, of the chroma (distance of Cb, Cr from neutral)."""
    thumb = img.copy()
    thumb.thumbnail((64, 64))
    ycc = np.asarray(thumb.convert("YCbCr"), dtype=np.float64)
    return float(np.percentile(np.hypot(ycc[..., 1] - 128, ycc[..., 2] - 128), 99))


# A kept photo whose chroma_p99 is below this is greyscale and stops the build until it is listed
# in EXCLUDED. Here the three greyscale files score 0.0; the least colourful photo kept (a knife
# on white) scores 5.7.
GREY_LIMIT = 2.0


# --- the collection --------------------------------------------------------------------------
def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assign_split(photos: list[Photo], test_fraction: float = TEST_FRACTION,
                 seed: str = SPLIT_SEED) -> dict[str, str]:
    """``{name: "train" | "test"}``: within each category, photos are ordered by
    sha256(seed + sha256 of the original file) and the first round(fraction * n) (at least one
    where the category has two or more) are test."""
    by_category: dict[str, list[Photo]] = defaultdict(list)
    for p in photos:
        by_category[p.category].append(p)
    split = {}
    for members in by_category.values():
        order = sorted(members, key=lambda p: sha256((seed + sha256(p.original)).encode()))
        n_test = max(round(test_fraction * len(order)), 1 if len(order) > 1 else 0)
        for i, p in enumerate(order):
            split[p.name] = "test" if i < n_test else "train"
    return split


def manifest_row(photo: Photo, shipped: bytes, split: str) -> dict[str, str]:
    return {
        "file": f"images/{photo.name}.jpg",
        "category": photo.category,
        "split": split,
        "package": photo.package,
        "version": photo.version,
        "source_path": photo.source_path,
        "original_width": str(photo.original_size[0]),
        "original_height": str(photo.original_size[1]),
        "rotation": str(photo.rotation),
        "licence": photo.lic.licence,
        "credit": photo.lic.credit,
        "sha256_original": sha256(photo.original),
        "sha256": sha256(shipped),
    }


def write_manifest(rows: list[dict[str, str]], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: r["file"]))
    path.write_bytes(buf.getvalue().encode())


COMMON_LICENSES = Path("/usr/share/common-licenses")
# Licence id -> the full texts that go with it (files of /usr/share/common-licenses).
COMMON_TEXTS = {
    "GPL-2+": ("GPL-2",),
    "GPL-3": ("GPL-3",),
    "GPL-3+": ("GPL-3",),
    "LGPL-3": ("LGPL-3", "GPL-3"),
    "GFDL": ("GFDL-1.2", "GFDL-1.3"),
    "GFDL-NIV-1.2": ("GFDL-1.2",),
    "GFDL-NIV-1.2+": ("GFDL-1.2",),
    "CC0-1.0": ("CC0-1.0",),
}


def licence_texts(licences: set[str], packages: list[Package]) -> dict[str, bytes]:
    """``{file name: text}`` for LICENSES/: the full text of every licence used. CC licences
    come from a copyright file's stand-alone ``License:`` paragraph where one has the text,
    else a notice with the licence's canonical URL (which the CC licences accept)."""
    dep5_texts: dict[str, str] = {}
    for pkg in packages:
        try:
            cr = dep5.Copyright(io.StringIO(pkg.copyright.decode()))
        except dep5.NotMachineReadableError:
            continue
        for para in cr.all_license_paragraphs():
            text = para.license.text or ""
            name = para.license.synopsis
            if len(text) > len(dep5_texts.get(name, "")):
                dep5_texts[name] = text
    out: dict[str, bytes] = {}
    for licence in sorted(licences - {"public-domain"}):
        if licence in COMMON_TEXTS:
            for name in COMMON_TEXTS[licence]:
                src = COMMON_LICENSES / name
                if not src.is_file():
                    raise BuildError(f"{src} is needed for {licence} (install base-files)")
                out[f"{name}.txt"] = src.read_bytes()
            continue
        m = re.fullmatch(r"CC-(BY(?:-SA)?)-(\d\.\d)", licence)
        if not m:
            raise BuildError(f"no licence text known for {licence}")
        url = f"https://creativecommons.org/licenses/{m.group(1).lower()}/{m.group(2)}/legalcode"
        text = dep5_texts.get(licence, "")
        if len(text.splitlines()) > 50:  # a full licence, not a one-paragraph notice
            body = text.rstrip("\n") + "\n"
        else:
            body = (f"Creative Commons Attribution{'-ShareAlike' if 'SA' in m.group(1) else ''} "
                    f"{m.group(2)}\n\nThe full legal code is at {url}\n")
        out[f"{licence}.txt"] = body.encode()
    return out


def md_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def attribution(photos: list[Photo], rows: dict[str, dict[str, str]]) -> bytes:
    lines = [
        "# Photo collection: attribution",
        "",
        "Colour photographs taken from Debian packages (bookworm) by `scripts/build_photos.py`,",
        "for training and scoring image colorization. Each photo keeps the licence under which its",
        "package distributes it; the packages' copyright files and the licence texts are in",
        "`LICENSES/`. Modifications: every photo was resized (shorter side 256 px, Lanczos),",
        "converted to sRGB and re-encoded as JPEG (quality 95, 4:4:4, metadata removed); photos",
        "with a rotation below were rotated clockwise by that many degrees, as their package's",
        "index says. Notes quote the package's own remarks (for example earlier upstream edits).",
        "",
        "| file | title / source | credit | licence | package (version) | rotation | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in sorted(photos, key=lambda p: p.name):
        row = rows[p.name]
        title = p.title + (f" <{p.lic.source}>" if p.lic.source else "")
        cells = (row["file"], title, p.lic.credit, p.lic.licence,
                 f"{p.package} ({p.version}) `{p.source_path}`",
                 str(p.rotation) if p.rotation else "", p.lic.notes)
        lines.append("| " + " | ".join(md_cell(c) for c in cells) + " |")
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Report:
    photos: list[Photo]
    excluded: list[tuple[str, str, str]]
    duplicates: list[tuple[Photo, Photo, int]]
    split: dict[str, str]
    upscaled: list[str]
    closest_kept: tuple[str, str, int] | None  # the most similar pair left in the collection


def build(debs: Path, out: Path) -> Report:
    """Build the collection from the .deb files in ``debs`` into ``out``."""
    packages, photos, excluded = collect(debs)
    for p in photos:
        if not p.category:
            raise BuildError(f"{p.package}: no category for {p.source_path}")
        p.image = decode(p.original, p.rotation)
        p.original_size = p.image.size
        if chroma_p99(p.image) < GREY_LIMIT:
            raise BuildError(f"{p.source_path} looks greyscale: list it in EXCLUDED")
    names = [p.name for p in photos]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes or any(not re.fullmatch(r"[a-z0-9_-]+", n) for n in names):
        raise BuildError(f"file names not unique or not [a-z0-9_-]: {clashes}")
    photos, duplicates = drop_duplicates(photos)
    split = assign_split(photos)

    for sub in ("images", "LICENSES"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True)
    rows = {}
    for p in sorted(photos, key=lambda p: p.name):
        shipped = encode_jpeg(resized(p.image))
        (out / "images" / f"{p.name}.jpg").write_bytes(shipped)
        rows[p.name] = manifest_row(p, shipped, split[p.name])
    write_manifest(list(rows.values()), out / "manifest.csv")
    for pkg in packages:
        (out / "LICENSES" / f"{pkg.name}.copyright").write_bytes(pkg.copyright)
    for name, text in licence_texts({p.lic.licence for p in photos}, packages).items():
        (out / "LICENSES" / name).write_bytes(text)
    (out / "ATTRIBUTION.md").write_bytes(attribution(photos, rows))
    upscaled = sorted(p.name for p in photos if min(p.original_size) < SHORT_SIDE)
    hashes = {p.name: imagehash.phash(p.image) for p in photos}
    pairs = near_duplicates(hashes, max_distance=64)
    closest = min(pairs, key=lambda t: (t[2], t[0], t[1])) if pairs else None
    return Report(photos, excluded, duplicates, split, upscaled, closest)


def print_report(report: Report) -> None:
    def counts(key) -> str:
        c: dict[str, int] = defaultdict(int)
        for p in report.photos:
            c[key(p)] += 1
        return ", ".join(f"{k} {v}" for k, v in sorted(c.items()))

    print(f"{len(report.photos)} photos")
    print("per package:", counts(lambda p: p.package))
    print("per category:", counts(lambda p: p.category))
    print("per category, test:", counts(lambda p: f"{p.category}/{report.split[p.name]}"))
    print("licences:", counts(lambda p: p.lic.licence))
    print(f"{len(report.duplicates)} near-duplicates dropped:")
    for dropped, kept, distance in report.duplicates:
        print(f"  {dropped.name} ({dropped.original_size[0]}x{dropped.original_size[1]}) "
              f"duplicates {kept.name} ({kept.original_size[0]}x{kept.original_size[1]}), "
              f"distance {distance}")
    if report.closest_kept:
        a, b, distance = report.closest_kept
        print(f"closest pair kept: {a} and {b}, distance {distance}")
    print(f"{len(report.excluded)} files left out:")
    for package, path, reason in report.excluded:
        print(f"  {package} {path}: {reason}")
    print(f"{len(report.upscaled)} photos are smaller than {SHORT_SIDE} px and were enlarged")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--debs", type=Path,
                        help="folder with the .deb files (default: apt-get download them)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    args = parser.parse_args(argv)
    try:
        if args.debs:
            print_report(build(args.debs, args.out))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                print_report(build(apt_download(Path(tmp)), args.out))
    except BuildError as err:
        print(f"build_photos: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
