//! Claims: the registered ones checked at verification (`exp`, `nbf`, `iat`, `iss`, `aud`),
//! the required ones checked at authorization, and claim values as header text.

use super::failure::JwtFailure;
use serde_json::{Map, Value};

pub type ClaimMap = Map<String, Value>;

/// What a token's registered claims must satisfy.
#[derive(Debug, Clone, Default)]
pub struct RegisteredRules {
    pub issuers: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    pub clock_skew_s: u64,
}

/// Registered claims must have their RFC 7519 types before anything else looks at them.
pub fn well_formed(claims: &ClaimMap) -> Result<(), JwtFailure> {
    for name in ["exp", "nbf", "iat"] {
        if claims.get(name).is_some_and(|v| !v.is_number()) {
            return Err(JwtFailure::Malformed);
        }
    }
    for name in ["iss", "sub", "jti", "nonce"] {
        if claims.get(name).is_some_and(|v| !v.is_string()) {
            return Err(JwtFailure::Malformed);
        }
    }
    match claims.get("aud") {
        None | Some(Value::String(_)) => Ok(()),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err(JwtFailure::Malformed),
    }
}

/// Checks times, issuer and audience; returns `exp` (whole seconds) on success.
pub fn check_registered(
    claims: &ClaimMap,
    rules: &RegisteredRules,
    now: u64,
) -> Result<u64, JwtFailure> {
    let exp = seconds(claims, "exp").ok_or(JwtFailure::NoExpiry)?;
    let skew = rules.clock_skew_s;
    // RFC 7519: the current time must be before `exp`, and not before `nbf`.
    if now >= exp.saturating_add(skew) {
        return Err(JwtFailure::Expired);
    }
    if seconds(claims, "nbf").is_some_and(|nbf| now.saturating_add(skew) < nbf) {
        return Err(JwtFailure::NotYetValid);
    }
    if seconds(claims, "iat").is_some_and(|iat| iat > now.saturating_add(skew)) {
        return Err(JwtFailure::IssuedInFuture);
    }
    if let Some(issuers) = &rules.issuers {
        let issuer = claims.get("iss").and_then(Value::as_str);
        if !issuer.is_some_and(|iss| issuers.iter().any(|allowed| allowed == iss)) {
            return Err(JwtFailure::IssuerNotAllowed);
        }
    }
    if let Some(audiences) = &rules.audiences {
        let allowed = |aud: &str| audiences.iter().any(|a| a == aud);
        let matches = match claims.get("aud") {
            Some(Value::String(aud)) => allowed(aud),
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(allowed),
            _ => false,
        };
        if !matches {
            return Err(JwtFailure::AudienceNotAllowed);
        }
    }
    Ok(exp)
}

/// A NumericDate claim in whole seconds (fractions dropped, negatives as 0).
fn seconds(claims: &ClaimMap, name: &str) -> Option<u64> {
    let value = claims.get(name)?;
    value
        .as_u64()
        .or_else(|| value.as_f64().map(|f| if f > 0.0 { f as u64 } else { 0 }))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    AnyOf(Vec<String>),
    AllOf(Vec<String>),
}

/// One `jwt.required_claims` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredClaim {
    pub name: String,
    pub expect: Expectation,
    pub separator: Option<String>,
}

impl RequiredClaim {
    pub fn satisfied_by(&self, claims: &ClaimMap) -> bool {
        let Some(value) = claims.get(&self.name) else {
            return false;
        };
        let values = claim_values(value, self.separator.as_deref());
        match &self.expect {
            Expectation::AnyOf(wanted) => wanted.iter().any(|w| values.contains(&w.as_str())),
            Expectation::AllOf(wanted) => wanted.iter().all(|w| values.contains(&w.as_str())),
        }
    }
}

/// The values a claim holds for matching: a string (split by `separator` when given) or the
/// strings of an array. Other types hold none.
fn claim_values<'a>(value: &'a Value, separator: Option<&str>) -> Vec<&'a str> {
    match value {
        Value::String(text) => match separator {
            Some(sep) => text.split(sep).filter(|v| !v.is_empty()).collect(),
            None => vec![text.as_str()],
        },
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// A scalar claim as header text; arrays, objects, null and text with control characters
/// (which a header cannot carry) have none.
pub fn header_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.chars().any(char::is_control) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> ClaimMap {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    const NOW: u64 = 1_800_000_000;

    fn rules() -> RegisteredRules {
        RegisteredRules {
            issuers: Some(vec!["https://issuer".into()]),
            audiences: Some(vec!["api://app".into()]),
            clock_skew_s: 0,
        }
    }

    fn good() -> Value {
        json!({ "iss": "https://issuer", "aud": "api://app", "exp": NOW + 60, "nbf": NOW - 60, "iat": NOW - 60 })
    }

    fn check(edit: impl FnOnce(&mut Value), rules: &RegisteredRules) -> Result<u64, JwtFailure> {
        let mut value = good();
        edit(&mut value);
        let map = claims(value);
        well_formed(&map)?;
        check_registered(&map, rules, NOW)
    }

    #[test]
    fn a_good_token_passes_and_reports_exp() {
        assert_eq!(check(|_| {}, &rules()), Ok(NOW + 60));
    }

    #[test]
    fn exp_is_required_and_exclusive() {
        assert_eq!(
            check(
                |v| {
                    v.as_object_mut().unwrap().remove("exp");
                },
                &rules()
            ),
            Err(JwtFailure::NoExpiry)
        );
        assert_eq!(
            check(|v| v["exp"] = json!(NOW), &rules()),
            Err(JwtFailure::Expired)
        );
        assert_eq!(check(|v| v["exp"] = json!(NOW + 1), &rules()), Ok(NOW + 1));
        assert_eq!(
            check(|v| v["exp"] = json!(NOW as f64 + 1.5), &rules()),
            Ok(NOW + 1)
        );
    }

    #[test]
    fn skew_widens_every_time_check() {
        let skewed = RegisteredRules {
            clock_skew_s: 30,
            ..rules()
        };
        assert!(check(|v| v["exp"] = json!(NOW - 29), &skewed).is_ok());
        assert_eq!(
            check(|v| v["exp"] = json!(NOW - 30), &skewed),
            Err(JwtFailure::Expired)
        );
        assert!(check(|v| v["nbf"] = json!(NOW + 30), &skewed).is_ok());
        assert_eq!(
            check(|v| v["nbf"] = json!(NOW + 31), &skewed),
            Err(JwtFailure::NotYetValid)
        );
        assert!(check(|v| v["iat"] = json!(NOW + 30), &skewed).is_ok());
        assert_eq!(
            check(|v| v["iat"] = json!(NOW + 31), &skewed),
            Err(JwtFailure::IssuedInFuture)
        );
    }

    #[test]
    fn nbf_and_iat_in_the_future_without_skew() {
        assert_eq!(
            check(|v| v["nbf"] = json!(NOW + 1), &rules()),
            Err(JwtFailure::NotYetValid)
        );
        assert!(check(|v| v["nbf"] = json!(NOW), &rules()).is_ok());
        assert_eq!(
            check(|v| v["iat"] = json!(NOW + 1), &rules()),
            Err(JwtFailure::IssuedInFuture)
        );
    }

    #[test]
    fn issuer_and_audience() {
        assert_eq!(
            check(|v| v["iss"] = json!("https://evil"), &rules()),
            Err(JwtFailure::IssuerNotAllowed)
        );
        assert_eq!(
            check(
                |v| {
                    v.as_object_mut().unwrap().remove("iss");
                },
                &rules()
            ),
            Err(JwtFailure::IssuerNotAllowed)
        );
        assert_eq!(
            check(|v| v["aud"] = json!("api://other"), &rules()),
            Err(JwtFailure::AudienceNotAllowed)
        );
        assert!(check(|v| v["aud"] = json!(["api://other", "api://app"]), &rules()).is_ok());
        assert_eq!(
            check(|v| v["aud"] = json!([]), &rules()),
            Err(JwtFailure::AudienceNotAllowed)
        );
        let open = RegisteredRules::default();
        assert!(check(
            |v| {
                v.as_object_mut().unwrap().remove("aud");
            },
            &open
        )
        .is_ok());
    }

    #[test]
    fn registered_claims_must_have_their_types() {
        for (name, bad) in [
            ("exp", json!("1800000060")),
            ("nbf", json!(null)),
            ("iss", json!(7)),
            ("aud", json!({"a": 1})),
            ("aud", json!(["ok", 3])),
            ("sub", json!(["x"])),
        ] {
            assert_eq!(
                check(|v| v[name] = bad.clone(), &rules()),
                Err(JwtFailure::Malformed),
                "{name}"
            );
        }
    }

    #[test]
    fn required_claims_any_of_and_all_of() {
        let map = claims(
            json!({ "roles": ["Invoices.Validate", "Invoices.Read"], "scp": "a b  c", "tid": "t1", "n": 5 }),
        );
        let rule = |name: &str, expect, separator: Option<&str>| RequiredClaim {
            name: name.into(),
            expect,
            separator: separator.map(Into::into),
        };
        let any = |v: &[&str]| Expectation::AnyOf(v.iter().map(|s| s.to_string()).collect());
        let all = |v: &[&str]| Expectation::AllOf(v.iter().map(|s| s.to_string()).collect());
        assert!(rule("roles", any(&["Invoices.Validate", "X"]), None).satisfied_by(&map));
        assert!(!rule("roles", any(&["X"]), None).satisfied_by(&map));
        assert!(
            rule("roles", all(&["Invoices.Validate", "Invoices.Read"]), None).satisfied_by(&map)
        );
        assert!(!rule("roles", all(&["Invoices.Validate", "X"]), None).satisfied_by(&map));
        assert!(rule("tid", any(&["t1"]), None).satisfied_by(&map));
        assert!(!rule("scp", any(&["b"]), None).satisfied_by(&map));
        assert!(rule("scp", all(&["a", "c"]), Some(" ")).satisfied_by(&map));
        assert!(!rule("missing", any(&["x"]), None).satisfied_by(&map));
        assert!(!rule("n", any(&["5"]), None).satisfied_by(&map));
    }

    #[test]
    fn header_text_of_scalars_only() {
        assert_eq!(header_text(&json!("abc")).as_deref(), Some("abc"));
        assert_eq!(header_text(&json!(42)).as_deref(), Some("42"));
        assert_eq!(header_text(&json!(true)).as_deref(), Some("true"));
        assert_eq!(header_text(&json!(["a"])), None);
        assert_eq!(header_text(&json!({"a": 1})), None);
        assert_eq!(header_text(&json!(null)), None);
        assert_eq!(header_text(&json!("a\r\nb")), None);
    }
}
