"""examples/single-team.yaml: a pod created through the API server equals the reference
webhook's v1.6.3 pod for the same request (test_data/expected), once the API server has
defaulted both. The reference's pod is created by dry run in the namespace Kubewarden's
webhooks exclude, so nothing of this policy touches it."""
import copy
import json
import os

import pytest

import harness

EXAMPLE = "single-team.yaml"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
SA = {"azure.workload.identity/client-id": CLIENT_ID}
# (request fixture, service account and its annotations, the reference's pod)
CASES = [
    ("pod-plain", "workload-sa", SA, "plain"),
    ("pod-init-containers", "workload-sa", SA, "init-containers"),
    ("pod-skip-containers", "workload-sa", SA, "skip-containers"),
    ("pod-existing-env", "workload-sa", SA, "existing-env"),
    ("pod-proxy", "workload-sa", SA, "proxy-native"),
    ("pod-same-name", "workload-sa", SA, "same-name"),
    ("pod-expiration", "workload-sa", {**SA, "azure.workload.identity/service-account-token-expiration": "7200"},
     "pod-expiration"),
    ("pod-plain", "workload-sa", {**SA, "azure.workload.identity/service-account-token-expiration": "7200"},
     "sa-expiration"),
    ("pod-plain", "workload-sa", {**SA, "azure.workload.identity/tenant-id": "bbbbbbbb-0000-4000-8000-000000000002"},
     "sa-tenant"),
    ("pod-generate-name", "default", SA, "generate-name"),
]


def fixture(folder, name):
    with open(os.path.join(harness.ROOT, "test_data", folder, f"{name}.json")) as f:
        return json.load(f)


def comparable(pod):
    """The pod as the API server stored it, less what differs between any two pods: identity,
    timestamps, the namespace, a generated name and the service-account token volume, whose name
    the API server draws at random."""
    pod = copy.deepcopy(pod)
    meta = pod["metadata"]
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields", "namespace", "generation"):
        meta.pop(key, None)
    if "generateName" in meta:
        meta.pop("name", None)
    spec = pod["spec"]
    spec["volumes"] = [v for v in spec.get("volumes", []) if not v["name"].startswith("kube-api-access-")]
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        mounts = [m for m in c.get("volumeMounts", []) if not m["name"].startswith("kube-api-access-")]
        if mounts:
            c["volumeMounts"] = mounts
        else:
            c.pop("volumeMounts", None)
    return pod


@pytest.fixture(scope="module")
def chain(cluster, policy_server_for):
    policy_server_for.start(harness.policies_of(EXAMPLE))
    return cluster


@pytest.mark.parametrize("request_name,account,annotations,expected", CASES,
                         ids=[c[3] for c in CASES])
def test_a_created_pod_equals_the_reference_pod(chain, request_name, account, annotations, expected):
    namespace = f"parity-{expected}"
    chain.namespace(namespace, (account, annotations))
    chain.namespace(harness.KUBEWARDEN_NS, (account, annotations))
    pod = fixture("requests", request_name)["request"]["object"]
    created = chain.create(pod, "-n", namespace)
    assert created.code == 0, created
    reference = fixture("expected", expected)
    reference["metadata"].pop("namespace", None)
    stored = chain.create(reference, "-n", harness.KUBEWARDEN_NS, "--dry-run=server")
    assert stored.code == 0, stored
    assert comparable(created.json()) == comparable(stored.json())
    # The service-account token volume the API server adds (before any webhook) stays, and the
    # injected volume comes after it, as the reference appends it.
    volumes = [v["name"] for v in created.json()["spec"]["volumes"]]
    requested = [v["name"] for v in pod["spec"].get("volumes", [])]
    api = next(i for i, v in enumerate(volumes) if v.startswith("kube-api-access-"))
    injected = [i for i, v in enumerate(volumes)
                if v.startswith("azure-workload-identity-reserved-") and v not in requested]
    assert all(i > api for i in injected), volumes


def test_a_generated_name_is_named_in_the_validating_phase(chain):
    """The API server names a generateName pod after mutation: the injected directory follows
    the generateName, as the reference's does, and the created pod has its generated name."""
    chain.namespace("parity-generated", ("default", SA))
    pod = fixture("requests", "pod-generate-name")["request"]["object"]
    created = chain.create(pod, "-n", "parity-generated").json()
    assert created["metadata"]["name"].startswith("web-7d9f-")
    reference = fixture("expected", "generate-name")
    assert created["spec"]["containers"][0]["env"] == reference["spec"]["containers"][0]["env"]


def test_an_unlabelled_pod_is_untouched_and_never_sent(chain):
    chain.namespace("parity-unlabelled", ("workload-sa", SA))
    before = chain.webhook_calls()
    pod = fixture("requests", "pod-no-label")["request"]["object"]
    created = chain.create(pod, "-n", "parity-unlabelled")
    assert created.code == 0, created
    assert not any(e["name"].startswith("AZURE_") for c in created.json()["spec"]["containers"]
                   for e in c.get("env", []))
    assert chain.webhook_calls() == before
