"""examples/assigned-identities.yaml through the API server: identities named and assigned in the
settings reach the pod field for field as the GUID annotation would, TokenRequests and workload
templates see them, unknown names and overlapping assignments are refused plainly, and the API
server's audit log records how each identity was chosen."""
import copy

import pytest

import harness

EXAMPLE = "assigned-identities.yaml"
BILLING = "11111111-2222-3333-4444-555555555555"  # named billing-api: namespace billing
EXPORTER = "22222222-2222-3333-4444-555555555555"  # assigned: reports-* / exporter
TEAM_B = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"  # GUID annotations in team-b
EXCHANGE = "api://AzureADTokenExchange"
NAME = "azure.azwi-policy.github.io/identity"
POD_POLICY, GUARDRAIL = (harness.webhook_name(p) for p in harness.policies_of(EXAMPLE))


def opted_in(account, name=None):
    """An opted-in pod named `name`, else generated from `web-` (the token's directory then
    depends on the prefix alone; the audit log names only pods created with a name)."""
    named = {"name": name} if name else {"generateName": "web-"}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {**named, "labels": {"azure.workload.identity/use": "true"}},
            "spec": {"serviceAccountName": account,
                     "containers": [{"name": "app", "image": "registry.example.com/app:1"}]}}


def injected(r):
    """The created pod's spec, without what names its service account: its name, and the API
    server's own token volume (`kube-api-access-<random>`) and mounts."""
    assert r.code == 0, r
    pod = r.json()
    spec = copy.deepcopy(pod["spec"])
    for key in ("serviceAccountName", "serviceAccount"):
        spec.pop(key, None)
    own = lambda name: name.startswith("kube-api-access-")  # noqa: E731
    spec["volumes"] = [v for v in spec["volumes"] if not own(v["name"])]
    for c in spec["containers"]:
        c["volumeMounts"] = [m for m in c["volumeMounts"] if not own(m["name"])]
    return pod, spec


def env(pod):
    return {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}


@pytest.fixture(scope="module")
def chain(cluster, policy_server_for):
    # Accounts made before the policies: one names an identity the settings do not (a renamed
    # entry), so that its pods, not its own creation, meet the name.
    cluster.namespace("billing", ("api", {NAME: "billing-api"}),
                      ("guid", {"azure.workload.identity/client-id": BILLING}),
                      ("typo", {NAME: "biling-api"}))
    cluster.namespace("reports-eu", ("exporter", None), ("other", None))
    cluster.namespace("reports-us", ("exporter", {"azure.workload.identity/client-id": EXPORTER}))
    policy_server_for.start(harness.policies_of(EXAMPLE))
    cluster.policy_server = policy_server_for
    return cluster


def test_an_assigned_identity_gives_the_pod_its_guid_would(chain):
    assigned, assigned_spec = injected(chain.create(opted_in("exporter", "exporter-1"), "-n", "reports-eu"))
    annotated, annotated_spec = injected(chain.create(opted_in("exporter", "exporter-1"), "-n", "reports-us"))
    assert env(assigned)["AZURE_CLIENT_ID"] == EXPORTER
    # One pod name, so one token directory, in both namespaces.
    assert assigned_spec == annotated_spec
    audit = chain.audit_annotations("pods", "reports-eu", assigned["metadata"]["name"], POD_POLICY)
    assert audit["identity-source"] == "assignment/reports-exporter", audit
    assert audit["client-id"] == EXPORTER and audit["decision"] == "injected", audit
    audit = chain.audit_annotations("pods", "reports-us", annotated["metadata"]["name"], POD_POLICY)
    assert "identity-source" not in audit and audit["client-id"] == EXPORTER, audit


def test_a_named_identity_gives_the_pod_its_guid_would(chain):
    named, named_spec = injected(chain.create(opted_in("api"), "-n", "billing"))
    _, annotated_spec = injected(chain.create(opted_in("guid"), "-n", "billing"))
    assert env(named)["AZURE_CLIENT_ID"] == BILLING
    assert named_spec == annotated_spec
    r = chain.create(opted_in("api", "api-1"), "-n", "billing")
    assert r.code == 0, r
    audit = chain.audit_annotations("pods", "billing", "api-1", POD_POLICY)
    assert audit["identity-source"] == "name/billing-api", audit


def test_an_unknown_name_is_refused_with_the_names(chain):
    r = chain.create(opted_in("typo"), "-n", "billing")
    assert r.code != 0, r
    assert ('service account billing/typo names identity "biling-api" (azure.azwi-policy.github.io/identity), '
            "which allowedIdentities does not name; the names namespace billing may use, nearest first: "
            "billing-api") in r.err, r


def test_service_accounts_naming_an_identity_are_checked_at_apply(chain):
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "new", "annotations": {NAME: "billing-ap"}}}
    r = chain.create(sa, "-n", "billing")
    assert r.code != 0, r
    assert "nearest first: billing-api" in r.err, r
    sa["metadata"]["annotations"][NAME] = "billing-api"
    r = chain.create(sa, "-n", "billing")
    assert r.code == 0, r
    audit = chain.audit_annotations("serviceaccounts", "billing", "new", GUARDRAIL)
    assert audit["identity-source"] == "name/billing-api" and audit["client-id"] == BILLING, audit
    # Named where the identity is not granted: refused like its GUID would be.
    sa = {"apiVersion": "v1", "kind": "ServiceAccount",
          "metadata": {"name": "api", "annotations": {NAME: "billing-api"}}}
    r = chain.create(sa, "-n", "reports-eu")
    assert r.code != 0, r
    assert f'client id "{BILLING}" is not granted to service account reports-eu/api' in r.err, r


def test_token_requests_claim_the_assigned_identity(chain):
    r = chain.kubectl("create", "token", "exporter", "-n", "reports-eu", f"--audience={EXCHANGE}")
    assert r.code == 0, r
    audit = chain.audit_annotations("serviceaccounts/token", "reports-eu", "exporter", GUARDRAIL)
    assert audit["identity-source"] == "assignment/reports-exporter", audit
    r = chain.kubectl("create", "token", "other", "-n", "reports-eu", f"--audience={EXCHANGE}")
    assert r.code != 0, r
    assert "service account reports-eu/other has no azure.workload.identity/client-id annotation" in r.err, r
    r = chain.kubectl("create", "token", "typo", "-n", "billing", f"--audience={EXCHANGE}")
    assert r.code != 0, r
    assert 'names identity "biling-api"' in r.err, r


def test_workload_templates_see_the_resolved_identity(chain):
    def deployment(name, account):
        pod = opted_in(account)
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name, **pod["metadata"]["labels"]}},
                                      "spec": pod["spec"]}}}
    r = chain.create(deployment("named", "api"), "-n", "billing")
    assert r.code == 0 and r.warnings == [], r
    audit = chain.audit_annotations("deployments", "billing", "named", GUARDRAIL)
    assert audit["identity-source"] == "name/billing-api", audit
    r = chain.create(deployment("typo", "typo"), "-n", "billing")
    assert r.code != 0, r
    assert 'Deployment billing/typo pod template: service account billing/typo names identity "biling-api"' in r.err, r


def test_overlapping_assignments_are_refused_when_the_settings_load(chain):
    """policy-server validates each policy's settings as it loads them, and does not start with
    settings its policy refuses: the error names both entries and a place they share."""
    overlapping = harness.policies_of(EXAMPLE)
    for p in overlapping:
        p["spec"]["settings"]["allowedIdentities"].append(
            {"clientId": TEAM_B, "name": "reports", "assign": True, "namespaces": ["reports-eu"]})
    ps = chain.policy_server
    with pytest.raises(RuntimeError, match="policy-server exited with"):
        ps.start(overlapping)
    with open(ps.log) as f:
        log = f.read()
    assert ('Policy settings are invalid: allowedIdentities[1] (name "reports-exporter") and '
            'allowedIdentities[3] (name "reports") both assign an identity to service account exporter '
            "in namespace reports-eu") in log, harness.tail(ps.log)
    ps.start(harness.policies_of(EXAMPLE))
    assert chain.create(opted_in("exporter"), "-n", "reports-eu").code == 0
