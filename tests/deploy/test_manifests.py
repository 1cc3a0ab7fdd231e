"""deploy/kubernetes rendered by kustomize, against Kubernetes' schemas, KServe's models, the app.

Offline and fast: nothing here talks to a cluster. The rendered objects are validated against
the Kubernetes API's own schemas (kubernetes-validate, strict: unknown fields fail) for one
pinned Kubernetes version, the InferenceService against the kserve SDK's models, and then the
properties that matter are asserted against the real app (its routes, its settings, its
training CLI) so that a manifest that drifts from the code fails here rather than in a cluster.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.conftest import OVERLAYS, REPO, find, render

# The Kubernetes API the manifests are written for and validated against. kubernetes-validate
# bundles the schemas of a range of releases; this must be one of them.
KUBERNETES_VERSION = "1.32"

IMAGE_LEAN = "mnist-service:lite"
IMAGE_FULL = "mnist-service:latest"
OVERLAY_IMAGE = {"lean": IMAGE_LEAN, "full": IMAGE_FULL, "local": IMAGE_LEAN}
OVERLAY_BACKEND = {"lean": "litert", "full": "tflite", "local": "litert"}

# Measured (README, Performance): the figures the overlays' resources were sized from.
FULL_RSS_BYTES = 660e6  # one serving process of the full image, under load
LEAN_RSS_TARGET_BYTES = 250e6  # the lean (LiteRT) image's target

# Environment the image's CMD reads itself (not Settings fields), and KServe's protocol switch.
IMAGE_CMD_ENV = {"WORKERS", "GRACEFUL_TIMEOUT", "HOST", "PORT"}
KSERVE_ENV = {"PROTOCOL"}

ALL = [*(f"overlays/{name}" for name in OVERLAYS), "kserve"]


# --- helpers --------------------------------------------------------------------------------------


class PodSpec(typing.NamedTuple):
    """A pod template found in a rendered object, with where it came from."""

    where: str
    spec: dict[str, Any]
    labels: dict[str, str]
    annotations: dict[str, str]
    serving: bool  # runs the API (probes, ports, graceful shutdown); False for the trainer


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[PodSpec]:
    """Every pod spec the objects will create: Deployments', Jobs', InferenceServices'."""
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in ("Deployment", "Job"):
            template = obj["spec"]["template"]
            yield PodSpec(
                where,
                template["spec"],
                template["metadata"].get("labels", {}),
                template["metadata"].get("annotations", {}),
                obj["kind"] == "Deployment",
            )
        elif obj["kind"] == "InferenceService":
            predictor = obj["spec"]["predictor"]
            yield PodSpec(
                where,
                predictor,
                predictor.get("labels", {}),
                predictor.get("annotations", {}),
                True,
            )


def all_pod_specs() -> Iterator[tuple[str, PodSpec]]:
    for name in ALL:
        for pod in pod_specs(render(name)):
            yield name, pod


def serving_container(pod: PodSpec) -> dict[str, Any]:
    """The API container: the one with ports (KServe: kserve-container)."""
    with_ports = [c for c in pod.spec["containers"] if c.get("ports")]
    assert len(with_ports) == 1, f"{pod.where}: expected one container with ports"
    return with_ports[0]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    env = container.get("env", [])
    names = [var["name"] for var in env]
    assert len(names) == len(set(names)), f"{container['name']}: duplicate env names {names}"
    return {var["name"]: var["value"] for var in env if "value" in var}


def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
FACTORS = {
    None: 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity as a number: '384Mi' -> 402653184, '500m' -> 0.5."""
    match = QUANTITY.match(str(value))
    assert match, f"not a quantity this test understands: {value!r}"
    return float(match.group(1)) * FACTORS[match.group(2)]


def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def image_port() -> int:
    """The port the image's CMD listens on: ENV PORT in the Dockerfile (every stage)."""
    ports = set(re.findall(r"^\s*(?:ENV\s+)?PORT=(\d+)", dockerfile(), re.M))
    assert len(ports) == 1, f"expected one PORT=... in the Dockerfile, found {ports}"
    return int(ports.pop())


def probe_port_matches(probe: dict[str, Any], container: dict[str, Any]) -> bool:
    port = probe["httpGet"]["port"]
    return any(port in (p.get("name"), p["containerPort"]) for p in container["ports"])


def inference_backends() -> tuple[str, ...]:
    from app.settings import Settings

    return typing.get_args(Settings.model_fields["INFERENCE_BACKEND"].annotation)


def validate_for_kubernetes(obj: dict[str, Any], where: str) -> str:
    """kubernetes-validate, strict, for the pinned version; a failure names the field."""
    problem = None
    try:
        return kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        problem = f"{where} at {'.'.join(str(p) for p in error.path)}: {error.message}"
    pytest.fail(problem, pytrace=False)  # outside the except: no chained schema dump


# --- rendering and schemas ------------------------------------------------------------------------


@pytest.mark.parametrize("name", [f"overlays/{name}" for name in OVERLAYS])
def test_overlay_renders_the_whole_service(name: str) -> None:
    kinds = sorted((obj["kind"], obj["metadata"]["name"]) for obj in render(name))
    assert kinds == [
        ("Deployment", "mnist-api"),
        ("HorizontalPodAutoscaler", "mnist-api"),
        ("Job", "mnist-train"),
        ("PersistentVolumeClaim", "mnist-models"),
        ("PodDisruptionBudget", "mnist-api"),
        ("Service", "mnist-api"),
        ("ServiceAccount", "mnist-service"),
    ]
    for obj in render(name):
        assert "namespace" not in obj["metadata"], "namespace-agnostic: -n chooses it"


def test_kserve_renders_the_inference_service_and_the_model_store() -> None:
    kinds = sorted((obj["kind"], obj["metadata"]["name"]) for obj in render("kserve"))
    assert kinds == [
        ("InferenceService", "mnist"),
        ("Job", "mnist-train"),
        ("PersistentVolumeClaim", "mnist-models"),
        ("PodDisruptionBudget", "mnist-predictor"),
        ("ServiceAccount", "mnist-service"),
    ]


def test_the_model_store_is_the_same_wherever_it_is_applied_from() -> None:
    """Applying an overlay and kserve/ (or switching overlays) must not change a Job: immutable."""
    shared = ("ServiceAccount", "PersistentVolumeClaim", "Job")
    reference = {o["kind"]: o for o in render("overlays/lean") if o["kind"] in shared}
    for name in ("overlays/full", "kserve"):
        others = {o["kind"]: o for o in render(name) if o["kind"] in shared}
        assert others == reference, f"{name} renders the shared objects differently"


def test_kubernetes_validate_bundles_the_pinned_version() -> None:
    from kubernetes_validate import utils

    bundled = {utils.major_minor(v) for v in utils.all_versions()}
    assert KUBERNETES_VERSION in bundled, (
        f"kubernetes-validate {kubernetes_validate.__version__} bundles {sorted(bundled)}, not "
        f"{KUBERNETES_VERSION}: pin a release that has it, or move KUBERNETES_VERSION"
    )


@pytest.mark.parametrize("name", ALL)
def test_every_object_is_valid_for_the_pinned_kubernetes(name: str) -> None:
    for obj in render(name):
        if obj["kind"] == "InferenceService":
            continue  # a CRD: see test_inference_service_is_valid_for_kserve
        where = f"{name}: {obj['kind']}/{obj['metadata']['name']}"
        assert validate_for_kubernetes(obj, where) == KUBERNETES_VERSION, where


def test_strict_validation_rejects_what_the_api_server_would() -> None:
    """The validator itself: strict mode must catch a misspelt field and a wrong type."""
    deployment = find(render("overlays/lean"), "Deployment")
    misspelt = copy.deepcopy(deployment)
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES_VERSION, strict=True)
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "30"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, KUBERNETES_VERSION, strict=True)


# --- the InferenceService against the kserve SDK --------------------------------------------------


class KServeSchemaError(ValueError):
    pass


_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "date": (str,),
    "datetime": (str,),
    "bytes": (str,),
    "ResourceQuantity": (str, int, float),
}


def strict_model(data: Any, type_name: str, path: str = "") -> Any:
    """``data`` as an instance of the kserve (or kubernetes) SDK model ``type_name``, strictly.

    The SDK's own deserializer drops keys it does not know and converts types silently; this
    one fails on an unknown field, a wrong type or a missing required field, with the path.
    """
    import kserve.models
    import kubernetes.client.models

    # kserve's models spell list[X] and dict(str, X), kubernetes' List[X] and Dict[str, X].
    if match := re.fullmatch(r"(?:list|List)\[(.*)\]", type_name):
        if not isinstance(data, list):
            raise KServeSchemaError(f"{path}: expected a list, got {data!r}")
        return [strict_model(v, match.group(1), f"{path}[{i}]") for i, v in enumerate(data)]
    if match := re.fullmatch(r"(?:dict\(|Dict\[)[^,]*, (.*)[\])]", type_name):
        if not isinstance(data, dict):
            raise KServeSchemaError(f"{path}: expected a mapping, got {data!r}")
        return {k: strict_model(v, match.group(1), f"{path}.{k}") for k, v in data.items()}
    if type_name == "object":
        return data
    if type_name in _PRIMITIVES:
        allowed = _PRIMITIVES[type_name]
        if (isinstance(data, bool) and bool not in allowed) or not isinstance(data, allowed):
            raise KServeSchemaError(f"{path}: expected {type_name}, got {data!r}")
        return data
    klass = getattr(kserve.models, type_name, None) or getattr(kubernetes.client.models, type_name)
    if not isinstance(data, dict):
        raise KServeSchemaError(f"{path}: expected a {type_name} mapping, got {data!r}")
    attributes = {json_key: attr for attr, json_key in klass.attribute_map.items()}
    unknown = sorted(set(data) - set(attributes))
    if unknown:
        raise KServeSchemaError(f"{path or '.'}: {type_name} has no field(s) {unknown}")
    kwargs = {
        attributes[key]: strict_model(value, klass.openapi_types[attributes[key]], f"{path}.{key}")
        for key, value in data.items()
    }
    try:
        return klass(**kwargs)
    except ValueError as error:  # the SDKs' own checks (pydantic's too): required fields, enums
        raise KServeSchemaError(f"{path or '.'}: {error}") from error


def inference_service() -> dict[str, Any]:
    return find(render("kserve"), "InferenceService")


def test_inference_service_is_valid_for_kserve() -> None:
    from kserve import V1beta1InferenceService

    isvc = inference_service()
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    problem = None
    try:
        model = strict_model(isvc, "V1beta1InferenceService")
    except KServeSchemaError as error:
        problem = str(error)
    if problem:
        pytest.fail(f"InferenceService: {problem}", pytrace=False)
    assert isinstance(model, V1beta1InferenceService)
    # KServe's own name rule (its validating webhook): a DNS label starting with a letter.
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", isvc["metadata"]["name"])


def test_inference_service_pod_fields_are_a_valid_pod_spec() -> None:
    """The predictor's PodSpec fields (containers, volumes, security...) as a Pod, strictly."""
    from kubernetes.client import V1PodSpec

    predictor = inference_service()["spec"]["predictor"]
    pod_fields = set(V1PodSpec.attribute_map.values())
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "mnist-predictor"},
        "spec": {key: value for key, value in predictor.items() if key in pod_fields},
    }
    validate_for_kubernetes(pod, "InferenceService predictor")


def test_strict_kserve_check_rejects_unknown_fields_and_wrong_types() -> None:
    isvc = inference_service()
    # protocolVersion belongs to spec.predictor.model, not to a custom predictor: KServe's CRD
    # would prune it silently. The protocol of a custom container is its PROTOCOL variable.
    unknown = copy.deepcopy(isvc)
    unknown["spec"]["predictor"]["protocolVersion"] = "v2"
    with pytest.raises(KServeSchemaError, match="protocolVersion"):
        strict_model(unknown, "V1beta1InferenceService")
    wrong_type = copy.deepcopy(isvc)
    wrong_type["spec"]["predictor"]["minReplicas"] = "2"
    with pytest.raises(KServeSchemaError, match="minReplicas"):
        strict_model(wrong_type, "V1beta1InferenceService")
    nameless = copy.deepcopy(isvc)
    del nameless["spec"]["predictor"]["containers"][0]["name"]
    with pytest.raises(KServeSchemaError, match="name"):
        strict_model(nameless, "V1beta1InferenceService")


def test_inference_service_is_a_v2_custom_predictor_on_hpa() -> None:
    isvc = inference_service()
    annotations = isvc["metadata"]["annotations"]
    # Standard (raw Deployment) mode: preStop, terminationGracePeriodSeconds, the PVC volume and
    # the init container are honoured as written; and KServe validates scaleMetric: cpu only
    # with these two annotations together.
    assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
    assert annotations["serving.kserve.io/autoscalerClass"] == "hpa"
    predictor = isvc["spec"]["predictor"]
    assert predictor["scaleMetric"] == "cpu"
    assert 1 <= predictor["scaleTarget"] <= 100
    assert 2 <= predictor["minReplicas"] < predictor["maxReplicas"]
    assert "model" not in predictor, "a custom predictor: containers, not a model runtime"

    container = predictor["containers"][0]
    assert container["name"] == "kserve-container"
    assert container["image"] == IMAGE_LEAN
    env = env_of(container)
    assert env["PROTOCOL"] == "v2"
    assert env["INFERENCE_BACKEND"] == "litert"
    assert "PORT" not in env, "Knative reserves PORT; the image's ENV sets it"
    assert "STORAGE_URI" not in env, "the model comes from the mounted PVC"
    # Knative's and KServe's rule: one port, named http1 (HTTP/1.1) or h2c.
    [port] = container["ports"]
    assert port["name"] == "http1"
    assert port["containerPort"] == image_port()


def test_inference_service_runs_the_lean_deployments_container() -> None:
    """ "The same container as overlays/lean": probes, hardening, resources, volumes, init."""
    deployment = find(render("overlays/lean"), "Deployment")["spec"]["template"]["spec"]
    predictor = inference_service()["spec"]["predictor"]
    api, kserve = deployment["containers"][0], predictor["containers"][0]
    for key in ("image", "resources", "securityContext", "lifecycle", "volumeMounts"):
        assert kserve[key] == api[key], key
    for key in ("startupProbe", "readinessProbe", "livenessProbe"):
        rename = {"port": kserve["ports"][0]["name"]}  # http1 there, http here
        assert kserve[key] == {**api[key], "httpGet": {**api[key]["httpGet"], **rename}}, key
    assert env_of(kserve) == {**env_of(api), "PROTOCOL": "v2"}
    for key in (
        "initContainers",
        "volumes",
        "securityContext",
        "terminationGracePeriodSeconds",
        "serviceAccountName",
        "automountServiceAccountToken",
        "enableServiceLinks",
    ):
        assert predictor[key] == deployment[key], key
    template = find(render("overlays/lean"), "Deployment")["spec"]["template"]["metadata"]
    assert predictor["annotations"] == template["annotations"]


def test_the_open_inference_protocol_routes_exist(app_routes: dict[str, set[str]]) -> None:
    """What KServe's clients and gateways call on a v2 predictor, on the real app."""
    for path, method in [
        ("/v2/health/live", "GET"),
        ("/v2/health/ready", "GET"),
        ("/v2/models/{model_name}", "GET"),
        ("/v2/models/{model_name}/ready", "GET"),
        ("/v2/models/{model_name}/infer", "POST"),
    ]:
        templated = {re.sub(r"\{[^}]+\}", "{}", p): m for p, m in app_routes.items()}
        assert method in templated.get(re.sub(r"\{[^}]+\}", "{}", path), set()), (
            f"{method} {path} not served"
        )


# --- hardening ------------------------------------------------------------------------------------


def test_every_container_is_hardened() -> None:
    checked = 0
    for name, pod in all_pod_specs():
        pod_sc = pod.spec.get("securityContext", {})
        assert pod.spec.get("automountServiceAccountToken") is False, f"{name} {pod.where}"
        assert pod.spec.get("hostNetwork") is not True, f"{name} {pod.where}"
        assert pod.spec.get("hostPID") is not True, f"{name} {pod.where}"
        for container in pod.spec.get("initContainers", []) + pod.spec["containers"]:
            where = f"{name} {pod.where} container {container['name']}"
            sc = container.get("securityContext", {})

            def effective(
                key: str, sc: dict[str, Any] = sc, pod_sc: dict[str, Any] = pod_sc
            ) -> Any:
                return sc.get(key, pod_sc.get(key))

            assert effective("runAsNonRoot") is True, where
            assert effective("runAsUser") not in (None, 0), f"{where}: numeric non-root uid"
            assert effective("runAsGroup") not in (None, 0), where
            assert (effective("seccompProfile") or {}).get("type") == "RuntimeDefault", where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("privileged") is not True, where
            capabilities = sc.get("capabilities", {})
            assert "ALL" in capabilities.get("drop", []), where
            assert not capabilities.get("add"), where
            checked += 1
    assert checked >= 10


def test_the_service_account_mounts_no_token() -> None:
    for name in ALL:
        account = find(render(name), "ServiceAccount")
        assert account["automountServiceAccountToken"] is False, name
        for pod in pod_specs(render(name)):
            assert pod.spec["serviceAccountName"] == account["metadata"]["name"], pod.where


def test_writable_paths_are_volumes() -> None:
    """Read-only root filesystem: /tmp (HOME, caches) must be a volume in every serving pod."""
    for name, pod in all_pod_specs():
        volumes = {v["name"]: v for v in pod.spec.get("volumes", [])}
        container = serving_container(pod) if pod.serving else pod.spec["containers"][0]
        mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
        assert "/tmp" in mounts, f"{name} {pod.where}: /tmp must be writable"
        tmp = volumes[mounts["/tmp"]["name"]]
        assert tmp.get("emptyDir", {}).get("sizeLimit"), f"{name} {pod.where}: bounded /tmp"
        for mount in mounts.values():
            assert mount["name"] in volumes, f"{name} {pod.where}: {mount['name']} undefined"


# --- probes, ports, routes ------------------------------------------------------------------------


def serving_pods() -> Iterator[tuple[str, PodSpec]]:
    for name, pod in all_pod_specs():
        if pod.serving:
            yield name, pod


def test_probes_hit_routes_the_app_serves(app_routes: dict[str, set[str]]) -> None:
    for name, pod in serving_pods():
        container = serving_container(pod)
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            where = f"{name} {pod.where} {kind}"
            probe = container.get(kind)
            assert probe, f"{where} missing"
            path = probe["httpGet"]["path"]
            assert "GET" in app_routes.get(path, set()), f"{where}: GET {path} is not a route"
            assert probe_port_matches(probe, container), f"{where}: port is no container port"
            assert probe.get("timeoutSeconds", 1) >= 1


def test_probes_mean_what_they_should(unstarted_client) -> None:
    """Against the real app before its model loads: readiness and startup 503, liveness 200.

    A liveness probe that looked at the model would restart pods in a loop over a model
    problem; a readiness probe that did not would send traffic to a pod that cannot classify.
    """
    for name, pod in serving_pods():
        container = serving_container(pod)
        where = f"{name} {pod.where}"
        for kind in ("startupProbe", "readinessProbe"):
            path = container[kind]["httpGet"]["path"]
            assert unstarted_client.get(path).status_code == 503, f"{where} {kind} {path}"
        live = container["livenessProbe"]["httpGet"]["path"]
        assert unstarted_client.get(live).status_code == 200, f"{where} livenessProbe {live}"


def test_probe_timing() -> None:
    for name, pod in serving_pods():
        container = serving_container(pod)
        where = f"{name} {pod.where}"
        startup, ready, live = (
            container[k] for k in ("startupProbe", "readinessProbe", "livenessProbe")
        )
        # Model load and warm-up: seconds on a laptop, more on a busy node; 2 min of budget.
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 60, where
        assert ready["periodSeconds"] * ready["failureThreshold"] <= 30, where
        # Liveness is slower to act than readiness: a pod leaves the Service before a restart.
        assert (
            live["periodSeconds"] * live["failureThreshold"]
            > ready["periodSeconds"] * ready["failureThreshold"]
        ), where


def test_container_port_is_the_images_port() -> None:
    for name, pod in serving_pods():
        ports = [p["containerPort"] for p in serving_container(pod)["ports"]]
        assert ports == [image_port()], f"{name} {pod.where}"


def test_prometheus_annotations_point_at_the_metrics_route(
    app_routes: dict[str, set[str]], unstarted_client
) -> None:
    for name, pod in serving_pods():
        where = f"{name} {pod.where}"
        annotations = pod.annotations
        assert annotations.get("prometheus.io/scrape") == "true", where
        container_ports = [p["containerPort"] for p in serving_container(pod)["ports"]]
        assert int(annotations["prometheus.io/port"]) in container_ports, where
        path = annotations["prometheus.io/path"]
        assert "GET" in app_routes.get(path, set()), f"{where}: {path} is not a route"
        response = unstarted_client.get(path)
        assert response.status_code == 200, where
        assert response.headers["content-type"].startswith("text/plain"), where


# --- graceful shutdown ----------------------------------------------------------------------------


def test_termination_grace_covers_pre_stop_and_graceful_timeout() -> None:
    # What makes GRACEFUL_TIMEOUT mean anything: the image's CMD hands it to uvicorn.
    assert re.search(r'--timeout-graceful-shutdown[ =]\\?"?\$\{?GRACEFUL_TIMEOUT\b', dockerfile())
    for name, pod in serving_pods():
        where = f"{name} {pod.where}"
        container = serving_container(pod)
        command = container["lifecycle"]["preStop"]["exec"]["command"]
        assert command[:1] == ["sleep"], f"{where}: preStop {command}"
        assert len(command) == 2, f"{where}: preStop {command}"
        pre_stop = float(command[1])
        env = env_of(container)
        assert "GRACEFUL_TIMEOUT" in env, f"{where}: set GRACEFUL_TIMEOUT explicitly"
        graceful = int(env["GRACEFUL_TIMEOUT"])
        grace = pod.spec["terminationGracePeriodSeconds"]
        # uvicorn's graceful timeout starts at SIGTERM, after preStop; the lifespan then drains
        # the batcher, hence a margin of a few seconds more.
        assert grace >= pre_stop + graceful + 5, f"{where}: {grace} < {pre_stop} + {graceful} + 5"
        assert 1 <= pre_stop < graceful, where


# --- workload wiring: HPA, PDB, Service, selectors ------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_hpa_scales_the_deployment_on_cpu(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    deployment = find(objects, "Deployment")
    hpa = find(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        deployment["metadata"]["name"],
    )
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    assert 0 < metric["resource"]["target"]["averageUtilization"] <= 100
    # Utilisation is a share of the request: without one the HPA cannot compute it.
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        assert "cpu" in container["resources"]["requests"], container["name"]
    assert "replicas" not in deployment["spec"], "the HPA owns replicas"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_pick_the_api_pods_and_only_them(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    deployment = find(objects, "Deployment")
    api_labels = deployment["spec"]["template"]["metadata"]["labels"]
    train_labels = find(objects, "Job")["spec"]["template"]["metadata"]["labels"]
    predictor_labels = inference_service()["spec"]["predictor"]["labels"]
    selectors = {
        "Deployment": deployment["spec"]["selector"]["matchLabels"],
        "PodDisruptionBudget": find(objects, "PodDisruptionBudget")["spec"]["selector"][
            "matchLabels"
        ],
        "Service": find(objects, "Service")["spec"]["selector"],
    }
    for constraint in deployment["spec"]["template"]["spec"].get("topologySpreadConstraints", []):
        selectors["topologySpreadConstraints"] = constraint["labelSelector"]["matchLabels"]
    for what, selector in selectors.items():
        assert selector_matches(selector, api_labels), f"{what} misses the API pods"
        assert not selector_matches(selector, train_labels), f"{what} matches the trainer"
        assert not selector_matches(selector, predictor_labels), f"{what} matches KServe's pods"


def test_kserve_selectors_pick_the_predictor_pods() -> None:
    objects = render("kserve")
    predictor = inference_service()["spec"]["predictor"]
    train_labels = find(objects, "Job")["spec"]["template"]["metadata"]["labels"]
    selectors = [find(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]]
    selectors += [c["labelSelector"]["matchLabels"] for c in predictor["topologySpreadConstraints"]]
    for selector in selectors:
        assert selector_matches(selector, predictor["labels"]), selector
        assert not selector_matches(selector, train_labels), selector


@pytest.mark.parametrize("name", ALL)
def test_pdbs_allow_a_drain(name: str) -> None:
    pdb = find(render(name), "PodDisruptionBudget")["spec"]
    # With min 2 replicas, minAvailable 2 (or maxUnavailable 0) would block every drain.
    assert pdb.get("maxUnavailable", 0) >= 1 or pdb.get("minAvailable", 2) < 2
    assert pdb.get("unhealthyPodEvictionPolicy") == "AlwaysAllow"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_targets_the_named_port(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    container = find(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    names = {p["name"] for p in container["ports"]}
    for port in find(objects, "Service")["spec"]["ports"]:
        assert port["targetPort"] in names, f"targetPort {port['targetPort']} is no named port"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rollouts_keep_capacity(overlay: str) -> None:
    spec = find(render(f"overlays/{overlay}"), "Deployment")["spec"]
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # The first rollout waits for training (~10 min): longer than the 600 s default deadline.
    assert spec["progressDeadlineSeconds"] >= 1200


# --- the model: training Job, volume, wait-for-model ----------------------------------------------


def model_dir_of(pod: PodSpec) -> str:
    return env_of(serving_container(pod))["MODEL_DIR"]


def claim_mounted_at(pod: PodSpec, container: dict[str, Any], path: str) -> tuple[str, bool]:
    """(claimName, read-only) of the PVC that ``path`` lives on in ``container``."""
    volumes = {v["name"]: v for v in pod.spec["volumes"]}
    for mount in container["volumeMounts"]:
        if path == mount["mountPath"] or path.startswith(mount["mountPath"].rstrip("/") + "/"):
            claim = volumes[mount["name"]].get("persistentVolumeClaim")
            assert claim, f"{pod.where}: {path} is not on a PersistentVolumeClaim"
            read_only = mount.get("readOnly", False) or claim.get("readOnly", False)
            return claim["claimName"], read_only
    raise AssertionError(f"{pod.where}: nothing mounted at {path}")


@pytest.mark.parametrize("name", ALL)
def test_the_job_trains_where_the_api_reads(name: str) -> None:
    from training.__main__ import parse_args

    objects = render(name)
    pvc = find(objects, "PersistentVolumeClaim")["metadata"]["name"]
    job = find(objects, "Job", "mnist-train")
    [train] = [pod for pod in pod_specs(objects) if not pod.serving]
    [serving] = [pod for pod in pod_specs(objects) if pod.serving]
    container = train.spec["containers"][0]
    command = container.get("command", []) + container.get("args", [])
    assert command[:3] == ["python", "-m", "training"], command
    # The real CLI must accept the arguments (a renamed flag fails here, not in the cluster).
    args = parse_args(command[3:])
    assert args.if_missing, "--if-missing: a re-created Job must not retrain"
    model_dir = model_dir_of(serving)
    assert str(args.out) == model_dir, f"the Job writes {args.out}, the API reads {model_dir}"
    assert claim_mounted_at(train, container, model_dir) == (pvc, False), "Job: read-write"
    assert claim_mounted_at(serving, serving_container(serving), model_dir) == (pvc, True)
    assert container["image"] == IMAGE_FULL, "training needs TensorFlow: the full image"
    assert train.spec["restartPolicy"] in ("Never", "OnFailure")
    assert job["spec"]["backoffLimit"] >= 1


@pytest.mark.parametrize("name", ALL)
def test_wait_for_model_init_container(name: str) -> None:
    [pod] = [pod for pod in pod_specs(render(name)) if pod.serving]
    init = pod.spec["initContainers"][0]
    container = serving_container(pod)
    assert init["name"] == "wait-for-model"
    # The serving image has Python (lean included), so no third image to pull and trust.
    assert init["image"] == container["image"]
    assert env_of(init)["MODEL_DIR"] == model_dir_of(pod)
    assert claim_mounted_at(pod, init, model_dir_of(pod))[1], "read-only"


def test_wait_for_model_waits_for_a_published_version(tmp_path: Path) -> None:
    """Runs the init container's script: waits on nothing or a staging dir, exits on a version."""
    [pod] = [pod for pod in pod_specs(render("overlays/lean")) if pod.serving]
    command = pod.spec["initContainers"][0]["command"]
    assert command[:2] == ["python", "-c"]
    root = tmp_path / "mnist"
    env = {**os.environ, "MODEL_DIR": str(root)}

    def run(timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", command[2]],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    with pytest.raises(subprocess.TimeoutExpired):
        run(1.5)  # no model directory at all
    (root / ".staging-abc").mkdir(parents=True)
    (root / ".staging-abc" / "metadata.json").write_text("{}")
    with pytest.raises(subprocess.TimeoutExpired):
        run(1.5)  # an export in progress is not a version
    (root / "1").mkdir()
    (root / "1" / "metadata.json").write_text("{}")
    assert run(10).returncode == 0


# --- images, backends, settings, resources --------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_images_and_backend(overlay: str) -> None:
    objects = render(f"overlays/{overlay}")
    deployment = find(objects, "Deployment")["spec"]["template"]["spec"]
    for container in deployment["initContainers"] + deployment["containers"]:
        assert container["image"] == OVERLAY_IMAGE[overlay], container["name"]
    backend = env_of(deployment["containers"][0])["INFERENCE_BACKEND"]
    assert backend == OVERLAY_BACKEND[overlay]
    assert backend in inference_backends(), f"{backend} is not a Settings.INFERENCE_BACKEND"
    job = find(objects, "Job")["spec"]["template"]["spec"]
    assert [c["image"] for c in job["containers"]] == [IMAGE_FULL]


def test_no_placeholder_image_is_left_and_local_images_work() -> None:
    for name, pod in all_pod_specs():
        for container in pod.spec.get("initContainers", []) + pod.spec["containers"]:
            where = f"{name} {pod.where} {container['name']}"
            assert container["image"] in (IMAGE_LEAN, IMAGE_FULL), where
            # :latest defaults to Always, which fails for images loaded into kind or minikube.
            assert container["imagePullPolicy"] == "IfNotPresent", where


def test_local_overlay_is_lean_on_a_single_node_volume() -> None:
    lean, local = render("overlays/lean"), render("overlays/local")
    assert find(lean, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteMany"]
    assert find(local, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert find(local, "Deployment") == find(lean, "Deployment")


def test_serving_env_is_valid_for_the_app_settings() -> None:
    """Every variable the API container sets is a Settings field (or the image CMD's), valid."""
    from app.settings import Settings

    for name, pod in serving_pods():
        env = env_of(serving_container(pod))
        fields = {key: value for key, value in env.items() if key in Settings.model_fields}
        unknown = set(env) - set(fields) - IMAGE_CMD_ENV - KSERVE_ENV
        assert not unknown, f"{name} {pod.where}: not read by anything: {sorted(unknown)}"
        settings = Settings(**fields)  # pydantic validates the values: a typo fails here
        assert settings.LOG_FORMAT == "json"
        assert env["WORKERS"] == "1", "scale by pods: one model copy per pod"
        assert str(settings.MODEL_DIR) == "/models/mnist"


def resources_of(container: dict[str, Any]) -> tuple[float, float]:
    resources = container["resources"]
    request = quantity(resources["requests"]["memory"])
    limit = quantity(resources["limits"]["memory"])
    assert limit >= request, f"{container['name']}: memory limit below request"
    return request, limit


def memory_tmpfs_bytes(pod: PodSpec, container: dict[str, Any]) -> float:
    """Memory-backed emptyDirs this container mounts: they count against its memory limit."""
    volumes = {v["name"]: v for v in pod.spec.get("volumes", [])}
    total = 0.0
    for mount in container.get("volumeMounts", []):
        empty_dir = volumes[mount["name"]].get("emptyDir")
        if empty_dir is not None and empty_dir.get("medium") == "Memory":
            assert "sizeLimit" in empty_dir, f"{pod.where}: unbounded memory-backed emptyDir"
            total += quantity(empty_dir["sizeLimit"])
    return total


def test_every_container_has_memory_bounds_and_a_cpu_request() -> None:
    for name, pod in all_pod_specs():
        for container in pod.spec.get("initContainers", []) + pod.spec["containers"]:
            resources_of(container)
            assert "cpu" in container["resources"]["requests"], f"{name} {pod.where}"


@pytest.mark.parametrize("name", ALL)
def test_resources_fit_the_measured_figures(name: str) -> None:
    [pod] = [pod for pod in pod_specs(render(name)) if pod.serving]
    container = serving_container(pod)
    request, limit = resources_of(container)
    lean = container["image"] == IMAGE_LEAN
    rss = LEAN_RSS_TARGET_BYTES if lean else FULL_RSS_BYTES
    where = f"{name}: {container['image']}"
    # The scheduler reserves what one serving process really uses...
    assert request >= rss, f"{where}: request {request:.0f} below the RSS {rss:.0f}"
    # ...and the limit leaves room for it plus the memory-backed /tmp, or the kernel OOM-kills.
    assert limit >= rss + memory_tmpfs_bytes(pod, container) * 1.1, where
    # Lean is lean: well under the full image's measured RSS.
    if lean:
        assert limit < FULL_RSS_BYTES, where
