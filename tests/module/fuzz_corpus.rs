//! The request fuzz target's seeds and every crash it ever saved, replayed natively through
//! `admission::validate` by the same harness the fuzzer runs. Each seed is named for the branch
//! it must reach (`mutated--…`, `admitted--…`, `refused-<reason>--…`), so the seeds cannot drift
//! into all hitting one path.

#[path = "../../fuzz/harness.rs"]
mod harness;

use azure_workload_identity_policy::refusal::Reason;

use std::path::PathBuf;

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_none_or(|e| e != "md"))
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

#[test]
fn every_seed_reaches_its_branch() {
    let seeds = files("fuzz/seeds/request");
    assert!(seeds.len() >= 30, "{} seeds", seeds.len());
    let mut families = std::collections::BTreeSet::new();
    for path in seeds {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let (expected, _) = name
            .split_once("--")
            .expect("seeds are named <branch>--<case>");
        let decision = harness::run(&std::fs::read(&path).unwrap());
        let response = &decision.response;
        let got = match &decision.report {
            Some(r) if r.is_refusal() => format!(
                "refused-{}",
                r.refusal()
                    .map_or("without-reason", |reason| reason.as_str())
            ),
            _ if !response.accepted => "refused-without-report".to_string(),
            _ if response.mutated_object.is_some() => "mutated".to_string(),
            _ => "admitted".to_string(),
        };
        assert_eq!(got, expected, "{name}: {:?}", response.message);
        families.insert(expected.to_string());
    }
    // Every branch, and every refusal reason the policy has, is reached by a seed.
    let reasons = Reason::ALL.map(|r| format!("refused-{}", r.as_str()));
    for family in ["mutated", "admitted"]
        .iter()
        .copied()
        .chain(reasons.iter().map(String::as_str))
    {
        assert!(families.contains(family), "no seed reaches {family}");
    }
    // Crashes the fuzzer saved: committed ones in fuzz/regressions, fresh ones in fuzz/artifacts.
    let crashes: Vec<PathBuf> =
        [files("fuzz/regressions"), files("fuzz/artifacts/request")].concat();
    for path in &crashes {
        harness::run(&std::fs::read(path).unwrap());
    }
    eprintln!("{} saved crashes replayed", crashes.len());
}

/// The documented list of refusal reasons (docs/behaviour.md) is exactly the policy's.
#[test]
fn the_readme_lists_every_reason() {
    let readme = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/behaviour.md"),
    )
    .unwrap();
    let row = readme
        .lines()
        .find(|l| l.starts_with("| `reason` |"))
        .expect("the audit annotation table has a reason row");
    let (_, words) = row
        .split_once("one word:")
        .expect("the row lists the words");
    let listed: std::collections::BTreeSet<&str> = words
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| w.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        .collect();
    let reasons: std::collections::BTreeSet<&str> =
        Reason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(listed, reasons, "{row}");
}
