"""examples/aks-identity-binding.yaml: identities granted with real Roles and Bindings. The
command a refusal prints is run as printed, a deleted binding refuses again, each scope counts
the bindings it says, and policy-server without its documented permissions says which to grant."""
import time

import pytest

import harness

EXAMPLE = "aks-identity-binding.yaml"
ID = "22222222-3333-4444-5555-666666666666"
EXCHANGE = "api://AzureADTokenExchange"
# policy-server keeps an answer to a SubjectAccessReview (and a read) for 5 s.
CACHE = 6


def account(name, client_id=ID):
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "annotations": {"azure.workload.identity/client-id": client_id}}}


def printed_command(err):
    """The commands a refusal prints, from `echo '` to the end of the message."""
    assert "echo '" in err, err
    return err[err.index("echo '"):].splitlines()[0].strip()


def with_scope(scope):
    policies = harness.policies_of(EXAMPLE)
    for p in policies:
        p["spec"]["settings"]["rbacGrantScope"] = scope
    return policies


@pytest.fixture(scope="module")
def chain(cluster, policy_server_for):
    policy_server_for.start(harness.policies_of(EXAMPLE))
    cluster.namespace("team-c", ("plain", None))
    cluster.policy_server = policy_server_for
    return cluster


def test_the_example_counts_cluster_role_bindings_only(chain):
    assert harness.policies_of(EXAMPLE)[0]["spec"]["settings"]["rbacGrantScope"] == "Cluster"


def test_a_refusal_prints_the_grant_and_the_grant_works(chain):
    r = chain.create(account("api"), "-n", "team-c")
    assert r.code != 0, r
    command = printed_command(r.err)
    assert f"kubectl create clusterrolebinding azure-identity-{ID}-team-c-api " in command, command
    ran = chain.shell(command)
    assert ran.code == 0, ran
    time.sleep(CACHE)
    r = chain.create(account("api"), "-n", "team-c")
    assert r.code == 0, r
    # The docs' audit command shows the grant (a plain `can-i <verb> <resource>` cannot: kubectl
    # asks for a resource the API server does not serve, in the core group).
    listed = chain.kubectl("auth", "can-i", "--list", "-n", "team-c", "--as=system:serviceaccount:team-c:api")
    assert any(f"{ID}.cid.wi.aks.azure.com" in line and "use-managed-identity" in line
               for line in listed.out.splitlines()), listed
    token = chain.kubectl("create", "token", "api", "-n", "team-c", f"--audience={EXCHANGE}")
    assert token.code == 0, token


def test_a_deleted_binding_refuses_again(chain):
    r = chain.kubectl("delete", "clusterrolebinding", f"azure-identity-{ID}-team-c-api")
    assert r.code == 0, r
    time.sleep(CACHE)
    token = chain.kubectl("create", "token", "api", "-n", "team-c", f"--audience={EXCHANGE}")
    assert token.code != 0, token
    assert f"identity {ID}" in token.err or f'"{ID}"' in token.err, token


def test_a_role_binding_does_not_count_cluster_wide(chain):
    r = chain.kubectl("create", "rolebinding", f"azure-identity-{ID}-web", "-n", "team-c",
                      f"--clusterrole=azure-identity-{ID}", "--serviceaccount=team-c:web")
    assert r.code == 0, r
    refused = chain.create(account("web"), "-n", "team-c")
    assert refused.code != 0, refused
    assert "by a ClusterRoleBinding" in refused.err, refused


def test_the_namespace_scope_counts_the_role_binding_it_prints(chain):
    ps = chain.policy_server
    ps.start(with_scope("Namespace"))
    try:
        # The RoleBinding of the test above now grants.
        assert chain.create(account("web"), "-n", "team-c").code == 0
        r = chain.create(account("worker"), "-n", "team-c")
        assert r.code != 0, r
        command = printed_command(r.err)
        assert f"kubectl create rolebinding azure-identity-{ID}-worker -n team-c " in command, command
        assert chain.shell(command).code == 0
        time.sleep(CACHE)
        assert chain.create(account("worker"), "-n", "team-c").code == 0
    finally:
        ps.start(harness.policies_of(EXAMPLE))


def test_the_docs_grant_commands_run_as_written(chain):
    """docs/rbac-grants.md's commands, pasted as they stand, grant team-b/api the identity they
    name, in each scope."""
    blocks = [b for b in harness.console_blocks("docs/rbac-grants.md") if "cid.wi.aks.azure.com" in b or "rolebinding" in b]
    assert len(blocks) == 2, blocks
    chain.namespace("team-b", ("plain", None))
    for block in blocks:
        ran = chain.shell(block)
        assert ran.code == 0, (block, ran)
    listed = chain.kubectl("auth", "can-i", "--list", "-n", "team-b", "--as=system:serviceaccount:team-b:api")
    assert any("11111111-2222-3333-4444-555555555555.cid.wi.aks.azure.com" in line
               and "use-managed-identity" in line for line in listed.out.splitlines()), listed
    # The example counts the ClusterRoleBinding of the second block: team-b/api may now be
    # annotated with that identity, and get its token.
    chain.namespace("team-b", ("api", None))
    r = chain.kubectl("annotate", "--overwrite", "serviceaccount/api", "-n", "team-b",
                      "azure.workload.identity/client-id=11111111-2222-3333-4444-555555555555")
    assert r.code == 0, r
    token = chain.kubectl("create", "token", "api", "-n", "team-b", f"--audience={EXCHANGE}")
    assert token.code == 0, token


def test_without_the_review_permission_the_refusal_names_it(chain):
    binding = harness.example("policy-server.yaml")
    binding = next(d for d in binding if d["kind"] == "ClusterRoleBinding"
                   and d["metadata"]["name"] == "azure-workload-identity-review-grants")
    assert chain.kubectl("delete", "clusterrolebinding", binding["metadata"]["name"]).code == 0
    try:
        r = chain.create(account("reviewer", "33333333-4444-5555-6666-777777777777"), "-n", "team-c")
        assert r.code != 0, r
        assert "policy-server may not ask the cluster whether service account team-c/reviewer" in r.err, r
        assert "`create` on `subjectaccessreviews.authorization.k8s.io`" in r.err, r
    finally:
        chain.apply(binding)


def test_without_the_read_permission_the_refusal_names_it(chain):
    binding = next(d for d in harness.example("policy-server.yaml") if d["kind"] == "ClusterRoleBinding"
                   and d["metadata"]["name"] == "azure-workload-identity-read-serviceaccounts")
    assert chain.kubectl("delete", "clusterrolebinding", binding["metadata"]["name"]).code == 0
    try:
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "unread", "labels": {"azure.workload.identity/use": "true"}},
               "spec": {"serviceAccountName": "plain",
                        "containers": [{"name": "app", "image": "registry.example.com/app:1"}]}}
        r = chain.create(pod, "-n", "team-c")
        assert r.code != 0, r
        assert "policy-server is not allowed to read service account team-c/plain" in r.err, r
        assert "Access to Kubernetes resources" in r.err, r
    finally:
        chain.apply(binding)
