//! apiProperties.json (connection parameters, policies, brand colour) and paconn's
//! settings.json.

use serde_json::{json, Map, Value};

/// Power Platform's own default for custom connectors.
pub(crate) const DEFAULT_BRAND_COLOR: &str = "#007ee5";

pub(crate) fn is_brand_color(text: &str) -> bool {
    text.len() == 7 && text.starts_with('#') && text.chars().skip(1).all(|c| c.is_ascii_hexdigit())
}

pub(crate) fn api_properties(
    connection_parameters: Map<String, Value>,
    policies: Vec<Value>,
    brand_color: &str,
) -> Value {
    let mut properties = Map::new();
    properties.insert(
        "iconBrandColor".into(),
        json!(brand_color.to_ascii_lowercase()),
    );
    properties.insert("capabilities".into(), json!([]));
    properties.insert(
        "connectionParameters".into(),
        Value::Object(connection_parameters),
    );
    if !policies.is_empty() {
        properties.insert("policyTemplateInstances".into(), Value::Array(policies));
    }
    json!({ "properties": properties })
}

/// What `paconn create` reads when given `--settings`; the environment is the user's to add.
pub(crate) fn settings() -> Value {
    json!({
        "apiDefinition": "apiDefinition.swagger.json",
        "apiProperties": "apiProperties.json",
        "powerAppsApiVersion": "2016-11-01",
        "powerAppsUrl": "https://api.powerapps.com",
        "flowApiVersion": "2016-11-01",
        "flowUrl": "https://api.flow.microsoft.com"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brand_colors_are_hash_and_six_hex_digits() {
        assert!(is_brand_color("#007ee5"));
        assert!(is_brand_color("#ABCDEF"));
        for bad in ["007ee5", "#07e", "#007ee5a", "#00gee5", "red", ""] {
            assert!(!is_brand_color(bad), "{bad}");
        }
    }

    #[test]
    fn policies_appear_only_when_there_are_some() {
        let bare = api_properties(Map::new(), Vec::new(), "#ABCDEF");
        assert_eq!(bare["properties"]["iconBrandColor"], "#abcdef");
        assert!(bare["properties"].get("policyTemplateInstances").is_none());
        let with = api_properties(
            Map::new(),
            vec![json!({"templateId": "setheader"})],
            "#000000",
        );
        assert_eq!(
            with["properties"]["policyTemplateInstances"][0]["templateId"],
            "setheader"
        );
    }
}
