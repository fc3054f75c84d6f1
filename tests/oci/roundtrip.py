#!/usr/bin/env python3
"""OCI round trip: push the policy to a real registry on loopback with the media types
`kwctl push` uses, check the manifest, pull it back, and check the pulled module evaluates
the README example exactly as the original does.

Needs Debian's docker-registry and PyPI's oras. Without them it skips loudly, unless
OCI_REQUIRED=1 (CI), where their absence is a failure.
"""
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAYER = "application/vnd.wasm.content.layer.v1+wasm"
CONFIG = "application/vnd.wasm.config.v1+json"
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'ok' if ok else 'FAILED'} - {name}{': ' + detail if detail and not ok else ''}", flush=True)


def skip(reason):
    if os.environ.get("OCI_REQUIRED") == "1":
        print(f"FAILED - OCI round trip cannot run: {reason}")
        sys.exit(1)
    print(f"# SKIPPING the OCI round trip: {reason}; nothing was tested")
    sys.exit(0)


def sha256(path):
    with open(path, "rb") as f:
        return "sha256:" + hashlib.sha256(f.read()).hexdigest()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_example(policy):
    out = subprocess.run(
        ["cargo", "run", "--quiet", "--package", "azwi-policy-runner", "--", "run", "--policy", policy,
         "--request-path", "examples/admission-request.json", "--settings-path", "examples/settings.yaml",
         "--replay-host-capabilities-interactions", "examples/session.yml"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return out.stdout


def kwctl_interop(client, host, target, wasm, work):
    """With kwctl on PATH: kwctl pulls what was pushed here, and what kwctl pushes has the
    same media types and digest, so the checks above speak for kwctl too."""
    kwctl = shutil.which(os.environ.get("KWCTL") or "kwctl")
    if not kwctl:
        print("# SKIPPING the kwctl pull/push checks: kwctl is not on PATH; they did not run")
        return
    sources = os.path.join(work, "sources.yml")
    with open(sources, "w") as f:
        yaml.safe_dump({"insecure_sources": [host]}, f)
    # kwctl's store and config go to the scratch directory, not the user's.
    env = dict(os.environ, HOME=work, XDG_CACHE_HOME=os.path.join(work, "cache"),
               XDG_CONFIG_HOME=os.path.join(work, "config"), XDG_DATA_HOME=os.path.join(work, "data-home"))

    def kw(*args):
        return subprocess.run([kwctl, *args, "--sources-path", sources], env=env,
                              capture_output=True, text=True, timeout=300)

    pulled = os.path.join(work, "kwctl-pulled.wasm")
    out = kw("pull", f"registry://{target}", "--output-path", pulled)
    check("kwctl pulls the pushed module", out.returncode == 0 and os.path.exists(pulled), out.stderr[-500:])
    if os.path.exists(pulled):
        check("kwctl's pull has the pushed digest", sha256(pulled) == sha256(wasm))

    by_kwctl = target.rsplit(":", 1)[0] + ":kwctl-pushed"
    out = kw("push", wasm, f"registry://{by_kwctl}")
    check("kwctl pushes the module", out.returncode == 0, out.stderr[-500:])
    if out.returncode == 0:
        theirs, ours = client.get_manifest(by_kwctl), client.get_manifest(target)
        check("kwctl's manifest has our media types and layer",
              theirs["config"]["mediaType"] == ours["config"]["mediaType"]
              and [(l["mediaType"], l["digest"]) for l in theirs["layers"]]
              == [(l["mediaType"], l["digest"]) for l in ours["layers"]],
              json.dumps(theirs))


def main():
    registry_bin = shutil.which("docker-registry")
    if not registry_bin:
        skip("docker-registry is not installed (apt-get install docker-registry)")
    try:
        import oras.client
    except ImportError:
        skip("the oras Python package is not installed (pip install oras)")
    try:
        global yaml
        import yaml
    except ImportError:
        skip("the PyYAML package is not installed (pip install pyyaml)")

    # $POLICY_WASM when set; else the annotated module when it is current, as `make push`
    # sends; else the plain one.
    wasm = os.environ.get("POLICY_WASM") or os.path.join(ROOT, "policy.wasm")
    annotated = os.path.join(ROOT, "annotated-policy.wasm")
    if not os.environ.get("POLICY_WASM") and os.path.exists(annotated) \
            and os.path.getmtime(annotated) >= os.path.getmtime(wasm):
        wasm = annotated
    print(f"# pushing {os.path.basename(wasm)}")
    metadata = yaml.safe_load(open(os.path.join(ROOT, "policy-metadata.yml")))
    version = metadata["annotations"]["io.kubewarden.policy.version"]
    annotations = {k: v for k, v in metadata["annotations"].items() if "\n" not in v}

    work = tempfile.mkdtemp(prefix="azwi-oci-")
    port = free_port()
    config_yml = os.path.join(work, "config.yml")
    with open(config_yml, "w") as f:
        yaml.safe_dump({"version": 0.1, "log": {"level": "error"},
                        "storage": {"filesystem": {"rootdirectory": os.path.join(work, "data")}},
                        "http": {"addr": f"127.0.0.1:{port}"}}, f)
    registry = subprocess.Popen([registry_bin, "serve", config_yml],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 20
        while True:
            try:
                urllib.request.urlopen(base + "/v2/", timeout=1)
                break
            except Exception:
                if time.time() > deadline or registry.poll() is not None:
                    check("registry starts on loopback", False, "no answer on " + base)
                    return
                time.sleep(0.2)
        check("registry starts on loopback", True)

        host = f"127.0.0.1:{port}"
        # The repository path of the published location, on the loopback registry.
        repository = metadata["annotations"]["io.kubewarden.policy.ociUrl"].split("/", 1)[1]
        target = f"{host}/{repository}:v{version}"
        client = oras.client.OrasClient(hostname=host, insecure=True)
        config_json = os.path.join(work, "config.json")
        with open(config_json, "w") as f:
            f.write("{}")
        layer_file = os.path.join(work, "policy.wasm")
        shutil.copy(wasm, layer_file)
        cwd = os.getcwd()
        os.chdir(work)
        try:
            pushed = client.push(target=target, files=[f"policy.wasm:{LAYER}"],
                                 manifest_config=f"config.json:{CONFIG}", manifest_annotations=annotations)
        finally:
            os.chdir(cwd)
        status = getattr(pushed, "status_code", None)
        check("push with the Kubewarden media types is accepted", status in (200, 201), f"status {status}")

        manifest = client.get_manifest(target)
        layers = manifest.get("layers", [])
        check("manifest has one wasm layer", len(layers) == 1 and layers[0]["mediaType"] == LAYER, json.dumps(manifest))
        check("config media type", manifest["config"]["mediaType"] == CONFIG, json.dumps(manifest["config"]))
        check("layer digest is the module's", layers and layers[0]["digest"] == sha256(wasm)
              and layers[0]["size"] == os.path.getsize(wasm), json.dumps(layers))
        check("manifest carries the policy annotations",
              manifest.get("annotations", {}).get("io.kubewarden.policy.version") == version)

        pulled_dir = os.path.join(work, "pulled")
        files = client.pull(target=target, outdir=pulled_dir)
        pulled = [f for f in files if f.endswith(".wasm")]
        check("pull returns the module", len(pulled) == 1, repr(files))
        if pulled:
            check("pulled digest equals pushed digest", sha256(pulled[0]) == sha256(wasm))
            original, fetched = run_example(wasm), run_example(pulled[0])
            check("pulled module evaluates the example like the original",
                  original == fetched and '"allowed":true' in original, fetched[:300])
        kwctl_interop(client, host, target, wasm, work)
    finally:
        registry.terminate()
        try:
            registry.wait(timeout=10)
        except subprocess.TimeoutExpired:
            registry.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # an unexpected error is a failure, reported as one
        check("round trip completes", False, repr(e))
    passed = sum(results)
    failed = len(results) - passed
    print(f"oci: {passed} passed, {failed} failed")
    sys.exit(1 if failed or not results else 0)
