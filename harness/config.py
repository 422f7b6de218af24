"""Run configuration: YAML read safely, overridden with ``--set``, validated into typed objects."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from harness import limits
from harness.colorizer import Budget
from harness.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetConfig(_Strict):
    """Training budget; training stops at whichever limit comes first."""

    epochs: int | None = Field(None, ge=1)
    steps: int | None = Field(None, ge=1)
    minutes: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_limit(self) -> BudgetConfig:
        if self.epochs is None and self.steps is None and self.minutes is None:
            raise ValueError("set at least one of epochs, steps or minutes")
        return self

    def to_budget(self) -> Budget:
        return Budget(epochs=self.epochs, steps=self.steps, minutes=self.minutes)


class DataConfig(_Strict):
    """Where images come from and how the shared loader prepares them."""

    source: str = "demo"
    path: Path | None = None
    size: int = Field(64, ge=8, multiple_of=8, description="model input and training crop size")
    eval_size: int | None = Field(None, ge=8, description="cache and scoring size (>= size)")
    train_scale: float = Field(
        1.25, ge=1.0, description="side of the training images before the random size crop, "
                                  "in units of size; 1 = the scale models see at test")
    split: Literal["fixed", "random"] = Field(
        "fixed", description="fixed: the source's own split where it has one (photos, "
                             "seg_train/seg_test), else seeded random; random: always a seeded "
                             "random split, stratified by class label")
    test_fraction: float = Field(0.25, gt=0, lt=1)
    val_fraction: float = Field(0.0, ge=0, lt=1)
    grey_chroma: float = Field(5.0, ge=0, description="images with no pixel above it are grey")
    include_grey: bool = False
    max_images: int | None = Field(None, ge=2)
    max_pixels: int = Field(
        limits.DEFAULT_MAX_PIXELS, ge=64,
        description="images with more pixels are skipped, judged from the header before decoding")
    cache_dir: Path | None = None
    workers: int = Field(2, ge=1)
    options: dict[str, Any] = Field(default_factory=dict, description="for third-party sources")

    @field_validator("size", "eval_size")
    @classmethod
    def _side(cls, value: int | None) -> int | None:
        return limits.at_most(value, limits.MAX_SIDE, limits.SIDE_REASON)

    @field_validator("train_scale")
    @classmethod
    def _train_side(cls, value: float, info: ValidationInfo) -> float:
        size = info.data.get("size")
        if size is not None and round(size * value) > limits.MAX_SIDE:
            raise ValueError(f"size x train_scale = {size} x {value} must be <= "
                             f"{limits.MAX_SIDE}: {limits.SIDE_REASON}")
        return value

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: int) -> int:
        return limits.at_most(value, limits.MAX_WORKERS, limits.WORKERS_REASON)

    @model_validator(mode="after")
    def _sizes(self) -> DataConfig:
        if self.eval_size is not None and self.eval_size < self.size:
            raise ValueError(f"eval_size ({self.eval_size}) must be >= size ({self.size})")
        if not self.include_grey and self.grey_chroma >= _max_srgb_chroma():
            raise ValueError(f"grey_chroma = {self.grey_chroma} would exclude every image as "
                             f"grey: no sRGB colour has a chroma above "
                             f"{_max_srgb_chroma():.1f} (pure blue); lower it or set "
                             f"include_grey: true")
        return self

    @property
    def cache_size(self) -> int:
        return self.eval_size or self.size

    @property
    def train_size(self) -> int:
        """Side of the training images the random ``size`` crops are drawn from."""
        return max(self.size, round(self.size * self.train_scale))


def _max_srgb_chroma() -> float:
    """The largest chroma of any sRGB colour: pure blue's (the maximum over the gamut)."""
    import numpy as np

    from harness.color import rgb_to_lab

    lab = rgb_to_lab(np.array([[[0.0, 0.0, 1.0]]], dtype=np.float32))[0, 0]
    return float(np.hypot(lab[1], lab[2]))


class ModelConfig(_Strict):
    """One model to train and score: a registered colorizer and its options."""

    plugin: str
    name: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    budget: BudgetConfig | None = None

    @property
    def label(self) -> str:
        return self.name or self.plugin


class HintsConfig(_Strict):
    """Simulated user hints for the methods that take them (:mod:`harness.hints`).

    Each count is its own table row per hint-taking model, ``NAME@N``. Written either as the
    list of counts alone (``hints: [1, 10, 100]``, the sampler and patch at their defaults) or
    as a mapping (``hints: {counts: [1, 10], sampler: gaussian, patch: [1, 9]}``).
    """

    counts: list[StrictInt] = Field(min_length=1, description="hints per test image, one row each")
    sampler: Literal["uniform", "gaussian"] = Field(
        "uniform", description="patch positions: uniform, or Zhang et al. 2017's Gaussian "
                               "centred on the image")
    patch: tuple[int, int] = Field((1, 5), description="smallest and largest patch side (px), "
                                                       "drawn uniformly between them")

    @model_validator(mode="before")
    @classmethod
    def _list_of_counts(cls, data: Any) -> Any:
        return {"counts": data} if isinstance(data, list) else data

    @field_validator("counts")
    @classmethod
    def _counts(cls, counts: list[int]) -> list[int]:
        if any(n < 0 for n in counts):
            raise ValueError("hint counts must be >= 0")
        dupes = sorted({n for n in counts if counts.count(n) > 1})
        if dupes:
            raise ValueError(f"each hint count may appear once ({', '.join(map(str, dupes))} "
                             f"repeated)")
        return counts

    @field_validator("patch")
    @classmethod
    def _patch(cls, patch: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= patch[0] <= patch[1]:
            raise ValueError("expected [smallest, largest] sides with 1 <= smallest <= largest")
        return patch


class ReportConfig(_Strict):
    """What the comparison table and report show."""

    reference: str | None = Field(None, description="model the others are tested against")
    samples: int = Field(4, ge=0, description="test images in the sample grid")
    headline: list[str] = Field(
        default_factory=lambda: ["auc-rebalanced", "lpips-alex", "dcf", "psnr"],
        description="metrics of the compact table harness run prints (all are in table.md)")
    bootstrap: int = Field(1000, ge=100, description="bootstrap resamples for intervals")
    alpha: float = Field(0.05, gt=0, lt=1)

    @field_validator("bootstrap")
    @classmethod
    def _bootstrap(cls, value: int) -> int:
        return limits.at_most(value, limits.MAX_BOOTSTRAP, limits.BOOTSTRAP_REASON)


class ThreadsConfig(_Strict):
    """Intra-op threads per framework and OpenMP's wait policy (see :mod:`harness.threads`).

    None keeps the user's environment (``OMP_NUM_THREADS``, ``OMP_WAIT_POLICY``) or else the
    measured default. The wait policy counts only when set before torch starts, as
    ``harness run`` does.
    """

    torch: int | None = Field(None, ge=1, description="torch intra-op threads")
    tensorflow: int | None = Field(None, ge=1, description="TensorFlow intra-op threads")
    omp_wait_policy: Literal["active", "passive"] | None = Field(
        None, description="passive: idle OpenMP threads sleep instead of spinning")

    @field_validator("torch", "tensorflow")
    @classmethod
    def _threads(cls, value: int | None) -> int | None:
        return limits.at_most(value, limits.MAX_THREADS, limits.THREADS_REASON)

    def apply(self) -> None:
        """Make these the process's thread settings (:func:`harness.threads.choose`)."""
        from harness import threads

        threads.choose(self.torch, self.tensorflow, self.omp_wait_policy)


def _default_backend() -> str:
    from harness.execution import default_backend

    return default_backend()


class ExecutionConfig(_Strict):
    """Where each model job runs (see :mod:`harness.execution`).

    ``inline``: in the ``harness run`` process, one after another. ``process``: each job in a
    fresh spawned process, ``workers`` at a time, a GPU each on a GPU machine (CPU cores split
    between them otherwise). ``ray``: each job a Ray task on ``ray.init(address)``.
    """

    backend: Literal["inline", "process", "ray"] = Field(
        default_factory=_default_backend,
        description="default: HARNESS_BACKEND when set, else process")
    workers: int | None = Field(
        None, ge=1, description="jobs at a time; default: one per visible GPU, else 1 on a CPU")
    address: str | None = Field(
        None, description="ray only: 'auto' or ray://host:10001 for a running cluster; "
                          "unset starts a local Ray instance")
    gpus_per_job: float = Field(1.0, gt=0, description="ray only: GPUs each job asks for, "
                                                        "when the run's device is a GPU")

    @field_validator("workers")
    @classmethod
    def _workers(cls, value: int | None) -> int | None:
        return limits.at_most(value, limits.MAX_JOBS, limits.JOBS_REASON)

    @field_validator("gpus_per_job")
    @classmethod
    def _gpus(cls, value: float) -> float:
        return limits.at_most(value, limits.MAX_GPUS_PER_JOB, limits.GPUS_PER_JOB_REASON)


class RunConfig(_Strict):
    """A whole run: data, models, budget, metrics, extra plugins, hints, report and threads.

    ``hints`` (:class:`HintsConfig`) is needed when a model takes hints (``levin``): each of
    its counts gives that model a row ``NAME@N``, scored on hints the host draws from each test
    image's ground truth at the evaluation size, the same for every hint-taking model.
    """

    name: str = Field("run", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    seed: int = 0
    device: str = "auto"
    data: DataConfig = Field(default_factory=DataConfig)
    models: list[ModelConfig] = Field(min_length=1)
    budget: BudgetConfig = Field(default_factory=lambda: BudgetConfig(epochs=1))
    metrics: Literal["all"] | list[str] = "all"
    plugins: list[str] = Field(default_factory=list, description="extra plugin modules")
    plugin_dir: Path | None = Field(
        None, description="folder searched before sys.path for the plugins: modules; "
                          "default: the config file's folder (recorded in the run's config)")
    hints: HintsConfig | None = Field(
        None, description="hint counts (and sampler, patch sides) for hint-taking models")
    report: ReportConfig = Field(default_factory=ReportConfig)
    threads: ThreadsConfig = Field(default_factory=ThreadsConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    output_dir: Path = Path("results")

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int) -> int:
        if not 0 <= value <= limits.MAX_SEED:
            raise ValueError(f"expected an integer from 0 to {limits.MAX_SEED} (2**32 - 1): "
                             f"NumPy's and Keras's seeding take 32-bit unsigned seeds")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        head, _, index = value.partition(":")
        if head in ("auto", "cpu", "mps") and not index:
            return value
        if head == "cuda" and (not index or index.isdigit()):
            return value
        raise ValueError("expected auto, cpu, cuda, cuda:N or mps")

    @model_validator(mode="after")
    def _unique_names(self) -> RunConfig:
        labels = [m.label for m in self.models]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; give each a 'name' ({', '.join(dupes)})")
        ref = self.report.reference
        if ref is not None and ref not in labels and ref.rpartition("@")[0] not in labels:
            raise ValueError(f"report.reference = {self.report.reference!r} is not a model of "
                             f"this config (models: {', '.join(labels)})")
        taken = [x for x in labels if "@" in x]
        if taken:
            raise ValueError(f"'@' is reserved for hint rows (NAME@N); rename {', '.join(taken)}")
        return self

    @model_validator(mode="after")
    def _patch_fits(self) -> RunConfig:
        if self.hints is not None and self.hints.patch[1] > self.data.cache_size:
            raise ValueError(f"hints.patch: largest side {self.hints.patch[1]} exceeds the "
                             f"evaluation size {self.data.cache_size}, where hints are drawn")
        return self

    def budget_for(self, model: ModelConfig) -> Budget:
        return (model.budget or self.budget).to_budget()


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``X``, ``X | None`` or ``list[X]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _submodel(arg)
        if found is not None:
            return found
    return None


def _fields_at(model: type[BaseModel] | None, parts: tuple[Any, ...]) -> list[str]:
    """The valid keys of the mapping that holds the last element of ``parts``."""
    for part in parts[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        model = _submodel(field.annotation) if field else None
    return list(model.model_fields) if model is not None else []


def describe_validation_error(
    exc: ValidationError, source: str, model: type[BaseModel], prefix: tuple[Any, ...] = ()
) -> str:
    """One paragraph naming the file, key path, bad value and what was expected.

    A typo shows up as both an unknown key and a missing one; the unknown key is reported.
    """
    err = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    loc = prefix + tuple(err["loc"])
    where = _loc(loc) or "(top level)"
    value = err.get("input")
    if err["type"] == "extra_forbidden":
        valid = _fields_at(model, tuple(err["loc"]))
        key = str(loc[-1])
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        msg = f"{source}: unknown key '{where}'.{hint} Valid keys here: {', '.join(valid)}."
    elif err["type"] == "missing":
        msg = f"{source}: '{where}' is required but missing."
    else:
        # A validator's own message already says what is wrong; pydantic prefixes its kind.
        text = str(err["ctx"]["error"]) if err["type"] == "value_error" else err["msg"]
        if isinstance(value, dict):  # a check across keys: its message names them
            msg = f"{source}: {text}." if not loc else f"{source}: '{where}': {text}."
        else:
            msg = f"{source}: '{where}' = {value!r} is invalid: {text}."
    more = len(exc.errors()) - 1
    return msg + (f" ({more} more problem{'s' * (more > 1)} after this one.)" if more else "")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b[0].c=value`` -> (["a", "b", "0", "c"], parsed YAML value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set data.size=32")
    path = key.strip().replace("[", ".").replace("]", "").split(".")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({exc})") from None
    return path, value


def apply_override(data: dict[str, Any], path: list[str], value: Any, text: str) -> None:
    """Set ``value`` at ``path`` inside the raw config mapping, creating mappings as needed."""
    node: Any = data
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {text!r}: '{part}' is not an index of a {len(node)}-item"
                                  f" list at '{'.'.join(path[:i])}'")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"--set {text!r}: '{'.'.join(path[:i])}' is not a mapping or list")


def _read_config_text(path: Path) -> str:
    """The file's text; a ConfigError when it is not a regular file of UTF-8 text of sane size."""
    if path.exists() and not path.is_file():  # a folder; a FIFO or device would block
        raise ConfigError(f"{path}: not a regular file; a config is a YAML text file")
    try:
        with open(path, "rb") as f:
            raw = f.read(limits.MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    if len(raw) > limits.MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {limits.MAX_CONFIG_BYTES >> 20} MiB; a run "
                          f"config is a YAML text file of a few kB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file (byte {exc.start} is "
                          f"0x{raw[exc.start]:02x}, not UTF-8); a config is YAML text, "
                          f"e.g. configs/smoke.yaml") from None


def load_config(path: Path | str, overrides: list[str] = ()) -> RunConfig:
    """Read, override and validate a run config; every user error is a :class:`ConfigError`."""
    path = Path(path)
    text = _read_config_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML: "
                          f"{getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level, "
                          f"got {type(data).__name__}")
    for item in overrides:
        keys, value = parse_override(item)
        apply_override(data, keys, value, item)
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(path), RunConfig)) from None
    folder = path.resolve().parent
    return cfg.model_copy(update={"plugin_dir": folder / (cfg.plugin_dir or "")})


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """A config mapping as ``{"dotted.key": JSON of the value}``; lists stay whole.

    >>> flatten({"data": {"size": 64}, "models": [{"plugin": "gray"}]})
    {'data.size': '64', 'models': '[{"plugin": "gray"}]'}
    """
    if isinstance(data, dict):
        out: dict[str, str] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: json.dumps(data, sort_keys=True, default=str)}


def dump_config(cfg: RunConfig) -> str:
    """The resolved config as YAML, defaults filled in; ``hints`` only when set, so a run
    without hint-taking models records the same config as before hints existed."""
    data = cfg.model_dump(mode="json")
    if data["hints"] is None:
        del data["hints"]
    return yaml.safe_dump(data, sort_keys=False)
