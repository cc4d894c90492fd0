use super::*;

fn headers(length: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (":method".to_string(), b"POST".to_vec()),
        ("content-length".to_string(), length.as_bytes().to_vec()),
    ]
}

const LIMIT: BodyLimit = BodyLimit { max_bytes: 100 };

#[test]
fn a_declared_length_over_the_limit_is_refused_with_413() {
    let denial = LIMIT.check_declared(&headers("101")).unwrap_err();
    assert_eq!(denial.status, 413);
    assert_eq!(denial.outcome.as_str(), "too_large");
    assert_eq!(denial.message, "Request body is larger than 100 bytes.");
}

#[test]
fn a_declared_length_at_or_under_the_limit_passes() {
    assert!(LIMIT.check_declared(&headers("100")).is_ok());
    assert!(LIMIT.check_declared(&headers("0")).is_ok());
    assert!(
        LIMIT.check_declared(&[]).is_ok(),
        "no length: counted as it streams"
    );
}

#[test]
fn an_unreadable_or_huge_length_is_left_to_envoy_or_refused() {
    // Envoy refuses a malformed Content-Length itself; tollgate does not guess.
    assert!(LIMIT.check_declared(&headers("ten")).is_ok());
    assert!(LIMIT.check_declared(&headers("-1")).is_ok());
    // Past u64: unreadable as a number, left to Envoy too.
    assert!(LIMIT
        .check_declared(&headers("99999999999999999999999"))
        .is_ok());
    assert!(LIMIT
        .check_declared(&headers("18446744073709551615"))
        .is_err());
}

#[test]
fn a_streamed_body_is_refused_the_moment_it_passes_the_limit() {
    let mut counter = LIMIT.counter();
    assert!(counter.add(60).is_ok());
    assert!(counter.add(40).is_ok(), "exactly the limit is allowed");
    let denial = counter.add(1).unwrap_err();
    assert_eq!(denial.status, 413);
}

#[test]
fn a_zero_limit_allows_only_an_empty_body() {
    let mut counter = BodyLimit { max_bytes: 0 }.counter();
    assert!(counter.add(0).is_ok());
    assert!(counter.add(1).is_err());
}

#[test]
fn counting_never_overflows() {
    let mut counter = BodyLimit {
        max_bytes: u64::MAX,
    }
    .counter();
    // Saturates at the largest count instead of wrapping round to a small one.
    assert!(counter.add(usize::MAX).is_ok());
    assert!(counter.add(usize::MAX).is_ok());
    let mut small = LIMIT.counter();
    assert!(small.add(usize::MAX).is_err());
    assert!(small.add(usize::MAX).is_err(), "stays over the limit");
}
