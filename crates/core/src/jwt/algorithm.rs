//! JWS algorithms tollgate verifies, and which kind of key each one needs.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// The key type an algorithm verifies with. A token whose algorithm's family differs from
/// the key's (HS256 against an RSA key, the classic confusion attack) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    Hmac,
    Rsa,
    P256,
    P384,
    Ed25519,
}

pub const SUPPORTED: &str =
    "HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";

impl Algorithm {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "HS256" => Self::HS256,
            "HS384" => Self::HS384,
            "HS512" => Self::HS512,
            "RS256" => Self::RS256,
            "RS384" => Self::RS384,
            "RS512" => Self::RS512,
            "PS256" => Self::PS256,
            "PS384" => Self::PS384,
            "PS512" => Self::PS512,
            "ES256" => Self::ES256,
            "ES384" => Self::ES384,
            "EdDSA" => Self::EdDSA,
            _ => return None,
        })
    }

    /// The JOSE name (`RS256`), as `parse` reads it.
    pub fn name(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    pub fn family(self) -> KeyFamily {
        match self {
            Self::HS256 | Self::HS384 | Self::HS512 => KeyFamily::Hmac,
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                KeyFamily::Rsa
            }
            Self::ES256 => KeyFamily::P256,
            Self::ES384 => KeyFamily::P384,
            Self::EdDSA => KeyFamily::Ed25519,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_name_parses_and_none_does_not() {
        for name in SUPPORTED.split(", ") {
            assert!(Algorithm::parse(name).is_some(), "{name}");
            assert_eq!(Algorithm::parse(name).map(Algorithm::name), Some(name));
        }
        for name in [
            "none", "None", "NONE", "", "rs256", "ES512", "ES256K", "Ed25519",
        ] {
            assert_eq!(Algorithm::parse(name), None, "{name}");
        }
    }

    #[test]
    fn families() {
        assert_eq!(Algorithm::HS256.family(), KeyFamily::Hmac);
        assert_eq!(Algorithm::PS512.family(), KeyFamily::Rsa);
        assert_eq!(Algorithm::ES384.family(), KeyFamily::P384);
        assert_eq!(Algorithm::EdDSA.family(), KeyFamily::Ed25519);
    }
}
