//! The tollgate command line: check a configuration exactly as the filter would, make keys,
//! hash keys. Keys are read from stdin, never from argv, so they stay out of shell history.

use std::io::{Read, Write};
use std::process::ExitCode;
use tollgate_core::plan::Plan;
use tollgate_core::subscription::KeyHash;

const USAGE: &str = "\
usage:
  tollgate check CONFIG.json       validate a plugin configuration (as the filter does at load)
  tollgate new-key [--consumer ID] print a fresh random key and its sha256: hash
  tollgate hash-key                read a key from stdin, print its sha256: hash";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["check", path] => check(path),
        ["new-key"] => new_key(None),
        ["new-key", "--consumer", id] => new_key(Some(id)),
        ["hash-key"] => hash_key(),
        ["-h" | "--help" | "help"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &str) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|err| format!("{path}: {err}"))?;
    let plan = Plan::from_json(&bytes).map_err(|err| format!("{path}: {err}"))?;
    println!(
        "{path}: OK ({} operations, {} consumers, {} products)",
        plan.operations.len(),
        plan.consumers.len(),
        plan.products.len()
    );
    Ok(())
}

fn new_key(consumer: Option<&str>) -> Result<(), String> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|err| format!("no randomness available: {err}"))?;
    let key: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let hash = KeyHash::of(key.as_bytes()).to_config_string();
    println!("key:  {key}");
    println!("hash: {hash}");
    if let Some(id) = consumer {
        let entry = serde_json::json!({ "id": id, "product": "<product>", "keys": [hash] });
        println!("consumer entry: {entry}");
    }
    eprintln!("Give the key to the caller once; put only the hash in the configuration.");
    Ok(())
}

fn hash_key() -> Result<(), String> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|err| format!("cannot read stdin: {err}"))?;
    // `echo key | tollgate hash-key` adds a newline that is not part of the key.
    let key = input
        .strip_suffix(b"\r\n")
        .or_else(|| input.strip_suffix(b"\n"))
        .unwrap_or(&input);
    if key.is_empty() {
        return Err("no key on stdin".to_string());
    }
    let mut out = std::io::stdout();
    writeln!(out, "{}", KeyHash::of(key).to_config_string())
        .map_err(|err| format!("cannot write: {err}"))
}
