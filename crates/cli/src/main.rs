//! The tollgate command line: check a configuration exactly as the filter would, print its JSON
//! Schema, make keys, hash keys, generate the Power Platform connector, turn Azure service tags
//! into an `ip_filter` list. Keys are read from stdin, never from argv, so they stay out of shell
//! history.

mod service_tags;

use std::fmt;
use std::io::{Read, Write};
use std::process::ExitCode;
use tollgate_core::connector::{self, AuthChoice, ConnectorError, Format, Options};
use tollgate_core::init::{self, InitAuth, InitError, InitOptions};
use tollgate_core::{ConfigError, KeyHash, Plan};

const USAGE: &str = "\
usage:
  tollgate check CONFIG.json [--openapi OPENAPI.json [--strict]]
                                   validate a plugin configuration (as the filter does at load);
                                   with --openapi also list drift from FastAPI's OpenAPI (not
                                   exposed / reaches nothing), --strict: drift is a failure
                                   (exit status 2; 1 for an invalid configuration)
  tollgate init --openapi OPENAPI.json [--backend-prefix /api/v1] [--public-prefix /]
                [--auth subscription_key|jwt|either] [--out tollgate.json]
                                   write a starting configuration: one operation per FastAPI
                                   operation, a product, a consumer with a fresh key (printed
                                   once on stderr); never overwrites
  tollgate schema                  print the configuration's JSON Schema (Draft 2020-12), for
                                   editors and CI; `check` also checks what it cannot say
  tollgate new-key [--consumer ID] print a fresh random key and its sha256: hash
  tollgate hash-key                read a key from stdin, print its sha256: hash
  tollgate connector --config CONFIG.json --openapi OPENAPI.json --host HOST
                     [--out DIR] [--title T] [--description D] [--scheme https] [--base-path /]
                     [--auth auto|key|aad|both] [--client-id ID] [--resource-uri URI]
                     [--brand-color #RRGGBB] [--format powerplatform|openapi]
                                   write the Power Platform custom connector (apiDefinition.swagger.json,
                                   apiProperties.json, settings.json) or, with --format openapi,
                                   openapi.json: the public API tollgate enforces
  tollgate service-tags FILE --tag NAME [--tag NAME...]
                                   print the address prefixes of Azure service tags (FILE: the
                                   weekly ServiceTags_Public_<date>.json) as one JSON array,
                                   merged into the fewest CIDR prefixes, for ip_filter.allow";

/// `check --openapi --strict` found drift (1 is every other failure).
const DRIFT_EXIT: u8 = 2;

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
    /// `connector`: an unknown flag, a flag without its value, or a required flag missing.
    ConnectorUsage(String),
    /// `connector`: the inputs cannot make a connector.
    Connector(ConnectorError),
    /// `connector`: an output file cannot be written.
    Write { path: String, error: std::io::Error },
    /// `check --openapi`: the drift cannot be computed (an input is not OpenAPI 3.x, ...).
    Drift(ConnectorError),
    /// `check --openapi --strict`: the configuration and the OpenAPI have drifted apart.
    Drifted(usize),
    /// `init`: an unknown flag, a flag without its value, or a required flag missing.
    InitUsage(String),
    /// `init`: the inputs cannot make a configuration.
    Init(InitError),
    /// `init`: the output exists (init never overwrites).
    Exists(String),
    /// `connector`: an output file is one of the inputs (`--format openapi` into the directory
    /// of `--openapi openapi.json`).
    WouldOverwrite(String),
    /// `service-tags`: no file, no `--tag`, or an unknown flag.
    ServiceTagsUsage(String),
    /// `service-tags`: the file or a tag cannot be read.
    ServiceTags {
        path: String,
        error: service_tags::ServiceTagsError,
    },
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
            Self::ConnectorUsage(message) => write!(f, "tollgate connector: {message}\n{USAGE}"),
            Self::Drift(error) => write!(f, "tollgate check --openapi: {error}"),
            Self::Drifted(count) => write!(
                f,
                "tollgate check --strict: {count} drift line(s) between the configuration and the OpenAPI"
            ),
            Self::InitUsage(message) => write!(f, "tollgate init: {message}\n{USAGE}"),
            Self::Init(error) => write!(f, "tollgate init: {error}"),
            Self::Exists(path) => write!(
                f,
                "tollgate init: {path} exists; init never overwrites (choose another --out)"
            ),
            Self::Connector(error) => write!(f, "tollgate connector: {error}"),
            Self::Write { path, error } => write!(f, "cannot write {path}: {error}"),
            Self::ServiceTagsUsage(message) => {
                write!(f, "tollgate service-tags: {message}\n{USAGE}")
            }
            Self::ServiceTags { path, error } => write!(f, "tollgate service-tags: {path}: {error}"),
            Self::WouldOverwrite(path) => write!(
                f,
                "tollgate connector: {path} is an input; choose another --out (or rename the input)"
            ),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["check", path] => check(path).map(|_| ()),
        ["check", flags @ ..] => check_with_openapi(flags),
        ["init", "-h" | "--help"] => {
            println!("{USAGE}");
            Ok(())
        }
        ["init", flags @ ..] => init_config(flags),
        ["schema"] => print_schema(),
        ["new-key"] => new_key(None),
        ["new-key", "--consumer", id] => new_key(Some(id)),
        ["hash-key"] => hash_key(),
        ["connector", "-h" | "--help"] => {
            println!("{USAGE}");
            Ok(())
        }
        ["connector", flags @ ..] => make_connector(flags),
        ["service-tags", "-h" | "--help"] => {
            println!("{USAGE}");
            Ok(())
        }
        ["service-tags", args @ ..] => print_service_tags(args),
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
            // Drift under --strict is told apart from a broken configuration or a usage error.
            match error {
                CliError::Drifted(_) => ExitCode::from(DRIFT_EXIT),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn check(path: &str) -> Result<Vec<u8>, CliError> {
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
    Ok(bytes)
}

/// `check CONFIG --openapi OPENAPI [--strict]`, the flags in any order.
fn check_with_openapi(args: &[&str]) -> Result<(), CliError> {
    let mut config = None;
    let mut openapi = None;
    let mut strict = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match *arg {
            "--strict" if !strict => strict = true,
            "--openapi" if openapi.is_none() => {
                let value = *rest.next().ok_or(CliError::Usage)?;
                if value.starts_with("--") {
                    return Err(CliError::Usage);
                }
                openapi = Some(value)
            }
            path if !path.starts_with("--") && config.is_none() => config = Some(path),
            _ => return Err(CliError::Usage),
        }
    }
    let (Some(config_path), Some(openapi_path)) = (config, openapi) else {
        return Err(CliError::Usage);
    };
    let config = check(config_path)?;
    let openapi = std::fs::read(openapi_path).map_err(|error| CliError::Read {
        path: openapi_path.to_string(),
        error,
    })?;
    let drift = connector::drift(&config, &openapi).map_err(CliError::Drift)?;
    for line in &drift.not_exposed {
        println!("not exposed: {line}");
    }
    for line in &drift.through_parameter {
        println!("reached through another operation's parameter: {line}");
    }
    for line in &drift.reaches_nothing {
        println!("reaches nothing: {line}");
    }
    let count = drift.len();
    if count == 0 {
        println!("{openapi_path}: no drift (every FastAPI operation is exposed, every operation reaches one)");
    }
    if strict && count > 0 {
        return Err(CliError::Drifted(count));
    }
    Ok(())
}

/// `--flag value` pairs, each flag once and with its value.
fn flag_values<'a>(
    flags: &[&'a str],
    usage: impl Fn(String) -> CliError,
) -> Result<Vec<(&'a str, &'a str)>, CliError> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let mut rest = flags.iter();
    while let Some(&flag) = rest.next() {
        let value = *rest
            .next()
            .ok_or_else(|| usage(format!("{flag} needs a value")))?;
        if pairs.iter().any(|(seen, _)| *seen == flag) {
            return Err(usage(format!("{flag} given twice")));
        }
        pairs.push((flag, value));
    }
    Ok(pairs)
}

fn init_config(flags: &[&str]) -> Result<(), CliError> {
    let usage = |message: String| CliError::InitUsage(message);
    let mut options = InitOptions::default();
    let mut openapi_path = None;
    let mut out = "tollgate.json";
    for (flag, value) in flag_values(flags, usage)? {
        match flag {
            "--openapi" => openapi_path = Some(value),
            "--backend-prefix" => options.backend_prefix = value.to_string(),
            "--public-prefix" => options.public_prefix = value.to_string(),
            "--out" => out = value,
            "--auth" => {
                options.auth = InitAuth::parse(value).ok_or_else(|| {
                    usage(format!("--auth {value}: subscription_key, jwt or either"))
                })?
            }
            _ => return Err(usage(format!("unknown flag {flag}"))),
        }
    }
    let openapi_path = openapi_path.ok_or_else(|| usage("--openapi is required".into()))?;
    if std::path::Path::new(out).exists() {
        return Err(CliError::Exists(out.to_string()));
    }
    let openapi = std::fs::read(openapi_path).map_err(|error| CliError::Read {
        path: openapi_path.to_string(),
        error,
    })?;
    let key = fresh_key()?;
    let made = init::starting_config(&openapi, &KeyHash::of(key.as_bytes()), &options)
        .map_err(CliError::Init)?;
    // create_new: a file that appeared meanwhile is not replaced either.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::AlreadyExists => CliError::Exists(out.to_string()),
            _ => CliError::Write {
                path: out.to_string(),
                error,
            },
        })?;
    file.write_all(made.config.as_bytes())
        .map_err(|error| CliError::Write {
            path: out.to_string(),
            error,
        })?;
    for line in &made.skipped {
        eprintln!("skipped: {line}");
    }
    for line in &made.warnings {
        eprintln!("warning: {line}");
    }
    println!("wrote {out} ({} operations)", made.operations);
    eprintln!(
        "{} on product '{}': its key, shown this once (only its hash is in {out}):",
        init::FIRST_CONSUMER,
        init::DEFAULT_PRODUCT
    );
    eprintln!("key:  {key}");
    if options.auth != InitAuth::SubscriptionKey {
        eprintln!(
            "jwt: replace {} and {} in {out} with your Entra tenant ID and the API's application \
             (client) ID (v2.0 tokens: see docs/configuration.md, Entra ID), and give Envoy a \
             cluster 'entra_id' to login.microsoftonline.com",
            init::TENANT_PLACEHOLDER,
            init::AUDIENCE_PLACEHOLDER
        );
        eprintln!(
            "jwt: default_product '{}' admits every client that holds a valid token for the \
             audience; to admit only yours, list them as consumers (jwt_client_ids) and remove it",
            init::DEFAULT_PRODUCT
        );
    }
    eprintln!("next: tollgate check {out} --openapi {openapi_path} --strict");
    Ok(())
}

/// The flags of `connector`, as given.
#[derive(Default)]
struct ConnectorFlags<'a> {
    config: Option<&'a str>,
    openapi: Option<&'a str>,
    out: Option<&'a str>,
}

fn make_connector(flags: &[&str]) -> Result<(), CliError> {
    let usage = |message: String| CliError::ConnectorUsage(message);
    let mut files = ConnectorFlags::default();
    let mut host = None;
    let mut options = Options::for_host("");
    for (flag, value) in flag_values(flags, usage)? {
        match flag {
            "--config" => files.config = Some(value),
            "--openapi" => files.openapi = Some(value),
            "--out" => files.out = Some(value),
            "--host" => host = Some(value),
            "--title" => options.title = Some(value.to_string()),
            "--description" => options.description = Some(value.to_string()),
            "--scheme" => options.scheme = value.to_string(),
            "--base-path" => options.base_path = value.to_string(),
            "--client-id" => options.client_id = Some(value.to_string()),
            "--resource-uri" => options.resource_uri = Some(value.to_string()),
            "--brand-color" => options.brand_color = value.to_string(),
            "--auth" => {
                options.auth = AuthChoice::parse(value)
                    .ok_or_else(|| usage(format!("--auth {value}: auto, key, aad or both")))?
            }
            "--format" => {
                options.format = match value {
                    "powerplatform" => Format::PowerPlatform,
                    "openapi" => Format::OpenApi,
                    _ => return Err(usage(format!("--format {value}: powerplatform or openapi"))),
                }
            }
            _ => return Err(usage(format!("unknown flag {flag}"))),
        }
    }
    let config_path = files
        .config
        .ok_or_else(|| usage("--config is required".into()))?;
    let openapi_path = files
        .openapi
        .ok_or_else(|| usage("--openapi is required".into()))?;
    options.host = host
        .ok_or_else(|| usage("--host is required".into()))?
        .to_string();
    let read = |path: &str| {
        std::fs::read(path).map_err(|error| CliError::Read {
            path: path.to_string(),
            error,
        })
    };
    let (config, openapi) = (read(config_path)?, read(openapi_path)?);
    let generated =
        connector::generate(&config, &openapi, &options).map_err(|error| match error {
            // The same words as `tollgate check CONFIG`.
            ConnectorError::Config(error) => CliError::Invalid {
                path: config_path.to_string(),
                error,
            },
            other => CliError::Connector(other),
        })?;
    for line in &generated.left_out {
        eprintln!("left out, no tollgate operation reaches it: {line}");
    }
    for warning in &generated.warnings {
        eprintln!("warning: {warning}");
    }
    let dir = std::path::Path::new(files.out.unwrap_or("."));
    std::fs::create_dir_all(dir).map_err(|error| CliError::Write {
        path: dir.display().to_string(),
        error,
    })?;
    // Nothing is written when any output would replace an input.
    let inputs: Vec<_> = [config_path, openapi_path]
        .iter()
        .filter_map(|path| std::fs::canonicalize(path).ok())
        .collect();
    for (name, _) in &generated.files {
        let path = dir.join(name);
        if std::fs::canonicalize(&path).is_ok_and(|existing| inputs.contains(&existing)) {
            return Err(CliError::WouldOverwrite(path.display().to_string()));
        }
    }
    for (name, contents) in &generated.files {
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(|error| CliError::Write {
            path: path.display().to_string(),
            error,
        })?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// `service-tags FILE --tag NAME [--tag NAME...]`: the prefixes on stdout as a JSON array,
/// where they came from on stderr.
fn print_service_tags(args: &[&str]) -> Result<(), CliError> {
    let usage = |message: &str| CliError::ServiceTagsUsage(message.to_string());
    let mut file = None;
    let mut tags = Vec::new();
    let mut rest = args.iter();
    while let Some(&arg) = rest.next() {
        match arg {
            "--tag" => match rest.next() {
                Some(&name) if !name.starts_with("--") => tags.push(name),
                _ => return Err(usage("--tag needs a tag name")),
            },
            flag if flag.starts_with("--") => {
                return Err(CliError::ServiceTagsUsage(format!("unknown flag {flag}")))
            }
            path if file.is_none() => file = Some(path),
            _ => return Err(usage("one service tags file only")),
        }
    }
    let path = file.ok_or_else(|| usage("the service tags file is required"))?;
    if tags.is_empty() {
        return Err(usage("at least one --tag is required"));
    }
    let bytes = std::fs::read(path).map_err(|error| CliError::Read {
        path: path.to_string(),
        error,
    })?;
    let selection = service_tags::select(&bytes, &tags).map_err(|error| CliError::ServiceTags {
        path: path.to_string(),
        error,
    })?;
    let json = serde_json::to_string_pretty(&selection.prefixes).unwrap_or_default();
    let mut out = std::io::stdout();
    writeln!(out, "{json}").map_err(CliError::Stdout)?;
    for tag in &selection.tags {
        let change = tag
            .change_number
            .map_or_else(String::new, |number| format!(", changeNumber {number}"));
        eprintln!("{}: {} prefixes{change}", tag.name, tag.prefixes);
    }
    let ipv6 = selection
        .prefixes
        .iter()
        .filter(|p| p.contains(':'))
        .count();
    eprintln!(
        "{path}: cloud {}, changeNumber {}; {} prefixes after merging ({} IPv4, {ipv6} IPv6)",
        selection.cloud.as_deref().unwrap_or("-"),
        selection.change_number,
        selection.prefixes.len(),
        selection.prefixes.len() - ipv6
    );
    Ok(())
}

/// `schema`: docs/tollgate.schema.json is this output (`make schema` writes it).
fn print_schema() -> Result<(), CliError> {
    std::io::stdout()
        .write_all(tollgate_core::schema::configuration_schema_text().as_bytes())
        .map_err(CliError::Stdout)
}

/// A new subscription key: 32 random bytes as 64 lowercase hex digits (`new-key`, `init`).
fn fresh_key() -> Result<String, CliError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(CliError::NoRandomness)?;
    Ok(secret.iter().map(|b| format!("{b:02x}")).collect())
}

fn new_key(consumer: Option<&str>) -> Result<(), CliError> {
    let key = fresh_key()?;
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
