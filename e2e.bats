#!/usr/bin/env bats
# End-to-end: the annotated module under `kwctl run`, host calls replayed from the same
# session files the Rust integration tests use. `KWCTL` names the kwctl to use (the Makefile's).
# Without kwctl every test is skipped, loudly; with E2E_REQUIRED=1 a missing kwctl is a failure.

KWCTL="${KWCTL:-kwctl}"

setup_file() {
  if ! command -v "$KWCTL" >/dev/null 2>&1; then
    if [ "${E2E_REQUIRED:-0}" = 1 ]; then
      echo "# E2E_REQUIRED=1 but kwctl ($KWCTL) is not on PATH" >&3
      return 1
    fi
    echo "# SKIPPING all of e2e.bats: kwctl ($KWCTL) is not on PATH, so none of these tests ran" >&3
  elif [ ! -f annotated-policy.wasm ]; then
    echo "# annotated-policy.wasm is missing: run make e2e-tests" >&3
    return 1
  fi
}

setup() {
  command -v "$KWCTL" >/dev/null 2>&1 || skip "kwctl ($KWCTL) is not installed"
}

# policy REQUEST SETTINGS [SESSION]: without a session, an empty one, so any host call fails.
policy() {
  run "$KWCTL" run --allow-context-aware \
    --replay-host-capabilities-interactions "test_data/sessions/${3:-no-host-calls}.yml" \
    --settings-path "test_data/settings/$2.json" \
    -r "test_data/requests/$1.json" annotated-policy.wasm
  echo "output = ${output}"
}

# The runner that applies kwctl's patches: the binary `cargo test` built (RUNNER_BIN, as the
# Makefile passes it), else cargo builds it.
apply_response() {
  if [ -n "${RUNNER_BIN:-}" ] && [ -x "$RUNNER_BIN" ]; then
    "$RUNNER_BIN" apply-response "$@"
  else
    cargo run --quiet --package azwi-policy-runner -- apply-response "$@"
  fi
}

# expect_pod REQUEST EXPECTED: the request's pod with kwctl's patch applied equals the expected pod.
expect_pod() {
  local got
  got=$(printf '%s\n' "$output" | apply_response -r "test_data/requests/$1.json")
  diff <(jq -S . <<<"$got") <(jq -S . "test_data/expected/$2.json")
}

allowed()  { [ "$status" -eq 0 ] && [ "$(expr "$output" : '.*"allowed":true.*')" -ne 0 ]; }
rejected() { [ "$status" -eq 0 ] && [ "$(expr "$output" : '.*"allowed":false.*')" -ne 0 ]; }
no_patch() { [ "$(expr "$output" : '.*"patchType":"JSONPatch".*')" -eq 0 ]; }
# The decoded patch's operations, "op path" a line, sorted (as upstream's TestHandle compares them).
patch_ops() { printf '%s\n' "$output" | grep '^{' | jq -r .patch | base64 -d | jq -r '.[] | "\(.op) \(.path)"' | sort; }
# The code block docs/development.md shows after <!-- $1 -->.
readme_block() { sed -n "/<!-- $1 -->/,/^\`\`\`\$/p" docs/development.md | sed '1,2d;$d'; }

@test "plain injection" {
  policy pod-plain basic sa; allowed; expect_pod pod-plain plain
}
@test "init containers" {
  policy pod-init-containers basic sa; allowed; expect_pod pod-init-containers init-containers
}
@test "skip list" {
  policy pod-skip-containers basic sa; allowed; expect_pod pod-skip-containers skip-containers
}
@test "pod expiration wins over service account" {
  policy pod-expiration basic sa-expiration; allowed; expect_pod pod-expiration pod-expiration
}
@test "service account expiration" {
  policy pod-plain basic sa-expiration; allowed; expect_pod pod-plain sa-expiration
}
@test "expiration below range is rejected" {
  policy pod-expiration-low basic sa; rejected; [[ "$output" == *"token expiration 3599 not valid"* ]]
}
@test "expiration above range is rejected" {
  policy pod-expiration-high basic sa; rejected; [[ "$output" == *"token expiration 86401 not valid"* ]]
}
@test "tenant annotation" {
  policy pod-plain basic sa-tenant; allowed; expect_pod pod-plain sa-tenant
}
@test "tenant annotation present but empty" {
  policy pod-plain basic sa-empty-tenant; allowed; expect_pod pod-plain sa-empty-tenant
}
@test "no client id" {
  policy pod-plain basic sa-no-client-id; allowed; expect_pod pod-plain sa-no-client-id
}
@test "pre-existing env kept" {
  policy pod-existing-env basic sa; allowed; expect_pod pod-existing-env existing-env
}
@test "proxy as native sidecar" {
  policy pod-proxy basic sa; allowed; expect_pod pod-proxy proxy-native
}
@test "proxy as classic sidecar" {
  policy pod-proxy classic-proxy sa; allowed; expect_pod pod-proxy proxy-classic
}
@test "proxy refused on host network" {
  policy pod-proxy-host-network basic sa; rejected; [[ "$output" == *"hostNetwork is set to true"* ]]
}
@test "proxy port not a number is rejected" {
  policy pod-proxy-bad-port basic sa; rejected; [[ "$output" == *"failed to parse proxy sidecar port"* ]]
}
@test "custom token endpoint with configMap CA" {
  policy pod-custom-endpoint custom-endpoint-configmap sa; allowed; expect_pod pod-custom-endpoint custom-endpoint-configmap
}
@test "custom token endpoint with cluster trust bundle CA" {
  policy pod-custom-endpoint custom-endpoint-trust-bundle sa; allowed; expect_pod pod-custom-endpoint custom-endpoint-trust-bundle
}
@test "service account missing" {
  policy pod-plain basic sa-missing; rejected; [[ "$output" == *"service account app-ns/workload-sa does not exist"* ]]
}
@test "same-name mount and volume replaced" {
  policy pod-same-name basic sa; allowed; expect_pod pod-same-name same-name
}
@test "sovereign cloud authority host" {
  policy pod-plain china-cloud sa; allowed; expect_pod pod-plain china-cloud
}
@test "custom token endpoint with CA data" {
  policy pod-custom-endpoint-ca-data custom-endpoint-ca-data sa; allowed; expect_pod pod-custom-endpoint-ca-data custom-endpoint-ca-data
}
@test "generateName pod" {
  policy pod-generate-name basic default-sa; allowed; expect_pod pod-generate-name generate-name
}
# Upstream's newest Handle and reinvocation cases.
@test "unknown pod fields survive: pod-level resources" {
  policy pod-level-resources basic sa; allowed
  diff <(patch_ops) <(printf '%s\n' "add /spec/containers/0/env" "add /spec/containers/0/volumeMounts" "add /spec/volumes")
}
@test "unknown pod fields survive: an unknown top-level field" {
  policy pod-unknown-field basic sa; allowed
  diff <(patch_ops) <(printf '%s\n' "add /spec/containers/0/env" "add /spec/containers/0/volumeMounts" "add /spec/volumes")
}
@test "reinvoked under a new name: a second volume in a directory of its own" {
  policy pod-reinvoked-new-name basic default-sa; allowed
  diff <(patch_ops) <(printf '%s\n' "add /spec/containers/0/volumeMounts/1" "add /spec/volumes/1")
  [[ "$(printf '%s\n' "$output" | grep '^{' | jq -r .patch | base64 -d | jq -r '.[] | select(.path == "/spec/containers/0/volumeMounts/1") | .value.mountPath')" == "/var/run/secrets/azure/wi/$(printf 'web-7d9f-x2x9q' | sha256sum | cut -c1-30)" ]]
}
@test "pod without the label is untouched" {
  policy pod-no-label basic; allowed; no_patch
}
@test "non-pod request is untouched" {
  policy configmap basic; allowed; no_patch
}
@test "documented example (docs/development.md)" {
  run "$KWCTL" run --allow-context-aware --replay-host-capabilities-interactions examples/session.yml \
    --settings-path examples/settings.yaml -r examples/admission-request.json annotated-policy.wasm
  allowed
  # the decoded patch is the block docs/development.md shows after <!-- example-patch -->
  diff <(printf '%s\n' "$output" | grep '^{' | jq -r .patch | base64 -d | jq -S -c '.[]') \
       <(readme_block example-patch | jq -S -c '.[]')
  # and the audit annotations are the ones it prints
  diff <(printf '%s\n' "$output" | grep '^{' | jq -S -c .auditAnnotations) \
       <(readme_block example-response | jq -S -c .auditAnnotations)
}

# What controllers send, on objects that would be refused if new: admitted without a host call
# (the empty session would fail any read).
@test "ReplicaSet scaled by the deployment controller" {
  policy controller-replicaset-scale allowlist; allowed; no_patch
}
@test "Deployment spec update that leaves the pod template alone" {
  policy controller-deployment-spec allowlist; allowed; no_patch
}
@test "CronJob suspended" {
  policy controller-cronjob-suspend allowlist; allowed; no_patch
}
@test "ServiceAccount pull secret added" {
  policy controller-sa-pull-secret allowlist; allowed; no_patch
}
@test "ServiceAccount identity changed is checked" {
  policy sa-identity-changed allowlist; rejected; [[ "$output" == *"is not a tenant id"* ]]
}
@test "tenant domain on a ServiceAccount" {
  policy sa-domain-tenant basic; allowed; no_patch
}

# The identity boundary: a token or identity claimed without the label, for an identity not
# granted to team-b (test_data/settings/allowlist.json).
@test "hand-written exchange token refused" {
  policy pod-handwritten-token allowlist team-b-api; rejected; [[ "$output" == *"is not granted to service account team-b/api"* ]]
}
@test "hand-written exchange token admitted without allowlists" {
  policy pod-handwritten-token basic; allowed; no_patch
}
@test "TokenRequest for an exchange audience refused" {
  policy token-request-exchange allowlist team-b-api; rejected; [[ "$output" == *"is not granted to service account team-b/api"* ]]
}
@test "kubelet TokenRequest with the API server's audiences needs no read" {
  policy token-request-default allowlist; allowed; no_patch
}
@test "TokenRequest for a year refused" {
  policy token-request-long allowlist team-a-api; rejected
  [[ "$output" == *"valid for 31536000 s is more than maxTokenExpirationSeconds allows (86400)"* ]]
  [[ "$output" == *'"reason":"token-lifetime"'* ]]
}
@test "TokenRequest for a year admitted without allowlists" {
  policy token-request-long basic; allowed; no_patch
}
@test "envFrom beside an exchange token refused" {
  policy pod-env-from allowlist team-a-api; rejected
  [[ "$output" == *"holds an exchange token and takes envFrom configMap"*"with prefix"*"which could set AZURE_CLIENT_ID unseen by the policy"* ]]
}
@test "envFrom beside an exchange token admitted without allowlists" {
  policy pod-env-from basic; allowed; no_patch
}
@test "ephemeral container claiming another identity refused" {
  policy pod-ephemeral-debug allowlist team-a-api; rejected; [[ "$output" == *"sets AZURE_CLIENT_ID=\\\"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"* ]]
}
@test "a client-secret app holds no token: admitted without a read" {
  policy pod-client-secret allowlist; allowed; no_patch
}
@test "kubectl debug --target a token holder: its envFrom is checked" {
  policy pod-ephemeral-target allowlist team-a-api; rejected
  [[ "$output" == *"container \\\"debug\\\" holds an exchange token and takes envFrom"*"shares a process namespace with container \\\"app\\\""* ]]
}
@test "a gated pod made Windows-bound is checked as a CREATE" {
  policy pod-gated-windows allowlist team-a-api; rejected
  [[ "$output" == *"on Windows an env entry does not win"* ]]
}
@test "other token audiences need no read" {
  policy pod-istio-token allowlist; allowed; no_patch
}
@test "mutate false: an opted-in pod is checked, not patched" {
  policy pod-plain validate-only sa; allowed; no_patch
}
# The guardrail policy sees the final pod: a container added after the injection is named.
@test "final pod: a container added after the injection draws a warning" {
  policy pod-added-container validate-only sa; allowed; no_patch
  [[ "$output" == *'"warnings":["pod app-ns/test-pod: container \"daprd\" lacks the whole identity injection'* ]]
  [[ "$output" == *'"incomplete-injection":"pod app-ns/test-pod: container'* ]]
}
@test "final pod: as the pod policy left it, no warning" {
  policy pod-injected validate-only sa; allowed; no_patch
  [[ "$output" != *"lacks"* ]]
  [[ "$output" != *'incomplete-injection'* ]]
}

# Shadow mode: the reference webhook's pod, checked against this policy's injection.
@test "shadow mode: a difference from this policy's injection is named" {
  policy pod-injected-other-tenant validate-only sa; allowed; no_patch
  [[ "$output" == *"differs from this policy's injection: container \\\"app\\\": AZURE_TENANT_ID is"* ]]
  [[ "$output" == *'"injection-differs":'* ]]
}

# Beside webhooks of earlier releases: the token is found by its volume, wherever it is mounted.
@test "shadow mode beside webhook v1.6.0: its layout is one difference, no container lacks its token" {
  policy pod-injected-v1.6.0 validate-only sa; allowed; no_patch
  [[ "$output" != *"lacks"* ]]
  [[ "$output" == *"the token is injected in the layout of webhook v1.6.0 (volume"* ]]
}
@test "shadow mode beside a webhook before v1.6.0" {
  policy pod-injected-before-v1.6.0 validate-only sa; allowed; no_patch
  [[ "$output" != *"lacks"* ]]
  [[ "$output" == *"the token is injected in the layout of the webhook before v1.6.0 (volume"* ]]
}
@test "requireCompleteInjection admits complete pods of every layout" {
  for request in pod-injected pod-injected-v1.6.0 pod-injected-before-v1.6.0; do
    policy "$request" complete-injection sa; allowed; no_patch
  done
  policy pod-added-container complete-injection sa; rejected
  [[ "$output" == *'container \"daprd\" lacks the whole identity injection'* ]]
}
@test "warning: a literal token path in args" {
  policy pod-literal-token-path basic sa; allowed
  [[ "$output" == *'container \"app\" args names \"/var/run/secrets/azure/tokens/azure-identity-token\", a token path that differs per pod and per webhook release; write $(AZURE_FEDERATED_TOKEN_FILE) instead'* ]]
}

# The key mistakes, as kubectl shows them.
@test "warning: the opt-in label on the Deployment itself" {
  policy deployment-label-on-workload basic; allowed; no_patch
  [[ "$output" == *'"warnings":["Deployment team-b/web: label azure.workload.identity/use is ignored here; move it to spec.template.metadata.labels"]'* ]]
}
@test "warning: a client id annotated on the pod" {
  policy pod-client-id-annotation basic sa; allowed
  [[ "$output" == *"pod app-ns/test-pod: annotation azure.workload.identity/client-id is ignored here; annotate service account app-ns/workload-sa"* ]]
}

# kwctl reads the verification config (a missing trust root stops it before any network use);
# a malformed copy is refused while reading it, so the first check can fail.
@test "verification config: kwctl accepts its format" {
  run "$KWCTL" verify --verification-config-path examples/verification-config.yaml \
    --sigstore-trust-config "$BATS_TEST_TMPDIR/no-trust-root.json" registry://127.0.0.1:1/none:v0
  echo "output = ${output}"
  [ "$status" -ne 0 ]
  [[ "$output" == *"could not read Sigstore PKI file"* ]]
  sed 's/kind: githubAction/kind: gitHubAction/' examples/verification-config.yaml > "$BATS_TEST_TMPDIR/broken.yaml"
  run "$KWCTL" verify --verification-config-path "$BATS_TEST_TMPDIR/broken.yaml" \
    --sigstore-trust-config "$BATS_TEST_TMPDIR/no-trust-root.json" registry://127.0.0.1:1/none:v0
  echo "output = ${output}"
  [ "$status" -ne 0 ]
  [[ "$output" == *"Not a valid configuration file: unknown variant"* ]]
}


@test "rbacGrants: a pod granted only by Kubernetes RBAC is mutated (recorded SubjectAccessReview)" {
  policy pod-team-b rbac rbac-granted; allowed
  [ "$(expr "$output" : '.*"patchType":"JSONPatch".*')" -ne 0 ]
  patch_ops | grep -qx 'add /spec/volumes'
}

@test "rbacGrants: a pod granted by neither the settings nor RBAC is refused with the grant to create" {
  policy pod-team-b rbac rbac-refused; rejected; no_patch
  [[ "$output" == *"or with Kubernetes RBAC, which does not grant it either (verb use-managed-identity on resource 11111111-2222-3333-4444-555555555555 in API group cid.wi.aks.azure.com)"* ]]
  [[ "$output" == *"kubectl create rolebinding azure-identity-11111111-2222-3333-4444-555555555555-api -n team-b --clusterrole=azure-identity-11111111-2222-3333-4444-555555555555 --serviceaccount=team-b:api"* ]]
}

@test "rbacGrants: a SubjectAccessReview policy-server may not make refuses, naming the permission" {
  policy pod-team-b rbac rbac-forbidden; rejected; no_patch
  [[ "$output" == *'grant its service account `create` on `subjectaccessreviews.authorization.k8s.io`'* ]]
}

@test "rbacGrantScope Cluster: the review is asked cluster-wide and the refusal prints a ClusterRoleBinding" {
  policy pod-team-b rbac-cluster rbac-cluster-refused; rejected; no_patch
  [[ "$output" == *"in API group cid.wi.aks.azure.com, by a ClusterRoleBinding)"* ]]
  [[ "$output" == *"kubectl create clusterrolebinding azure-identity-11111111-2222-3333-4444-555555555555-team-b-api --clusterrole=azure-identity-11111111-2222-3333-4444-555555555555 --serviceaccount=team-b:api"* ]]
}

@test "catalogue: an assigned identity gives the pod its GUID annotation gives, audited as an assignment" {
  policy pod-plain catalogue sa-no-client-id; allowed; expect_pod pod-plain plain
  [[ "$output" == *'"identity-source":"assignment/workload"'* ]]
}

@test "catalogue: a named identity resolves to its client id and tenant" {
  policy pod-plain catalogue sa-named; allowed; expect_pod pod-plain sa-tenant
  [[ "$output" == *'"identity-source":"name/workload-other-tenant"'* ]]
}

@test "catalogue: a GUID annotation decides as before, with no identity source" {
  policy pod-plain catalogue sa; allowed; expect_pod pod-plain plain
  [[ "$output" != *'identity-source'* ]]
}

@test "catalogue: an unknown name is refused with the namespace's names, nearest first" {
  policy pod-plain catalogue sa-named-unknown; rejected; no_patch
  [[ "$output" == *'names identity \"workload-other-tenat\" (azure.azwi-policy.github.io/identity), which allowedIdentities does not name; the names namespace app-ns may use, nearest first: workload-other-tenant, workload'* ]]
}

@test "catalogue: a TokenRequest claims the assigned identity" {
  policy token-request-exchange catalogue team-b-api-unannotated; allowed
  policy token-request-exchange allowlist team-b-api-unannotated; rejected
  [[ "$output" == *"service account team-b/api has no azure.workload.identity/client-id annotation"* ]]
}

@test "catalogue: overlapping assignments are refused when the settings load" {
  policy pod-plain catalogue-overlap sa
  [ "$status" -ne 0 ]
  [[ "$output" == *'Provided settings are not valid: allowedIdentities[0] (name "team-a") and allowedIdentities[1] (name "teams") both assign an identity to service account api in namespace team-a'* ]]
}
