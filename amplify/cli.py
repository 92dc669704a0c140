"""The `amplify` command: one verb per job, each taking Hydra `key=value` overrides.

    amplify synth out=DIR clips=N seed=S          synthetic labelled corpus
        [scenarios=[cut_in,...]]                  ... plus each scene's scenario twins
    amplify sheet out=sheet.png seed=S            contact sheet: one scene under every condition
    amplify run input=DIR output=DIR              the amplification job: ingest + variations
    amplify status output=DIR                     committed jobs and counts of a dataset
    amplify submit input=DIR output=DIR address=URL   the same job on a Ray cluster (Ray Jobs)
    amplify status|logs|cancel job=ID / amplify list  follow submitted jobs by their Ray job id
    amplify train tokenizer ...                   train the video tokenizer (Ray Train)
    amplify eval tokenizer input=DIR              tokenizer reconstruction quality and speed
    amplify train wfm ... / eval wfm ...          the conditional world model
    amplify train classifier ...                  the condition classifier eval wfm scores with
    amplify demo                                  synth + run on the embedded defaults

`amplify VERB --help` shows the verb's config with its defaults. Heavy imports (Ray, MLflow,
torch) happen inside the verb, so `--help` is instant.
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from amplify.errors import AmplifyError, ConfigError


@dataclass(frozen=True)
class Verb:
    name: str  # as typed: "run", "train tokenizer"
    config: str  # configs/<config>.yaml
    schema: str  # "module:Class"
    handler: str  # "module:function", called with the config dataclass
    help: str


VERBS = [
    Verb(
        "synth",
        "synth",
        "amplify.synth.corpus:SynthConfig",
        "amplify.cli:do_synth",
        "render a synthetic labelled driving corpus",
    ),
    Verb(
        "sheet",
        "sheet",
        "amplify.cli:SheetConfig",
        "amplify.cli:do_sheet",
        "contact sheet PNG of one scene under every condition",
    ),
    Verb(
        "run",
        "run",
        "amplify.config:RunConfig",
        "amplify.cli:do_run",
        "the amplification job: ingest clips, generate variations, write Parquet",
    ),
    Verb(
        "status",
        "status",
        "amplify.cli:StatusConfig",
        "amplify.cli:do_status",
        "committed jobs, counts and errors of a dataset (output=DIR), or a submitted job (job=ID)",
    ),
    Verb(
        "submit",
        "submit",
        "pipelines.submit:SubmitConfig",
        "pipelines.submit:do_submit",
        "send the `run` job to a Ray cluster (Ray Jobs, address=http://HOST:8265); prints its id",
    ),
    Verb(
        "logs",
        "logs",
        "pipelines.submit:LogsConfig",
        "pipelines.submit:do_logs",
        "the output of a submitted job (job=ID, follow=true to stream it)",
    ),
    Verb(
        "cancel",
        "cancel",
        "pipelines.submit:CancelConfig",
        "pipelines.submit:do_cancel",
        "stop a submitted job (job=ID); nothing it staged is committed",
    ),
    Verb(
        "list",
        "list",
        "pipelines.submit:ListConfig",
        "pipelines.submit:do_list",
        "the jobs submitted to a Ray cluster, with their state and dataset",
    ),
    Verb(
        "report",
        "report",
        "amplify.report:ReportConfig",
        "amplify.report:report",
        "HTML report of a job: source windows and variations playing side by side",
    ),
    Verb(
        "export",
        "export",
        "amplify.export.config:ExportConfig",
        "amplify.export.job:export",
        "export a dataset for training: splits, filters, Parquet / WebDataset / COCO, card",
    ),
    Verb(
        "train tokenizer",
        "train_tokenizer",
        "pipelines.train_tokenizer:TokenizerTrainConfig",
        "pipelines.train_tokenizer:train",
        "train the video tokenizer on Ray Train",
    ),
    Verb(
        "eval tokenizer",
        "eval_tokenizer",
        "amplify.tokenizer.evaluate:TokenizerEvalConfig",
        "amplify.tokenizer.evaluate:evaluate",
        "tokenizer reconstruction PSNR/SSIM and speed",
    ),
    Verb(
        "train wfm",
        "train_wfm",
        "pipelines.train_wfm:WFMTrainConfig",
        "pipelines.train_wfm:train",
        "train the conditional world model on Ray Train",
    ),
    Verb(
        "train grade",
        "train_grade",
        "amplify.wfm.fit:GradeTrainConfig",
        "amplify.wfm.fit:train",
        "train the default (grade-head) world model on synthetic twins and real footage",
    ),
    Verb(
        "eval wfm",
        "eval_wfm",
        "amplify.wfm.evaluate:WFMEvalConfig",
        "amplify.wfm.evaluate:evaluate",
        "world model vs ground-truth twins and baselines",
    ),
    Verb(
        "eval scenarios",
        "eval_scenarios",
        "amplify.eval.scenarios:ScenarioEvalConfig",
        "amplify.eval.scenarios:run",
        "scenario edits against ground-truth twins per template: box SSIM, detector recall",
    ),
    Verb(
        "eval real",
        "eval_real",
        "amplify.eval.real:RealEvalConfig",
        "amplify.eval.real:run",
        "world model on real clips of known condition: identity, structure, classifier",
    ),
    Verb(
        "train classifier",
        "train_classifier",
        "amplify.eval.classifier:ClassifierTrainConfig",
        "amplify.eval.classifier:train_classifier",
        "train the condition classifier used by eval wfm",
    ),
    Verb(
        "train detector",
        "train_detector",
        "amplify.eval.detector:DetectorTrainConfig",
        "amplify.eval.detector:train",
        "train the agent detector used by eval scenarios",
    ),
    Verb(
        "train painter",
        "train_painter",
        "amplify.wfm.paint_train:PainterTrainConfig",
        "amplify.wfm.paint_train:train",
        "train the scenario painter (inserted / removed agents) on synthetic twins",
    ),
    Verb(
        "demo",
        "demo",
        "amplify.cli:DemoConfig",
        "amplify.cli:do_demo",
        "synthetic corpus + real clips -> dataset, on embedded defaults",
    ),
]


@dataclass(frozen=True)
class StatusConfig:
    """`amplify status`: what a dataset folder holds, or where a submitted job is.

    amplify status output=DIR                        committed jobs, counts and errors
    amplify status job=ID address=http://HOST:8265   a job of `amplify submit`: its state,
                                                     times, and its dataset once committed
    """

    output: str = "out/dataset"
    job: str = ""  # a Ray job id (`amplify submit`, `amplify list`): report it instead of output
    address: str = ""  # with job=: the cluster's dashboard, http://HOST:8265; "" = RAY_ADDRESS


@dataclass(frozen=True)
class SheetConfig:
    """`amplify sheet`: one synthetic scene under every weather x time of day, as one PNG
    (plus a row of ground truth: semantic, instance, depth, boxes)."""

    out: str = "contact_sheet.png"
    seed: int = 0
    frame: int = -1  # -1: the middle frame
    width: int = 256
    height: int = 128
    intensity: float = 0.8
    gt_row: bool = True


@dataclass(frozen=True)
class DemoConfig:
    """`amplify demo`: a small synthetic corpus plus the real clips, through the job."""

    out: str = "demo_out"
    clips: int = 1
    seed: int = 0
    real: str = "../shared/data/real"  # added when present
    # The world model turns clear-day synthetic clips and real footage into these conditions
    # (first window of each clip, to keep the demo to a few minutes on a laptop CPU).
    variations: list[str] = field(
        default_factory=lambda: ["rain_day", "fog_day", "snow_day", "clear_dusk", "clear_night"]
    )
    # Rare events painted into the same windows (docs/SCENARIOS.md), each also under
    # `scenario_conditions` (a pedestrian crossing at night in rain).
    scenarios: list[str] = field(
        default_factory=lambda: ["pedestrian_crossing", "cut_in", "lead_braking"]
    )
    scenario_conditions: list[str] = field(default_factory=lambda: ["rain_night"])


def _resolve(ref: str):
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def usage() -> str:
    width = max(len(v.name) for v in VERBS)
    lines = [
        "usage: amplify VERB [key=value ...]",
        "",
        "Driving-scenario data amplification. Each verb takes Hydra overrides (key=value,",
        "nested.key=value); `amplify VERB --help` shows its keys and defaults.",
        "",
        "verbs:",
    ]
    lines += [f"  {v.name:<{width}}  {v.help}" for v in VERBS]
    return "\n".join(lines)


def verb_help(verb: Verb) -> str:
    from omegaconf import OmegaConf

    from amplify.config import CONFIG_DIR

    schema = _resolve(verb.schema)
    doc = (schema.__doc__ or "").strip()
    defaults = OmegaConf.to_yaml(OmegaConf.structured(schema))
    yaml = CONFIG_DIR / f"{verb.config}.yaml"
    return (
        f"usage: amplify {verb.name} [key=value ...]\n\n{doc}\n\n"
        f"values from {yaml} over these defaults:\n{defaults}"
    )


def find_verb(argv: list[str]) -> tuple[Verb | None, list[str]]:
    for v in sorted(VERBS, key=lambda v: -len(v.name.split())):
        words = v.name.split()
        if argv[: len(words)] == words:
            return v, argv[len(words) :]
    return None, argv


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    verb, rest = find_verb(argv)
    if verb is None:
        print(f"amplify: unknown verb {' '.join(argv[:2])!r}\n\n{usage()}", file=sys.stderr)
        return 2
    if any(a in ("-h", "--help") for a in rest):
        print(verb_help(verb))
        return 0
    # `--address=URL` reads as `address=URL` (the form of `ray job submit`); `++key=` stays Hydra's.
    rest = [
        a[2:] if a.startswith("--") and not a.startswith("---") and "=" in a else a for a in rest
    ]
    bad = [a for a in rest if "=" not in a]
    if bad:
        print(
            f"amplify {verb.name}: arguments must be key=value overrides, got {bad}",
            file=sys.stderr,
        )
        return 2
    from amplify.config import load_config

    try:
        cfg = load_config(verb.config, _resolve(verb.schema), rest)
        result = _resolve(verb.handler)(cfg)
    except ConfigError as e:
        print(f"amplify {verb.name}: {e}", file=sys.stderr)
        return 2
    except AmplifyError as e:
        print(f"amplify {verb.name}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except FileNotFoundError as e:
        print(f"amplify {verb.name}: {e}", file=sys.stderr)
        return 1
    return int(result) if isinstance(result, int) else 0


# Handlers of the verbs defined here --------------------------------------------------------------


def do_synth(cfg) -> int:
    from amplify.synth.corpus import make_corpus

    make_corpus(cfg)
    return 0


def do_sheet(cfg: SheetConfig) -> int:
    from amplify.synth.contact_sheet import contact_sheet

    path = contact_sheet(
        cfg.seed,
        cfg.out,
        frame=None if cfg.frame < 0 else cfg.frame,
        width=cfg.width,
        height=cfg.height,
        intensity=cfg.intensity,
        gt_row=cfg.gt_row,
    )
    print(f"contact sheet: {path}")
    return 0


def do_run(cfg) -> int:
    from pipelines.run import run_job

    result = run_job(cfg)
    print_result(result)
    return result.exit_code  # 1 when more than `max_error_rate` of the inputs failed


def print_result(result) -> None:
    print(f"dataset:  {result.output}  (frames/, clips/, errors/, README.md)")
    print(f"manifest: {result.manifest}")
    if result.report:
        print(f"report:   {result.report}  (source vs variations, middle frame, boxes drawn)")
    if result.mlflow_run_id:
        print(
            f"mlflow:   run {result.mlflow_run_id} in {result.tracking_uri}  (mlflow ui --backend-store-uri {result.tracking_uri})"
        )


def do_status(cfg: StatusConfig) -> int:
    if cfg.job:
        from pipelines.submit import job_status

        return job_status(cfg.job, cfg.address)
    from amplify.dataset.reader import read_table
    from amplify.dataset.writer import read_manifests

    out = Path(cfg.output)
    jobs = read_manifests(out)
    if not jobs:
        print(f"{out}: no committed job")
        return 1
    for m in jobs:
        print(f"{m.job_id}  {m.created}  " + json.dumps(m.counts, sort_keys=True))
    errors = read_table(out, "errors", ["source_path", "stage", "error_type", "message"])
    for row in errors.to_pylist():
        print(f"error  {row['stage']:<7} {row['error_type']:<22} {row['message']}")
    return 0


def do_demo(cfg: DemoConfig) -> int:
    import shutil

    from amplify.config import GenerateConfig, RunConfig, TrackingConfig
    from amplify.errors import SchemaError
    from amplify.synth.contact_sheet import contact_sheet
    from amplify.synth.corpus import SynthConfig, make_corpus, scene_seed
    from pipelines.run import run_job

    out = Path(cfg.out).resolve()
    corpus = out / "corpus"
    print(f"1/3 synthetic corpus: {cfg.clips} scene(s) under every condition -> {corpus}")
    make_corpus(SynthConfig(out=str(corpus), clips=cfg.clips, seed=cfg.seed))
    sheet = contact_sheet(scene_seed(cfg.seed, 0), out / "contact_sheet.png")
    extra = []
    real = Path(cfg.real)
    if real.is_dir():
        extra.append(str(real.resolve()))
        print(f"    + real clips from {real}")
    print(
        "2/3 job: ingest -> world-model variations and scenarios -> Parquet dataset (embedded Ray, "
        "local MLflow)"
    )
    run_cfg = RunConfig(
        input=str(corpus),
        output=str(out / "dataset"),
        extra_inputs=extra,
        generate=GenerateConfig(
            variations=list(cfg.variations),
            source_conditions=["clear_day", "unknown"],
            max_windows_per_clip=1,
            scenarios=list(cfg.scenarios),
            scenario_variations=list(cfg.scenario_conditions),
        ),
        tracking=TrackingConfig(uri=f"sqlite:///{out / 'mlflow.db'}"),
    )
    try:
        result = run_job(run_cfg)
    except SchemaError as e:  # a demo dataset written by an older amplify: the demo starts over
        print(f"    {e}\n    the demo's dataset is disposable: starting it over")
        shutil.rmtree(out / "dataset")
        result = run_job(run_cfg)
    print()
    print_result(result)
    page = out / "dataset" / "_reports" / f"{result.job_id}.html"
    if page.is_file():
        print(f"html:     {page}  (source and variations playing side by side; open in a browser)")
    print(f"synth:    {sheet}  (the synthetic scene as rendered under every condition)")
    print()
    print(
        "3/3 export: train / validation / test by source clip, for training jobs (docs/EXPORT.md)"
    )
    from amplify.export.config import ExportConfig
    from amplify.export.job import run_export

    export = out / "export"
    run_export(ExportConfig(input=str(out / "dataset"), output=str(export), overwrite=True,
                            formats=["parquet", "webdataset", "coco"]))  # fmt: skip
    print(
        f"export:   {export}  (Parquet for datasets/polars/Ray Data, WebDataset mp4 shards, COCO;"
    )
    print(f"          its card: {export / 'README.md'}; load it with amplify.data)")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
