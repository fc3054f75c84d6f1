"""examples/multi-team.yaml through the API server: what reaches policy-server (measured in the
API server's webhook metrics), what is refused and what the refusal says, what kubectl shows as
warnings, and what a mutating webhook that runs after ours does to the final pod."""
import copy

import pytest

import harness

EXAMPLE = "multi-team.yaml"
ID_A = "11111111-2222-3333-4444-555555555555"  # team-a, team-a-*: api, worker-*
ID_B = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"  # team-b: any; shared: batch
EXCHANGE = "api://AzureADTokenExchange"
POD_POLICY, GUARDRAIL = (harness.webhook_name(p) for p in harness.policies_of(EXAMPLE))


def pod(name, account="api", labels=None, annotations=None, containers=None, **spec):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
            "spec": {"serviceAccountName": account,
                     "containers": containers or [{"name": "app", "image": "registry.example.com/app:1"}],
                     **spec}}


def opted_in(name, account="api", **kw):
    labels = {"azure.workload.identity/use": "true", **kw.pop("labels", {})}
    return pod(name, account, labels=labels, **kw)


def deployment(name, template):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name, **template["metadata"]["labels"]},
                                               "annotations": template["metadata"]["annotations"]},
                                  "spec": template["spec"]}}}


class Calls:
    """The requests each of the example's webhooks received during a block."""

    def __init__(self, cluster):
        self.cluster = cluster

    def __enter__(self):
        self.before = self.cluster.webhook_calls()
        return self

    def __exit__(self, *exc):
        after = self.cluster.webhook_calls()
        self.delta = {name: after.get(name, 0) - self.before.get(name, 0) for name in (POD_POLICY, GUARDRAIL)}

    @property
    def total(self):
        return sum(self.delta.values())


@pytest.fixture(scope="module")
def chain(cluster, policy_server_for):
    policy_server_for.start(harness.policies_of(EXAMPLE))
    cluster.namespace("team-a", ("api", {"azure.workload.identity/client-id": ID_A}),
                      ("worker-1", {"azure.workload.identity/client-id": ID_A}), ("plain", None))
    cluster.namespace("team-b", ("api", {"azure.workload.identity/client-id": ID_B}), ("plain", None))
    cluster.policy_server = policy_server_for
    return cluster


# -- what reaches policy-server ---------------------------------------------------------------

def test_an_ordinary_pod_is_never_sent(chain):
    with Calls(chain) as calls:
        r = chain.create(pod("ordinary", "plain"), "-n", "team-a")
    assert r.code == 0, r
    assert calls.total == 0, calls.delta


def test_a_default_audience_token_request_is_never_sent(chain):
    """kubectl create token with no audience: the API server fills in its own before admission."""
    with Calls(chain) as calls:
        r = chain.kubectl("create", "token", "api", "-n", "team-a")
    assert r.code == 0, r
    assert calls.total == 0, calls.delta


def test_scaling_never_reaches_policy_server(chain):
    """`kubectl scale` (the scale subresource) and a controller's replicas update of an
    opted-in workload (template unchanged) are never sent."""
    template = opted_in("t")
    r = chain.create(deployment("scaled", template), "-n", "team-a")
    assert r.code == 0, r
    rs = copy.deepcopy(deployment("scaled-rs", template))
    rs["kind"] = "ReplicaSet"
    assert chain.create(rs, "-n", "team-a").code == 0
    with Calls(chain) as calls:
        assert chain.kubectl("scale", "deployment/scaled", "--replicas=3", "-n", "team-a").code == 0
        assert chain.kubectl("patch", "replicaset/scaled-rs", "-n", "team-a", "--type=merge",
                             "-p", '{"spec": {"replicas": 2}}').code == 0
    assert calls.total == 0, calls.delta


# -- opted-in pods ------------------------------------------------------------------------------

def test_a_granted_pod_is_mutated_and_checked_once_each(chain):
    with Calls(chain) as calls:
        r = chain.create(opted_in("granted"), "-n", "team-a")
    assert r.code == 0, r
    env = {e["name"]: e.get("value") for e in r.json()["spec"]["containers"][0]["env"]}
    assert env["AZURE_CLIENT_ID"] == ID_A
    assert env["AZURE_FEDERATED_TOKEN_FILE"].startswith("/var/run/secrets/azure/wi/")
    assert r.warnings == []
    assert calls.delta == {POD_POLICY: 1, GUARDRAIL: 1}


def test_a_service_account_with_an_ungranted_identity_is_refused_with_the_fix(chain):
    sa = {"apiVersion": "v1", "kind": "ServiceAccount",
          "metadata": {"name": "web", "annotations": {"azure.workload.identity/client-id": ID_B}}}
    r = chain.create(sa, "-n", "team-a")
    assert r.code != 0, r
    assert (f'client id "{ID_B}" is not granted to service account team-a/web' in r.err
            and f"add {{clientId: {ID_B}, namespaces: [team-a], serviceAccounts: [web]}} to allowedIdentities"
            in r.err), r


def test_a_container_claiming_an_ungranted_identity_is_refused(chain):
    containers = [{"name": "app", "image": "registry.example.com/app:1",
                   "env": [{"name": "AZURE_CLIENT_ID", "value": ID_B}]}]
    r = chain.create(opted_in("claims-b", containers=containers), "-n", "team-a")
    assert r.code != 0, r
    assert f'client id "{ID_B}" is not granted to service account team-a/api' in r.err, r


def test_a_mistyped_label_reaches_kubectl_as_a_warning(chain):
    r = chain.create(pod("typo", labels={"azure.workload.identity/use": "True"}), "-n", "team-a")
    assert r.code == 0, r
    assert r.warnings == ['pod team-a/typo: label azure.workload.identity/use="True" is not "true", '
                          'so no identity is injected; set it to "true"'], r


# -- tokens -----------------------------------------------------------------------------------

def test_an_exchange_token_for_a_granted_account_is_issued(chain):
    with Calls(chain) as calls:
        r = chain.kubectl("create", "token", "api", "-n", "team-a", f"--audience={EXCHANGE}")
    assert r.code == 0, r
    assert calls.delta == {POD_POLICY: 0, GUARDRAIL: 1}


def test_an_exchange_token_for_an_account_without_identity_is_refused(chain):
    r = chain.kubectl("create", "token", "plain", "-n", "team-a", f"--audience={EXCHANGE}")
    assert r.code != 0, r
    assert ("service account team-a/plain has no azure.workload.identity/client-id annotation, so nothing "
            f"says which identity a token for audience {EXCHANGE} is for") in r.err, r


def test_an_exchange_token_in_another_case_is_refused_too(chain):
    r = chain.kubectl("create", "token", "plain", "-n", "team-a", "--audience=API://AzureADTokenExchange/")
    assert r.code != 0, r
    assert "service account team-a/plain has no azure.workload.identity/client-id annotation" in r.err, r


# -- kubectl debug ---------------------------------------------------------------------------

def test_a_debug_container_targeting_a_holder_may_not_claim_another_identity(chain):
    assert chain.create(opted_in("debugged"), "-n", "team-a").code == 0
    r = chain.kubectl("debug", "debugged", "-n", "team-a", "--image=registry.example.com/debug:1",
                      "--target=app", f"--env=AZURE_CLIENT_ID={ID_B}", "--container=dbg")
    assert r.code != 0, r
    assert f'client id "{ID_B}"' in r.err, r
    ok = chain.kubectl("debug", "debugged", "-n", "team-a", "--image=registry.example.com/debug:1",
                       "--target=app", "--container=dbg2")
    assert ok.code == 0, ok


# -- workloads --------------------------------------------------------------------------------

def test_a_workload_refusal_names_the_workload(chain):
    template = opted_in("t", containers=[{"name": "web", "image": "registry.example.com/web:1",
                                          "env": [{"name": "AZURE_CLIENT_ID", "value": ID_B}]}])
    r = chain.create(deployment("web", template), "-n", "team-a")
    assert r.code != 0, r
    assert "Deployment team-a/web pod template: " in r.err, r


def test_a_workload_before_its_service_account_warns_in_plain_words(chain):
    r = chain.create(deployment("early", opted_in("t", "later")), "-n", "team-a")
    assert r.code == 0, r
    assert r.warnings == [
        "service account team-a/later does not exist: create it before the pod, or set "
        "spec.serviceAccountName to one that exists; its pods will be checked when they are created"], r


def test_a_rollout_of_a_revoked_identity_warns(chain):
    """The platform team narrows the grant (the policy's settings change); a rollout restart of a
    workload that used it is admitted, with a warning that its new pods will be refused."""
    r = chain.create(deployment("worker", opted_in("t", "worker-1")), "-n", "team-a")
    assert r.code == 0 and r.warnings == [], r
    ps = chain.policy_server
    narrowed = harness.policies_of(EXAMPLE)
    for p in narrowed:
        p["spec"]["settings"]["allowedIdentities"][0]["serviceAccounts"] = ["api"]
    ps.start(narrowed)
    try:
        r = chain.kubectl("rollout", "restart", "deployment/worker", "-n", "team-a")
        assert r.code == 0, r
        assert any(w.startswith("Deployment team-a/worker pod template: its identity is unchanged, but its new "
                                "pods will be refused") for w in r.warnings), r
    finally:
        ps.start(harness.policies_of(EXAMPLE))


# -- a mutating webhook after ours ------------------------------------------------------------

@pytest.fixture(scope="module")
def late(chain):
    webhook = harness.LateWebhook(chain)
    yield webhook
    webhook.stop()


def test_a_later_sidecar_is_named_in_a_warning(chain, late):
    r = chain.create(opted_in("late", labels={"chain.test/late-sidecar": "plain"}), "-n", "team-a")
    assert r.code == 0, r
    names = [c["name"] for c in r.json()["spec"]["containers"]]
    assert names == ["app", "late-sidecar"]
    late = [w for w in r.warnings if w.startswith('pod team-a/late: container "late-sidecar" lacks ')]
    assert len(late) == 1 and late[0].endswith(
        "list it in azure.workload.identity/skip-containers, or have that webhook run first"), r


def test_a_later_sidecar_listed_in_skip_containers_draws_no_mistaken_advice(chain, late):
    annotations = {"azure.workload.identity/skip-containers": "late-sidecar"}
    r = chain.create(opted_in("late-skipped", labels={"chain.test/late-sidecar": "plain"},
                              annotations=annotations), "-n", "team-a")
    assert r.code == 0, r
    # Only the pod policy's note that the container is not there yet; nothing from the guardrail.
    assert r.warnings == ['pod team-a/late-skipped: azure.workload.identity/skip-containers names '
                          '"late-sidecar", no container yet: skips nothing unless a later webhook adds it'], r


def test_a_later_sidecar_setting_an_ungranted_identity_is_refused(chain, late):
    r = chain.create(opted_in("late-claims", labels={"chain.test/late-sidecar": ID_B}), "-n", "team-a")
    assert r.code != 0, r
    assert f'client id "{ID_B}"' in r.err and "late-sidecar" in r.err, r
    assert GUARDRAIL.removesuffix(".kubewarden.admission") in r.err, r


def test_every_answer_came_from_policy_server(chain):
    """None of the example's webhooks failed to answer (a timeout, a TLS or routing error): every
    refusal above was policy-server's own."""
    r = chain.kubectl("get", "--raw", "/metrics")
    failed = [line for line in r.out.splitlines()
              if line.startswith("apiserver_admission_webhook_rejection_count")
              and 'error_type="calling_webhook_error"' in line and ".kubewarden.admission" in line]
    assert failed == [], failed
    rejected = [line for line in r.out.splitlines()
                if line.startswith("apiserver_admission_webhook_rejection_count")
                and 'error_type="no_error"' in line and GUARDRAIL in line]
    assert rejected, "no refusal by the guardrail was counted: the metric read is wrong"
