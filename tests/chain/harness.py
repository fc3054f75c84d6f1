"""The real admission chain on loopback: etcd, kube-apiserver, policy-server with TLS, and the
examples' policies registered as Kubewarden's controller registers them.

Tools are found the way every suite of this project finds them: `KUBEBUILDER_ASSETS` (a folder
holding `kube-apiserver`, `etcd` and, as envtest's assets do, `kubectl`), `POLICY_SERVER`, then
the PATH. Nothing here reaches past 127.0.0.1.
"""
import base64
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The namespace Kubewarden is installed in: its webhooks exclude it, and policy-server accepts
# anything from it (the chart's alwaysAcceptAdmissionReviewsOnDeploymentsNamespace).
KUBEWARDEN_NS = "kubewarden"
# examples/policy-server.yaml's service account: policy-server runs with its token.
PS_ACCOUNT = "azure-workload-identity-policy-server"


def tool(name):
    """The tool's path, or None: KUBEBUILDER_ASSETS for the API server's binaries (and
    kubectl), POLICY_SERVER for policy-server, then the PATH."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if name in ("kube-apiserver", "etcd", "kubectl") and assets:
        path = os.path.join(assets, name)
        if os.access(path, os.X_OK):
            return path
    variable = {"policy-server": "POLICY_SERVER", "kwctl": "KWCTL"}.get(name)
    if variable and os.environ.get(variable):
        return shutil.which(os.environ[variable])
    return shutil.which(name)


def missing_tools():
    """What the chain lacks, each with how to provide it."""
    how = {
        "kube-apiserver": "KUBEBUILDER_ASSETS=<folder with kube-apiserver, etcd, kubectl>",
        "etcd": "KUBEBUILDER_ASSETS, or Debian's etcd-server",
        "kubectl": "KUBEBUILDER_ASSETS or the PATH",
        "policy-server": "POLICY_SERVER=<path> or the PATH",
        "kwctl": "KWCTL=<path> or the PATH, to annotate the module as a release is",
        "openssl": "Debian's openssl",
    }
    return [f"{name} ({hint})" for name, hint in how.items() if tool(name) is None]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, probe, seconds=60, proc=None, log=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {tail(log)}")
        try:
            if probe():
                return
        except Exception:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{what} not ready after {seconds} s: {tail(log)}")


def tail(path, lines=30):
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def openssl(*args, cwd):
    subprocess.run([tool("openssl"), *args], cwd=cwd, check=True, capture_output=True)


def certificates(work):
    """A CA, one serving certificate for 127.0.0.1 (the API server's and policy-server's), and the
    key pair the API server signs service-account tokens with."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-subj", "/CN=chain-ca", "-days", "2", cwd=work)
    with open(os.path.join(work, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "serving.key", "-out", "serving.csr",
            "-subj", "/CN=127.0.0.1", cwd=work)
    openssl("x509", "-req", "-in", "serving.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "serving.crt", "-days", "2", "-extfile", "san.ext", cwd=work)
    openssl("genrsa", "-out", "sa.key", "2048", cwd=work)
    openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=work)


class Result:
    def __init__(self, proc):
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    @property
    def warnings(self):
        """kubectl prints each admission warning on stderr as `Warning: <text>`."""
        return [line[len("Warning: "):] for line in self.err.splitlines() if line.startswith("Warning: ")]

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return f"exit {self.code}\nstdout: {self.out}\nstderr: {self.err}"


class Cluster:
    """etcd and kube-apiserver on 127.0.0.1, and kubectl as the cluster's administrator."""

    def __init__(self, work):
        self.work = work
        self.procs = []
        self.admin_token = base64.b32encode(os.urandom(15)).decode().lower()
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = os.path.join(work, "admin.kubeconfig")

    def start(self):
        certificates(self.work)
        etcd_port, peer_port = free_port(), free_port()
        etcd_log = os.path.join(self.work, "etcd.log")
        etcd = self.spawn([
            tool("etcd"), "--data-dir", os.path.join(self.work, "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level", "error"], etcd_log)
        wait_for("etcd", lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{etcd_port}/health", timeout=2).status == 200, proc=etcd, log=etcd_log)
        with open(os.path.join(self.work, "tokens.csv"), "w") as f:
            f.write(f"{self.admin_token},chain-admin,chain-admin,system:masters\n")
        w = lambda name: os.path.join(self.work, name)  # noqa: E731
        self.apiserver_log = w("kube-apiserver.log")
        api = self.spawn([
            tool("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
            f"--tls-cert-file={w('serving.crt')}", f"--tls-private-key-file={w('serving.key')}",
            f"--client-ca-file={w('ca.crt')}", f"--token-auth-file={w('tokens.csv')}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={w('sa.pub')}",
            f"--service-account-signing-key-file={w('sa.key')}",
            "--service-cluster-ip-range=10.96.0.0/24", "--allow-privileged=true",
            f"--cert-dir={w('apiserver-certs')}", "--profiling=false", "--v=1",
            f"--audit-policy-file={self.audit_policy()}", f"--audit-log-path={self.audit_log}",
            "--audit-log-mode=blocking"], self.apiserver_log)
        self.write_kubeconfig(self.kubeconfig, self.admin_token)
        wait_for("kube-apiserver", lambda: self.kubectl("get", "--raw", "/readyz").code == 0,
                 seconds=120, proc=api, log=self.apiserver_log)
        # No controller-manager runs: the namespace and its default service account are made here.
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KUBEWARDEN_NS}})

    def audit_policy(self):
        """The audit policy a cluster records webhooks' audit annotations with: metadata of the
        requests the examples route (pods, ServiceAccounts and their tokens, workloads)."""
        self.audit_log = os.path.join(self.work, "audit.log")
        path = os.path.join(self.work, "audit-policy.yaml")
        policy = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
                  "rules": [{"level": "Metadata", "verbs": ["create", "update", "patch"],
                             "resources": [{"group": "", "resources": ["pods", "serviceaccounts",
                                                                       "serviceaccounts/token"]},
                                           {"group": "apps", "resources": ["deployments"]}]},
                            {"level": "None"}]}
        with open(path, "w") as f:
            yaml.safe_dump(policy, f)
        return path

    def audit_annotations(self, resource, namespace, name, webhook):
        """The audit annotations `webhook` gave the last completed request on `resource`
        (`pods`, `serviceaccounts/token`) named `namespace/name`, without the webhook's prefix."""
        prefix = webhook + "/"
        found = None
        with open(self.audit_log) as f:
            for line in f:
                event = json.loads(line)
                ref = event.get("objectRef") or {}
                kind = ref.get("resource", "") + ("/" + ref["subresource"] if ref.get("subresource") else "")
                if (event.get("stage") == "ResponseComplete" and kind == resource
                        and ref.get("namespace") == namespace and ref.get("name") == name):
                    found = {k[len(prefix):]: v for k, v in (event.get("annotations") or {}).items()
                             if k.startswith(prefix)}
        assert found is not None, f"no audit event for {resource} {namespace}/{name}"
        return found

    def spawn(self, argv, log):
        out = open(log, "w")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def write_kubeconfig(self, path, token):
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "chain",
            "clusters": [{"name": "chain", "cluster": {
                "server": self.server, "certificate-authority": os.path.join(self.work, "ca.crt")}}],
            "users": [{"name": "user", "user": {"token": token}}],
            "contexts": [{"name": "chain", "context": {"cluster": "chain", "user": "user"}}],
        }
        with open(path, "w") as f:
            yaml.safe_dump(config, f)

    def kubectl(self, *args, stdin=None, kubeconfig=None):
        env = dict(os.environ, KUBECONFIG=kubeconfig or self.kubeconfig)
        proc = subprocess.run([tool("kubectl"), *args], input=stdin, capture_output=True, text=True,
                              env=env, timeout=120)
        return Result(proc)

    def shell(self, command):
        """A command as a user would paste it: bash, with this cluster's kubectl first on PATH."""
        bindir = os.path.join(self.work, "bin")
        os.makedirs(bindir, exist_ok=True)
        link = os.path.join(bindir, "kubectl")
        if not os.path.exists(link):
            os.symlink(tool("kubectl"), link)
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, PATH=bindir + os.pathsep + os.environ["PATH"])
        return Result(subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env,
                                     cwd=ROOT, timeout=120))

    def apply(self, *objects):
        r = self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
        assert r.code == 0, r
        return r

    def create(self, obj, *flags):
        """`kubectl create` of one object: admitted or refused, with its warnings."""
        return self.kubectl("create", "-f", "-", "-o", "json", *flags, stdin=json.dumps(obj))

    def namespace(self, name, *accounts):
        """A namespace and service accounts in it, each `(name, annotations)`."""
        objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}]
        for account, annotations in accounts:
            objects.append({"apiVersion": "v1", "kind": "ServiceAccount",
                            "metadata": {"name": account, "namespace": name,
                                         "annotations": annotations or {}}})
        self.apply(*objects)

    def webhook_calls(self):
        """Requests the API server sent to each admission webhook, from its own metrics."""
        r = self.kubectl("get", "--raw", "/metrics")
        assert r.code == 0, r
        calls = {}
        pattern = re.compile(r'^apiserver_admission_webhook_request_total\{(.*)\} (\S+)$')
        for line in r.out.splitlines():
            m = pattern.match(line)
            if m:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
                calls[labels["name"]] = calls.get(labels["name"], 0) + float(m.group(2))
        return calls

    def stop(self):
        for proc in reversed(self.procs):
            stop(proc)


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def console_blocks(doc):
    """The commands of each ```console block of a doc, continuation lines joined."""
    with open(os.path.join(ROOT, doc)) as f:
        text = f.read()
    blocks = re.findall(r"```console\n(.*?)```", text, re.S)
    return [block.replace("\\\n", "") for block in blocks]


def example(name):
    with open(os.path.join(ROOT, "examples", name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def policies_of(name):
    return [d for d in example(name) if d["kind"] == "ClusterAdmissionPolicy"]


def policy_id(policy):
    return f"clusterwide-{policy['metadata']['name']}"


def annotate(work):
    """policy.wasm annotated as a release is (policy-server reads the module's metadata)."""
    out = os.path.join(work, "annotated-policy.wasm")
    wasm = os.environ.get("POLICY_WASM") or os.path.join(ROOT, "policy.wasm")
    subprocess.run([tool("kwctl"), "annotate", "-m", os.path.join(ROOT, "policy-metadata.yml"),
                    "-u", os.path.join(ROOT, "README.md"), "-o", out, wasm],
                   check=True, capture_output=True)
    return out


def policies_yml(policies, module):
    """What Kubewarden's controller writes to policy-server's ConfigMap for these
    ClusterAdmissionPolicies (`policyserver_controller_configmap.go`)."""
    out = {}
    for p in policies:
        spec = p["spec"]
        entry = {
            "namespacedName": {"Namespace": "", "Name": p["metadata"]["name"]},
            "module": "file://" + module,
            "policyMode": spec.get("mode", "protect"),
            "allowedToMutate": bool(spec.get("mutating", False)),
        }
        if spec.get("contextAwareResources"):
            entry["contextAwareResources"] = spec["contextAwareResources"]
        entry["settings"] = spec.get("settings")
        if spec.get("message"):
            entry["message"] = spec["message"]
        if spec.get("timeoutEvalSeconds") is not None:
            entry["timeoutEvalSeconds"] = spec["timeoutEvalSeconds"]
        # A cluster-wide policy may call every host capability.
        entry["hostCapabilities"] = ["*"]
        out[policy_id(p)] = entry
    return out


def webhook_configuration(policy, url_base, ca_bundle, name=None):
    """The webhook configuration Kubewarden's controller makes of a ClusterAdmissionPolicy
    (`policy_subreconciler_webhook.go`), with a `url` client config in place of its Service."""
    spec = policy["spec"]
    pid = policy_id(policy)
    selector = {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [KUBEWARDEN_NS]}]}
    selector["matchExpressions"] += (spec.get("namespaceSelector") or {}).get("matchExpressions", [])
    webhook = {
        "name": f"{pid}.kubewarden.admission",
        "clientConfig": {"url": f"{url_base}/validate/{pid}", "caBundle": ca_bundle},
        "rules": spec["rules"],
        "namespaceSelector": selector,
        "sideEffects": spec.get("sideEffects", "None"),
        "timeoutSeconds": spec.get("timeoutSeconds", 10),
        "admissionReviewVersions": ["v1"],
    }
    for key in ("failurePolicy", "matchPolicy", "objectSelector", "matchConditions"):
        if spec.get(key) is not None:
            webhook[key] = spec[key]
    kind = "MutatingWebhookConfiguration" if spec.get("mutating") else "ValidatingWebhookConfiguration"
    return {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
        "metadata": {"name": name or pid, "labels": {"app.kubernetes.io/part-of": "kubewarden"},
                     "annotations": {"kubewardenPolicyName": policy["metadata"]["name"],
                                     "kubewardenPolicyNamespace": ""}},
        "webhooks": [webhook],
    }


def webhook_name(policy):
    return f"{policy_id(policy)}.kubewarden.admission"


class PolicyServer:
    """policy-server as Kubewarden's controller runs it (its environment, TLS on, the
    deployments namespace always accepted), with the identity of examples/policy-server.yaml."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.port = free_port()
        self.readiness = free_port()
        self.proc = None
        self.policies = []
        self.log = os.path.join(cluster.work, "policy-server.log")
        self.url = f"https://127.0.0.1:{self.port}"

    def kubeconfig(self):
        """A token of the PolicyServer's own service account (as its pods get one)."""
        r = self.cluster.kubectl("create", "token", PS_ACCOUNT, "-n", KUBEWARDEN_NS, "--duration=6h")
        assert r.code == 0, r
        path = os.path.join(self.cluster.work, "policy-server.kubeconfig")
        self.cluster.write_kubeconfig(path, r.out.strip())
        return path

    def start(self, policies):
        self.stop()
        self.policies = policies
        work = self.cluster.work
        config = os.path.join(work, "policies.yml")
        with open(config, "w") as f:
            json.dump(policies_yml(policies, self.cluster.module), f)
        # No verification config, as a PolicyServer without `verificationConfig`: nothing is
        # verified, and the Sigstore trust root policy-server tries to fetch at start (no network
        # here) is only a warning in its log.
        env = dict(
            os.environ,
            KUBECONFIG=self.kubeconfig(),
            KUBEWARDEN_CERT_FILE=os.path.join(work, "serving.crt"),
            KUBEWARDEN_KEY_FILE=os.path.join(work, "serving.key"),
            KUBEWARDEN_PORT=str(self.port),
            KUBEWARDEN_READINESS_PROBE_PORT=str(self.readiness),
            KUBEWARDEN_BIND_ADDRESS="127.0.0.1",
            KUBEWARDEN_POLICIES=config,
            KUBEWARDEN_POLICIES_DOWNLOAD_DIR=os.path.join(work, "downloads"),
            KUBEWARDEN_SIGSTORE_CACHE_DIR=os.path.join(work, "sigstore-data"),
            KUBEWARDEN_ALWAYS_ACCEPT_ADMISSION_REVIEWS_ON_NAMESPACE=KUBEWARDEN_NS,
            KUBEWARDEN_LOG_LEVEL="info",
            KUBEWARDEN_WORKERS="2",
        )
        os.makedirs(env["KUBEWARDEN_POLICIES_DOWNLOAD_DIR"], exist_ok=True)
        out = open(self.log, "a")
        self.proc = subprocess.Popen([tool("policy-server")], env=env, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_for("policy-server", lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{self.readiness}/readiness", timeout=2).status == 200,
            seconds=300, proc=self.proc, log=self.log)
        self.register()

    def register(self):
        """The webhook configurations, once policy-server answers (as the controller waits)."""
        with open(os.path.join(self.cluster.work, "ca.crt"), "rb") as f:
            ca = base64.b64encode(f.read()).decode()
        self.cluster.apply(*[webhook_configuration(p, self.url, ca) for p in self.policies])

    def unregister(self):
        for p in self.policies:
            kind = "mutatingwebhookconfiguration" if p["spec"].get("mutating") else "validatingwebhookconfiguration"
            self.cluster.kubectl("delete", kind, policy_id(p), "--ignore-not-found")

    def stop(self):
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


class LateWebhook:
    """A mutating webhook of the suite's own, named to sort after Kubewarden's (`zz-…`), like a
    sidecar injector: it adds container `late-sidecar` to pods labelled `chain.test/late-sidecar`,
    setting AZURE_CLIENT_ID to the label's value when it is not `plain`."""

    NAME = "zz-late-sidecar.chain.test"

    def __init__(self, cluster):
        self.cluster = cluster
        self.port = free_port()
        work = cluster.work
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(os.path.join(work, "serving.crt"), os.path.join(work, "serving.key"))

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                request = review["request"]
                value = request["object"]["metadata"]["labels"].get("chain.test/late-sidecar", "plain")
                sidecar = {"name": "late-sidecar", "image": "registry.example.com/sidecar:1"}
                if value != "plain":
                    sidecar["env"] = [{"name": "AZURE_CLIENT_ID", "value": value}]
                patch = [{"op": "add", "path": "/spec/containers/-", "value": sidecar}]
                body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                   "response": {"uid": request["uid"], "allowed": True, "patchType": "JSONPatch",
                                                "patch": base64.b64encode(json.dumps(patch).encode()).decode()}})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        with open(os.path.join(work, "ca.crt"), "rb") as f:
            ca = base64.b64encode(f.read()).decode()
        cluster.apply({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "zz-late-sidecar"},
            "webhooks": [{
                "name": self.NAME, "clientConfig": {"url": f"https://127.0.0.1:{self.port}/", "caBundle": ca},
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "operations": ["CREATE"]}],
                "objectSelector": {"matchExpressions": [{"key": "chain.test/late-sidecar", "operator": "Exists"}]},
                "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": "Fail",
                "reinvocationPolicy": "Never"}]})

    def stop(self):
        self.cluster.kubectl("delete", "mutatingwebhookconfiguration", "zz-late-sidecar", "--ignore-not-found")
        self.server.shutdown()


def make_work():
    return tempfile.mkdtemp(prefix="azwi-chain-")


if __name__ == "__main__":
    # `python3 tests/chain/harness.py`: what the suite lacks on this machine, one per line.
    import importlib.util

    lacking = missing_tools()
    if importlib.util.find_spec("pytest") is None:
        lacking.append("pytest (pip install -r .ci/requirements.txt)")
    print("\n".join(lacking))
