//! Why a bearer token was refused, as one typed enum: `Display` is the short reason put in the
//! 401 message, and what the pipeline does about a failure (remember it, refetch keys) is asked
//! of methods, never decided by matching the wording.

use std::fmt;

/// Why a token failed verification. The text never repeats anything from the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwtFailure {
    /// The token is longer than [`super::verify::MAX_TOKEN_BYTES`]; refused before parsing.
    TooLarge,
    /// Not three base64url parts of JSON, or a registered claim of the wrong type.
    Malformed,
    /// The header names a critical (`crit`) extension; none is supported.
    UnsupportedCriticalHeader,
    /// The header's `alg` is unknown, `none`, or not in `jwt.algorithms`.
    AlgorithmNotAllowed,
    /// The `kid` names a key of another family or algorithm than the token's `alg`.
    AlgorithmMismatch,
    /// No key has the token's `kid` (or, without `kid`, none fits its algorithm).
    SigningKeyNotFound,
    /// No candidate key verifies the signature.
    SignatureInvalid,
    /// The token has no `kid` and no key at hand verifies it, while keys are fetched: its key
    /// may come with the next set. Clients see the same text as [`Self::SignatureInvalid`].
    NoKeyVerifies,
    /// The token carries no `exp` claim.
    NoExpiry,
    /// `exp` (plus the clock skew) has passed.
    Expired,
    /// `nbf` (minus the clock skew) is still to come.
    NotYetValid,
    /// `iat` (minus the clock skew) is still to come.
    IssuedInFuture,
    /// `iss` is missing or not in `jwt.issuers`.
    IssuerNotAllowed,
    /// No `aud` value is in `jwt.audiences`.
    AudienceNotAllowed,
}

impl JwtFailure {
    /// The short reason, as shown to the client.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::TooLarge => "token is too large",
            Self::Malformed => "token is malformed",
            Self::UnsupportedCriticalHeader => "token has an unsupported critical header",
            Self::AlgorithmNotAllowed => "algorithm is not allowed",
            Self::AlgorithmMismatch => "algorithm does not match the signing key",
            Self::SigningKeyNotFound => "signing key not found",
            Self::SignatureInvalid | Self::NoKeyVerifies => "signature is invalid",
            Self::NoExpiry => "token has no expiry",
            Self::Expired => "token has expired",
            Self::NotYetValid => "token is not yet valid",
            Self::IssuedInFuture => "token was issued in the future",
            Self::IssuerNotAllowed => "issuer is not allowed",
            Self::AudienceNotAllowed => "audience is not allowed",
        }
    }

    /// Whether the failure stays true for the same token whatever the keys, so it is worth
    /// remembering for [`super::token_cache::FAILURE_TTL_S`]. A missing key may be fetched and
    /// an early token may become valid, so those are verified again.
    pub const fn is_lasting(self) -> bool {
        matches!(self.persistence(), Persistence::Lasting)
    }

    /// How long the failure stays true for the same token.
    pub const fn persistence(self) -> Persistence {
        match self {
            Self::SigningKeyNotFound | Self::NotYetValid | Self::IssuedInFuture => {
                Persistence::Passing
            }
            Self::NoKeyVerifies => Persistence::UntilKeysChange,
            Self::TooLarge
            | Self::Malformed
            | Self::UnsupportedCriticalHeader
            | Self::AlgorithmNotAllowed
            | Self::AlgorithmMismatch
            | Self::SignatureInvalid
            | Self::NoExpiry
            | Self::Expired
            | Self::IssuerNotAllowed
            | Self::AudienceNotAllowed => Persistence::Lasting,
        }
    }

    /// Whether the provider may have rotated its keys: worth a (bounded) refetch, which the
    /// request waits for.
    pub const fn may_mean_rotated_keys(self) -> bool {
        matches!(self, Self::SigningKeyNotFound | Self::NoKeyVerifies)
    }
}

/// How long a failure stays true for the same token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Whatever the keys (a bad signature under a named key, an expiry, a wrong issuer).
    Lasting,
    /// Until the fetched key set changes.
    UntilKeysChange,
    /// It may change any moment (a key not fetched yet, a token not valid yet): not remembered.
    Passing,
}

impl fmt::Display for JwtFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for JwtFailure {}

#[cfg(test)]
mod tests {
    use super::JwtFailure::{self, *};

    /// Every variant, its text as clients have always seen it, and whether it is remembered
    /// whatever the keys.
    const ALL: [(JwtFailure, &str, bool); 14] = [
        (TooLarge, "token is too large", true),
        (Malformed, "token is malformed", true),
        (
            UnsupportedCriticalHeader,
            "token has an unsupported critical header",
            true,
        ),
        (AlgorithmNotAllowed, "algorithm is not allowed", true),
        (
            AlgorithmMismatch,
            "algorithm does not match the signing key",
            true,
        ),
        (SigningKeyNotFound, "signing key not found", false),
        (SignatureInvalid, "signature is invalid", true),
        (NoKeyVerifies, "signature is invalid", false),
        (NoExpiry, "token has no expiry", true),
        (Expired, "token has expired", true),
        (NotYetValid, "token is not yet valid", false),
        (IssuedInFuture, "token was issued in the future", false),
        (IssuerNotAllowed, "issuer is not allowed", true),
        (AudienceNotAllowed, "audience is not allowed", true),
    ];

    #[test]
    fn display_is_the_reason_clients_have_always_seen() {
        for (failure, text, _) in ALL {
            assert_eq!(failure.to_string(), text, "{failure:?}");
        }
    }

    #[test]
    fn only_a_missing_key_or_an_early_token_is_verified_again() {
        for (failure, _, lasting) in ALL {
            assert_eq!(failure.is_lasting(), lasting, "{failure:?}");
        }
    }

    #[test]
    fn only_a_missing_key_or_an_unknown_signer_may_mean_rotated_keys() {
        for (failure, _, _) in ALL {
            assert_eq!(
                failure.may_mean_rotated_keys(),
                failure == SigningKeyNotFound || failure == NoKeyVerifies,
                "{failure:?}"
            );
        }
    }

    #[test]
    fn an_unknown_signer_is_remembered_only_until_the_keys_change() {
        use super::Persistence;
        for (failure, _, lasting) in ALL {
            let expected = match (failure, lasting) {
                (NoKeyVerifies, _) => Persistence::UntilKeysChange,
                (_, true) => Persistence::Lasting,
                (_, false) => Persistence::Passing,
            };
            assert_eq!(failure.persistence(), expected, "{failure:?}");
        }
    }
}
