#!/usr/bin/env python3
"""Throughput in policy-server, where users run the policy, beside the reference points.

One policy-server (`--workers 1`) loads the policy (the example's settings), the SDK-style peer
and the decode-only baseline, annotated with kwctl. A loopback stand-in for the Kubernetes API
answers discovery and the example's ServiceAccount read (examples/session.yml), so policy-server
serves the read from its cache as in a cluster. wrk sends the example's opted-in pod to the
policy and the peer, and the same pod without the label to the policy and the baseline, in
alternating rounds; it prints the median requests/s and the median of the per-round ratios.

The same pod, run by a service account without annotations, is sent to the policy with its
identity assigned by the settings (the catalogue, docs/catalogue.md), to price the assignment
against the GUID annotation. The same opted-in pod is also sent to the policy with `rbacGrants` twice: once where the settings
grant its identity (no review) and once where only Kubernetes RBAC does (the stand-in answers the
SubjectAccessReview, which policy-server then caches), to price the review's host call. With
PS_PREVIOUS naming an earlier build of the policy, that build answers the opted-in pod beside
this one.

Usage: policy-server-bench.py POLICY PEER BASELINE   (PS_ROUNDS, PS_SECONDS, PS_PREVIOUS from the
environment)
Needs policy-server, kwctl (or $POLICY_SERVER, $KWCTL) and wrk on the PATH, and PyYAML; every
address is on the loopback interface.
"""

import http.server
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

try:
    import yaml
except ImportError:
    yaml = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABEL = "azure.workload.identity/use"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RBAC_GROUP = "cid.wi.aks.azure.com"
REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


def loopback_api(service_accounts, granted):
    """Discovery, the ServiceAccount reads policy-server makes and SubjectAccessReviews (allowed
    for the client ids in `granted`), on a free port; `server.reviews` counts the reviews."""
    discovery = {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {"name": "serviceaccounts", "singularName": "serviceaccount", "namespaced": True,
             "kind": "ServiceAccount", "verbs": ["get", "list", "watch"]},
        ],
    }
    fixed = {
        "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
        "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
        "/api/v1": discovery,
        "/version": {"major": "1", "minor": "34", "gitVersion": "v1.34.0"},
    }
    accounts = {"/api/v1/namespaces/{namespace}/serviceaccounts/{name}".format(**sa["metadata"]): sa
                for sa in service_accounts}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            path = self.path.split("?")[0]
            body = accounts.get(path) or fixed.get(path)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path.split("?")[0] != REVIEWS:
                self.send_response(404)
                self.end_headers()
                return
            server.reviews += 1
            wanted = review["spec"].get("resourceAttributes", {})
            review["status"] = {"allowed": wanted.get("group") == RBAC_GROUP
                                and wanted.get("resource") in granted}
            data = json.dumps(review).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.reviews = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def served(service_account):
    """The recorded ServiceAccount with what the API server adds to any object created with
    `kubectl apply --server-side`: a creation timestamp and its managed fields."""
    metadata = dict(service_account["metadata"])
    fields = {f"f:{k}": {} for k in metadata.get("annotations", {})}
    metadata["creationTimestamp"] = "2026-11-02T09:14:31Z"
    metadata["managedFields"] = [{
        "apiVersion": "v1", "fieldsType": "FieldsV1", "manager": "kubectl",
        "operation": "Apply", "time": "2026-11-02T09:14:31Z",
        "fieldsV1": {"f:metadata": {"f:annotations": fields}},
    }]
    return {**service_account, "metadata": metadata}


def post(url, review):
    request = urllib.request.Request(url, data=json.dumps(review).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())["response"]


def wrk(url, body_file, seconds):
    out = subprocess.run(["wrk", "-t1", "-c8", f"-d{seconds}s", "-s", body_file, url],
                         check=True, capture_output=True, text=True).stdout
    return float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))


def main():
    policy, peer, baseline = (os.path.abspath(p) for p in sys.argv[1:4])
    rounds = int(os.environ.get("PS_ROUNDS", "4"))
    seconds = int(os.environ.get("PS_SECONDS", "5"))
    previous = os.environ.get("PS_PREVIOUS")
    policy_server = os.environ.get("POLICY_SERVER", "policy-server")
    kwctl = os.environ.get("KWCTL", "kwctl")
    for tool in (policy_server, kwctl, "wrk"):
        if shutil.which(tool) is None:
            print(f"# {tool} not found: the policy-server comparison did not run")
            return
    if yaml is None:
        print("# PyYAML not installed (pip install -r .ci/requirements.txt): the policy-server"
              " comparison did not run")
        return
    with open(os.path.join(ROOT, "examples/session.yml")) as f:
        service_account = json.loads(yaml.safe_load(f)[0]["response"]["payload"])
    with open(os.path.join(ROOT, "examples/settings.yaml")) as f:
        settings = yaml.safe_load(f)
    with open(os.path.join(ROOT, "examples/admission-request.json")) as f:
        opted_in = json.load(f)
    unlabelled = json.loads(json.dumps(opted_in))
    del unlabelled["request"]["object"]["metadata"]["labels"][LABEL]
    # The same pod run by an account without annotations, its identity assigned by the settings.
    assigned = json.loads(json.dumps(opted_in))
    assigned["request"]["object"]["spec"]["serviceAccountName"] = "assigned"

    work = tempfile.mkdtemp(prefix="azwi-ps-bench-")
    # As the API server answers: the recorded object plus the fields it adds to every object
    # (policy-server caches the whole answer; a field mask prunes it before the guest reads it).
    service_account = served(service_account)
    client_id = service_account["metadata"]["annotations"]["azure.workload.identity/client-id"]
    unannotated = served({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
        "name": "assigned", "namespace": service_account["metadata"]["namespace"]}})
    api = loopback_api([service_account, unannotated], {client_id})
    settings_assigned = {**settings, "allowedIdentities": settings["allowedIdentities"] + [{
        "clientId": client_id, "name": "assigned", "assign": True,
        "namespaces": [service_account["metadata"]["namespace"]], "serviceAccounts": ["assigned"]}]}
    # rbacGrants with the example's allowlist (which grants the pod's identity: no review), and
    # without it (only RBAC grants: one review, then policy-server's cache).
    settings_granted = {**settings, "rbacGrants": True}
    rbac_granted = {k: v for k, v in settings_granted.items() if k != "allowedIdentities"}
    server = None
    try:
        modules = {}
        for name, module, metadata in [
            ("policy", policy, "policy-metadata.yml"),
            ("peer", peer, "bench/peer/metadata.yml"),
            ("baseline", baseline, "bench/baseline/metadata.yml"),
        ] + ([("previous", previous, "policy-metadata.yml")] if previous else []):
            modules[name] = os.path.join(work, f"{name}.wasm")
            subprocess.run([kwctl, "annotate", "-m", os.path.join(ROOT, metadata), "-o",
                            modules[name], module], check=True, capture_output=True)
        sa = [{"apiVersion": "v1", "kind": "ServiceAccount"}]
        policies = {
            "policy": {"module": f"file://{modules['policy']}", "allowedToMutate": True,
                       "contextAwareResources": sa, "hostCapabilities": ["*"],
                       "settings": settings},
            "peer": {"module": f"file://{modules['peer']}", "allowedToMutate": True,
                     "contextAwareResources": sa, "hostCapabilities": ["*"], "settings": {}},
            "baseline": {"module": f"file://{modules['baseline']}", "settings": {}},
        }
        for name, values in [("settings-grant", settings_granted), ("rbac-grant", rbac_granted),
                             ("catalogue", settings_assigned)]:
            policies[name] = {**policies["policy"], "settings": values}
        if previous:
            policies["previous"] = {**policies["policy"], "module": f"file://{modules['previous']}"}
        with open(os.path.join(work, "policies.yml"), "w") as f:
            yaml.safe_dump(policies, f)
        kubeconfig = {
            "apiVersion": "v1", "kind": "Config", "current-context": "loopback",
            "clusters": [{"name": "loopback", "cluster": {
                "server": f"http://127.0.0.1:{api.server_address[1]}"}}],
            "contexts": [{"name": "loopback", "context": {"cluster": "loopback", "user": "u"}}],
            "users": [{"name": "u", "user": {"token": "bench"}}],
        }
        with open(os.path.join(work, "kubeconfig"), "w") as f:
            yaml.safe_dump(kubeconfig, f)
        bodies = {}
        reviews_of = {"opted-in": opted_in, "unlabelled": unlabelled, "assigned": assigned}
        for name, review in reviews_of.items():
            bodies[name] = os.path.join(work, f"{name}.lua")
            with open(bodies[name], "w") as f:
                f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
                f.write(f"wrk.body = {json.dumps(json.dumps(review))}\n")

        port = free_port()
        log = open(os.path.join(work, "policy-server.log"), "w")
        server = subprocess.Popen(
            [policy_server, "--policies", os.path.join(work, "policies.yml"),
             "--policies-download-dir", work, "--addr", "127.0.0.1", "--port", str(port),
             "--readiness-probe-port", str(free_port()), "--workers", "1", "--log-level", "warn"],
            env={**os.environ, "KUBECONFIG": os.path.join(work, "kubeconfig")},
            stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/validate/"
        for _ in range(120):
            try:
                post(url + "baseline", unlabelled)
                break
            except OSError:
                if server.poll() is not None:
                    sys.exit(f"policy-server exited; its log: {log.name}")
                time.sleep(0.5)
        else:
            sys.exit(f"policy-server did not answer in 60 s; its log: {log.name}")

        # Each pair answers as it should before it is timed: a failure path is not a benchmark.
        checks = [("policy", "opted-in", True), ("peer", "opted-in", True),
                  ("policy", "unlabelled", False), ("baseline", "unlabelled", False),
                  ("settings-grant", "opted-in", True), ("rbac-grant", "opted-in", True),
                  ("catalogue", "assigned", True)]
        if previous:
            checks.append(("previous", "opted-in", True))
        for name, request, patched in checks:
            review = reviews_of[request]
            reviews = api.reviews
            answer = post(url + name, review)
            if not answer.get("allowed") or bool(answer.get("patch")) != patched:
                sys.exit(f"{name} on the {request} pod answered {answer}")
            # Only the RBAC-granted pair asks for a review; otherwise its price is not measured.
            if (api.reviews > reviews) != (name == "rbac-grant"):
                sys.exit(f"{name} made {api.reviews - reviews} SubjectAccessReviews")

        rates = {pair: [] for pair in checks}
        for r in range(rounds):
            for pair in checks if r % 2 == 0 else reversed(checks):
                rates[pair].append(wrk(url + pair[0], bodies[pair[1]], seconds))

        def median(pair):
            return statistics.median(rates[pair])

        def ratio(a, b):
            return statistics.median(x / y for x, y in zip(rates[a], rates[b]))

        print(f"| policy-server, requests/s (`--workers 1`, wrk 8 connections, {seconds} s,"
              f" median of {rounds} alternating rounds) | value |")
        print("|---|---:|")
        for pair in checks:
            print(f"| {pair[0]}, {pair[1]} pod | {median(pair):,.0f} |")
        pol_in, peer_in, pol_un, base_un, by_settings, by_rbac, by_assignment = checks[:7]
        # Throughput ratios: above 1 the policy answers more requests per second.
        print("| throughput ratio, median of per-round ratios (above 1: the policy is faster) | |")
        print(f"| policy / peer, opted-in pod | {ratio(pol_in, peer_in):.2f}x |")
        print(f"| policy / baseline, unlabelled pod | {ratio(pol_un, base_un):.2f}x |")
        print(f"| policy, opted-in / unlabelled (the host's ceiling) | {ratio(pol_in, pol_un):.2f}x |")
        print(f"| rbacGrants, granted by RBAC / by the settings (the review's price) |"
              f" {ratio(by_rbac, by_settings):.2f}x |")
        print(f"| assigned by the settings / annotated GUID (the catalogue's price) |"
              f" {ratio(by_assignment, pol_in):.2f}x |")
        if previous:
            print(f"| policy / previous build, opted-in pod | {ratio(pol_in, checks[7]):.2f}x |")
        print(f"| SubjectAccessReviews the API answered (the rest from policy-server's cache) |"
              f" {api.reviews} |")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        api.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
