//! Authority host by Azure cloud name, as go-autorest's `EnvironmentFromName` resolves it.

/// (accepted names, active directory endpoint). Names match case-insensitively.
const CLOUDS: [(&[&str], &str); 4] = [
    (
        &["AzurePublicCloud", "AzureCloud"],
        "https://login.microsoftonline.com/",
    ),
    (
        &["AzureUSGovernmentCloud", "AzureUSGovernment"],
        "https://login.microsoftonline.us/",
    ),
    (&["AzureChinaCloud"], "https://login.chinacloudapi.cn/"),
    (&["AzureGermanCloud"], "https://login.microsoftonline.de/"),
];

pub fn authority_host_for_cloud(cloud: &str) -> Result<&'static str, String> {
    CLOUDS
        .iter()
        .find(|(names, _)| names.iter().any(|n| n.eq_ignore_ascii_case(cloud)))
        .map(|(_, host)| *host)
        .ok_or_else(|| {
            let accepted: Vec<&str> = CLOUDS.iter().flat_map(|(n, _)| n.iter().copied()).collect();
            format!(
                "cloud {cloud:?} is not a known Azure cloud: expected one of {} (case-insensitive)",
                accepted.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("AzurePublicCloud", "https://login.microsoftonline.com/")]
    #[case("AzureCloud", "https://login.microsoftonline.com/")]
    #[case("azurepubliccloud", "https://login.microsoftonline.com/")]
    #[case("AzureUSGovernmentCloud", "https://login.microsoftonline.us/")]
    #[case("AZUREUSGOVERNMENT", "https://login.microsoftonline.us/")]
    #[case("AzureChinaCloud", "https://login.chinacloudapi.cn/")]
    #[case("AzureGermanCloud", "https://login.microsoftonline.de/")]
    fn known_clouds(#[case] name: &str, #[case] host: &str) {
        assert_eq!(authority_host_for_cloud(name), Ok(host));
    }

    #[rstest]
    #[case("")]
    #[case("AzureStackCloud")]
    #[case("Public")]
    #[case(" AzureCloud")]
    fn unknown_clouds_list_the_accepted_names(#[case] name: &str) {
        let err = authority_host_for_cloud(name).unwrap_err();
        assert!(err.contains(&format!("{name:?}")), "{err}");
        assert!(err.contains("AzurePublicCloud, AzureCloud, AzureUSGovernmentCloud, AzureUSGovernment, AzureChinaCloud, AzureGermanCloud"), "{err}");
    }
}
