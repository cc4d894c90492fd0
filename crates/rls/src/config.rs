//! Command-line flags and the environment, read once at startup; and the one way the Redis URL is
//! ever shown (its userinfo redacted).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// The environment variable that may carry the Redis URL, so a password stays out of `ps`.
pub const REDIS_ENV: &str = "TOLLGATE_RLS_REDIS";

pub const USAGE: &str = "\
usage: tollgate-rls [--listen ADDR:PORT] [--redis URL] [--redis-timeout-ms N]
                    [--max-hits-addend N]

  --listen ADDR:PORT      where to serve gRPC, HTTP/2 cleartext (default 127.0.0.1:8081)
  --redis URL             redis://[user:password@]host:port/db, or rediss:// for TLS;
                          may instead come from TOLLGATE_RLS_REDIS (the flag wins)
  --redis-timeout-ms N    answer UNAVAILABLE when Redis has not answered within N ms
                          (default 20)
  --max-hits-addend N     refuse (INVALID_ARGUMENT) a request that would add more than N
                          to a counter at once (default 1: tollgate always adds 1)
  -h, --help              this text";

const DEFAULT_LISTEN: &str = "127.0.0.1:8081";
const DEFAULT_REDIS_TIMEOUT_MS: u64 = 20;
const MAX_REDIS_TIMEOUT_MS: u64 = 60_000;
/// tollgate counts each request once; a larger addend lets one call spend a whole quota.
const DEFAULT_MAX_HITS_ADDEND: u64 = 1;
/// The request's own hits_addend is a u32, and every limit is a u32 too.
const MAX_MAX_HITS_ADDEND: u64 = u32::MAX as u64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    /// The Redis URL, password included: never print it, print [`redact`] of it.
    pub redis_url: String,
    pub redis_timeout: Duration,
    /// The largest hits_addend (request or descriptor) a call may carry.
    pub max_hits_addend: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `--help` was asked for: not an error, but no configuration either.
    Help,
    UnknownFlag(String),
    /// A value where a flag was expected (not echoed: it may hold a password).
    UnexpectedValue,
    MissingValue(&'static str),
    InvalidListen(String),
    InvalidTimeout(String),
    InvalidMaxHitsAddend(String),
    MissingRedis,
    /// Holds the redacted URL.
    UnsupportedScheme(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Help => f.write_str("help requested"),
            ConfigError::UnknownFlag(flag) => write!(f, "unknown argument {flag:?}"),
            ConfigError::UnexpectedValue => {
                f.write_str("unexpected argument (values are given after a flag)")
            }
            ConfigError::MissingValue(flag) => write!(f, "{flag} needs a value"),
            ConfigError::InvalidListen(value) => {
                write!(f, "--listen {value:?} is not an ADDR:PORT")
            }
            ConfigError::InvalidTimeout(value) => write!(
                f,
                "--redis-timeout-ms {value:?} is not a number of milliseconds from 1 to {MAX_REDIS_TIMEOUT_MS}"
            ),
            ConfigError::InvalidMaxHitsAddend(value) => write!(
                f,
                "--max-hits-addend {value:?} is not a whole number from 1 to {MAX_MAX_HITS_ADDEND}"
            ),
            ConfigError::MissingRedis => {
                write!(f, "no Redis URL: pass --redis or set {REDIS_ENV}")
            }
            ConfigError::UnsupportedScheme(url) => {
                write!(f, "Redis URL {url} must start with redis:// or rediss://")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads the flags (without the program name) and the value of [`REDIS_ENV`], if set.
pub fn parse<I>(args: I, redis_env: Option<String>) -> Result<Config, ConfigError>
where
    I: IntoIterator<Item = String>,
{
    let mut listen = DEFAULT_LISTEN.to_string();
    let mut redis = None;
    let mut timeout = DEFAULT_REDIS_TIMEOUT_MS.to_string();
    let mut max_hits_addend = DEFAULT_MAX_HITS_ADDEND.to_string();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value)),
            _ => (arg.clone(), None),
        };
        let slot = match flag.as_str() {
            "-h" | "--help" => return Err(ConfigError::Help),
            "--listen" => ("--listen", &mut listen),
            "--redis-timeout-ms" => ("--redis-timeout-ms", &mut timeout),
            "--max-hits-addend" => ("--max-hits-addend", &mut max_hits_addend),
            "--redis" => {
                let value = match inline {
                    Some(v) => v.to_string(),
                    None => args.next().ok_or(ConfigError::MissingValue("--redis"))?,
                };
                redis = Some(value);
                continue;
            }
            // Only the flag's name is echoed: a mistyped `--redis-url=redis://:pw@...` must not
            // print the password.
            _ if flag.starts_with('-') => {
                let name = flag.split('=').next().unwrap_or_default();
                return Err(ConfigError::UnknownFlag(name.to_string()));
            }
            _ => return Err(ConfigError::UnexpectedValue),
        };
        let (name, target) = slot;
        *target = match inline {
            Some(v) => v.to_string(),
            None => args.next().ok_or(ConfigError::MissingValue(name))?,
        };
    }

    let listen = listen
        .parse::<SocketAddr>()
        .map_err(|_| ConfigError::InvalidListen(listen.clone()))?;
    let timeout_ms = timeout
        .parse::<u64>()
        .ok()
        .filter(|ms| (1..=MAX_REDIS_TIMEOUT_MS).contains(ms))
        .ok_or_else(|| ConfigError::InvalidTimeout(timeout.clone()))?;
    let max_hits_addend = max_hits_addend
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=MAX_MAX_HITS_ADDEND).contains(n))
        .ok_or_else(|| ConfigError::InvalidMaxHitsAddend(max_hits_addend.clone()))?;
    let redis_url = redis
        .or(redis_env)
        .filter(|url| !url.is_empty())
        .ok_or(ConfigError::MissingRedis)?;
    if !(redis_url.starts_with("redis://") || redis_url.starts_with("rediss://")) {
        return Err(ConfigError::UnsupportedScheme(redact(&redis_url)));
    }
    Ok(Config {
        listen,
        redis_url,
        redis_timeout: Duration::from_millis(timeout_ms),
        max_hits_addend,
    })
}

/// The URL with any userinfo (user, password) replaced by `***`, fit for logs.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    // The last `@` ends the userinfo; cutting there also hides a password with a raw `@` in it.
    let rest = match rest.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => rest.to_string(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{rest}"),
        None => rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn flags_and_defaults() {
        let c = parse(args(&["--redis", "redis://127.0.0.1:6379/0"]), None).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(c.redis_url, "redis://127.0.0.1:6379/0");
        assert_eq!(c.redis_timeout, Duration::from_millis(20));
        assert_eq!(c.max_hits_addend, 1);

        let c = parse(
            args(&[
                "--listen",
                "0.0.0.0:9000",
                "--redis-timeout-ms=50",
                "--redis=rediss://h:6380",
                "--max-hits-addend",
                "4294967295",
            ]),
            None,
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(c.redis_url, "rediss://h:6380");
        assert_eq!(c.redis_timeout, Duration::from_millis(50));
        assert_eq!(c.max_hits_addend, u64::from(u32::MAX));
    }

    #[test]
    fn the_environment_supplies_the_url_and_the_flag_wins() {
        let env = Some("redis://:secret@h:6379/1".to_string());
        let c = parse(args(&[]), env.clone()).unwrap();
        assert_eq!(c.redis_url, "redis://:secret@h:6379/1");
        let c = parse(args(&["--redis", "redis://other:6379"]), env).unwrap();
        assert_eq!(c.redis_url, "redis://other:6379");
    }

    #[test]
    fn bad_input_is_refused() {
        let url = || "redis://h:1".to_string();
        assert_eq!(parse(args(&[]), None), Err(ConfigError::MissingRedis));
        assert_eq!(
            parse(args(&[]), Some(String::new())),
            Err(ConfigError::MissingRedis)
        );
        assert_eq!(parse(args(&["-h"]), None), Err(ConfigError::Help));
        assert_eq!(
            parse(args(&["--bogus"]), Some(url())),
            Err(ConfigError::UnknownFlag("--bogus".to_string()))
        );
        assert_eq!(
            parse(args(&["--listen"]), Some(url())),
            Err(ConfigError::MissingValue("--listen"))
        );
        assert_eq!(
            parse(args(&["--listen", "localhost"]), Some(url())),
            Err(ConfigError::InvalidListen("localhost".to_string()))
        );
        for bad in ["0", "x", "-5", "60001"] {
            assert_eq!(
                parse(args(&["--redis-timeout-ms", bad]), Some(url())),
                Err(ConfigError::InvalidTimeout(bad.to_string()))
            );
        }
        for bad in ["0", "-1", "1.5", "x", "", "4294967296"] {
            assert_eq!(
                parse(args(&["--max-hits-addend", bad]), Some(url())),
                Err(ConfigError::InvalidMaxHitsAddend(bad.to_string()))
            );
        }
        let typo = parse(args(&["--redis-url=redis://:S3cret@h:6379"]), None).unwrap_err();
        assert_eq!(typo, ConfigError::UnknownFlag("--redis-url".to_string()));
        assert!(!typo.to_string().contains("S3cret"));
        let stray = parse(args(&["redis://:S3cret@h:6379"]), None).unwrap_err();
        assert_eq!(stray, ConfigError::UnexpectedValue);
        assert!(!stray.to_string().contains("S3cret"));
        let err = parse(args(&["--redis", "http://u:pw@h"]), None).unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnsupportedScheme("http://***@h".to_string())
        );
        assert!(!err.to_string().contains("pw"));
    }

    #[test]
    fn redaction_hides_userinfo_only() {
        assert_eq!(
            redact("redis://user:password@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redact("rediss://:p@ss@host:6380"), "rediss://***@host:6380");
        assert_eq!(redact("redis://host:6379/0"), "redis://host:6379/0");
        assert_eq!(redact("user:pw@host"), "***@host");
    }
}
