"""docker/ without Docker: the compose stack, Prometheus and Grafana agree with each other and
with the code (settings defaults, the metrics it registers, the model and slice names)."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from bench.dashboards import DASHBOARD, load_dashboard, panels, queries
from core.settings import Settings
from exporters.metrics import RankMetrics, WorkerMetrics
from models.evaluation import SLICES
from models.registry import MODEL_NAMES
from serving.metrics import InferenceMetrics

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _yaml(DOCKER / "compose.yaml")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]  # type: ignore[no-any-return]


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def _settings(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the service's process would build from its COLDSTREAM_* variables."""
    with monkeypatch.context() as m:
        for key, value in _env(service).items():
            if key.startswith("COLDSTREAM_"):
                m.setenv(key, re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value))
        return Settings.load()


def _option(service: dict[str, Any], flag: str) -> str | None:
    args = list(service.get("command") or [])
    return args[args.index(flag) + 1] if flag in args else None


def _exposed_names() -> set[str]:
    """Every series name the worker and inference metrics can expose."""
    registry = CollectorRegistry()
    WorkerMetrics.create(registry)
    RankMetrics.create(registry, 0, 2)
    InferenceMetrics.create(registry)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    names = set()
    for family in registry.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


# -- compose ----------------------------------------------------------------------------------
def test_compose_has_the_stack_and_the_one_shots(services: dict[str, Any]) -> None:
    always = {"kafka", "worker", "baseline", "serve", "prometheus", "grafana"}
    assert always | {"load", "replay"} == set(services)
    for name in always:
        assert "profiles" not in services[name], f"{name} must start with `up`"
    for name in ("load", "replay"):
        assert services[name]["profiles"] == [name]


def test_every_file_compose_refers_to_exists(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    named = set(compose["volumes"])
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert context.is_dir(), name
            assert (context / build["dockerfile"]).is_file(), name
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (DOCKER / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in named, f"{name} uses undeclared volume {source}"


@pytest.mark.parametrize(
    ("dockerfile", "base", "entry"),
    [
        ("Dockerfile.worker", "python:3.11-slim", '["coldstream", "worker"]'),
        ("Dockerfile.serve", "nvidia/cuda:13.", '["coldstream", "serve"]'),
    ],
)
def test_dockerfiles(dockerfile: str, base: str, entry: str) -> None:
    text = (DOCKER / dockerfile).read_text()
    assert base in text and f"ENTRYPOINT {entry}" in text
    cpu_torch = text.index("download.pytorch.org/whl/cpu")
    assert cpu_torch < text.index("RUN pip install .\n"), "CPU torch before the package"
    for line in text.splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (REPO / src).exists(), f"{dockerfile} copies missing {src}"
    if dockerfile == "Dockerfile.serve":
        assert "onnxruntime-gpu" in text and "cudnn-runtime" in text


def test_kafka_is_one_kraft_node_that_the_services_can_reach(services: dict[str, Any]) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    for name, svc in services.items():
        if "COLDSTREAM_BROKER" in _env(svc):
            assert _env(svc)["COLDSTREAM_BROKER"] == advertised["INTERNAL"], name
            assert "kafka" in svc["depends_on"], name


def test_every_coldstream_variable_is_a_setting(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = {f"COLDSTREAM_{f.upper()}" for f in Settings.model_fields}
    for name, svc in services.items():
        unknown = {k for k in _env(svc) if k.startswith("COLDSTREAM_")} - fields
        assert not unknown, f"{name}: {unknown}"
        _settings(svc, monkeypatch)  # and valid values


def test_worker_and_serve_share_the_snapshot_store(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    mounts = {}
    for name in ("worker", "serve"):
        store = str(_settings(services[name], monkeypatch).snapshot_dir)
        mounts[name] = next(
            v.split(":")[0] for v in services[name]["volumes"] if v.split(":")[1] == store
        )
    assert mounts["worker"] == mounts["serve"] == "snapshots"


def test_serve_reserves_an_nvidia_gpu(services: dict[str, Any]) -> None:
    devices = services["serve"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)


def test_roles(services: dict[str, Any]) -> None:
    assert _option(services["worker"], "--role") == "student"
    assert _option(services["baseline"], "--role") == "baseline"


# -- prometheus -------------------------------------------------------------------------------
def _listening_port(name: str, svc: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> int:
    settings = _settings(svc, monkeypatch)
    if name == "serve":
        return int(_option(svc, "--port") or settings.http_port)
    return settings.metrics_port


def test_prometheus_scrapes_every_process_where_it_listens(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _yaml(DOCKER / "prometheus" / "prometheus.yml")
    targets = {
        t
        for job in config["scrape_configs"]
        for sc in job["static_configs"]
        for t in sc["targets"]
        if not t.startswith("localhost:")
    }
    expected = {
        f"{name}:{_listening_port(name, services[name], monkeypatch)}"
        for name in ("worker", "baseline", "serve")
    }
    assert targets == expected
    assert "worker:9464" in targets and "serve:8080" in targets  # the settings defaults
    for name in ("worker", "baseline", "serve"):  # and the host sees the same port
        port = _listening_port(name, services[name], monkeypatch)
        assert f"{port}:{port}" in services[name]["ports"]
    prom = services["prometheus"]
    assert "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom["volumes"]


# -- grafana ----------------------------------------------------------------------------------
def _mount(svc: dict[str, Any], source: str) -> str:
    return next(v.split(":")[1] for v in svc["volumes"] if v.split(":")[0] == source)


def test_grafana_provisions_the_datasource_and_the_dashboard(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    provisioning = DOCKER / "grafana" / "provisioning"
    assert _mount(grafana, "./grafana/provisioning") == "/etc/grafana/provisioning"
    (source,) = _yaml(provisioning / "datasources" / "prometheus.yaml")["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = _yaml(provisioning / "dashboards" / "coldstream.yaml")["providers"]
    assert provider["options"]["path"] == _mount(grafana, "./grafana/dashboards")
    assert DASHBOARD.parent == DOCKER / "grafana" / "dashboards"

    dashboard = load_dashboard()
    assert dashboard["uid"] == "coldstream"
    for panel in panels(dashboard):
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"], panel["title"]
    assert all(q.datasource["uid"] == source["uid"] for q in queries())


def test_every_panel_reads_metrics_the_code_registers() -> None:
    exposed = _exposed_names()
    used: set[str] = set()
    for q in queries():
        assert q.metrics(), f"{q.panel} {q.ref} reads no coldstream metric"
        unknown = q.metrics() - exposed
        assert not unknown, f"{q.panel} {q.ref}: {unknown}"
        used |= q.metrics()
        expr = q.promql()
        for a, b in ("()", "[]", "{}"):
            assert expr.count(a) == expr.count(b), f"{q.panel} {q.ref}: unbalanced {a}{b}"
    wanted = {  # what the dashboard must show
        "coldstream_events_total",
        "coldstream_dead_letters_total",
        "coldstream_event_to_model_seconds_bucket",
        "coldstream_event_to_servable_seconds_bucket",
        "coldstream_train_batch_seconds_bucket",
        "coldstream_recall_at_k",
        "coldstream_drift_detections_total",
        "coldstream_psi",
        "coldstream_snapshot_version",
        "coldstream_inference_snapshot_version",
        "coldstream_inference_snapshot_created_timestamp_seconds",
        "coldstream_inference_request_seconds_bucket",
        "coldstream_inference_provider",
        "coldstream_broker_connected",
        "coldstream_fetch_stall_seconds",
        "coldstream_offset_resets_total",
        "coldstream_sync_seconds_sum",
        "coldstream_sync_part_seconds_total",
        "coldstream_sync_bytes_total",
    }
    assert wanted <= used, wanted - used


def test_panel_label_values_exist() -> None:
    for q in queries():
        for label, values in re.findall(r'\b(model|slice)=~?"([^"]*)"', q.expr):
            known = MODEL_NAMES if label == "model" else SLICES
            for value in values.split("|"):
                assert value in known, f"{q.panel}: {label}={value!r}"
    recall = " ".join(q.expr for q in queries() if "coldstream_recall_at_k" in q.expr)
    for needed in ('slice="all"', '"0|1-5"', '"student|river"'):
        assert needed in recall
