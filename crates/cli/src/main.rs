//! The tollgate command line: check a configuration exactly as the filter would, make keys,
//! hash keys. Keys are read from stdin, never from argv, so they stay out of shell history.

use std::fmt;
use std::io::{Read, Write};
use std::process::ExitCode;
use tollgate_core::{ConfigError, KeyHash, Plan};

const USAGE: &str = "\
usage:
  tollgate check CONFIG.json       validate a plugin configuration (as the filter does at load)
  tollgate new-key [--consumer ID] print a fresh random key and its sha256: hash
  tollgate hash-key                read a key from stdin, print its sha256: hash";

/// Why a command failed; `Display` is what the operator reads on stderr.
#[derive(Debug)]
enum CliError {
    /// Unknown command or arguments.
    Usage,
    /// The configuration file cannot be read.
    Read { path: String, error: std::io::Error },
    /// The configuration is refused, as the filter would refuse it.
    Invalid { path: String, error: ConfigError },
    /// The system has no randomness to make a key with.
    NoRandomness(getrandom::Error),
    /// stdin cannot be read (`hash-key`).
    Stdin(std::io::Error),
    /// stdin held no key (`hash-key`).
    NoKey,
    /// stdout cannot be written.
    Stdout(std::io::Error),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage => f.write_str(USAGE),
            Self::Read { path, error } => write!(f, "{path}: {error}"),
            Self::Invalid { path, error } => write!(f, "{path}: {error}"),
            Self::NoRandomness(error) => write!(f, "no randomness available: {error}"),
            Self::Stdin(error) => write!(f, "cannot read stdin: {error}"),
            Self::NoKey => f.write_str("no key on stdin"),
            Self::Stdout(error) => write!(f, "cannot write: {error}"),
        }
    }
}

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
        _ => Err(CliError::Usage),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &str) -> Result<(), CliError> {
    let bytes = std::fs::read(path).map_err(|error| CliError::Read {
        path: path.to_string(),
        error,
    })?;
    let plan = Plan::from_json(&bytes).map_err(|error| CliError::Invalid {
        path: path.to_string(),
        error,
    })?;
    println!(
        "{path}: OK ({} operations, {} consumers, {} products)",
        plan.operation_count(),
        plan.consumer_count(),
        plan.product_count()
    );
    Ok(())
}

fn new_key(consumer: Option<&str>) -> Result<(), CliError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(CliError::NoRandomness)?;
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

fn hash_key() -> Result<(), CliError> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(CliError::Stdin)?;
    // `echo key | tollgate hash-key` adds a newline that is not part of the key.
    let key = input
        .strip_suffix(b"\r\n")
        .or_else(|| input.strip_suffix(b"\n"))
        .unwrap_or(&input);
    if key.is_empty() {
        return Err(CliError::NoKey);
    }
    let mut out = std::io::stdout();
    writeln!(out, "{}", KeyHash::of(key).to_config_string()).map_err(CliError::Stdout)
}
