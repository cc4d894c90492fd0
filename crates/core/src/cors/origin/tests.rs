use super::*;

fn allowed(patterns: &[&str]) -> AllowedOrigins {
    AllowedOrigins::listed(patterns.iter().map(|p| OriginPattern::parse(p).unwrap()))
}

#[test]
fn an_exact_origin_matches_scheme_host_and_port_only() {
    let origins = allowed(&["https://make.powerautomate.com", "http://localhost:3000"]);
    for yes in [
        "https://make.powerautomate.com",
        "HTTPS://Make.PowerAutomate.COM",
        "https://make.powerautomate.com:443",
        "http://localhost:3000",
    ] {
        assert!(origins.allows(yes), "{yes}");
    }
    for no in [
        "http://make.powerautomate.com",
        "https://make.powerautomate.com:8443",
        "https://make.powerautomate.com/",
        "https://make.powerautomate.com.",
        "https://make.powerautomate.com.evil.net",
        "https://evilmake.powerautomate.com",
        "https://x.make.powerautomate.com",
        "https://make.powerautomate.com@evil.net",
        "https://evil.net#https://make.powerautomate.com",
        "http://localhost",
        "http://localhost:3001",
        "http://localhost:80",
        "make.powerautomate.com",
        "",
    ] {
        assert!(!origins.allows(no), "{no}");
    }
}

#[test]
fn a_default_port_is_the_same_as_none_on_both_sides() {
    let origins = allowed(&["https://a.example:443", "http://b.example:80"]);
    assert!(origins.allows("https://a.example"));
    assert!(origins.allows("http://b.example"));
    assert!(origins.allows("http://b.example:80"));
    assert!(
        !origins.allows("http://a.example"),
        "80 is http's default, not https's"
    );
    assert!(!origins.allows("https://b.example:80"));
    assert_eq!(
        OriginPattern::parse("HTTPS://A.Example:443").unwrap(),
        OriginPattern::Exact("https://a.example".into())
    );
}

#[test]
fn a_wildcard_label_matches_one_or_more_labels_under_its_domain() {
    let origins = allowed(&["https://*.powerapps.com"]);
    for yes in [
        "https://x.powerapps.com",
        "https://a.b.powerapps.com",
        "https://X.PowerApps.com",
        "https://x.powerapps.com:443",
    ] {
        assert!(origins.allows(yes), "{yes}");
    }
    for no in [
        "https://powerapps.com",
        "https://x.powerapps.com.evil.net",
        "https://evilpowerapps.com",
        "https://x.evilpowerapps.com",
        "https://x-powerapps.com",
        "http://x.powerapps.com",
        "https://x.powerapps.com:8443",
        "https://*.powerapps.com",
        "https://.powerapps.com",
    ] {
        assert!(!origins.allows(no), "{no}");
    }
}

#[test]
fn a_wildcard_keeps_its_port() {
    let origins = allowed(&["http://*.dev.example:8080"]);
    assert!(origins.allows("http://app.dev.example:8080"));
    assert!(!origins.allows("http://app.dev.example"));
    assert!(!origins.allows("http://app.dev.example:8081"));
}

#[test]
fn null_never_matches_not_even_any() {
    for origins in [AllowedOrigins::Any, allowed(&["https://a.example"])] {
        for never in ["null", "NULL", "", "a.example", "https://a.example/x", "*"] {
            assert!(!origins.allows(never), "{never}");
        }
    }
    assert!(AllowedOrigins::Any.allows("https://anything.example:8443"));
    assert!(AllowedOrigins::Any.allows("http://[::1]:3000"));
}

#[test]
fn ip_literals_are_origins_too() {
    let origins = allowed(&["http://127.0.0.1:8080", "http://[::1]:3000"]);
    assert!(origins.allows("http://127.0.0.1:8080"));
    assert!(origins.allows("http://[::1]:3000"));
    assert!(!origins.allows("http://[::2]:3000"));
    assert!(!origins.allows("http://127.0.0.1"));
}

#[test]
fn malformed_origins_are_refused_with_the_reason() {
    let cases = [
        ("null", OriginError::Null),
        ("make.powerautomate.com", OriginError::MissingScheme),
        ("*.powerapps.com", OriginError::MissingScheme),
        ("1https://a.example", OriginError::BadScheme),
        ("://a.example", OriginError::BadScheme),
        ("https://user@a.example", OriginError::Userinfo),
        ("https://user:pw@a.example", OriginError::Userinfo),
        ("https://a.example/", OriginError::PathQueryOrFragment),
        ("https://a.example/app", OriginError::PathQueryOrFragment),
        ("https://a.example?x=1", OriginError::PathQueryOrFragment),
        ("https://a.example#top", OriginError::PathQueryOrFragment),
        ("https://", OriginError::BadHost),
        ("https://a..example", OriginError::BadHost),
        ("https://a.example.", OriginError::BadHost),
        ("https://a_b.example", OriginError::BadHost),
        ("https://bücher.example", OriginError::BadHost),
        ("https://[zz::1]", OriginError::BadHost),
        ("https://a.example:", OriginError::BadPort),
        ("https://a.example:0", OriginError::BadPort),
        ("https://a.example:65536", OriginError::BadPort),
        ("https://a.example:80:80", OriginError::BadPort),
        ("https://a.example:x", OriginError::BadPort),
        ("https://*", OriginError::MisplacedWildcard),
        ("https://a.*.example", OriginError::MisplacedWildcard),
        ("https://*a.example", OriginError::MisplacedWildcard),
        ("https://*.*.example", OriginError::MisplacedWildcard),
        ("https://a.example.*", OriginError::MisplacedWildcard),
        ("https://*.", OriginError::WildcardTooBroad),
        ("https://*.com", OriginError::WildcardTooBroad),
        ("https://*.0.0.1", OriginError::WildcardTooBroad),
        ("https://*.[::1]", OriginError::WildcardTooBroad),
    ];
    for (text, expected) in cases {
        assert_eq!(OriginPattern::parse(text), Err(expected), "{text}");
    }
}
