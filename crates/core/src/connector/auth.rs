//! How the connector signs its calls in: a subscription key (what APIM's own export writes), an
//! Entra ID token, or both. The Swagger `securityDefinitions`, the connection parameters of
//! apiProperties.json and the policy that sends the key beside a token. Never a secret: the key
//! is asked of the user when they create a connection; the app registration needs no secret in
//! the connector for `aad` (Power Platform holds it).

use crate::config::AuthMode;
use crate::connector::error::ConnectorError;
use serde_json::{json, Map, Value};

/// `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthChoice {
    /// From the `auth` of the exposed operations.
    #[default]
    Auto,
    Key,
    Aad,
    Both,
}

impl AuthChoice {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "auto" => Some(Self::Auto),
            "key" => Some(Self::Key),
            "aad" => Some(Self::Aad),
            "both" => Some(Self::Both),
            _ => None,
        }
    }
}

/// The sign-in the connector gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectorAuth {
    Key,
    Aad,
    Both,
}

/// Swagger's name for the key scheme and the connection parameter holding the key: the names
/// APIM's "export to Power Platform" writes (505 of 530 key-based certified connectors).
pub(crate) const KEY_SCHEME: &str = "apiKeyHeader";
pub(crate) const KEY_PARAMETER: &str = "api_key";
/// The portal's name for an OAuth 2.0 scheme and the token connection parameter.
pub(crate) const OAUTH_SCHEME: &str = "oauth2-auth";
const TOKEN_PARAMETER: &str = "token";
/// Where Power Platform's shared redirect lands (`redirectMode: Global`).
const GLOBAL_REDIRECT: &str = "https://global.consent.azure-apim.net/redirect";
const DEFAULT_LOGIN: &str = "https://login.microsoftonline.com";

/// `auto`: ignoring `none`, all `subscription_key`/`either` → key; else all `jwt`/`either` →
/// aad; otherwise (`both`, or key-only beside JWT-only operations) → both. The rule read as
/// written: with nothing but `none` operations "all of them" holds, so → key.
pub(crate) fn resolve(
    choice: AuthChoice,
    modes: impl IntoIterator<Item = AuthMode>,
) -> ConnectorAuth {
    match choice {
        AuthChoice::Key => return ConnectorAuth::Key,
        AuthChoice::Aad => return ConnectorAuth::Aad,
        AuthChoice::Both => return ConnectorAuth::Both,
        AuthChoice::Auto => {}
    }
    let modes: Vec<AuthMode> = modes.into_iter().filter(|m| *m != AuthMode::None).collect();
    if modes
        .iter()
        .all(|m| matches!(m, AuthMode::SubscriptionKey | AuthMode::Either))
    {
        ConnectorAuth::Key
    } else if modes
        .iter()
        .all(|m| matches!(m, AuthMode::Jwt | AuthMode::Either))
    {
        ConnectorAuth::Aad
    } else {
        ConnectorAuth::Both
    }
}

/// The Entra ID app registration and resource the connector signs in to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entra {
    /// Empty in the OpenAPI description, which names no app registration.
    pub client_id: String,
    pub resource_uri: String,
    pub tenant: String,
    pub login_uri: String,
}

impl Entra {
    /// `issuers`/`audiences` from the configuration's `jwt` section; `client_id` only where the
    /// connector signs in (the caller has checked it is there).
    pub(crate) fn from(
        client_id: Option<&str>,
        resource_uri: Option<&str>,
        issuers: &[String],
        audiences: &[String],
    ) -> Result<Self, ConnectorError> {
        let resource_uri = resource_uri
            .or(audiences.first().map(String::as_str))
            .filter(|uri| !uri.is_empty())
            .ok_or(ConnectorError::ResourceUriRequired)?;
        let tenant = tenant_of(issuers);
        let login_uri = issuers
            .iter()
            .find_map(|issuer| login_host(issuer))
            .map_or_else(
                || DEFAULT_LOGIN.to_string(),
                |host| format!("https://{host}"),
            );
        Ok(Self {
            client_id: client_id.unwrap_or_default().to_string(),
            resource_uri: resource_uri.to_string(),
            tenant,
            login_uri,
        })
    }
}

/// The tenant every Entra issuer names (`https://login.microsoftonline.com/<tenant>/v2.0`,
/// `https://sts.windows.net/<tenant>/`), or `common` when there is none or they disagree.
fn tenant_of(issuers: &[String]) -> String {
    let mut tenants = issuers.iter().filter_map(|issuer| {
        let (host, path) = host_and_path(issuer)?;
        is_entra_host(host).then(|| path.split('/').find(|s| !s.is_empty()))?
    });
    match tenants.next() {
        Some(first) if tenants.all(|t| t == first) => first.to_string(),
        _ => "common".to_string(),
    }
}

fn host_and_path(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("https://")?;
    Some(rest.split_once('/').unwrap_or((rest, "")))
}

fn is_entra_host(host: &str) -> bool {
    host == "sts.windows.net" || host.starts_with("login.")
}

/// A sovereign cloud's sign-in host (`login.microsoftonline.us`), from an issuer on it.
fn login_host(issuer: &str) -> Option<&str> {
    let (host, _) = host_and_path(issuer)?;
    host.starts_with("login.").then_some(host)
}

/// Swagger `securityDefinitions` and the top-level `security` requirement.
pub(crate) fn security_definitions(
    auth: ConnectorAuth,
    key_header: &str,
    entra: Option<&Entra>,
) -> (Value, Value) {
    match (auth, entra) {
        (ConnectorAuth::Key, _) | (_, None) => (
            json!({ KEY_SCHEME: { "type": "apiKey", "in": "header", "name": key_header } }),
            json!([{ KEY_SCHEME: [] }]),
        ),
        // Power Platform takes one scheme: with both, the key rides in a policy (below).
        (ConnectorAuth::Aad | ConnectorAuth::Both, Some(entra)) => {
            let authorize = format!("{}/{}/oauth2/authorize", entra.login_uri, entra.tenant);
            (
                json!({ OAUTH_SCHEME: { "type": "oauth2", "flow": "accessCode",
                    "authorizationUrl": authorize, "tokenUrl": authorize, "scopes": {} } }),
                json!([{ OAUTH_SCHEME: [] }]),
            )
        }
    }
}

/// apiProperties' `connectionParameters` and `policyTemplateInstances`.
pub(crate) fn connection(
    auth: ConnectorAuth,
    key_header: &str,
    entra: Option<&Entra>,
) -> (Map<String, Value>, Vec<Value>) {
    let mut parameters = Map::new();
    let mut policies = Vec::new();
    let token = entra.filter(|_| matches!(auth, ConnectorAuth::Aad | ConnectorAuth::Both));
    let key = match auth {
        ConnectorAuth::Key | ConnectorAuth::Both => true,
        ConnectorAuth::Aad => token.is_none(),
    };
    if let Some(entra) = token {
        parameters.insert(TOKEN_PARAMETER.into(), token_parameter(entra));
        parameters.insert(
            format!("{TOKEN_PARAMETER}:TenantId"),
            json!({ "type": "string", "metadata": { "sourceType": "AzureActiveDirectoryTenant" },
                "uiDefinition": { "constraints": { "required": "false", "hidden": "true" },
                    "description": "The tenant ID of for the Azure Active Directory application",
                    "displayName": "Tenant" } }),
        );
    }
    if key {
        let tab_index = if token.is_some() { 3 } else { 2 };
        parameters.insert(
            KEY_PARAMETER.into(),
            json!({ "type": "securestring", "uiDefinition": { "displayName": "API Key",
                "description": "The API Key for this api", "tooltip": "Provide your API Key",
                "constraints": { "tabIndex": tab_index, "clearText": false, "required": "true" } } }),
        );
    }
    // Power Platform takes one security definition: beside a token, the key rides in a policy.
    if key && token.is_some() {
        policies.push(json!({ "templateId": "setheader", "title": "Send the subscription key",
            "parameters": {
                "x-ms-apimTemplateParameter.name": key_header,
                "x-ms-apimTemplateParameter.value": format!("@connectionParameters('{KEY_PARAMETER}')"),
                "x-ms-apimTemplateParameter.existsAction": "override",
                "x-ms-apimTemplate-policySection": "Request" } }));
    }
    (parameters, policies)
}

fn token_parameter(entra: &Entra) -> Value {
    json!({ "type": "oauthSetting", "oAuthSettings": {
        "identityProvider": "aad",
        "clientId": entra.client_id,
        "scopes": [],
        "redirectMode": "Global",
        "redirectUrl": GLOBAL_REDIRECT,
        "properties": { "IsFirstParty": "False" },
        "customParameters": {
            "loginUri": { "value": entra.login_uri },
            "tenantId": { "value": entra.tenant },
            "resourceUri": { "value": entra.resource_uri } } } })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use AuthMode::{Both, Either, Jwt, None as Open, SubscriptionKey};

    #[test]
    fn auto_follows_the_exposed_operations() {
        let auto = |modes: &[AuthMode]| resolve(AuthChoice::Auto, modes.iter().copied());
        assert_eq!(auto(&[SubscriptionKey, Either, Open]), ConnectorAuth::Key);
        assert_eq!(auto(&[Jwt, Either]), ConnectorAuth::Aad);
        assert_eq!(auto(&[Either]), ConnectorAuth::Key);
        assert_eq!(auto(&[Both]), ConnectorAuth::Both);
        assert_eq!(auto(&[SubscriptionKey, Jwt]), ConnectorAuth::Both);
        assert_eq!(
            resolve(AuthChoice::Aad, [SubscriptionKey]),
            ConnectorAuth::Aad
        );
        assert_eq!(auto(&[Open]), ConnectorAuth::Key);
        assert_eq!(resolve(AuthChoice::Key, [Open]), ConnectorAuth::Key);
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn the_tenant_comes_from_the_issuers() {
        let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        let v2 = format!("https://login.microsoftonline.com/{tenant}/v2.0");
        let v1 = format!("https://sts.windows.net/{tenant}/");
        assert_eq!(tenant_of(&[v2.clone(), v1]), tenant);
        assert_eq!(
            tenant_of(&[v2, "https://login.microsoftonline.com/other/v2.0".into()]),
            "common"
        );
        assert_eq!(
            tenant_of(&strings(&["https://idp.example/realm"])),
            "common"
        );
        assert_eq!(tenant_of(&[]), "common");
    }

    #[test]
    fn entra_needs_a_resource() {
        let aud = strings(&["api://invoice-validator"]);
        assert!(matches!(
            Entra::from(Some("id"), None, &[], &[]),
            Err(ConnectorError::ResourceUriRequired)
        ));
        let entra = Entra::from(Some("id"), None, &[], &aud).unwrap();
        assert_eq!(entra.resource_uri, "api://invoice-validator");
        assert_eq!(entra.login_uri, DEFAULT_LOGIN);
        let chosen = Entra::from(Some("id"), Some("api://other"), &[], &aud).unwrap();
        assert_eq!(chosen.resource_uri, "api://other");
        let gov = Entra::from(
            Some("id"),
            None,
            &strings(&["https://login.microsoftonline.us/t/v2.0"]),
            &aud,
        )
        .unwrap();
        assert_eq!(
            (gov.login_uri.as_str(), gov.tenant.as_str()),
            ("https://login.microsoftonline.us", "t")
        );
    }

    fn entra() -> Entra {
        Entra {
            client_id: "app".into(),
            resource_uri: "api://r".into(),
            tenant: "t".into(),
            login_uri: DEFAULT_LOGIN.into(),
        }
    }

    #[test]
    fn a_key_connector_asks_for_the_key_under_apim_names() {
        let (definitions, security) = security_definitions(ConnectorAuth::Key, "X-Key", None);
        assert_eq!(
            definitions,
            json!({"apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Key"}})
        );
        assert_eq!(security, json!([{"apiKeyHeader": []}]));
        let (parameters, policies) = connection(ConnectorAuth::Key, "X-Key", None);
        assert_eq!(parameters["api_key"]["type"], "securestring");
        assert_eq!(parameters.len(), 1);
        assert!(policies.is_empty());
    }

    #[test]
    fn an_aad_connector_signs_in_with_entra_and_holds_no_key() {
        let (definitions, _) = security_definitions(ConnectorAuth::Aad, "X-Key", Some(&entra()));
        assert_eq!(definitions[OAUTH_SCHEME]["type"], "oauth2");
        let (parameters, policies) = connection(ConnectorAuth::Aad, "X-Key", Some(&entra()));
        let settings = &parameters["token"]["oAuthSettings"];
        assert_eq!(settings["identityProvider"], "aad");
        assert_eq!(settings["clientId"], "app");
        assert_eq!(settings["redirectMode"], "Global");
        assert_eq!(
            settings["customParameters"]["resourceUri"]["value"],
            "api://r"
        );
        assert_eq!(settings["customParameters"]["tenantId"]["value"], "t");
        assert!(settings.get("clientSecret").is_none());
        assert!(!parameters.contains_key("api_key"));
        assert!(policies.is_empty());
    }

    #[test]
    fn both_sends_the_key_through_a_policy_beside_the_token() {
        let (parameters, policies) = connection(ConnectorAuth::Both, "X-Key", Some(&entra()));
        assert!(parameters.contains_key("token") && parameters.contains_key("api_key"));
        assert_eq!(policies.len(), 1);
        assert_eq!(policies[0]["templateId"], "setheader");
        assert_eq!(
            policies[0]["parameters"]["x-ms-apimTemplateParameter.name"],
            "X-Key"
        );
        assert_eq!(
            policies[0]["parameters"]["x-ms-apimTemplateParameter.value"],
            "@connectionParameters('api_key')"
        );
    }
}
