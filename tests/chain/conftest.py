"""Fixtures of the real-chain suite: one API server for the whole run, policy-server started per
file with the example that file is about. Without the tools every test is skipped, and the
reason names what is missing; CHAIN_REQUIRED=1 makes that a failure."""
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def pytest_collection_modifyitems(config, items):
    # The files are phases; the outage must come last, whatever order pytest is given.
    items.sort(key=lambda item: os.path.basename(str(item.fspath)))


@pytest.fixture(scope="session")
def cluster():
    missing = harness.missing_tools()
    if not os.path.exists(os.path.join(harness.ROOT, "policy.wasm")):
        missing.append("policy.wasm (make policy.wasm)")
    if missing:
        reason = "the real admission chain needs " + ", ".join(missing)
        if os.environ.get("CHAIN_REQUIRED") == "1":
            pytest.fail("CHAIN_REQUIRED=1 but " + reason)
        pytest.skip(reason)
    work = harness.make_work()
    c = harness.Cluster(work)
    try:
        c.module = harness.annotate(work)
        c.start()
        # The PolicyServer's identity and exactly the permissions the README documents.
        c.apply(*[d for d in harness.example("policy-server.yaml") if d["kind"] != "PolicyServer"])
        yield c
    finally:
        c.stop()
        if os.environ.get("CHAIN_KEEP") == "1":
            print(f"# chain logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def policy_server_for(cluster):
    """One policy-server per test file, which starts it with the policies of its example;
    stopped and its webhooks removed after the file."""
    ps = harness.PolicyServer(cluster)
    yield ps
    ps.unregister()
    ps.stop()
