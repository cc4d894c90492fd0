//! `tollgate service-tags`: the address prefixes of Azure service tags, read from the file
//! Azure publishes every week (`ServiceTags_Public_<date>.json`), merged into the fewest CIDR
//! prefixes that cover them, for `ip_filter.allow`. Power Platform custom connectors call out
//! from the `AzureConnectors.<region>` tags.

use serde::Deserialize;
use std::fmt;
use tollgate_core::{EntryError, PrefixUnion};

/// How many close names an unknown tag's error lists.
const SUGGESTIONS: usize = 5;

/// The parts of the file this command reads (Azure adds fields now and then: others are
/// ignored).
#[derive(Debug, Deserialize)]
struct ServiceTagsFile {
    #[serde(rename = "changeNumber")]
    change_number: u64,
    cloud: Option<String>,
    values: Vec<ServiceTag>,
}

#[derive(Debug, Deserialize)]
struct ServiceTag {
    name: String,
    properties: TagProperties,
}

#[derive(Debug, Deserialize)]
struct TagProperties {
    #[serde(rename = "changeNumber")]
    change_number: Option<u64>,
    #[serde(rename = "addressPrefixes")]
    address_prefixes: Vec<String>,
}

/// The prefixes of the asked tags, and what the operator is told about where they came from.
#[derive(Debug, PartialEq, Eq)]
pub struct Selection {
    /// The fewest CIDR prefixes covering every asked tag's prefixes: IPv4 first, each family
    /// in address order.
    pub prefixes: Vec<String>,
    /// Each asked tag, in the order asked: name, its own change number, its prefix count.
    pub tags: Vec<TagSummary>,
    /// The file's change number (it grows with every published change).
    pub change_number: u64,
    pub cloud: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct TagSummary {
    pub name: String,
    pub change_number: Option<u64>,
    pub prefixes: usize,
}

/// Why the tags could not be read.
#[derive(Debug)]
pub enum ServiceTagsError {
    /// The file is not JSON in the service tags shape.
    NotServiceTags(serde_json::Error),
    /// No tag of that name; the closest names in the file.
    UnknownTag { name: String, closest: Vec<String> },
    /// A prefix in the file that `ip_filter` would refuse.
    BadPrefix {
        tag: String,
        index: usize,
        error: EntryError,
    },
}

impl fmt::Display for ServiceTagsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotServiceTags(error) => write!(
                f,
                "not a service tags file ({{\"changeNumber\", \"values\": [{{\"name\", \
                 \"properties\": {{\"addressPrefixes\"}}}}]}}): {error}"
            ),
            Self::UnknownTag { name, closest } if closest.is_empty() => {
                write!(f, "unknown tag '{name}' (the file names no tags)")
            }
            Self::UnknownTag { name, closest } => write!(
                f,
                "unknown tag '{name}'; the closest names in the file: {}",
                closest.join(", ")
            ),
            Self::BadPrefix { tag, index, error } => {
                write!(f, "{tag}: addressPrefixes[{index}]: {error}")
            }
        }
    }
}

impl std::error::Error for ServiceTagsError {}

/// The union of `tags`' prefixes in the service tags file `file`. A tag asked twice counts
/// once.
pub fn select(file: &[u8], tags: &[&str]) -> Result<Selection, ServiceTagsError> {
    let parsed: ServiceTagsFile =
        serde_json::from_slice(file).map_err(ServiceTagsError::NotServiceTags)?;
    let mut union = PrefixUnion::default();
    let mut summaries: Vec<TagSummary> = Vec::new();
    for &wanted in tags {
        if summaries.iter().any(|seen| seen.name == wanted) {
            continue;
        }
        let tag = parsed
            .values
            .iter()
            .find(|tag| tag.name == wanted)
            .ok_or_else(|| ServiceTagsError::UnknownTag {
                name: wanted.to_string(),
                closest: closest_names(wanted, parsed.values.iter().map(|tag| tag.name.as_str())),
            })?;
        for (index, prefix) in tag.properties.address_prefixes.iter().enumerate() {
            union
                .insert(prefix)
                .map_err(|error| ServiceTagsError::BadPrefix {
                    tag: tag.name.clone(),
                    index,
                    error,
                })?;
        }
        summaries.push(TagSummary {
            name: tag.name.clone(),
            change_number: tag.properties.change_number,
            prefixes: tag.properties.address_prefixes.len(),
        });
    }
    Ok(Selection {
        prefixes: union.into_prefixes(),
        tags: summaries,
        change_number: parsed.change_number,
        cloud: parsed.cloud,
    })
}

/// The names most like `wanted`, case aside: those it begins first (a tag without its region
/// finds the regions), then by edit distance, then by name.
fn closest_names<'a>(wanted: &str, names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let wanted = wanted.to_lowercase();
    let mut ranked: Vec<(bool, usize, &str)> = names
        .map(|name| {
            let lower = name.to_lowercase();
            (
                !lower.starts_with(&wanted),
                strsim::levenshtein(&wanted, &lower),
                name,
            )
        })
        .collect();
    ranked.sort_unstable();
    ranked
        .into_iter()
        .take(SUGGESTIONS)
        .map(|(_, _, name)| name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &[u8] =
        include_bytes!("../../../tests/data/service-tags/ServiceTags_Public_20261130.json");

    #[test]
    fn two_regions_merge_into_the_fewest_prefixes() {
        let selection = select(
            FILE,
            &["AzureConnectors.WestEurope", "AzureConnectors.NorthEurope"],
        )
        .unwrap();
        assert_eq!(
            selection.prefixes,
            [
                // Adjacent, but 208 starts no /27: two prefixes stay.
                "13.69.227.208/28",
                "13.69.227.224/28",
                // Adjacent across the two tags' lists, and aligned: one /27.
                "13.69.231.192/27",
                // Two /27 and a /28 with a /29 inside it.
                "20.86.93.0/26",
                "20.86.93.64/28",
                "40.113.12.112/28",
                "52.174.88.118/31",
                "2603:1020:5::/64",
                "2603:1020:206::/58",
                "2603:1020:206:40::/64",
            ]
        );
        assert_eq!(selection.change_number, 345);
        assert_eq!(selection.cloud.as_deref(), Some("Public"));
        assert_eq!(
            selection.tags,
            [
                TagSummary {
                    name: "AzureConnectors.WestEurope".into(),
                    change_number: Some(12),
                    prefixes: 10
                },
                TagSummary {
                    name: "AzureConnectors.NorthEurope".into(),
                    change_number: Some(7),
                    prefixes: 5
                },
            ]
        );
    }

    #[test]
    fn a_tag_asked_twice_counts_once_and_one_tag_is_merged_too() {
        let once = select(FILE, &["AzureConnectors.WestUS"]).unwrap();
        let twice = select(FILE, &["AzureConnectors.WestUS", "AzureConnectors.WestUS"]).unwrap();
        assert_eq!(once, twice);
        assert_eq!(once.prefixes, ["13.93.148.64/27", "2603:1030:803::/64"]);
    }

    #[test]
    fn an_unknown_tag_names_the_closest_ones() {
        let error = select(FILE, &["AzureConnectors.WestEuropa"]).unwrap_err();
        let ServiceTagsError::UnknownTag { name, closest } = &error else {
            panic!("{error}")
        };
        assert_eq!(name, "AzureConnectors.WestEuropa");
        assert_eq!(
            closest.first().map(String::as_str),
            Some("AzureConnectors.WestEurope")
        );
        assert_eq!(closest.len(), SUGGESTIONS);
        // Case differs: still unknown (names are exact), and the right one comes first.
        let error = select(FILE, &["azureconnectors.westeurope"]).unwrap_err();
        assert!(error.to_string().starts_with(
            "unknown tag 'azureconnectors.westeurope'; the closest names in the file: \
             AzureConnectors.WestEurope, "
        ));
        // A service without its region finds its regions first.
        let error = select(FILE, &["PowerPlatform"]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("the closest names in the file: PowerPlatformInfra.WestEurope, "),
            "{error}"
        );
    }

    #[test]
    fn files_and_prefixes_that_cannot_be_read_are_errors() {
        assert!(matches!(
            select(b"[]", &["AzureConnectors"]),
            Err(ServiceTagsError::NotServiceTags(_))
        ));
        assert!(matches!(
            select(br#"{"values": []}"#, &["AzureConnectors"]),
            Err(ServiceTagsError::NotServiceTags(_))
        ));
        let empty = br#"{"changeNumber": 1, "values": []}"#;
        assert_eq!(
            select(empty, &["AzureConnectors"]).unwrap_err().to_string(),
            "unknown tag 'AzureConnectors' (the file names no tags)"
        );
        let bad = br#"{"changeNumber": 1, "values": [{"name": "T", "properties":
            {"addressPrefixes": ["10.0.0.0/8", "10.0.0.1/8"]}}]}"#;
        assert_eq!(
            select(bad, &["T"]).unwrap_err().to_string(),
            "T: addressPrefixes[1]: host bits set in 10.0.0.1/8 (the network is 10.0.0.0/8)"
        );
    }
}
