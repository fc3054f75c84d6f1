"""Every example's webhooks, made as Kubewarden's controller makes them, are accepted by the API
server: creating a webhook configuration is where it compiles each matchCondition and checks its
CEL cost, so a condition over the limit fails here, not on a user's cluster."""
import json

import pytest

import harness

EXAMPLES = ["single-team.yaml", "multi-team.yaml", "sovereign-cloud.yaml", "proxy-sidecar.yaml",
            "custom-token-endpoint.yaml", "aks-identity-binding.yaml", "monitor-mode.yaml",
            "assigned-identities.yaml"]


def dry_run(cluster, policy, suffix):
    config = harness.webhook_configuration(policy, "https://127.0.0.1:1", "", name=f"dry-run-{suffix}")
    del config["webhooks"][0]["clientConfig"]["caBundle"]
    return cluster.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(config))


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_is_accepted(cluster, name):
    policies = harness.policies_of(name)
    assert policies, f"{name} has no ClusterAdmissionPolicy"
    for i, policy in enumerate(policies):
        r = dry_run(cluster, policy, f"{name.removesuffix('.yaml')}-{i}")
        assert r.code == 0, f"{name} {policy['metadata']['name']}: {r}"


def test_a_condition_the_api_server_cannot_compile_is_refused(cluster):
    """The check above can fail: the same dry run refuses a broken condition."""
    policy = harness.policies_of("multi-team.yaml")[1]
    policy["spec"]["matchConditions"][0]["expression"] = "object.spec.nosuch("
    r = dry_run(cluster, policy, "broken")
    assert r.code != 0, r
    assert "matchConditions[0].expression" in r.err and "compil" in r.err.lower(), r


def test_the_readme_kubectl_commands_run_as_written(cluster):
    """The README's kubectl commands (the verification config's ConfigMap), pasted as they stand."""
    commands = [b for b in harness.console_blocks("README.md") if b.startswith("kubectl ")]
    assert commands, "the README quotes no kubectl command"
    for command in commands:
        ran = cluster.shell(command)
        assert ran.code == 0, (command, ran)
