//! Property-based tests of the whole core, from outside its modules: `decide` never panics and
//! never forwards without a credential known to be valid (`decide`), `Plan::from_json` never
//! panics on any input (`plan_json`), and counters never admit more than a limit's `calls` in
//! one of its windows, whatever the interleaving of workers and their clock readings
//! (`counters`), CORS origins match as the contract reads (`origins`), the caller IP filter
//! answers as a scan of its list would (`ip_filter`), and body transforms never panic and stay
//! within their work budget (`body_transform`). Case counts are kept modest so the core's test
//! run stays short; set `PROPTEST_CASES` to run more.

mod body_transform;
mod counters;
mod decide;
mod ip_filter;
mod origins;
mod plan_json;
mod routing;

use proptest::test_runner::Config;

/// `cases` unless `PROPTEST_CASES` asks for another number (a longer hunt, by hand).
fn config(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(cases);
    Config {
        // Failures are reported with their shrunk input; no files are written into src/.
        failure_persistence: None,
        ..Config::with_cases(cases)
    }
}
