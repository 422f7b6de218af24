"""Write README.md's plugin reference from the docstrings of the plugin-facing API.

The reference is the block between ``<!-- reference:begin -->`` and ``<!-- reference:end -->``
in README.md; ``tests/test_plugin_reference.py`` fails when it differs from what this script
generates, so it cannot drift from the code. Docstrings are read with :mod:`ast`, so nothing
is imported (no framework is needed to regenerate it).

Run: ``python scripts/plugin_reference.py`` (rewrites README.md in place), or ``--check``.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- reference:begin -->", "<!-- reference:end -->"

#: (module file, class or function, members to document; None: the whole class's public API)
SURFACE = [
    ("harness/hookspecs.py", "harness_register_colorizers", ()),
    ("harness/hookspecs.py", "harness_register_metrics", ()),
    ("harness/hookspecs.py", "harness_register_datasets", ()),
    ("harness/colorizer.py", "Colorizer", ("framework", "Options", "takes_hints", "stateless",
                                           "fit", "predict", "save", "load", "extra_results")),
    ("harness/colorizer.py", "PluginOptions", ()),
    ("harness/colorizer.py", "Budget", ()),
    ("harness/colorizer.py", "FitContext", ("checkpoint_dir",)),
    ("harness/data/dataset.py", "LabSet", ("has_labels", "image_size", "iter_batches",
                                           "arrays", "batch", "sample", "torch_loader",
                                           "keras_dataset")),
    ("harness/hints.py", "Hints", ()),
    ("harness/metrics/__init__.py", "Metric", ()),
    ("harness/metrics/__init__.py", "ImageBatch", ("rgb_pred", "rgb_true", "from_truth")),
    ("harness/train/options.py", "TrainOptions", ()),
    ("harness/train/options.py", "TorchTrainOptions", ()),
    ("harness/train/options.py", "KerasTrainOptions", ()),
    ("harness/train/torch_trainer.py", "TorchColorizer", ("build_network", "loss", "decode",
                                                          "prepare")),
    ("harness/train/keras_trainer.py", "KerasColorizer", ("build_model", "loss")),
]


def _module(path: str) -> str:
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def _signature(node: ast.FunctionDef) -> str:
    args = ast.unparse(node.args)
    args = args.removeprefix("self, ").removeprefix("self").removeprefix("cls, ")
    return f"{node.name}({args})"


def _doc(node: ast.AST) -> str:
    return inspect.cleandoc(ast.get_docstring(node) or "(no docstring)")


def _indent(text: str) -> str:
    return "\n".join(("  " + line) if line else "" for line in text.splitlines())


def _member(cls: ast.ClassDef, name: str, path: str) -> str:
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            decorators = {ast.unparse(d) for d in node.decorator_list}
            shown = f"{name} (property)" if decorators & {"property", "cached_property"} \
                else _signature(node)
            return f"- `{shown}`\n\n{_indent(_doc(node))}"
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == name:
            comment = _comment_before(path, node.lineno)
            value = f" = {ast.unparse(node.value)}" if node.value is not None else ""
            return f"- `{name}{value}`" + (f": {comment}" if comment else "")
    raise SystemExit(f"{path}: {cls.name}.{name} not found")


def _comment_before(path: str, lineno: int) -> str:
    """The ``#:`` comment lines just above line ``lineno`` (Sphinx's attribute docs)."""
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    out = []
    i = lineno - 2
    while i >= 0 and lines[i].strip().startswith("#:"):
        out.insert(0, lines[i].strip()[2:].strip())
        i -= 1
    return " ".join(out)


def _fields(cls: ast.ClassDef) -> list[str]:
    return [f"`{ast.unparse(n.target)}: {ast.unparse(n.annotation)}"
            + (f" = {ast.unparse(n.value)}`" if n.value is not None else "`")
            for n in cls.body if isinstance(n, ast.AnnAssign) and
            not ast.unparse(n.target).startswith("_") and "ClassVar" not in
            ast.unparse(n.annotation)]


def reference() -> str:
    """The Markdown of the reference block (without the markers)."""
    trees: dict[str, ast.Module] = {}
    parts = ["Generated from the docstrings by `scripts/plugin_reference.py`; a test keeps it "
             "in step with the code."]
    for path, name, members in SURFACE:
        tree = trees.setdefault(path, ast.parse((ROOT / path).read_text(encoding="utf-8")))
        node = next(n for n in tree.body if getattr(n, "name", None) == name)
        qual = f"{_module(path)}.{name}"
        if isinstance(node, ast.FunctionDef):
            parts.append(f"#### `{_module(path)}.{_signature(node)}`\n\n{_doc(node)}")
            continue
        text = f"#### `{qual}`\n\n{_doc(node)}"
        fields = _fields(node) if not members else []
        if fields:
            text += "\n\nFields: " + ", ".join(fields) + "."
        if members:
            text += "\n\n" + "\n".join(_member(node, m, path) for m in members)
        parts.append(text)
    return "\n\n".join(parts) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    new = f"{head}{BEGIN}\n{reference()}{END}{tail}"
    if args.check:
        if new != text:
            print("README.md's plugin reference is stale: run scripts/plugin_reference.py")
            return 1
        return 0
    readme.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
