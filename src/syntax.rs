//! Syntax checks on identifiers: GUIDs, tenant ids, https URLs, Kubernetes qualified names,
//! and the `*` globs of the allowlist. Hand-written because each is a few lines and the
//! general crates (url with idna tables, regex) would multiply the module size.

/// `8-4-4-4-12` hexadecimal digits, any case.
/// Whether `s` begins with `prefix`, ASCII letters in any case (environment names on Windows,
/// keys a person may capitalise).
pub fn starts_with_ignore_ascii_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

pub fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What Azure Identity SDKs accept as a tenant: a GUID or a domain name.
pub fn is_tenant_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `https://host[:port][/path]`, scheme case-insensitive, no whitespace, non-empty host.
pub fn is_https_url(s: &str) -> bool {
    let Some(scheme) = s.get(..8) else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("https://") || s.chars().any(char::is_whitespace) {
        return false;
    }
    let authority = s[8..].split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host = match host.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') || host.starts_with('[') => {
            if !port.is_empty() && !port.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            h
        }
        _ => host,
    };
    !host.is_empty()
}

/// Kubernetes `IsQualifiedName`: `[prefix/]name`, prefix a DNS-1123 subdomain,
/// name at most 63 characters of `[A-Za-z0-9_.-]` starting and ending alphanumeric.
pub fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    name_ok && prefix.is_none_or(is_dns1123_subdomain)
}

/// Lowercase alphanumerics, '-' and '.', at most 253, each dot-separated label
/// starting and ending alphanumeric.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(label_characters)
}

/// A DNS-1123 label: at most 63 lowercase alphanumerics and '-', starting and ending
/// alphanumeric (a namespace's name).
pub fn is_dns1123_label(label: &str) -> bool {
    label.len() <= 63 && label_characters(label)
}

/// What a DNS-1123 label is made of, whatever its length (Kubernetes bounds a subdomain's
/// labels only by the whole name's 253).
fn label_characters(label: &str) -> bool {
    !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// A glob over Kubernetes names: `*` matches any run of characters, nothing else is special.
/// Pre-split at settings load so matching a request allocates nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Glob {
    pattern: String,
    /// The literal pieces between `*`s; `parts.len() == 1` means no `*`.
    parts: Vec<String>,
}

impl Glob {
    /// Accepts what can match a namespace or service-account name: lowercase letters,
    /// digits, '-', '.' and '*'. Anything else could never match, so it is a typo.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("an empty pattern matches nothing".into());
        }
        if let Some(c) = pattern
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "-.*".contains(*c)))
        {
            return Err(format!(
                "pattern {pattern:?} has {c:?}: Kubernetes names use lowercase letters, digits, '-' and '.', and '*' is the only wildcard"
            ));
        }
        Ok(Glob {
            pattern: pattern.to_string(),
            parts: pattern.split('*').map(str::to_string).collect(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Greedy left-to-right match of the literal pieces: linear in the name's length
    /// times the number of pieces, never backtracking exponentially.
    pub fn matches(&self, name: &str) -> bool {
        let (first, rest) = match self.parts.split_first() {
            Some(split) => split,
            None => return false,
        };
        if rest.is_empty() {
            return name == first;
        }
        let Some(mut remaining) = name.strip_prefix(first.as_str()) else {
            return false;
        };
        let (last, middle) = match rest.split_last() {
            Some(split) => split,
            None => return false,
        };
        for piece in middle {
            match remaining.find(piece.as_str()) {
                Some(at) => remaining = &remaining[at + piece.len()..],
                None => return false,
            }
        }
        remaining.len() >= last.len() && remaining.ends_with(last.as_str())
    }

    /// A name both globs match, if any: the shortest, found by walking both patterns at once
    /// (breadth first over a position in each). Each character of a common name is matched by a
    /// literal or a `*` on each side; one both `*`s match can be dropped and the name still
    /// matches both, so those steps are never needed, and the search is complete.
    pub fn shared(&self, other: &Glob) -> Option<String> {
        let (a, b) = (self.pattern.as_bytes(), other.pattern.as_bytes());
        let width = b.len() + 1;
        // For each (i, j), reached or not, and from where with which character.
        let mut came_from: Vec<Option<(usize, Option<u8>)>> = vec![None; (a.len() + 1) * width];
        came_from[0] = Some((0, None));
        let mut queue = std::collections::VecDeque::from([(0, 0)]);
        while let Some((i, j)) = queue.pop_front() {
            let here = i * width + j;
            if i == a.len() && j == b.len() {
                let mut name = Vec::new();
                let mut at = here;
                while at != 0 {
                    let (from, c) = came_from[at].unwrap_or_default();
                    name.extend(c);
                    at = from;
                }
                name.reverse();
                return Some(String::from_utf8_lossy(&name).into_owned());
            }
            let (x, y) = (a.get(i).copied(), b.get(j).copied());
            let mut steps: [Option<(usize, usize, Option<u8>)>; 3] = [None; 3];
            // A `*` may match nothing more.
            if x == Some(b'*') {
                steps[0] = Some((i + 1, j, None));
            }
            if y == Some(b'*') {
                steps[1] = Some((i, j + 1, None));
            }
            steps[2] = match (x, y) {
                (Some(b'*'), Some(b'*')) | (None, _) | (_, None) => None,
                (Some(b'*'), Some(c)) => Some((i, j + 1, Some(c))),
                (Some(c), Some(b'*')) => Some((i + 1, j, Some(c))),
                (Some(c), Some(d)) => (c == d).then_some((i + 1, j + 1, Some(c))),
            };
            for (ni, nj, c) in steps.into_iter().flatten() {
                let next = ni * width + nj;
                if came_from[next].is_none() {
                    came_from[next] = Some((here, c));
                    queue.push_back((ni, nj));
                }
            }
        }
        None
    }

    /// A name the glob matches: its literal pieces, each `*` matching nothing.
    pub fn example(&self) -> String {
        self.parts.concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::same("AZURE_CLIENT_ID", "AZURE_", true)]
    #[case::other_case("azure_client_id", "AZURE_", true)]
    #[case::empty_prefix("x", "", true)]
    #[case::longer_prefix("AZ", "AZURE_", false)]
    #[case::other("APP_X", "AZURE_", false)]
    #[case::non_ascii("azur\u{e9}x", "azure", false)]
    fn prefixes_in_any_case(#[case] s: &str, #[case] prefix: &str, #[case] expected: bool) {
        assert_eq!(starts_with_ignore_ascii_case(s, prefix), expected);
    }

    #[rstest]
    #[case("11111111-2222-3333-4444-555555555555", true)]
    #[case("ABCDEF01-abcd-ABCD-0123-456789abcdef", true)]
    #[case("11111111-2222-3333-4444-55555555555", false)]
    #[case("11111111-2222-3333-4444-5555555555555", false)]
    #[case("111111112222-3333-4444-555555555555", false)]
    #[case("{11111111-2222-3333-4444-555555555555}", false)]
    #[case("g1111111-2222-3333-4444-555555555555", false)]
    #[case(" 11111111-2222-3333-4444-555555555555", false)]
    #[case("", false)]
    fn guid(#[case] s: &str, #[case] ok: bool) {
        assert_eq!(is_guid(s), ok);
    }

    #[rstest]
    #[case("72f988bf-86f1-41af-91ab-2d7cd011db47", true)]
    #[case("contoso.onmicrosoft.com", true)]
    #[case("", false)]
    #[case("a b", false)]
    #[case("a/b", false)]
    fn tenant(#[case] s: &str, #[case] ok: bool) {
        assert_eq!(is_tenant_id(s), ok);
    }

    #[rstest]
    #[case("https://login.microsoftonline.com/", true)]
    #[case("HTTPS://login.example.org", true)]
    #[case("https://proxy.example.com:8443/token", true)]
    #[case("https://[::1]:8443", true)]
    #[case("http://login.example.org/", false)]
    #[case("https://", false)]
    #[case("https:///path", false)]
    #[case("https://host:port", false)]
    #[case("https://a b", false)]
    #[case("login.microsoftonline.com", false)]
    fn https_url(#[case] s: &str, #[case] ok: bool) {
        assert_eq!(is_https_url(s), ok);
    }

    #[rstest]
    #[case("azure.workload.identity/use-custom", true)]
    #[case("azure.workload.identity/use-my_endpoint.v2", true)]
    #[case("plain-name", true)]
    #[case("azure.workload.identity/use-", false)]
    #[case("azure.workload.identity/use-a/b", false)]
    #[case("azure.workload.identity/use-a b", false)]
    #[case("Azure.workload.identity/use-x", false)]
    #[case("-bad.prefix/x", false)]
    fn qualified_name(#[case] s: &str, #[case] ok: bool) {
        assert_eq!(is_qualified_name(s), ok);
    }

    #[test]
    fn qualified_name_length_limit() {
        let prefix = "azure.workload.identity/use-";
        assert!(is_qualified_name(&format!("{prefix}{}", "a".repeat(59))));
        assert!(!is_qualified_name(&format!("{prefix}{}", "a".repeat(60))));
    }

    #[rstest]
    #[case("team-a", "team-a", true)]
    #[case("team-a", "team-ab", false)]
    #[case("team-a", "xteam-a", false)]
    #[case("team-a-*", "team-a-dev", true)]
    #[case("team-a-*", "team-a-", true)]
    #[case("team-a-*", "team-a", false)]
    #[case("team-a-*", "team-b-dev", false)]
    #[case("*", "anything", true)]
    #[case("*", "", true)]
    #[case("*-prod", "team-prod", true)]
    #[case("*-prod", "team-prod-x", false)]
    #[case("a*b*c", "abc", true)]
    #[case("a*b*c", "aXbYc", true)]
    #[case("a*b*c", "acb", false)]
    #[case("ab*ba", "aba", false)]
    #[case("a**", "a", true)]
    #[case("*a*", "bab", true)]
    fn glob(#[case] pattern: &str, #[case] name: &str, #[case] ok: bool) {
        assert_eq!(Glob::new(pattern).unwrap().matches(name), ok);
    }

    #[rstest]
    #[case("billing-api", true)]
    #[case("a", true)]
    #[case("0x", true)]
    #[case(&"a".repeat(63), true)]
    #[case(&"a".repeat(64), false)]
    #[case("Billing", false)]
    #[case("-a", false)]
    #[case("a-", false)]
    #[case("a.b", false)]
    #[case("a_b", false)]
    #[case("", false)]
    fn dns_label(#[case] s: &str, #[case] ok: bool) {
        // A subdomain's labels are bounded by the whole name only, as Kubernetes does.
        if !s.is_empty() && !s.contains('.') {
            let long = format!("{}.{s}", "a".repeat(64));
            assert_eq!(is_dns1123_subdomain(&long), ok || s.len() > 63, "{long}");
        }
        assert_eq!(is_dns1123_label(s), ok);
    }

    #[rstest]
    #[case::same_literal("api", "api", Some("api"))]
    #[case::other_literal("api", "web", None)]
    #[case::literal_in_glob("team-a-dev", "team-a-*", Some("team-a-dev"))]
    #[case::literal_outside_glob("team-b", "team-a-*", None)]
    #[case::nested_prefixes("team-*", "team-a-*", Some("team-a-"))]
    #[case::other_prefixes("team-a-*", "team-b-*", None)]
    #[case::prefix_and_suffix("team-*", "*-prod", Some("team-prod"))]
    #[case::suffixes_apart("*-dev", "*-prod", None)]
    #[case::nested_suffixes("*-prod", "*a-prod", Some("a-prod"))]
    #[case::everything("*", "x*y", Some("xy"))]
    #[case::several_stars("a*b*c", "a*c", Some("abc"))]
    #[case::several_stars_apart("a*b*c", "a*d", None)]
    #[case::inner_pieces("*x*y*", "*y*x*", Some("xyx"))]
    #[case::inner_pieces_in_order("a*x*", "a*", Some("ax"))]
    #[case::star_against_nothing("a*", "", None)]
    #[case::overlapping_suffix("ab*", "*ba", Some("aba"))]
    fn shared_names(#[case] a: &str, #[case] b: &str, #[case] expected: Option<&str>) {
        // The empty pattern is refused by Glob::new; built here to walk the search's edge.
        let glob = |p: &str| {
            Glob::new(p).unwrap_or(Glob {
                pattern: String::new(),
                parts: vec![String::new()],
            })
        };
        let (a, b) = (glob(a), glob(b));
        for (x, y) in [(&a, &b), (&b, &a)] {
            let got = x.shared(y);
            assert_eq!(got.is_some(), expected.is_some(), "{x:?} {y:?}: {got:?}");
            if let Some(name) = &got {
                assert!(x.matches(name) && y.matches(name), "{name}");
                assert_eq!(name.len(), expected.unwrap().len(), "{name}: the shortest");
            }
        }
    }

    #[rstest]
    #[case("api", "api")]
    #[case("team-*", "team-")]
    #[case("a*b*c", "abc")]
    fn examples_match(#[case] pattern: &str, #[case] expected: &str) {
        let glob = Glob::new(pattern).unwrap();
        assert_eq!(glob.example(), expected);
        assert!(glob.matches(expected));
    }

    #[rstest]
    #[case("", "an empty pattern matches nothing")]
    #[case("Team-A", "pattern \"Team-A\" has 'T'")]
    #[case("team?", "pattern \"team?\" has '?'")]
    #[case("team_[ab]", "pattern \"team_[ab]\" has '_'")]
    #[case("team a", "pattern \"team a\" has ' '")]
    fn bad_glob(#[case] pattern: &str, #[case] start: &str) {
        let e = Glob::new(pattern).err().unwrap();
        assert!(e.starts_with(start), "{e}");
        if !pattern.is_empty() {
            assert!(e.ends_with(": Kubernetes names use lowercase letters, digits, '-' and '.', and '*' is the only wildcard"), "{e}");
        }
    }
}
