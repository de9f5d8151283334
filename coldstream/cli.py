"""The ``coldstream`` command. ``coldstream --help`` lists the subcommands."""

from __future__ import annotations

import dataclasses
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import typer
from rich.table import Table

from coldstream.commands.compare import (
    DEFAULT_MODELS,
    EveryOpt,
    FeedbackOpt,
    InitOpt,
    JobsOpt,
    KOpt,
    ModelsOpt,
    ReportOpt,
    SeedOpt,
    TeacherOpt,
    ThreadsOpt,
    ThresholdOpt,
    WindowOpt,
)
from coldstream.console import err, out, progress_bar
from core.errors import ColdstreamError
from core.logs import setup_logging
from core.settings import Settings
from streams.broker import MEMORY
from streams.datasets import FORMAT_CHOICES, FORMAT_HELP

__all__ = ["app", "main"]

app = typer.Typer(
    name="coldstream",
    help="Keep a small recommender fresh from a Kafka event stream.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

BrokerOpt = Annotated[
    str | None,
    typer.Option(
        "--broker",
        help="Kafka bootstrap servers, host:port or kafka://host:port [env: COLDSTREAM_BROKER]",
        show_default=False,
    ),
]
PrefixOpt = Annotated[
    str | None,
    typer.Option("--topic-prefix", help="topic name prefix [env: COLDSTREAM_TOPIC_PREFIX]"),
]
PartitionsOpt = Annotated[
    int | None,
    typer.Option(
        "--partitions", min=1, help="partitions of topics created [env: COLDSTREAM_PARTITIONS]"
    ),
]

FieldOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--field",
        help="read a field under another name: [KIND.]CANONICAL=SOURCE (repeatable) "
        "[env: COLDSTREAM_FIELD_MAP]",
    ),
]


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _settings(**overrides: object) -> Settings:
    try:
        return Settings.load(**overrides)
    except ColdstreamError as exc:
        _fail(str(exc), 2)


def _field_map(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    mapping = {}
    for pair in pairs:
        canonical, sep, source = pair.partition("=")
        if not sep or not canonical or not source:
            raise typer.BadParameter(
                f"{pair!r} is not CANONICAL=SOURCE; write e.g. --field user_id=userId",
                param_hint="--field",
            )
        mapping[canonical.strip()] = source.strip()
    return mapping


def _check_feedback(feedback: str) -> None:
    if feedback not in ("implicit", "explicit"):
        raise typer.BadParameter(
            f"{feedback!r} is not a feedback kind: use implicit or explicit",
            param_hint="--feedback",
        )


@app.command()
def broker(
    host: Annotated[
        str, typer.Option(help="address to listen on (loopback by default)")
    ] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="port; a free one when left out")
    ] = None,
    topics: Annotated[
        bool, typer.Option("--topics/--no-topics", help="create the coldstream topics")
    ] = True,
    topic_prefix: PrefixOpt = None,
    partitions: PartitionsOpt = None,
    storage: Annotated[
        str,
        typer.Option(
            help="memory://tansu/ (nothing survives a stop) or s3://BUCKET/: topics, records "
            "and group offsets in an S3-compatible store, found again after a restart; its "
            "address and credentials come from AWS_ENDPOINT, AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION (and AWS_ALLOW_HTTP=true for http://)",
            envvar="COLDSTREAM_BROKER_STORAGE",
        ),
    ] = MEMORY,
) -> None:
    """Run the embedded Kafka-compatible broker until Ctrl-C or SIGTERM."""
    from streams.broker import EmbeddedBroker
    from streams.topics import ensure_topics

    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]warning:[/] listening on {host}: the embedded broker has no auth")
    try:
        embedded = EmbeddedBroker(host, port, storage=storage)
    except ColdstreamError as exc:
        _fail(str(exc))
    stop = {"signal": 0}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop["signal"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            embedded.start()
        except ColdstreamError as exc:
            _fail(str(exc))
        if topics:
            settings = _settings(
                broker=embedded.bootstrap, topic_prefix=topic_prefix, partitions=partitions
            )
            made = ensure_topics(settings)
            err.print(f"topics: {', '.join(made)}")
        err.print(f"storage: {storage}", highlight=False)
        out.print(f"broker listening on {embedded.bootstrap}", highlight=False)
        out.print(f"export COLDSTREAM_BROKER={embedded.bootstrap}", highlight=False)
        out.file.flush()
        while not stop["signal"]:
            if not embedded.running():
                _fail(f"the broker exited unexpectedly:\n{embedded.log_tail()}")
            time.sleep(0.2)
        err.print(f"stopping the broker ({signal.Signals(stop['signal']).name})")
    finally:
        embedded.stop()
        for s, handler in old.items():
            signal.signal(s, handler)


@app.command()
def generate(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT", help="directory to write")],
    users: Annotated[int, typer.Option(min=1, help="number of users")] = 2000,
    items: Annotated[int, typer.Option(min=1, help="number of items")] = 1000,
    events: Annotated[int, typer.Option(min=1, help="number of interactions")] = 100_000,
    seed: Annotated[int, typer.Option(help="random seed; same seed, same files")] = 0,
    topics: Annotated[int, typer.Option(min=2, help="latent topics of the catalog")] = 16,
    feedback: Annotated[
        str, typer.Option(help="implicit (clicks, value 1) or explicit (ratings 1-5)")
    ] = "implicit",
    drift_at: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="fraction of the stream where preferences shift"),
    ] = None,
    initial_item_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="items that exist at the start")
    ] = 0.3,
    new_user_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="users who first appear mid-stream")
    ] = 0.2,
) -> None:
    """Write a synthetic, time-ordered dataset: items.jsonl, users.jsonl, interactions.jsonl."""
    from streams.synthetic import SyntheticConfig, write_jsonl
    from streams.synthetic import generate as make

    _check_feedback(feedback)
    if drift_at is not None and not 0.0 < drift_at < 1.0:
        raise typer.BadParameter(
            "give a fraction strictly between 0 and 1", param_hint="--drift-at"
        )
    try:
        config = SyntheticConfig(
            users=users,
            items=items,
            events=events,
            seed=seed,
            topics=topics,
            feedback=feedback,  # type: ignore[arg-type]
            drift_at=drift_at,
            initial_item_fraction=initial_item_fraction,
            new_user_fraction=new_user_fraction,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    start = time.perf_counter()
    with progress_bar("generating", events) as advance:
        dataset = make(config, progress=advance)
    paths = write_jsonl(dataset, out_dir)
    took = time.perf_counter() - start
    table = Table(title=f"wrote {out_dir} in {took:.1f} s", show_header=True)
    table.add_column("file")
    table.add_column("records", justify="right")
    table.add_row(str(paths["items"]), f"{len(dataset.items):,}")
    table.add_row(str(paths["users"]), f"{len(dataset.users):,}")
    table.add_row(str(paths["interactions"]), f"{len(dataset.interactions):,}")
    out.print(table)


@app.command()
def load(
    source: Annotated[Path, typer.Argument(help="a dataset directory or file")],
    format: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "auto",
    broker: BrokerOpt = None,
    topic_prefix: PrefixOpt = None,
    partitions: PartitionsOpt = None,
    field: FieldOpt = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="publish nothing if any row is invalid")
    ] = False,
    create_topics: Annotated[
        bool, typer.Option("--create-topics/--no-create-topics", help="create missing topics")
    ] = True,
) -> None:
    """Publish a dataset into the topics in event-time order (Kafka timestamp = event time)."""
    from streams.datasets import FORMATS, open_dataset
    from streams.load import publish_dataset
    from streams.topics import ensure_topics

    if format not in FORMATS:
        raise typer.BadParameter(
            f"unknown format {format!r}: use {FORMAT_CHOICES}", param_hint="--format"
        )
    settings = _settings(
        broker=broker, topic_prefix=topic_prefix, partitions=partitions, field_map=_field_map(field)
    )
    try:
        with err.status(f"reading {source}"):
            dataset = open_dataset(source, format, fields=settings.fields, limits=settings.limits)
    except ColdstreamError as exc:
        _fail(str(exc))
    if dataset.bad:
        err.print(f"[yellow]{len(dataset.bad):,} invalid row(s)[/], for example:")
        for row in dataset.bad[:5]:
            err.print(f"  {row.source}:{row.line}: {row.invalid.reason}", highlight=False)
        if strict:
            _fail("--strict: nothing was published; fix the rows above or drop --strict")
    try:
        if create_topics:
            ensure_topics(settings)
        with progress_bar("publishing", len(dataset)) as advance:
            report = publish_dataset(dataset, settings, progress=advance)
    except ColdstreamError as exc:
        _fail(str(exc))
    table = Table(title=f"loaded {source} ({dataset.format}) into {settings.broker}")
    table.add_column("topic")
    table.add_column("messages", justify="right")
    for topic, n in report.published.items():
        table.add_row(topic, f"{n:,}")
    table.add_row(f"{settings.topics.dlq} (invalid rows)", f"{report.dead_lettered:,}")
    out.print(table)
    out.print(
        f"{report.events:,} events in {report.seconds:.1f} s: {report.events_per_s:,.0f} events/s"
    )
    if report.failed:
        _fail(f"{report.failed:,} message(s) were not delivered; first error: {report.first_error}")


@app.command()
def worker(
    role: Annotated[
        str, typer.Option(help="student (the student), baseline (River) or all (both, one process)")
    ] = "student",
    broker: BrokerOpt = None,
    topic_prefix: PrefixOpt = None,
    group_id: Annotated[
        str | None, typer.Option(help="consumer group prefix; the role is appended")
    ] = None,
    checkpoint_dir: Annotated[
        Path | None, typer.Option(help="where checkpoints go [env: COLDSTREAM_CHECKPOINT_DIR]")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="/metrics port; 0 picks a free one")
    ] = None,
    teacher: Annotated[str | None, typer.Option(help="teacher model path or name")] = None,
    feedback: Annotated[
        str, typer.Option(help="implicit (every event is positive) or explicit (ratings)")
    ] = "implicit",
    threshold: Annotated[
        float, typer.Option(help="positive threshold for explicit feedback")
    ] = 4.0,
    k: Annotated[int, typer.Option(min=1, help="K of the live Recall@K")] = 20,
    eval_every: Annotated[
        int,
        typer.Option(
            min=1,
            help="rank every Nth positive for the live metrics (every interaction is learned); "
            "1 ranks all, at about half the learning rate",
        ),
    ] = 10,
    checkpoint_s: Annotated[
        float, typer.Option(min=0.05, help="seconds between checkpoints")
    ] = 10.0,
    checkpoint_events: Annotated[
        int, typer.Option(min=1, help="records between checkpoints (whichever comes first)")
    ] = 100_000,
    max_poll_records: Annotated[
        int, typer.Option(min=1, help="most records fetched per partition and batch")
    ] = 5000,
    threads: Annotated[
        int, typer.Option(min=1, help="torch and BLAS threads (1 is fastest for small models)")
    ] = 1,
    adapt: Annotated[
        bool,
        typer.Option(
            "--adapt/--no-adapt",
            help="on a drift detection, boost the student's learning rates and replay only "
            "recent events for a while (see the README's Drift section)",
        ),
    ] = False,
    field: FieldOpt = None,
    init: Annotated[
        Path | None,
        typer.Option(
            help="start the student from this checkpoint (coldstream pretrain) instead of zero; "
            "a worker checkpoint in --checkpoint-dir, once there, takes precedence"
        ),
    ] = None,
) -> None:
    """Learn online from the topics (Faust), checkpoint, and serve /metrics, until Ctrl-C."""
    from streams.worker import ROLES

    if role not in ROLES:
        raise typer.BadParameter(
            f"unknown role {role!r}: use {', '.join(ROLES)}", param_hint="--role"
        )
    if init is not None:
        if not init.is_file():
            raise typer.BadParameter(
                f"{init} is not a file: make one with coldstream pretrain", param_hint="--init"
            )
        if "student" not in ROLES[role]:
            raise typer.BadParameter(
                f"role {role!r} has no student to start from a checkpoint: use --role student "
                "or --role all",
                param_hint="--init",
            )
    _check_feedback(feedback)
    settings = _settings(
        broker=broker,
        topic_prefix=topic_prefix,
        group_id=group_id,
        checkpoint_dir=checkpoint_dir,
        metrics_port=metrics_port,
        teacher_model=teacher,
        field_map=_field_map(field),
    )
    from coldstream.runner import run_worker_command

    try:
        run_worker_command(
            settings,
            role=role,
            threshold=threshold if feedback == "explicit" else None,
            k=k,
            eval_every=eval_every,
            checkpoint_s=checkpoint_s,
            checkpoint_events=checkpoint_events,
            max_poll_records=max_poll_records,
            threads=threads,
            adapt=adapt,
            init=init,
        )
    except ColdstreamError as exc:
        _fail(str(exc))


@app.command()
def replay(
    from_: Annotated[
        str,
        typer.Option(
            "--from",
            help="earliest, an offset (every partition from it) or an ISO-8601 time (events "
            "at or after it; naive = UTC)",
        ),
    ] = "earliest",
    until: Annotated[
        str,
        typer.Option(
            help="end (each partition's end when reading starts) or an ISO-8601 time "
            "(events before it)"
        ),
    ] = "end",
    report: ReportOpt = Path("reports/replay"),
    broker: BrokerOpt = None,
    topic_prefix: PrefixOpt = None,
    field: FieldOpt = None,
    models: ModelsOpt = DEFAULT_MODELS,
    k: KOpt = 20,
    feedback: FeedbackOpt = "implicit",
    threshold: ThresholdOpt = None,
    every: EveryOpt = 1,
    teacher: TeacherOpt = None,
    seed: SeedOpt = 0,
    init: InitOpt = None,
    window: WindowOpt = None,
    threads: ThreadsOpt = 1,
    jobs: JobsOpt = None,
    time_index: Annotated[
        bool,
        typer.Option(
            "--time-index/--no-time-index",
            help="with --from TIME: start where the broker's time index says (checked by "
            "reading) or read every partition from its beginning",
        ),
    ] = True,
) -> None:
    """Prequential comparison of the models on a range of the topics' history (read-only:
    no consumer group, nothing committed, nothing written)."""
    from coldstream.commands.compare import options, positive_threshold
    from core.errors import ConfigError
    from core.threads import limit_threads
    from streams.history import check_range, parse_from, parse_until

    try:
        start = parse_from(from_)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--from") from None
    try:
        end = parse_until(until)
        check_range(start, end)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--until") from None
    _check_feedback(feedback)
    opts = options(
        models,
        k=k,
        report=report,
        every=every,
        teacher=teacher,
        seed=seed,
        init=init,
        threshold=positive_threshold(feedback, threshold),
        window=window,
    )
    from core.threads import cores

    opts = dataclasses.replace(opts, jobs=jobs or cores())
    settings = _settings(broker=broker, topic_prefix=topic_prefix, field_map=_field_map(field))
    from coldstream.commands.replay import run_replay

    try:
        with limit_threads(threads):
            run_replay(settings, start, end, opts, feedback=feedback, use_time_index=time_index)
    except ColdstreamError as exc:
        _fail(str(exc))


@app.command()
def demo(
    events: Annotated[int, typer.Option(min=100, help="interactions to generate")] = 20_000,
    out_dir: Annotated[
        Path, typer.Option("--out", help="where the data and the children's logs go")
    ] = Path("data/demo"),
    report: Annotated[Path, typer.Option(help="where the replay report goes")] = Path(
        "reports/demo"
    ),
    broker: BrokerOpt = None,
) -> None:
    """Everything on the embedded broker: generate, worker, inference, live display, replay."""
    from coldstream.demo import run_demo

    def on_interrupt(signum: int, frame: object) -> None:
        # said at once: stopping the worker and the inference worker takes a few seconds
        err.print("stopping… (the broker, the worker and the inference worker)")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        run_demo(events=events, out_dir=out_dir, report_dir=report, broker=broker)
    except ColdstreamError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        err.print("stopped: every process the demo started has exited")
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGINT, previous)


@app.command()
def serve(
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="HTTP port; 0 picks a free one [8080]")
    ] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "0.0.0.0",
    snapshot_dir: Annotated[
        Path | None, typer.Option(help="snapshot store [env: COLDSTREAM_SNAPSHOT_DIR]")
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option(
            help="auto (CUDA when it really works, else CPU), cuda or cpu "
            "[env: COLDSTREAM_SERVE_PROVIDER; default auto]"
        ),
    ] = None,
    max_batch: Annotated[
        int | None, typer.Option(min=1, help="most users scored in one ONNX run [256]")
    ] = None,
    threads: Annotated[
        int, typer.Option(min=0, help="ONNX Runtime intra-op threads (0: one per core)")
    ] = 0,
    announcements: Annotated[
        bool,
        typer.Option(
            "--announcements/--no-announcements",
            help="also reload on <prefix>.snapshots messages (LATEST is polled in any case)",
        ),
    ] = True,
    broker: BrokerOpt = None,
    topic_prefix: PrefixOpt = None,
) -> None:
    """Answer recommendation requests from the newest ONNX snapshot, reloading new ones."""
    if provider is not None and provider not in ("auto", "cuda", "cpu"):
        raise typer.BadParameter(
            f"unknown provider {provider!r}: use auto, cuda or cpu", param_hint="--provider"
        )
    settings = _settings(
        broker=broker,
        topic_prefix=topic_prefix,
        snapshot_dir=snapshot_dir,
        http_port=port,
        serve_provider=provider,
        serve_max_batch=max_batch,
    )
    import asyncio

    from serving.scorer import available_providers
    from serving.server import InferenceServer
    from serving.server import serve as run_server

    server = InferenceServer(settings, threads=threads, announcements=announcements)

    def ready(bound: int) -> None:
        out.print(
            f"inference worker on http://{host}:{bound} (snapshots from {settings.snapshot_dir}; "
            f"onnxruntime providers available: {', '.join(available_providers())})"
        )
        out.file.flush()

    asyncio.run(run_server(server, host=host, port=settings.http_port, ready=ready))


def _register_learning_commands() -> None:
    from coldstream.commands import evaluate, pretrain

    app.command()(evaluate)
    app.command()(pretrain)


_register_learning_commands()


def main() -> None:
    setup_logging()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
