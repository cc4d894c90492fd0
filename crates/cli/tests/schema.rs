//! `tollgate schema`: the committed docs/tollgate.schema.json is exactly what the binary prints,
//! so the schema users point their editors at never lags behind the configuration types.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::process::Command;

const COMMITTED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/tollgate.schema.json"
);

fn printed() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("schema")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn committed_schema_is_what_tollgate_schema_prints() {
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    // Not assert_eq!: a 40 KB diff helps nobody; the way to fix it does.
    assert!(
        committed == printed(),
        "docs/tollgate.schema.json is not what `tollgate schema` prints: the configuration types \
         changed. Run `make schema` (or `tollgate schema > docs/tollgate.schema.json`) and \
         commit the file."
    );
}

#[test]
fn prints_the_same_bytes_every_time() {
    assert_eq!(printed(), printed());
}

#[test]
fn is_a_draft_2020_12_schema_of_an_object_that_refuses_unknown_keys() {
    let schema: serde_json::Value = serde_json::from_str(&printed()).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], serde_json::json!(["operations"]));
}
