//! JWT verification: the one place a token becomes an [`Identity`].
//!
//! Algorithms: HS256 with `JWT_SECRET`; ES256 and RS256 with public keys from `JWT_PUBLIC_KEYS`
//! (a JWKS document, keys picked by `kid`). The algorithm named in the token must match the type
//! of the key it selects, so there is no `none` and no HS/RS confusion: an `HS256` token is only
//! ever checked against the shared secret, never against a public key's bytes.
//!
//! Claims: `sub` (the user id) and `exp` are required; `exp` and `nbf` are honoured with
//! [`LEEWAY_SECS`] of clock skew, and `iat` may be at most [`IAT_LEEWAY_SECS`] ahead (a
//! revocation refuses every token whose `iat` is up to that far past it, so this skew is also how
//! long a revocation refuses new tokens: `auth::revocation`); `iss` and `aud` are compared when
//! configured; `roles` is an optional array of strings (`admin` unlocks the admin API). A header
//! with `crit` is refused: this verifier understands no extension (RFC 7515 §4.1.11).

use chrono::{DateTime, Duration, Utc};
use jwt_compact::alg::{Es256, Hs256, Hs256Key, Rsa, RsaPublicKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt, Claims, Header, UntrustedToken, ValidationError};
use serde::{Deserialize, Serialize};

use crate::ids::validate_user_id;
use crate::vars::MIN_SECRET_BYTES;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 30;
/// How far ahead of the gateway's clock a token's `iat` may be.
pub const IAT_LEEWAY_SECS: i64 = 5;
/// Longer tokens are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

type Es256Key = <Es256 as jwt_compact::Algorithm>::VerifyingKey;

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub user_id: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds (`iat`); revocation refuses tokens issued at or before a user's cut-off,
    /// and tokens without it.
    #[serde(default)]
    pub issued_at: Option<i64>,
    #[serde(default)]
    pub roles: Vec<String>,
}

impl Identity {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|role| role == "admin")
    }
}

/// Why a token was refused. Each maps to a stable error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    Malformed(String),
    UnsupportedAlgorithm(String),
    UnknownKey,
    BadSignature,
    Expired,
    NotYetValid,
    MissingClaim(&'static str),
    InvalidSubject(String),
    WrongIssuer,
    WrongAudience,
    DevToken,
}

impl JwtError {
    pub fn code(&self) -> &'static str {
        match self {
            JwtError::Malformed(_) => "token_malformed",
            JwtError::Expired => "token_expired",
            JwtError::NotYetValid => "token_not_yet_valid",
            _ => "token_invalid",
        }
    }

    pub fn message(&self) -> String {
        match self {
            JwtError::Malformed(why) => format!("the token is malformed: {why}"),
            JwtError::UnsupportedAlgorithm(alg) => {
                format!("the token algorithm '{alg}' is not accepted")
            }
            JwtError::UnknownKey => "no configured key matches the token".into(),
            JwtError::BadSignature => "the token signature does not verify".into(),
            JwtError::Expired => "the token has expired".into(),
            JwtError::NotYetValid => "the token is not valid yet".into(),
            JwtError::MissingClaim(claim) => format!("the token has no '{claim}' claim"),
            JwtError::InvalidSubject(why) => format!("the token subject is invalid: {why}"),
            JwtError::WrongIssuer => "the token issuer is not accepted".into(),
            JwtError::WrongAudience => "the token audience is not accepted".into(),
            JwtError::DevToken => {
                "development tokens are refused: this gateway does not run with DEV_MODE".into()
            }
        }
    }
}

/// A configuration that cannot verify anything correctly is refused at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(aud) => aud == wanted,
            Audience::Many(auds) => auds.iter().any(|aud| aud == wanted),
        }
    }
}

/// The header fields beyond the ones jwt-compact reads: only `crit`, to refuse it.
#[derive(Debug, Clone, Deserialize)]
struct HeaderExtensions {
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
struct CustomClaims {
    sub: Option<String>,
    iss: Option<String>,
    aud: Option<Audience>,
    #[serde(default)]
    roles: Vec<String>,
    /// Set on tokens minted by `POST /dev/token`.
    #[serde(default, rename = "sb_dev")]
    dev: bool,
}

/// The claim that marks a token minted by `POST /dev/token`.
pub const DEV_CLAIM: &str = "sb_dev";

enum PublicKey {
    Es256(Box<Es256Key>),
    Rs256(Box<RsaPublicKey>),
}

struct KeyEntry {
    kid: Option<String>,
    key: PublicKey,
}

/// Verifies tokens against the configured keys and claims policy.
pub struct Verifier {
    hs256: Option<Hs256Key>,
    public_keys: Vec<KeyEntry>,
    issuer: Option<String>,
    audience: Option<String>,
    dev_tokens: bool,
}

impl Verifier {
    /// Builds a verifier from the raw `JWT_SECRET`, `JWT_PUBLIC_KEYS`, `JWT_ISSUER` and
    /// `JWT_AUDIENCE` values. At least one key source must be present.
    pub fn new(
        secret: Option<&str>,
        jwks: Option<&str>,
        issuer: Option<&str>,
        audience: Option<&str>,
    ) -> Result<Self, KeyError> {
        let hs256 = match secret.filter(|s| !s.is_empty()) {
            Some(secret) if secret.len() < MIN_SECRET_BYTES => {
                return Err(KeyError(format!(
                    "JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes"
                )))
            }
            Some(secret) => Some(Hs256Key::new(secret.as_bytes())),
            None => None,
        };
        let public_keys = match jwks.filter(|s| !s.trim().is_empty()) {
            Some(jwks) => parse_jwks(jwks)?,
            None => Vec::new(),
        };
        if hs256.is_none() && public_keys.is_empty() {
            return Err(KeyError(
                "set JWT_SECRET and/or JWT_PUBLIC_KEYS: no token can be verified".into(),
            ));
        }
        Ok(Self {
            hs256,
            public_keys,
            issuer: issuer.filter(|s| !s.is_empty()).map(str::to_owned),
            audience: audience.filter(|s| !s.is_empty()).map(str::to_owned),
            dev_tokens: false,
        })
    }

    /// Whether tokens marked by `POST /dev/token` are accepted (only with `DEV_MODE`).
    pub fn with_dev_tokens(mut self, accept: bool) -> Self {
        self.dev_tokens = accept;
        self
    }

    /// Verifies `token` as of `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Identity, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::Malformed("longer than 8 KiB".into()));
        }
        let untrusted = UntrustedToken::<HeaderExtensions>::try_from(token)
            .map_err(|err| JwtError::Malformed(err.to_string()))?;
        if untrusted.header().other_fields.crit.is_some() {
            return Err(JwtError::Malformed(
                "the header names critical extensions ('crit'), and none is understood".into(),
            ));
        }
        let claims = self.check_signature(&untrusted)?;
        self.check_claims(claims, now)
    }

    fn check_signature(
        &self,
        untrusted: &UntrustedToken<'_, HeaderExtensions>,
    ) -> Result<Claims<CustomClaims>, JwtError> {
        let kid = untrusted.header().key_id.as_deref();
        let validated = match untrusted.algorithm() {
            "HS256" => {
                let key = self.hs256.as_ref().ok_or(JwtError::UnknownKey)?;
                Hs256.validator::<CustomClaims>(key).validate(untrusted)
            }
            "ES256" => match self.find_key(kid, |key| matches!(key, PublicKey::Es256(_)))? {
                PublicKey::Es256(key) => Es256.validator::<CustomClaims>(key).validate(untrusted),
                PublicKey::Rs256(_) => return Err(JwtError::UnknownKey),
            },
            "RS256" => match self.find_key(kid, |key| matches!(key, PublicKey::Rs256(_)))? {
                PublicKey::Rs256(key) => Rsa::rs256()
                    .validator::<CustomClaims>(key)
                    .validate(untrusted),
                PublicKey::Es256(_) => return Err(JwtError::UnknownKey),
            },
            other => return Err(JwtError::UnsupportedAlgorithm(other.to_owned())),
        };
        match validated {
            Ok(token) => Ok(token.into_parts().1),
            Err(ValidationError::MalformedClaims(err)) => {
                Err(JwtError::Malformed(format!("claims: {err}")))
            }
            Err(_) => Err(JwtError::BadSignature),
        }
    }

    /// The key of the right type named by `kid`; without a `kid`, the only key of that type.
    fn find_key(
        &self,
        kid: Option<&str>,
        of_type: impl Fn(&PublicKey) -> bool,
    ) -> Result<&PublicKey, JwtError> {
        let mut candidates = self.public_keys.iter().filter(|entry| of_type(&entry.key));
        let found = match kid {
            Some(kid) => candidates.find(|entry| entry.kid.as_deref() == Some(kid)),
            None => match (candidates.next(), candidates.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            },
        };
        found.map(|entry| &entry.key).ok_or(JwtError::UnknownKey)
    }

    fn check_claims(
        &self,
        claims: Claims<CustomClaims>,
        now: DateTime<Utc>,
    ) -> Result<Identity, JwtError> {
        let leeway = Duration::seconds(LEEWAY_SECS);
        let expires_at = claims.expiration.ok_or(JwtError::MissingClaim("exp"))?;
        if now > expires_at + leeway {
            return Err(JwtError::Expired);
        }
        if claims.not_before.is_some_and(|nbf| now + leeway < nbf) {
            return Err(JwtError::NotYetValid);
        }
        if claims
            .issued_at
            .is_some_and(|iat| now + Duration::seconds(IAT_LEEWAY_SECS) < iat)
        {
            return Err(JwtError::NotYetValid);
        }
        let custom = claims.custom;
        if custom.dev && !self.dev_tokens {
            return Err(JwtError::DevToken);
        }
        if let Some(issuer) = &self.issuer {
            if custom.iss.as_deref() != Some(issuer.as_str()) {
                return Err(JwtError::WrongIssuer);
            }
        }
        if let Some(audience) = &self.audience {
            if !custom
                .aud
                .as_ref()
                .is_some_and(|aud| aud.contains(audience))
            {
                return Err(JwtError::WrongAudience);
            }
        }
        let user_id = custom.sub.ok_or(JwtError::MissingClaim("sub"))?;
        validate_user_id(&user_id).map_err(JwtError::InvalidSubject)?;
        Ok(Identity {
            user_id,
            expires_at: expires_at.timestamp(),
            issued_at: claims.issued_at.map(|iat| iat.timestamp()),
            roles: custom.roles,
        })
    }
}

fn parse_jwks(raw: &str) -> Result<Vec<KeyEntry>, KeyError> {
    #[derive(Deserialize)]
    struct Jwks {
        keys: Vec<serde_json::Value>,
    }
    let jwks: Jwks = serde_json::from_str(raw)
        .map_err(|err| KeyError(format!("JWT_PUBLIC_KEYS is not a JWKS document: {err}")))?;
    jwks.keys
        .iter()
        .enumerate()
        .map(|(i, key)| parse_jwk(i, key))
        .collect()
}

fn parse_jwk(index: usize, value: &serde_json::Value) -> Result<KeyEntry, KeyError> {
    let err = |why: String| KeyError(format!("JWT_PUBLIC_KEYS key #{index}: {why}"));
    let kid = value
        .get("kid")
        .and_then(|kid| kid.as_str())
        .map(str::to_owned);
    let jwk: JsonWebKey<'_> =
        serde_json::from_value(value.clone()).map_err(|e| err(e.to_string()))?;
    if jwk.is_signing_key() {
        return Err(err("is a private key; configure public keys only".into()));
    }
    let key = match &jwk {
        JsonWebKey::EllipticCurve { .. } => PublicKey::Es256(Box::new(
            Es256Key::try_from(&jwk).map_err(|e| err(e.to_string()))?,
        )),
        JsonWebKey::Rsa { modulus, .. } => {
            if modulus.len() * 8 < 2048 {
                return Err(err("RSA keys must be at least 2048 bits".into()));
            }
            PublicKey::Rs256(Box::new(
                RsaPublicKey::try_from(&jwk).map_err(|e| err(e.to_string()))?,
            ))
        }
        _ => return Err(err("only EC P-256 and RSA public keys are supported".into())),
    };
    Ok(KeyEntry { kid, key })
}

/// Mints an HS256 token (development tokens and tests).
pub fn mint_hs256(
    secret: &str,
    claims: &serde_json::Value,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let mut claims = Claims::new(claims.clone()).set_not_before(now);
    claims.expiration = Some(expires_at);
    claims.issued_at = Some(now);
    Hs256
        .token(
            &Header::empty().with_token_type("JWT"),
            &claims,
            &Hs256Key::new(secret.as_bytes()),
        )
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "test-secret-that-is-long-enough-for-hs256";

    type Es256Signing = <Es256 as jwt_compact::Algorithm>::SigningKey;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn hs_verifier() -> Verifier {
        Verifier::new(Some(SECRET), None, None, None).unwrap()
    }

    fn hs_token(claims: serde_json::Value) -> String {
        let claims: Claims<serde_json::Value> = Claims::new(claims);
        Hs256
            .token(&Header::empty(), &claims, &Hs256Key::new(SECRET.as_bytes()))
            .unwrap()
    }

    fn valid_claims() -> serde_json::Value {
        json!({"sub": "alice", "exp": now().timestamp() + 600, "roles": ["admin"]})
    }

    #[test]
    fn accepts_a_valid_hs256_token() {
        let identity = hs_verifier()
            .verify(&hs_token(valid_claims()), now())
            .unwrap();
        assert_eq!(identity.user_id, "alice");
        assert_eq!(identity.expires_at, now().timestamp() + 600);
        assert!(identity.is_admin());
    }

    #[test]
    fn dev_tokens_only_when_accepted() {
        let claims = json!({"sub": "a", "exp": now().timestamp() + 60, DEV_CLAIM: true});
        let token = hs_token(claims);
        assert_eq!(hs_verifier().verify(&token, now()), Err(JwtError::DevToken));
        let dev = hs_verifier().with_dev_tokens(true);
        assert_eq!(dev.verify(&token, now()).unwrap().user_id, "a");
    }

    #[test]
    fn issued_at_is_carried() {
        let t = now().timestamp();
        let with = json!({"sub": "a", "exp": t + 60, "iat": t - 5});
        let identity = hs_verifier().verify(&hs_token(with), now()).unwrap();
        assert_eq!(identity.issued_at, Some(t - 5));
        let without = json!({"sub": "a", "exp": t + 60});
        let identity = hs_verifier().verify(&hs_token(without), now()).unwrap();
        assert_eq!(identity.issued_at, None);
    }

    #[test]
    fn minted_tokens_verify() {
        let token = mint_hs256(
            SECRET,
            &json!({"sub": "bob"}),
            now() + Duration::seconds(60),
            now(),
        )
        .unwrap();
        let identity = hs_verifier().verify(&token, now()).unwrap();
        assert_eq!(identity.user_id, "bob");
        assert!(!identity.is_admin());
    }

    #[test]
    fn refuses_missing_exp_and_sub() {
        let v = hs_verifier();
        assert_eq!(
            v.verify(&hs_token(json!({"sub": "a"})), now()),
            Err(JwtError::MissingClaim("exp"))
        );
        let no_sub = json!({"exp": now().timestamp() + 60});
        assert_eq!(
            v.verify(&hs_token(no_sub), now()),
            Err(JwtError::MissingClaim("sub"))
        );
    }

    #[test]
    fn expiry_and_maturity_with_leeway() {
        let v = hs_verifier();
        let t = now().timestamp();
        let just_expired = json!({"sub": "a", "exp": t - LEEWAY_SECS + 1});
        assert!(v.verify(&hs_token(just_expired), now()).is_ok());
        let expired = json!({"sub": "a", "exp": t - LEEWAY_SECS - 1});
        assert_eq!(v.verify(&hs_token(expired), now()), Err(JwtError::Expired));
        let early = json!({"sub": "a", "exp": t + 600, "nbf": t + LEEWAY_SECS + 5});
        assert_eq!(
            v.verify(&hs_token(early), now()),
            Err(JwtError::NotYetValid)
        );
        let future_iat = json!({"sub": "a", "exp": t + 600, "iat": t + IAT_LEEWAY_SECS + 2});
        assert_eq!(
            v.verify(&hs_token(future_iat), now()),
            Err(JwtError::NotYetValid)
        );
        let skewed = json!({"sub": "a", "exp": t + 600, "nbf": t + 10, "iat": t + IAT_LEEWAY_SECS});
        assert!(v.verify(&hs_token(skewed), now()).is_ok());
    }

    #[test]
    fn issuer_and_audience_when_configured() {
        let v = Verifier::new(
            Some(SECRET),
            None,
            Some("https://issuer"),
            Some("switchboard"),
        )
        .unwrap();
        let t = now().timestamp() + 60;
        let good =
            json!({"sub": "a", "exp": t, "iss": "https://issuer", "aud": ["x", "switchboard"]});
        assert!(v.verify(&hs_token(good), now()).is_ok());
        let single_aud =
            json!({"sub": "a", "exp": t, "iss": "https://issuer", "aud": "switchboard"});
        assert!(v.verify(&hs_token(single_aud), now()).is_ok());
        let wrong_iss = json!({"sub": "a", "exp": t, "iss": "https://other", "aud": "switchboard"});
        assert_eq!(
            v.verify(&hs_token(wrong_iss), now()),
            Err(JwtError::WrongIssuer)
        );
        let wrong_aud = json!({"sub": "a", "exp": t, "iss": "https://issuer", "aud": "other"});
        assert_eq!(
            v.verify(&hs_token(wrong_aud), now()),
            Err(JwtError::WrongAudience)
        );
        let no_aud = json!({"sub": "a", "exp": t, "iss": "https://issuer"});
        assert_eq!(
            v.verify(&hs_token(no_aud), now()),
            Err(JwtError::WrongAudience)
        );
    }

    #[test]
    fn refuses_tampering_wrong_secret_and_none() {
        let v = hs_verifier();
        let token = hs_token(valid_claims());
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged_payload =
            jwt_compact_b64(&json!({"sub": "mallory", "exp": now().timestamp() + 600}));
        parts[1] = &forged_payload;
        assert_eq!(
            v.verify(&parts.join("."), now()),
            Err(JwtError::BadSignature)
        );

        let other = Verifier::new(
            Some("another-secret-that-is-long-enough-too"),
            None,
            None,
            None,
        )
        .unwrap();
        assert_eq!(other.verify(&token, now()), Err(JwtError::BadSignature));

        let header = jwt_compact_b64(&json!({"alg": "none", "typ": "JWT"}));
        let payload = jwt_compact_b64(&valid_claims());
        let none = format!("{header}.{payload}.");
        assert!(matches!(
            v.verify(&none, now()),
            Err(JwtError::UnsupportedAlgorithm(_) | JwtError::Malformed(_))
        ));
    }

    #[test]
    fn refuses_garbage() {
        let v = hs_verifier();
        for token in ["", "abc", "a.b", "a.b.c", &"x".repeat(MAX_TOKEN_BYTES + 1)] {
            assert!(
                matches!(v.verify(token, now()), Err(JwtError::Malformed(_))),
                "{token:.20}"
            );
        }
    }

    #[test]
    fn refuses_critical_header_extensions() {
        #[derive(Clone, Serialize)]
        struct Crit {
            crit: Vec<&'static str>,
            exp_ext: bool,
        }
        let claims: Claims<serde_json::Value> = Claims::new(valid_claims());
        let header = Header::new(Crit {
            crit: vec!["exp_ext"],
            exp_ext: true,
        });
        let token = Hs256
            .token(&header, &claims, &Hs256Key::new(SECRET.as_bytes()))
            .unwrap();
        assert!(matches!(
            hs_verifier().verify(&token, now()),
            Err(JwtError::Malformed(_))
        ));
    }

    #[test]
    fn refuses_bad_subjects() {
        let claims = json!({"sub": "a/b", "exp": now().timestamp() + 60});
        assert!(matches!(
            hs_verifier().verify(&hs_token(claims), now()),
            Err(JwtError::InvalidSubject(_))
        ));
    }

    fn es_keypair(seed: u8) -> (Es256Signing, serde_json::Value) {
        let signing = Es256Signing::from_slice(&[seed; 32]).unwrap();
        let public = serde_json::to_value(JsonWebKey::from(signing.verifying_key())).unwrap();
        (signing, public)
    }

    fn es_token(key: &Es256Signing, kid: Option<&str>) -> String {
        let mut header = Header::empty();
        if let Some(kid) = kid {
            header = header.with_key_id(kid);
        }
        let claims: Claims<serde_json::Value> = Claims::new(valid_claims());
        Es256.token(&header, &claims, key).unwrap()
    }

    fn with_kid(mut jwk: serde_json::Value, kid: &str) -> serde_json::Value {
        jwk["kid"] = json!(kid);
        jwk
    }

    #[test]
    fn es256_keys_are_chosen_by_kid() {
        let (k1, j1) = es_keypair(1);
        let (k2, j2) = es_keypair(2);
        let jwks = json!({"keys": [with_kid(j1, "one"), with_kid(j2, "two")]}).to_string();
        let v = Verifier::new(None, Some(&jwks), None, None).unwrap();
        assert!(v.verify(&es_token(&k1, Some("one")), now()).is_ok());
        assert!(v.verify(&es_token(&k2, Some("two")), now()).is_ok());
        assert_eq!(
            v.verify(&es_token(&k1, Some("two")), now()),
            Err(JwtError::BadSignature)
        );
        assert_eq!(
            v.verify(&es_token(&k1, Some("three")), now()),
            Err(JwtError::UnknownKey)
        );
        assert_eq!(
            v.verify(&es_token(&k1, None), now()),
            Err(JwtError::UnknownKey),
            "two keys, no kid"
        );
    }

    #[test]
    fn a_single_key_needs_no_kid() {
        let (k1, j1) = es_keypair(3);
        let jwks = json!({"keys": [j1]}).to_string();
        let v = Verifier::new(None, Some(&jwks), None, None).unwrap();
        assert!(v.verify(&es_token(&k1, None), now()).is_ok());
    }

    #[test]
    fn hs256_is_refused_when_only_public_keys_are_configured() {
        let (_, j1) = es_keypair(4);
        let jwks = json!({"keys": [j1]}).to_string();
        let v = Verifier::new(None, Some(&jwks), None, None).unwrap();
        assert_eq!(
            v.verify(&hs_token(valid_claims()), now()),
            Err(JwtError::UnknownKey)
        );
    }

    #[test]
    fn configuration_errors() {
        assert!(Verifier::new(None, None, None, None).is_err());
        assert!(Verifier::new(Some("short"), None, None, None).is_err());
        assert!(Verifier::new(None, Some("not json"), None, None).is_err());
        let (signing, _) = es_keypair(5);
        let private = serde_json::to_value(JsonWebKey::from(&signing)).unwrap();
        let jwks = json!({"keys": [private]}).to_string();
        assert!(
            Verifier::new(None, Some(&jwks), None, None).is_err(),
            "private keys are refused"
        );
    }

    fn jwt_compact_b64(value: &serde_json::Value) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = value.to_string().into_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
