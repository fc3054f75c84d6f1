"""Last: policy-server down, examples/multi-team.yaml registered with failurePolicy Fail. What
has nothing to do with an Azure identity goes on; what does waits for policy-server."""
import pytest

import harness

EXAMPLE = "multi-team.yaml"
EXCHANGE = "api://AzureADTokenExchange"
ID_A = "11111111-2222-3333-4444-555555555555"
# Granted there by the example (team-a-*), so only the outage refuses.
NS = "team-a-outage"


@pytest.fixture(scope="module")
def outage(cluster, policy_server_for):
    policy_server_for.start(harness.policies_of(EXAMPLE))
    cluster.namespace(NS, ("api", {"azure.workload.identity/client-id": ID_A}), ("plain", None))
    policy_server_for.stop()
    return cluster


def plain_pod(name, labels=None, account="plain"):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"serviceAccountName": account,
                     "containers": [{"name": "app", "image": "registry.example.com/app:1"}]}}


def test_an_ordinary_pod_is_created(outage):
    r = outage.create(plain_pod("ordinary"), "-n", NS)
    assert r.code == 0, r


def test_an_ordinary_deployment_and_its_scaling_go_on(outage):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}}, "spec": plain_pod("x")["spec"]}}}
    assert outage.create(deployment, "-n", NS).code == 0
    assert outage.kubectl("scale", "deployment/web", "--replicas=2", "-n", NS).code == 0


def test_an_ordinary_token_is_issued(outage):
    r = outage.kubectl("create", "token", "plain", "-n", NS)
    assert r.code == 0, r


def test_an_opted_in_pod_waits(outage):
    r = outage.create(plain_pod("opted-in", {"azure.workload.identity/use": "true"}, "api"), "-n", NS)
    assert r.code != 0, r
    assert "failed calling webhook" in r.err and "clusterwide-azure-workload-identity" in r.err, r


def test_an_exchange_token_waits(outage):
    r = outage.kubectl("create", "token", "api", "-n", NS, f"--audience={EXCHANGE}")
    assert r.code != 0, r
    assert "failed calling webhook" in r.err, r
