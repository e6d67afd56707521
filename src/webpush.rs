//! Web Push: what one notification to one browser subscription is on the wire.
//!
//! A browser's `PushSubscription` names a push service URL (`endpoint`) and two secrets: the
//! browser's P-256 public key (`p256dh`) and a 16-byte `auth` secret. The gateway POSTs one
//! encrypted body to the endpoint; only the browser can read it, and the push service learns
//! nothing but its size.
//!
//! - **Encryption** is RFC 8291 over RFC 8188's `aes128gcm` content coding: a fresh P-256 key per
//!   message, ECDH with the browser's key, two HKDF steps (the first keyed by `auth`) to a
//!   content key and nonce, one AES-128-GCM record. The body is `salt ‖ record size ‖ key id
//!   length ‖ our public key ‖ ciphertext`.
//! - **VAPID** (RFC 8292) tells the push service who is sending, so a leaked endpoint is useless
//!   to anyone without our private key: an ES256 JWT for the endpoint's origin, in
//!   `Authorization: vapid t=<jwt>, k=<our public key>`. The browser subscribed with that public
//!   key (`GET /v1/push/public-key`), and the push service refuses other senders.
//!
//! Everything here is pure (randomness is passed in), so the RFC's own test vector checks it on
//! the host.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64ct::{Base64UrlUnpadded, Encoding};
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use sha2::Sha256;

/// Length of an uncompressed P-256 point, the only form Web Push uses.
pub const POINT_BYTES: usize = 65;
/// Length of a subscription's `auth` secret.
pub const AUTH_BYTES: usize = 16;
/// The record size written in the header; one record carries the whole message.
const RECORD_SIZE: u32 = 4096;
/// Salt, record size, key id length and key id before the ciphertext.
const HEADER_BYTES: usize = 16 + 4 + 1 + POINT_BYTES;
/// AES-GCM's tag, and the padding delimiter that ends the last (only) record.
const OVERHEAD_BYTES: usize = 16 + 1;
/// Push services accept bodies of at most 4,096 bytes (RFC 8030 §7.2 lets them refuse more), so
/// the plaintext may be at most this long.
pub const MAX_PLAINTEXT_BYTES: usize = 4096 - HEADER_BYTES - OVERHEAD_BYTES;
/// How long a VAPID JWT is valid; RFC 8292 allows at most 24 hours.
pub const VAPID_TTL_SECS: i64 = 12 * 60 * 60;

/// The gateway's VAPID key pair.
#[derive(Clone)]
pub struct Vapid {
    signing: SigningKey,
    /// The public key as browsers take it: base64url of the uncompressed point.
    public: String,
}

/// Never prints the private key.
impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Vapid {
    fn eq(&self, other: &Self) -> bool {
        self.public == other.public
    }
}

impl Eq for Vapid {}

impl Vapid {
    /// Reads the key pair in the form `web-push generate-vapid-keys` prints: base64url of the
    /// 65-byte public point and of the 32-byte private scalar. The two must belong together.
    pub fn parse(public: &str, private: &str) -> Result<Self, String> {
        let scalar = decode(private.trim())
            .filter(|bytes| bytes.len() == 32)
            .ok_or("VAPID_PRIVATE_KEY must be base64url of a 32-byte P-256 private key")?;
        let signing = SigningKey::from_slice(&scalar)
            .map_err(|_| "VAPID_PRIVATE_KEY is not a valid P-256 private key".to_owned())?;
        let derived = Base64UrlUnpadded::encode_string(
            signing.verifying_key().to_encoded_point(false).as_bytes(),
        );
        let given = decode(public.trim())
            .filter(|bytes| bytes.len() == POINT_BYTES && PublicKey::from_sec1_bytes(bytes).is_ok())
            .ok_or("VAPID_PUBLIC_KEY must be base64url of a 65-byte uncompressed P-256 point")?;
        if Base64UrlUnpadded::encode_string(&given) != derived {
            return Err("VAPID_PUBLIC_KEY is not the public half of VAPID_PRIVATE_KEY".to_owned());
        }
        Ok(Self {
            signing,
            public: derived,
        })
    }

    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a push to `audience` (the endpoint's origin), valid from
    /// `now_secs` for [`VAPID_TTL_SECS`].
    pub fn authorization(&self, audience: &str, subject: &str, now_secs: i64) -> String {
        let header = Base64UrlUnpadded::encode_string(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": audience,
            "exp": now_secs + VAPID_TTL_SECS,
            "sub": subject,
        });
        let claims = Base64UrlUnpadded::encode_string(claims.to_string().as_bytes());
        let signed = format!("{header}.{claims}");
        let signature: Signature = self.signing.sign(signed.as_bytes());
        let signature = Base64UrlUnpadded::encode_string(&signature.to_bytes());
        format!("vapid t={signed}.{signature}, k={}", self.public)
    }
}

/// A browser subscription's keys, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionKeys {
    p256dh: PublicKey,
    auth: [u8; AUTH_BYTES],
}

impl SubscriptionKeys {
    /// Reads `keys.p256dh` (a 65-byte uncompressed point on P-256) and `keys.auth` (16 bytes),
    /// base64url as `PushSubscription.toJSON()` gives them (padding tolerated).
    pub fn parse(p256dh: &str, auth: &str) -> Result<Self, &'static str> {
        let point = decode(p256dh)
            .filter(|bytes| bytes.len() == POINT_BYTES)
            .ok_or("keys.p256dh must be base64url of a 65-byte uncompressed P-256 point")?;
        let p256dh = PublicKey::from_sec1_bytes(&point)
            .map_err(|_| "keys.p256dh is not a point on P-256")?;
        let auth = decode(auth)
            .and_then(|bytes| <[u8; AUTH_BYTES]>::try_from(bytes).ok())
            .ok_or("keys.auth must be base64url of 16 bytes")?;
        Ok(Self { p256dh, auth })
    }
}

/// Encrypts `plaintext` for one subscription (RFC 8291) with the sender key `ephemeral` and
/// `salt`, both fresh per message. `None` when the plaintext is longer than
/// [`MAX_PLAINTEXT_BYTES`].
pub fn encrypt(
    plaintext: &[u8],
    keys: &SubscriptionKeys,
    ephemeral: &SecretKey,
    salt: &[u8; 16],
) -> Option<Vec<u8>> {
    if plaintext.len() > MAX_PLAINTEXT_BYTES {
        return None;
    }
    let ua_public = keys.p256dh.to_encoded_point(false);
    let as_public = ephemeral.public_key().to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), keys.p256dh.as_affine());

    let mut key_info = Vec::with_capacity(14 + 2 * POINT_BYTES);
    key_info.extend_from_slice(b"WebPush: info\0");
    key_info.extend_from_slice(ua_public.as_bytes());
    key_info.extend_from_slice(as_public.as_bytes());
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&keys.auth), shared.raw_secret_bytes())
        .expand(&key_info, &mut ikm)
        .ok()?;

    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .ok()?;
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce).ok()?;

    let mut record = Vec::with_capacity(plaintext.len() + 1);
    record.extend_from_slice(plaintext);
    record.push(2);
    let sealed = Aes128Gcm::new_from_slice(&cek)
        .ok()?
        .encrypt(&Nonce::from(nonce), record.as_slice())
        .ok()?;

    let mut body = Vec::with_capacity(HEADER_BYTES + sealed.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(POINT_BYTES as u8);
    body.extend_from_slice(as_public.as_bytes());
    body.extend_from_slice(&sealed);
    Some(body)
}

/// [`encrypt`] with a fresh sender key and salt from the platform's random source.
pub fn seal(plaintext: &[u8], keys: &SubscriptionKeys) -> Option<Vec<u8>> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).ok()?;
    let ephemeral = loop {
        let mut scalar = [0u8; 32];
        getrandom::getrandom(&mut scalar).ok()?;
        if let Ok(key) = SecretKey::from_slice(&scalar) {
            break key;
        }
    };
    encrypt(plaintext, keys, &ephemeral, &salt)
}

/// base64url, with or without padding (browsers give it without; some libraries add it).
fn decode(text: &str) -> Option<Vec<u8>> {
    Base64UrlUnpadded::decode_vec(text.trim().trim_end_matches('=')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> Vec<u8> {
        decode(text).expect("test vector is base64url")
    }

    /// RFC 8291, Appendix A.
    #[test]
    fn encrypts_the_rfc_8291_example() {
        let keys = SubscriptionKeys::parse(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
            "BTBZMqHH6r4Tts7J_aSIgg",
        )
        .unwrap();
        let ephemeral =
            SecretKey::from_slice(&b64("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")).unwrap();
        let salt: [u8; 16] = b64("DGv6ra1nlYgDCS1FRnbzlw").try_into().unwrap();
        let body = encrypt(
            b"When I grow up, I want to be a watermelon",
            &keys,
            &ephemeral,
            &salt,
        )
        .unwrap();
        assert_eq!(
            Base64UrlUnpadded::encode_string(&body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn refuses_a_plaintext_that_would_pass_4096_bytes() {
        let keys = SubscriptionKeys::parse(
            "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
            "BTBZMqHH6r4Tts7J_aSIgg",
        )
        .unwrap();
        let ephemeral = SecretKey::from_slice(&[7u8; 32]).unwrap();
        let fits = encrypt(&[b'x'; MAX_PLAINTEXT_BYTES], &keys, &ephemeral, &[1; 16]).unwrap();
        assert_eq!(fits.len(), 4096);
        assert!(encrypt(
            &[b'x'; MAX_PLAINTEXT_BYTES + 1],
            &keys,
            &ephemeral,
            &[1; 16]
        )
        .is_none());
    }

    #[test]
    fn subscription_keys_must_be_a_point_and_16_bytes() {
        let point = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
        assert!(SubscriptionKeys::parse(point, "BTBZMqHH6r4Tts7J_aSIgg==").is_ok());
        assert!(SubscriptionKeys::parse(point, "BTBZMqHH6r4Tts7J").is_err());
        assert!(SubscriptionKeys::parse(&point[..60], "BTBZMqHH6r4Tts7J_aSIgg").is_err());
        let off_curve = format!("BA{}", &"A".repeat(85));
        assert!(SubscriptionKeys::parse(&off_curve, "BTBZMqHH6r4Tts7J_aSIgg").is_err());
    }

    const PUBLIC: &str =
        "BPZ1yN18SsyBT5Pb42sUKBoM-XVY4y61S4CUJLsdu6iEu8rwH2YylGoE15W2S-Ma9EdA4R1KQ9muhry2HnlTIb4";
    const PRIVATE: &str = "0femahwMjy6y9NIT7X5mLWe7vXVsX6GxAfL7Ax5Crh4";

    #[test]
    fn vapid_keys_must_belong_together() {
        assert_eq!(Vapid::parse(PUBLIC, PRIVATE).unwrap().public_key(), PUBLIC);
        let other = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
        assert!(Vapid::parse(other, PRIVATE)
            .unwrap_err()
            .contains("not the public half"));
        assert!(Vapid::parse(PUBLIC, "short").is_err());
        assert!(!format!("{:?}", Vapid::parse(PUBLIC, PRIVATE).unwrap()).contains(PRIVATE));
    }

    #[test]
    fn vapid_authorization_is_an_es256_jwt_that_verifies() {
        use p256::ecdsa::signature::Verifier;
        let vapid = Vapid::parse(PUBLIC, PRIVATE).unwrap();
        let header = vapid.authorization("https://push.example", "mailto:ops@example.com", 1000);
        let (token, key) = header
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split_once(", k="))
            .unwrap();
        assert_eq!(key, PUBLIC);
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&b64(signed.split_once('.').unwrap().1)).unwrap();
        assert_eq!(claims["aud"], "https://push.example");
        assert_eq!(claims["exp"], 1000 + VAPID_TTL_SECS);
        assert_eq!(claims["sub"], "mailto:ops@example.com");
        let signature = Signature::from_slice(&b64(signature)).unwrap();
        let verifying = p256::ecdsa::VerifyingKey::from_sec1_bytes(&b64(PUBLIC)).unwrap();
        assert!(verifying.verify(signed.as_bytes(), &signature).is_ok());
    }
}
