"""deploy/docker-compose.yml and deploy/k8s/: parsed and checked against the app, the Dockerfile
and each other (no cluster or Docker engine here). Probe paths are requested from the real app."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from service.config import Settings
from tests.deploy.conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
SCRIPT = ROOT / "deploy" / "train-and-publish.sh"
SETTINGS = {name.upper() for name in Settings.model_fields}
JOB_VARIABLES = set(re.findall(r"\$\{?([A-Z_]+)", SCRIPT.read_text()))
DOCKERFILE = (ROOT / "Dockerfile").read_text()
IMAGE_UID = int(re.findall(r"^USER (\d+):", DOCKERFILE, re.M)[-1])
IMAGE_ENV = dict(re.findall(r"\b([A-Z_]+)=(\S+)", DOCKERFILE.split("AS final", 1)[1]))


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict[str, Any]]:
    """Every resource the kustomization applies, by (kind, name)."""
    kustomization = load(K8S / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}, (
        "every manifest is applied by the kustomization")
    resources = [doc for name in sorted(listed) for doc in load(K8S / name)]
    by_key = {(doc["kind"], doc["metadata"]["name"]): doc for doc in resources}
    assert len(by_key) == len(resources), "names are unique per kind"
    return by_key


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = load(ROOT / "deploy" / "docker-compose.yml")[0]
    return document


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def env_of(spec: dict[str, Any], config: dict[str, str]) -> dict[str, str]:
    env = dict(config) if spec.get("envFrom") else {}
    env.update({item["name"]: item["value"] for item in spec.get("env", [])})
    return env


def redis_address(url: str) -> tuple[str, int]:
    match = re.fullmatch(r"redis://([\w.-]+):(\d+)/\d+", url)
    assert match, url
    return match.group(1), int(match.group(2))


def test_api_deployment_probes_ports_and_gpu_match_the_app(k8s: dict[tuple[str, str], Any],
                                                           live_server: str) -> None:
    config = k8s["ConfigMap", "mvcrec-config"]["data"]
    deployment = k8s["Deployment", "mvcrec-api"]
    api = container(deployment)
    ports = {port["name"]: port["containerPort"] for port in api["ports"]}
    assert ports == {"http": int(config["PORT"])}
    assert config["HOST"] == "0.0.0.0"
    probes = {kind: api[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe",
                                                       "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == probes["startupProbe"]["path"] == "/healthz"
    for probe in probes.values():
        assert probe["port"] in ports
        assert httpx.get(live_server + probe["path"]).status_code == 200, probe
    assert api["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert int(api["resources"]["requests"]["cpu"]) >= 1, "the HPA scales on CPU requests"
    assert set(env_of(api, config)) <= SETTINGS, "every variable is a setting"

    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = k8s["Service", "mvcrec-api"]["spec"]
    assert service["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service["ports"]] == ["http"]
    pdb = k8s["PodDisruptionBudget", "mvcrec-api"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()


def test_pods_run_as_the_image_user_and_share_the_artifact_volume(
        k8s: dict[tuple[str, str], Any]) -> None:
    config = k8s["ConfigMap", "mvcrec-config"]["data"]
    assert config["ARTIFACT_DIR"] == IMAGE_ENV["ARTIFACT_DIR"]
    claim = k8s["PersistentVolumeClaim", "mvcrec-artifacts"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"], "the Job writes, replicas read"
    for kind, name in (("Deployment", "mvcrec-api"), ("Job", "mvcrec-train")):
        pod = k8s[kind, name]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == IMAGE_UID
        assert pod["securityContext"]["runAsNonRoot"] is True
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in container(k8s[kind, name])["volumeMounts"]}
        artifacts = mounts[config["ARTIFACT_DIR"]]
        claim_name = volumes[artifacts["name"]]["persistentVolumeClaim"]["claimName"]
        assert claim_name == "mvcrec-artifacts"
        assert artifacts.get("readOnly", False) is (kind == "Deployment")


def test_training_job_runs_the_image_script_and_publishes_to_redis(
        k8s: dict[tuple[str, str], Any]) -> None:
    config = k8s["ConfigMap", "mvcrec-config"]["data"]
    job = k8s["Job", "mvcrec-train"]
    train = container(job)
    assert train["command"] == ["train-and-publish"]
    assert f"COPY {SCRIPT.relative_to(ROOT)} /usr/local/bin/train-and-publish" in DOCKERFILE
    env = env_of(train, config)
    assert set(env) <= SETTINGS | JOB_VARIABLES
    assert {"DATA", "REDIS_URL", "ARTIFACT_DIR", "MODEL_NAME"} <= set(env)
    mounts = {m["mountPath"] for m in train["volumeMounts"]}
    assert str(Path(env["DATA"]).parent) in mounts and str(Path(env["RUN_DIR"]).parent) in mounts
    assert train["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")
    assert config["AUTO_PUBLISH"] == "false", "only the Job publishes"


def test_redis_is_persistent_and_where_the_config_points(
        k8s: dict[tuple[str, str], Any]) -> None:
    host, port = redis_address(k8s["ConfigMap", "mvcrec-config"]["data"]["REDIS_URL"])
    statefulset = k8s["StatefulSet", "mvcrec-redis"]
    redis = container(statefulset)
    assert "--appendonly" in redis["args"] and "yes" in redis["args"]
    assert "noeviction" in redis["args"]
    assert redis["volumeMounts"][0]["name"] == (
        statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"])
    service = k8s["Service", host]["spec"]
    assert [p["port"] for p in service["ports"]] == [port]
    assert service["selector"].items() <= (
        statefulset["spec"]["template"]["metadata"]["labels"].items())


def test_autoscaler_targets_the_api(k8s: dict[tuple[str, str], Any]) -> None:
    hpa = k8s["HorizontalPodAutoscaler", "mvcrec-api"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "mvcrec-api"}
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"


def test_images_are_pinned(k8s: dict[tuple[str, str], Any], compose: dict[str, Any]) -> None:
    kustomized = {i["name"]: i for i in load(K8S / "kustomization.yaml")[0]["images"]}
    images = [c["image"] for doc in k8s.values() if "template" in doc.get("spec", {})
              for c in doc["spec"]["template"]["spec"]["containers"]]
    images += [service["image"] for service in compose["services"].values()]
    for image in images:
        tag = kustomized[image]["newTag"] if image in kustomized else image.partition(":")[2]
        assert tag and tag != "latest", f"{image}: pin a tag"


def test_compose_runs_redis_api_and_a_training_job(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "api", "train"}
    redis = services["redis"]
    assert "--appendonly" in redis["command"] and any(
        volume.endswith(":/data") for volume in redis["volumes"])
    host, port = redis_address(services["api"]["environment"]["REDIS_URL"])
    assert host == "redis" and port == 6379

    api, train = services["api"], services["train"]
    for service in (api, train):
        assert service["build"]["context"] == ".."
        assert (ROOT / "deploy" / service["build"]["context"] / "Dockerfile").is_file()
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        artifacts = [v for v in service["volumes"] if f":{IMAGE_ENV['ARTIFACT_DIR']}" in v]
        assert len(artifacts) == 1
    assert set(api["environment"]) <= SETTINGS
    assert api["ports"] == [f"{IMAGE_ENV['PORT']}:{IMAGE_ENV['PORT']}"]
    assert api["environment"]["AUTO_PUBLISH"] == "false"
    assert next(v for v in api["volumes"] if "artifacts" in v).endswith(":ro")

    assert train["command"] == ["train-and-publish"] and train["restart"] == "no"
    assert train["profiles"] == ["train"], "one-shot: only `docker compose run train` runs it"
    assert set(train["environment"]) <= SETTINGS | JOB_VARIABLES
