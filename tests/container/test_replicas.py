"""API replicas behind HAProxy (docker-compose.replicas.yml), for real: spread, kill, rejoin, drain.

Brings up docker-compose.yml + docker-compose.replicas.yml (quick training, two replicas, the
balancer built from deploy/haproxy), then, with a real MNIST digit through the balancer:

- requests spread over every replica, each named in ``X-Replica``, every answer right;
- 32 clients in a loop; one replica SIGKILLed mid-load: how many requests failed (at most those
  in flight on it; with HAProxy's L7 retries, none), when they failed, when the balancer took it
  out of rotation;
- the killed replica restarted: back in rotation once its /health/ready answers 200;
- 32 clients; one replica stopped (SIGTERM, it drains): no request fails.

The figures are printed (``-s``) and written to a JSON file whose path is printed at the end.
Run with ``make test-container``, or alone:

    .venv/bin/pytest tests/container/test_replicas.py -m container -s -p no:cacheprovider

The trainer runs test_compose's image (CONTAINER_TEST_IMAGE, mnist-service:container-test), the
replicas ``REPLICAS_TEST_IMAGE`` (default: test_compose's lean image, built from the api-lite
target, as docker-compose.replicas.yml runs them), or for example the full image:

    REPLICAS_TEST_IMAGE=mnist-service:container-test .venv/bin/pytest tests/container/test_replicas.py ...

Both images are built from ./Dockerfile by the fixture (from the layer cache after
test_compose.py). Everything the test starts is torn down, volumes included.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import numpy as np
import pytest

from tests.container.test_compose import (
    IMAGE as COMPOSE_TEST_IMAGE,
)
from tests.container.test_compose import (
    LITE_IMAGE,
    QUICK_TRAINING,
    READY_TIMEOUT_S,
    ROOT,
    SAMPLE_PATH,
    Stack,
    free_port,
    png_bytes,
    run,
)

pytestmark = [pytest.mark.container, pytest.mark.timeout(3600)]

TRAINER_IMAGE = COMPOSE_TEST_IMAGE
# The replicas run the lean image by default, as docker-compose.replicas.yml does.
IMAGE = os.environ.get("REPLICAS_TEST_IMAGE", LITE_IMAGE)
LB_IMAGE = os.environ.get("REPLICAS_TEST_LB_IMAGE", "mnist-service-lb:container-test")
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.replicas.yml")
HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
REPLICAS = 2
CLIENTS = 32
WARM_UP_S = 3.0  # load before the kill or stop, so both replicas are busy
AFTER_S = 8.0  # load after it
SAMPLE_EVERY_S = 0.1  # how often the balancer's stats are read
SLACK_S = 1.0  # scheduling on 2 shared cores: `docker kill` itself takes a few hundred ms


def _health_check_settings() -> tuple[float, int, int]:
    """inter (s), fall and rise from haproxy.cfg's default-server line, so the test follows it."""
    line = next(
        line
        for line in HAPROXY_CFG.read_text().splitlines()
        if line.strip().startswith("default-server")
    )
    inter = re.search(r"\binter (\d+)(ms|s)\b", line)
    fall = re.search(r"\bfall (\d+)\b", line)
    rise = re.search(r"\brise (\d+)\b", line)
    assert inter, f"no inter in {line!r}"
    assert fall, f"no fall in {line!r}"
    assert rise, f"no rise in {line!r}"
    inter_s = int(inter[1]) / (1000 if inter[2] == "ms" else 1)
    return inter_s, int(fall[1]), int(rise[1])


CHECK_INTER_S, CHECK_FALL, CHECK_RISE = _health_check_settings()


# ---------------------------------------------------------------- the balancer's view


class Balancer:
    """HAProxy's stats page (/stats;csv on the stats port): one row per server slot."""

    def __init__(self, stats_url: str) -> None:
        self.client = httpx.Client(base_url=stats_url, trust_env=False, timeout=5)

    def rows(self) -> list[dict[str, str]]:
        text = self.client.get("/stats;csv").text.removeprefix("# ")
        return [row for row in csv.DictReader(io.StringIO(text)) if row["pxname"] == "api"]

    def servers(self) -> dict[str, dict[str, str]]:
        """Slot name (api1, api2, ...) -> its stats row, for slots that have an address."""
        return {
            row["svname"]: row
            for row in self.rows()
            if row["svname"] not in ("FRONTEND", "BACKEND") and row["addr"]
        }

    def backend(self) -> dict[str, str]:
        return next(row for row in self.rows() if row["svname"] == "BACKEND")

    def slot_of(self, ip: str) -> str | None:
        return next(
            (name for name, row in self.servers().items() if row["addr"].split(":")[0] == ip),
            None,
        )

    def wait_until_up(self, count: int, timeout: float = READY_TIMEOUT_S) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            up = {n: r["addr"] for n, r in self.servers().items() if r["status"] == "UP"}
            if len(up) >= count:
                return up
            time.sleep(0.5)
        pytest.fail(f"fewer than {count} replicas UP after {timeout}s: {self.servers()}")


@dataclass
class Sample:
    t: float
    servers: dict[str, dict[str, str]]
    backend: dict[str, str]


class Sampler:
    """Reads the stats every SAMPLE_EVERY_S in a thread, each sample stamped with monotonic time."""

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rows = self.balancer.rows()
            except httpx.HTTPError:
                self._stop.wait(SAMPLE_EVERY_S)
                continue
            t = time.monotonic()
            servers = {r["svname"]: r for r in rows if r["svname"] not in ("FRONTEND", "BACKEND")}
            backend = next(r for r in rows if r["svname"] == "BACKEND")
            self.samples.append(Sample(t, servers, backend))
            self._stop.wait(SAMPLE_EVERY_S)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# ---------------------------------------------------------------- the load


@dataclass
class Outcome:
    started: float
    ended: float
    status: int | None  # None: a transport error
    replica: str | None
    best_guess: int | None
    label: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.best_guess == self.label


@dataclass
class Load:
    """``clients`` clients, each with its own connection, posting digits in a loop until stopped.

    The clients run on an asyncio loop in a background thread, so the test drives the stack
    (``docker kill``, stats) from its own thread meanwhile.
    """

    base_url: str
    digits: list[tuple[bytes, int]]
    clients: int = CLIENTS
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        await asyncio.gather(*(self._client(i) for i in range(self.clients)))

    async def _client(self, number: int) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, trust_env=False, timeout=30) as client:
            n = number
            while not self._stop.is_set():
                png, label = self.digits[n % len(self.digits)]
                n += 1
                started = time.monotonic()
                try:
                    files = {"file": ("digit.png", png, "image/png")}
                    response = await client.post("/predict", files=files)
                except httpx.HTTPError as exc:
                    self.outcomes.append(
                        Outcome(started, time.monotonic(), None, None, None, label, repr(exc))
                    )
                    continue
                ended = time.monotonic()
                ok = response.status_code == 200
                self.outcomes.append(
                    Outcome(
                        started,
                        ended,
                        response.status_code,
                        response.headers.get("x-replica"),
                        response.json()["best_guess"] if ok else None,
                        label,
                        None if ok else response.text[:200],
                    )
                )

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the load clients did not stop"


# ---------------------------------------------------------------- the stack


@dataclass
class Replicas:
    stack: Stack
    balancer: Balancer
    digits: list[tuple[bytes, int]]
    figures: dict[str, Any]

    def containers(self) -> list[str]:
        """The API replicas' container names, in replica order."""
        names = run(
            "docker",
            "ps",
            "-a",
            "--filter",
            f"label=com.docker.compose.project={self.stack.project}",
            "--filter",
            "label=com.docker.compose.service=api",
            "--format",
            "{{.Names}}",
        ).split()
        assert len(names) == REPLICAS, f"expected {REPLICAS} replicas, found {names}"
        return sorted(names)

    def address(self, container: str) -> str:
        networks = json.loads(run("docker", "inspect", container))[0]["NetworkSettings"]["Networks"]
        (address,) = {n["IPAddress"] for n in networks.values() if n.get("IPAddress")}
        return address

    def slot_of(self, container: str, timeout: float = 10) -> str:
        """The balancer's slot for ``container``, by address (DNS fills slots within a second)."""
        ip = self.address(container)
        deadline = time.monotonic() + timeout
        while (slot := self.balancer.slot_of(ip)) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert slot is not None, f"{container} ({ip}) is in no slot: {self.balancer.servers()}"
        return slot


def _digits_the_model_gets_right(base_url: str) -> list[tuple[bytes, int]]:
    """One test digit per class, kept where the (quickly trained) model classifies it right."""
    with np.load(SAMPLE_PATH) as f:
        x_test, y_test = f["x_test"], f["y_test"]
    firsts = {int(label): int(np.flatnonzero(y_test == label)[0]) for label in range(10)}
    by_class = {label: png_bytes(x_test[i]) for label, i in firsts.items()}
    kept = []
    with httpx.Client(base_url=base_url, trust_env=False, timeout=30) as client:
        for label, png in sorted(by_class.items()):
            response = client.post("/predict", files={"file": ("digit.png", png, "image/png")})
            assert response.status_code == 200, response.text
            if response.json()["best_guess"] == label:
                kept.append((png, label))
    assert len(kept) >= 7, f"the quick model got only {len(kept)}/10 digits right"
    return kept


@pytest.fixture(scope="module")
def lb_image() -> str:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI: run ../shared/tools/containers-setup as root first")
    started = time.monotonic()
    run("docker", "build", "-t", LB_IMAGE, "deploy/haproxy", timeout=1200)
    print(f"\n[replicas] balancer image {LB_IMAGE} built in {time.monotonic() - started:.0f}s")
    # Built here too (seconds from the layer cache after test_compose.py): this module can run
    # alone, and a stale tag must not be tested. Another REPLICAS_TEST_IMAGE is used as it is.
    wanted = [("api", TRAINER_IMAGE)] + ([("api-lite", IMAGE)] if IMAGE == LITE_IMAGE else [])
    for target, image in wanted:
        started = time.monotonic()
        run("docker", "build", "--target", target, "-t", image, ".", timeout=3000)
        print(f"[replicas] image {image} built in {time.monotonic() - started:.0f}s")
    return LB_IMAGE


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    figures: dict[str, Any] = {
        "replicas": REPLICAS,
        "clients": CLIENTS,
        "image": IMAGE,
        "health_check": {"inter_s": CHECK_INTER_S, "fall": CHECK_FALL, "rise": CHECK_RISE},
    }
    yield figures
    path = tmp_path_factory.mktemp("replicas") / "figures.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n[replicas] figures: {path}\n{json.dumps(figures, indent=2)}")


@pytest.fixture(scope="module")
def replicas(lb_image: str, figures: dict[str, Any]) -> Iterator[Replicas]:
    """The replica stack up with quick training, every replica UP; `down -v` afterwards."""
    lb_port, stats_port = free_port(), free_port()
    env = {
        **os.environ,
        "COMPOSE_FILE": ":".join(COMPOSE_FILES),
        "COMPOSE_PATH_SEPARATOR": ":",
        "IMAGE": TRAINER_IMAGE,
        "API_IMAGE": IMAGE,
        "LB_IMAGE": lb_image,
        "LB_PORT": str(lb_port),
        "LB_STATS_PORT": str(stats_port),
        "REPLICAS": str(REPLICAS),
        "TRAIN_ARGS": QUICK_TRAINING,
        # The test's own volumes, never a developer's models or data.
        "MODELS_VOLUME": "models",
        "DATA_VOLUME": "mnist-data",
    }
    stack = Stack(f"mnistrt{uuid.uuid4().hex[:8]}", env, f"http://127.0.0.1:{lb_port}")
    balancer = Balancer(f"http://127.0.0.1:{stats_port}")
    try:
        started = time.monotonic()
        stack.up()  # the balancer's /health/ready: at least one replica answers
        up = balancer.wait_until_up(REPLICAS)
        figures["first_up_s"] = round(time.monotonic() - started, 1)
        print(f"[replicas] train + {REPLICAS} replicas UP in {figures['first_up_s']}s: {up}")
        yield Replicas(stack, balancer, _digits_the_model_gets_right(stack.base_url), figures)
    finally:
        balancer.client.close()
        stack.down()


# ---------------------------------------------------------------- measurements


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _describe_failures(outcomes: list[Outcome], t0: float) -> list[dict[str, Any]]:
    return [
        {
            "started_s": round(o.started - t0, 3),
            "ended_s": round(o.ended - t0, 3),
            "status": o.status,
            "error": o.error,
        }
        for o in outcomes
        if not o.ok
    ]


def _model_ready_at(container: str) -> float:
    """Epoch time of the container's last "model ready" log line (the app's JSON log)."""
    logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True, check=True)
    lines = [
        json.loads(line)
        for line in (logs.stdout + logs.stderr).splitlines()
        if line.startswith("{") and '"model ready"' in line
    ]
    assert lines, f"{container} never logged 'model ready'"
    return datetime.fromisoformat(lines[-1]["time"]).timestamp()


def _first_sample(samples: list[Sample], after: float, predicate: Any) -> Sample | None:
    return next((s for s in samples if s.t >= after and predicate(s)), None)


def _last_sent_s(samples: list[Sample], slot: str, t0: float) -> float | None:
    """When the balancer last picked ``slot`` (its lbtot last grew), relative to ``t0``."""
    last = None
    previous = None
    for s in samples:
        count = int(s.servers.get(slot, {}).get("lbtot") or 0)
        if previous is not None and count > previous:
            last = s.t
        previous = count
    return None if last is None else last - t0


def _disruption(
    load: Load, samples: list[Sample], slot: str, t0: float, t1: float, before: dict[str, str]
) -> dict[str, Any]:
    """What the clients and the balancer saw around the kill or stop: run from ``t0`` to ``t1``.

    Times are relative to ``t0``, when the `docker` command started: the signal lands before
    ``t1``, so they overstate the delays by up to the command's own time.
    """
    outcomes = load.outcomes
    steady = [o.ended - o.started for o in outcomes if o.ended < t0 and o.ok]
    around = [o for o in outcomes if o.started >= t0 - 1 and o.started < t0 + AFTER_S]
    in_flight = [s for s in samples if t0 - 0.5 <= s.t <= t1]
    out_of_rotation = _first_sample(
        samples, t0, lambda s: not s.servers.get(slot, {}).get("status", "gone").startswith("UP")
    )
    backend = samples[-1].backend
    last_answer = max((o.ended for o in outcomes if o.replica == slot), default=None)
    return {
        "requests": len(outcomes),
        "failed": sum(not o.ok for o in outcomes),
        "failures": _describe_failures(outcomes, t0),
        "in_flight_on_it": max(
            (int(s.servers.get(slot, {}).get("scur") or 0) for s in in_flight), default=0
        ),
        "by_replica_before": dict(Counter(o.replica for o in outcomes if o.ended < t0)),
        "by_replica_after": dict(Counter(o.replica for o in outcomes if o.started > t0)),
        "last_answer_from_it_s": None if last_answer is None else round(last_answer - t0, 3),
        "last_sent_to_it_s": (
            None if (s := _last_sent_s(samples, slot, t0)) is None else round(s, 3)
        ),
        "out_of_rotation_s": (
            None if out_of_rotation is None else round(out_of_rotation.t - t0, 3)
        ),
        "out_of_rotation_as": (
            None
            if out_of_rotation is None
            else out_of_rotation.servers.get(slot, {}).get("status", "gone")
        ),
        "retries": int(backend["wretr"] or 0) - int(before["wretr"] or 0),
        "redispatches": int(backend["wredis"] or 0) - int(before["wredis"] or 0),
        "latency_ms_p50_before": _ms(statistics.median(steady)) if steady else None,
        "latency_ms_max_around": _ms(max(o.ended - o.started for o in around)) if around else None,
        "slower_than_1s_around": sum(o.ended - o.started > 1 for o in around),
        "throughput_rps": round(len(outcomes) / (outcomes[-1].ended - outcomes[0].started), 1),
    }


# ---------------------------------------------------------------- tests


def test_requests_spread_over_every_replica(replicas: Replicas) -> None:
    slots = replicas.balancer.wait_until_up(REPLICAS)
    seen: Counter[str] = Counter()
    probabilities: dict[int, dict[str, list[float]]] = {}
    with httpx.Client(base_url=replicas.stack.base_url, trust_env=False, timeout=30) as client:
        for n in range(200):
            png, label = replicas.digits[n % len(replicas.digits)]
            response = client.post("/predict", files={"file": ("digit.png", png, "image/png")})
            assert response.status_code == 200, response.text
            replica = response.headers["x-replica"]
            body = response.json()
            assert body["best_guess"] == label, f"request {n} ({replica}): {body}"
            assert body["model_version"] == "1"
            seen[replica] += 1
            probabilities.setdefault(label, {})[replica] = body["probabilities"]
    replicas.figures["spread_200_sequential"] = dict(seen)
    with httpx.Client(base_url=replicas.stack.base_url, trust_env=False, timeout=10) as client:
        assert client.get("/haproxy-health").status_code == 200  # the balancer's own
    print(f"[replicas] 200 requests, one at a time: {dict(seen)}")
    assert set(seen) == set(slots), f"not every replica answered: {seen} vs {slots}"
    assert min(seen.values()) >= 200 / REPLICAS / 2, f"uneven: {seen}"
    # Every replica serves the same model from the one volume: the same answer to the same digit.
    for label, by_replica in probabilities.items():
        answers = list(by_replica.values())
        for other in answers[1:]:
            assert other == pytest.approx(answers[0], abs=1e-5), f"digit {label}: {by_replica}"


def test_killed_replica_is_routed_around_under_load(replicas: Replicas) -> None:
    victim = replicas.containers()[-1]
    slot = replicas.slot_of(victim)
    replicas.figures["killed"] = {"container": victim, "slot": slot}
    before = replicas.balancer.backend()
    with (
        Sampler(replicas.balancer) as sampler,
        Load(replicas.stack.base_url, replicas.digits) as load,
    ):
        time.sleep(WARM_UP_S)
        t_kill = time.monotonic()
        run("docker", "kill", victim)  # SIGKILL: no draining, connections reset
        kill_command_s = time.monotonic() - t_kill
        time.sleep(AFTER_S)
    figures = _disruption(load, sampler.samples, slot, t_kill, t_kill + kill_command_s, before)
    figures["kill_command_s"] = round(kill_command_s, 3)
    replicas.figures["killed"].update(figures)
    print(f"[replicas] kill {victim} ({slot}) at {CLIENTS} clients: {json.dumps(figures)}")

    assert len(figures["by_replica_before"]) == REPLICAS, "not every replica was busy before"
    # At most the requests in flight on it; HAProxy's L7 retries re-send even those.
    assert figures["failed"] <= figures["in_flight_on_it"], figures["failures"]
    # Any failure comes before the health checks could have taken it out (fall x inter), and the
    # balancer took it out within one check interval: the passive checks (observe layer4) see
    # the refused or timed-out connections first. Slack: `docker kill` itself takes a while.
    limit_s = CHECK_FALL * CHECK_INTER_S + SLACK_S
    assert all(f["ended_s"] <= limit_s for f in figures["failures"]), figures["failures"]
    assert figures["out_of_rotation_s"] is not None, "the balancer never took it out"
    assert figures["out_of_rotation_s"] <= CHECK_INTER_S + SLACK_S
    assert figures["last_sent_to_it_s"] is None or figures["last_sent_to_it_s"] <= limit_s
    # Nothing answers from a dead replica, and everything after the cut-off is answered.
    assert figures["last_answer_from_it_s"] is None or figures["last_answer_from_it_s"] <= SLACK_S
    late = [o for o in load.outcomes if o.started > t_kill + limit_s]
    assert late, "no requests after the cut-off"
    assert all(o.ok and o.replica != slot for o in late)


def test_restarted_replica_rejoins_once_ready(replicas: Replicas) -> None:
    victim = replicas.figures["killed"]["container"]
    assert json.loads(run("docker", "inspect", victim))[0]["State"]["Running"] is False
    before = replicas.balancer.backend()
    with (
        Sampler(replicas.balancer) as sampler,
        Load(replicas.stack.base_url, replicas.digits) as load,
    ):
        t_start, wall_start = time.monotonic(), time.time()
        run("docker", "start", victim)
        address = replicas.address(victim)  # a new one: the restarted container gets a new IP
        slot = replicas.slot_of(victim, timeout=30)  # so maybe a new slot
        deadline = t_start + READY_TIMEOUT_S
        while time.monotonic() < deadline and not any(
            o.replica == slot and o.started > t_start for o in load.outcomes
        ):
            time.sleep(0.2)
        time.sleep(2)  # a little load on the rejoined pair

    def its(sample: Sample) -> dict[str, str]:
        row = sample.servers.get(slot, {})
        return row if row.get("addr", "").split(":")[0] == address else {}

    samples = sampler.samples
    checked_ready = _first_sample(samples, t_start, lambda s: its(s).get("check_code") == "200")
    up = _first_sample(samples, t_start, lambda s: its(s).get("status") == "UP")
    answers = [o for o in load.outcomes if o.replica == slot and o.started > t_start]
    backend = samples[-1].backend
    figures = {
        "slot": slot,
        "address": address,
        "requests": len(load.outcomes),
        "failed": sum(not o.ok for o in load.outcomes),
        "failures": _describe_failures(load.outcomes, t_start),
        # The replica's own "model ready" log line: when it starts listening.
        "ready_s": round(_model_ready_at(victim) - wall_start, 2),
        "first_check_200_s": None if checked_ready is None else round(checked_ready.t - t_start, 2),
        "up_s": None if up is None else round(up.t - t_start, 2),
        "first_answer_s": round(answers[0].ended - t_start, 2) if answers else None,
        "retries": int(backend["wretr"] or 0) - int(before["wretr"] or 0),
        "redispatches": int(backend["wredis"] or 0) - int(before["wredis"] or 0),
        "by_replica_after_up": dict(
            Counter(o.replica for o in load.outcomes if up is not None and o.started > up.t)
        ),
    }
    replicas.figures["rejoined"] = figures
    print(f"[replicas] restart {victim}: {json.dumps(figures)}")

    assert answers, f"{victim} ({slot}) never answered again"
    assert up is not None
    # In rotation once ready, not before: `rise` checks a second apart after it listens.
    assert figures["first_answer_s"] >= figures["ready_s"]
    assert figures["up_s"] - figures["ready_s"] <= CHECK_RISE * CHECK_INTER_S + SLACK_S
    assert figures["first_answer_s"] - figures["up_s"] <= SLACK_S
    assert figures["failed"] == 0, figures["failures"]
    assert len(replicas.balancer.wait_until_up(REPLICAS, timeout=10)) == REPLICAS


def test_stopped_replica_drains_without_failures(replicas: Replicas) -> None:
    replicas.balancer.wait_until_up(REPLICAS)
    victim = replicas.containers()[0]
    slot = replicas.slot_of(victim)
    replicas.figures["drained"] = {"container": victim, "slot": slot}
    before = replicas.balancer.backend()
    with (
        Sampler(replicas.balancer) as sampler,
        Load(replicas.stack.base_url, replicas.digits) as load,
    ):
        time.sleep(WARM_UP_S)
        t_stop = time.monotonic()
        run("docker", "stop", "--time", "10", victim)  # SIGTERM; SIGKILL after 10 s
        stop_command_s = time.monotonic() - t_stop
        time.sleep(AFTER_S)
    figures = _disruption(load, sampler.samples, slot, t_stop, t_stop + stop_command_s, before)
    state = json.loads(run("docker", "inspect", victim))[0]["State"]
    figures["stop_command_s"] = round(stop_command_s, 3)
    figures["exit_code"] = state["ExitCode"]
    replicas.figures["drained"].update(figures)
    print(f"[replicas] stop {victim} ({slot}) at {CLIENTS} clients: {json.dumps(figures)}")

    assert len(figures["by_replica_before"]) == REPLICAS, "not every replica was busy before"
    assert figures["exit_code"] == 0, "it did not drain within the stop timeout (SIGKILLed)"
    assert figures["failed"] == 0, figures["failures"]
    assert figures["out_of_rotation_s"] is not None
    late = [o for o in load.outcomes if o.started > t_stop + stop_command_s + SLACK_S]
    assert late, "no requests after the stop"
    assert all(o.ok and o.replica != slot for o in late)
