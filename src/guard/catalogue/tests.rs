use super::*;
use rstest::rstest;

const ID_A: &str = "11111111-2222-3333-4444-555555555555";
const ID_B: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const ID_C: &str = "cccccccc-bbbb-cccc-dddd-eeeeeeeeeeee";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const OTHER_TENANT: &str = "bbbbbbbb-0000-4000-8000-000000000002";

fn entry(
    client_id: &str,
    name: Option<&str>,
    assign: bool,
    ns: &[&str],
    sas: Option<&[&str]>,
) -> AllowedIdentity {
    AllowedIdentity {
        client_id: client_id.into(),
        namespaces: ns.iter().map(|s| s.to_string()).collect(),
        service_accounts: sas.map(|l| l.iter().map(|s| s.to_string()).collect()),
        name: name.map(str::to_string),
        assign: assign.then_some(true),
        tenant_id: None,
    }
}

fn catalogue() -> Allowlist {
    let mut billing = entry(
        ID_A,
        Some("billing-api"),
        true,
        &["billing"],
        Some(&["api"]),
    );
    billing.tenant_id = Some(OTHER_TENANT.into());
    let allowlist = Allowlist::new(
        Some(vec![
            billing,
            entry(ID_B, Some("billing-batch"), false, &["billing"], None),
            entry(ID_B, Some("reports"), true, &["reports-*"], None),
            entry(ID_C, None, false, &["billing"], None),
            entry(ID_C, Some("shared"), false, &["other"], None),
        ]),
        Some(vec![TENANT.into(), OTHER_TENANT.into()]),
    );
    assert_eq!(validate(&allowlist), Vec::<String>::new());
    allowlist
}

fn sa(annotations: &[(&str, &str)]) -> Annotations {
    annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn at<'a>(namespace: &'a str, service_account: &'a str) -> Subject<'a> {
    Subject {
        namespace,
        service_account,
    }
}

/// (annotations, namespace, service account) -> (client id, tenant, source), or nothing.
#[rstest]
#[case::named(&[(IDENTITY_NAME_ANNOTATION, "billing-batch")], "billing", "web",
    Some((ID_B, None, Source::Named("billing-batch"))))]
#[case::named_with_its_tenant(&[(IDENTITY_NAME_ANNOTATION, "billing-api")], "billing", "web",
    Some((ID_A, Some(OTHER_TENANT), Source::Named("billing-api"))))]
#[case::named_and_the_same_guid(&[(IDENTITY_NAME_ANNOTATION, "billing-batch"), (CLIENT_ID_ANNOTATION, "AAAAAAAA-bbbb-cccc-dddd-eeeeeeeeeeee")], "billing", "web",
    Some((ID_B, None, Source::Named("billing-batch"))))]
#[case::assigned(&[], "billing", "api", Some((ID_A, Some(OTHER_TENANT), Source::Assigned("billing-api"))))]
#[case::assigned_by_glob(&[], "reports-eu", "anything", Some((ID_B, None, Source::Assigned("reports"))))]
#[case::assigned_beside_other_annotations(&[(TENANT_ID_ANNOTATION, TENANT)], "billing", "api",
    Some((ID_A, Some(OTHER_TENANT), Source::Assigned("billing-api"))))]
#[case::guid_wins_over_an_assignment(&[(CLIENT_ID_ANNOTATION, ID_C)], "billing", "api", None)]
#[case::not_assigned_elsewhere(&[], "billing", "web", None)]
#[case::an_empty_name_is_none(&[(IDENTITY_NAME_ANNOTATION, "")], "billing", "web", None)]
#[case::an_empty_name_is_none_assigned(&[(IDENTITY_NAME_ANNOTATION, "")], "billing", "api",
    Some((ID_A, Some(OTHER_TENANT), Source::Assigned("billing-api"))))]
fn resolves(
    #[case] annotations: &[(&str, &str)],
    #[case] namespace: &str,
    #[case] account: &str,
    #[case] expected: Option<(&str, Option<&str>, Source)>,
) {
    let allowlist = catalogue();
    let got = resolve(&sa(annotations), at(namespace, account), &allowlist).unwrap();
    let got = got.map(|r| (r.client_id, r.tenant_id, r.source));
    assert_eq!(got, expected);
}

#[test]
fn resolution_applies_as_annotations_the_service_accounts_own_tenant_winning() {
    let allowlist = catalogue();
    let resolved = resolve(&sa(&[]), at("billing", "api"), &allowlist)
        .unwrap()
        .unwrap();
    let mut plain = sa(&[("other", "kept")]);
    resolved.apply(&mut plain);
    assert_eq!(
        plain,
        sa(&[
            ("other", "kept"),
            (CLIENT_ID_ANNOTATION, ID_A),
            (TENANT_ID_ANNOTATION, OTHER_TENANT)
        ])
    );
    let mut own_tenant = sa(&[(TENANT_ID_ANNOTATION, TENANT)]);
    resolved.apply(&mut own_tenant);
    assert_eq!(
        own_tenant,
        sa(&[(TENANT_ID_ANNOTATION, TENANT), (CLIENT_ID_ANNOTATION, ID_A)])
    );
    // An empty tenant annotation declares none: the entry's applies.
    let mut empty_tenant = sa(&[(TENANT_ID_ANNOTATION, "")]);
    resolved.apply(&mut empty_tenant);
    assert_eq!(
        empty_tenant,
        sa(&[
            (TENANT_ID_ANNOTATION, OTHER_TENANT),
            (CLIENT_ID_ANNOTATION, ID_A)
        ])
    );
    let without_tenant = Resolved {
        tenant_id: None,
        ..resolved
    };
    let mut bare = sa(&[]);
    without_tenant.apply(&mut bare);
    assert_eq!(bare, sa(&[(CLIENT_ID_ANNOTATION, ID_A)]));
}

#[rstest]
#[case::a_typo(
    "billing-apj",
    "billing",
    "service account billing/web names identity \"billing-apj\" (azure.azwi-policy.github.io/identity), which allowedIdentities does not name; the names namespace billing may use, nearest first: billing-api, billing-batch"
)]
#[case::nearest_first(
    "billing-batc",
    "billing",
    "service account billing/web names identity \"billing-batc\" (azure.azwi-policy.github.io/identity), which allowedIdentities does not name; the names namespace billing may use, nearest first: billing-batch, billing-api"
)]
#[case::none_for_the_namespace(
    "x",
    "elsewhere",
    "service account elsewhere/web names identity \"x\" (azure.azwi-policy.github.io/identity), which allowedIdentities does not name; no named identity may be used in namespace elsewhere: ask for one to be named (allowedIdentities[].name), or annotate azure.workload.identity/client-id with a granted client id"
)]
fn an_unknown_name_lists_the_namespaces_names(
    #[case] name: &str,
    #[case] namespace: &str,
    #[case] expected: &str,
) {
    let allowlist = catalogue();
    let refusal = resolve(
        &sa(&[(IDENTITY_NAME_ANNOTATION, name)]),
        at(namespace, "web"),
        &allowlist,
    )
    .unwrap_err();
    assert_eq!(refusal.reason, Reason::Unidentified);
    assert_eq!(refusal.message, expected);
}

#[test]
fn another_namespaces_name_is_unknown_here_only_by_its_list() {
    // "shared" exists, for namespace other: named from billing it resolves (the grant check
    // decides), since a name is only an alias of a client id.
    let allowlist = catalogue();
    let got = resolve(
        &sa(&[(IDENTITY_NAME_ANNOTATION, "shared")]),
        at("billing", "web"),
        &allowlist,
    );
    assert_eq!(got.unwrap().unwrap().client_id, ID_C);
}

#[test]
fn a_name_and_another_guid_are_refused() {
    let allowlist = catalogue();
    let refusal = resolve(
        &sa(&[
            (IDENTITY_NAME_ANNOTATION, "billing-api"),
            (CLIENT_ID_ANNOTATION, ID_B),
        ]),
        at("billing", "web"),
        &allowlist,
    )
    .unwrap_err();
    assert_eq!(refusal.reason, Reason::InvalidAnnotation);
    assert_eq!(
        refusal.message,
        format!(
            "service account billing/web names identity \"billing-api\" (azure.azwi-policy.github.io/identity), whose client id is {ID_A}, but its azure.workload.identity/client-id says {ID_B}: keep one of the two annotations"
        )
    );
}

#[test]
fn names_need_a_catalogue() {
    for allowlist in [
        Allowlist::new(None, None),
        Allowlist::new(Some(vec![]), None),
    ] {
        let refusal = resolve(
            &sa(&[(IDENTITY_NAME_ANNOTATION, "billing-api")]),
            at("billing", "web"),
            &allowlist,
        )
        .unwrap_err();
        assert_eq!(refusal.reason, Reason::Unidentified);
        assert!(refusal.message.contains("no named identity may be used"));
        assert_eq!(
            resolve(&sa(&[]), at("billing", "api"), &allowlist).unwrap(),
            None
        );
    }
}

/// Settings a request meets unvalidated (policy-server validates them at load; a request only
/// decodes them): two assignments that match one service account refuse its pods, naming both.
#[test]
fn assignments_the_load_would_refuse_are_refused_per_pod_naming_both() {
    let allowlist = Allowlist::new(
        Some(vec![
            entry(ID_A, Some("one"), true, &["a*b*c"], None),
            entry(ID_B, Some("unassigned"), false, &["abc"], None),
            entry(ID_B, Some("two"), true, &["a*c"], None),
        ]),
        None,
    );
    assert_eq!(
        validate(&allowlist),
        vec!["allowedIdentities[0] (name \"one\") and allowedIdentities[2] (name \"two\") both assign an identity to any service account in namespace abc: an assignment must be the only one that can match a service account; narrow one's namespaces or serviceAccounts".to_string()]
    );
    let refusal = resolve(&sa(&[]), at("abc", "api"), &allowlist).unwrap_err();
    assert_eq!(refusal.reason, Reason::Settings);
    assert_eq!(
        refusal.message,
        "allowedIdentities[0] (name \"one\") and allowedIdentities[2] (name \"two\") both assign an identity to service account abc/api: narrow one's namespaces or serviceAccounts, or annotate the service account with the identity it should use (azure.azwi-policy.github.io/identity)"
    );
    // Where only one matches, it is the one.
    let got = resolve(&sa(&[]), at("aXc", "api"), &allowlist).unwrap();
    assert_eq!(got.unwrap().source, Source::Assigned("two"));
    // A name still chooses.
    let got = resolve(
        &sa(&[(IDENTITY_NAME_ANNOTATION, "unassigned")]),
        at("abc", "api"),
        &allowlist,
    );
    assert_eq!(got.unwrap().unwrap().source, Source::Named("unassigned"));
}

#[test]
fn an_invalid_assignment_met_at_request_time_is_named() {
    let allowlist = Allowlist::new(
        Some(vec![entry(ID_A, Some("one"), true, &["Bad"], None)]),
        None,
    );
    let refusal = resolve(&sa(&[]), at("ns", "api"), &allowlist).unwrap_err();
    assert_eq!(refusal.reason, Reason::Settings);
    assert!(
        refusal
            .message
            .starts_with("allowedIdentities[0] (name \"one\") is invalid: namespaces[0]"),
        "{}",
        refusal.message
    );
}

#[test]
fn an_assignment_needs_its_name() {
    // Refused at load; met anyway, an unnamed assignment assigns nothing.
    let allowlist = Allowlist::new(
        Some(vec![entry(ID_A, None, true, &["billing"], None)]),
        None,
    );
    assert_eq!(
        validate(&allowlist),
        vec![format!(
            "allowedIdentities[0] (clientId \"{ID_A}\") has assign: true but no name: name it, so refusals and audit records can say which assignment chose a pod's identity"
        )]
    );
    assert_eq!(
        resolve(&sa(&[]), at("billing", "api"), &allowlist).unwrap(),
        None
    );
}

#[rstest]
#[case::bad_name(vec![entry(ID_A, Some("Billing"), false, &["a"], None)],
    "allowedIdentities[0].name \"Billing\" is not valid: expected a lowercase DNS label (letters, digits and '-', at most 63, beginning and ending with a letter or digit), such as \"billing-api\"")]
#[case::duplicate(vec![entry(ID_A, Some("x"), false, &["a"], None), entry(ID_B, Some("y"), false, &["a"], None), entry(ID_B, Some("x"), false, &["b"], None)],
    "allowedIdentities[2].name \"x\" is allowedIdentities[0]'s already: names are unique; list one entry's namespaces and service accounts in the other instead")]
#[case::same_namespace_any_account(vec![entry(ID_A, Some("x"), true, &["team-a"], None), entry(ID_B, Some("y"), true, &["team-*"], None)],
    "allowedIdentities[0] (name \"x\") and allowedIdentities[1] (name \"y\") both assign an identity to any service account in namespace team-a: an assignment must be the only one that can match a service account; narrow one's namespaces or serviceAccounts")]
#[case::one_lists_accounts(vec![entry(ID_A, Some("x"), true, &["team-a"], Some(&["web-*", "api"])), entry(ID_B, Some("y"), true, &["team-a"], None)],
    "allowedIdentities[0] (name \"x\") and allowedIdentities[1] (name \"y\") both assign an identity to service account web- in namespace team-a")]
#[case::several_stars(vec![entry(ID_A, Some("x"), true, &["*-eu-*"], None), entry(ID_B, Some("y"), true, &["team-*-prod"], None)],
    "allowedIdentities[0] (name \"x\") and allowedIdentities[1] (name \"y\") both assign an identity to any service account in namespace team-eu-prod")]
#[case::both_list_accounts(vec![entry(ID_A, Some("x"), true, &["team-a"], Some(&["web"])), entry(ID_B, Some("y"), true, &["*"], Some(&["api", "w*"]))],
    "allowedIdentities[0] (name \"x\") and allowedIdentities[1] (name \"y\") both assign an identity to service account web in namespace team-a")]
fn catalogue_errors_at_load(#[case] entries: Vec<AllowedIdentity>, #[case] expected: &str) {
    let errors = validate(&Allowlist::new(Some(entries), None));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with(expected), "{}", errors[0]);
}

#[rstest]
#[case::other_namespaces(vec![entry(ID_A, Some("x"), true, &["team-a"], None), entry(ID_B, Some("y"), true, &["team-b", "team-c-*"], None)])]
#[case::other_accounts(vec![entry(ID_A, Some("x"), true, &["team-a"], Some(&["api"])), entry(ID_B, Some("y"), true, &["team-*"], Some(&["web", "*-batch"]))])]
#[case::one_not_assigning(vec![entry(ID_A, Some("x"), true, &["team-a"], None), entry(ID_B, Some("y"), false, &["team-a"], None)])]
#[case::globs_with_several_stars_apart(vec![entry(ID_A, Some("x"), true, &["a*b*c"], None), entry(ID_B, Some("y"), true, &["a*d", "*-x-*-y"], None)])]
#[case::invalid_entries_are_reported_by_the_allowlist(vec![entry(ID_A, Some("x"), true, &["Team"], None), entry(ID_B, Some("y"), true, &["*"], None)])]
fn assignments_apart_load(#[case] entries: Vec<AllowedIdentity>) {
    assert_eq!(
        validate(&Allowlist::new(Some(entries), None)),
        Vec::<String>::new()
    );
}

#[rstest]
#[case::a_domain("contoso.onmicrosoft.com", None, None)]
#[case::not_a_tenant(
    "a b",
    None,
    Some(
        "allowedIdentities[0].tenantId \"a b\" is not valid: expected the tenant's GUID or its domain name"
    )
)]
#[case::allowed(TENANT, Some(TENANT), None)]
#[case::allowed_in_another_case(&TENANT.to_uppercase(), Some(TENANT), None)]
#[case::not_allowed(
    OTHER_TENANT,
    Some(TENANT),
    Some(
        "allowedIdentities[0].tenantId \"bbbbbbbb-0000-4000-8000-000000000002\" is not in allowedTenantIds [72f988bf-86f1-41af-91ab-2d7cd011db47]: add it there, or use one of those"
    )
)]
#[case::empty_is_unset("", Some(TENANT), None)]
fn entry_tenants(#[case] tenant: &str, #[case] allowed: Option<&str>, #[case] error: Option<&str>) {
    let mut e = entry(ID_A, Some("x"), false, &["a"], None);
    e.tenant_id = Some(tenant.into());
    let errors = validate(&Allowlist::new(
        Some(vec![e]),
        allowed.map(|t| vec![t.to_string()]),
    ));
    match error {
        None => assert_eq!(errors, Vec::<String>::new()),
        Some(error) => {
            assert_eq!(errors.len(), 1);
            assert!(errors[0].starts_with(error), "{}", errors[0]);
        }
    }
}

#[rstest]
#[case(Source::Named("x"), "name/x")]
#[case(Source::Assigned("x"), "assignment/x")]
fn sources_are_audited(#[case] source: Source, #[case] audited: &str) {
    assert_eq!(source.audited(), audited);
}

#[rstest]
#[case(entry(ID_A, Some("x"), false, &["a"], None), "allowedIdentities[3] (name \"x\")")]
#[case(entry(ID_A, Some(""), false, &["a"], None), "allowedIdentities[3] (clientId \"11111111-2222-3333-4444-555555555555\")")]
fn entries_are_described(#[case] e: AllowedIdentity, #[case] expected: &str) {
    assert_eq!(e.describe(3), expected);
}
