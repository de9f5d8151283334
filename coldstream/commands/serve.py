"""``coldstream serve``: an inference worker over the snapshot store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coldstream.console import out
from coldstream.options import (
    BrokerOpt,
    PrefixOpt,
    settings_or_fail,
)

__all__ = ["serve"]


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
    settings = settings_or_fail(
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
