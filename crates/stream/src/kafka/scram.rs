//! # SCRAM-SHA-256: proving the password without sending it
//!
//! SCRAM (RFC 5802, with SHA-256 by RFC 7677) is a challenge-response exchange of three
//! text messages after the client names itself. Neither side ever sends the password, and
//! the server never needs to keep it: it keeps two keys derived from it.
//!
//! ```text
//! SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations)
//! ClientKey      = HMAC(SaltedPassword, "Client Key")     StoredKey = SHA-256(ClientKey)
//! ServerKey      = HMAC(SaltedPassword, "Server Key")
//!
//! client-first   n,,n=default,r=<client nonce>
//! server-first   r=<client nonce + server nonce>,s=<salt>,i=<iterations>
//! client-final   c=biws,r=<both nonces>,p=<ClientKey XOR HMAC(StoredKey, AuthMessage)>
//! server-final   v=<HMAC(ServerKey, AuthMessage)>
//!
//! AuthMessage    = client-first-bare + "," + server-first + "," + client-final-without-proof
//! ```
//!
//! The server undoes the XOR with its own `HMAC(StoredKey, AuthMessage)`, which gives back
//! the client's `ClientKey`, and checks that its SHA-256 is `StoredKey` — in constant time,
//! so the time of a refusal says nothing about how close a guess was. The nonces make every
//! exchange different, so a recorded proof cannot be replayed; the server's `v=` proves to
//! the client that the server knew the password too. The iterations make each guess of an
//! offline attacker who recorded an exchange cost 4,096 HMACs.
//!
//! Here the salt is drawn once per server start (Kafka keeps credentials in its metadata
//! log; this broker has one password, from `--requirepass`) and the keys derived then, so
//! a login costs two HMACs and a hash, not a PBKDF2 run.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Kafka's minimum (and usual) iteration count for SCRAM-SHA-256.
pub const ITERATIONS: u32 = 4096;

/// What the server keeps of a password: salt, iterations, `StoredKey`, `ServerKey`.
#[derive(Clone)]
pub struct ScramCredential {
    salt: Vec<u8>,
    iterations: u32,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// Derives the keys (the one PBKDF2 run).
    pub fn new(password: &[u8], salt: Vec<u8>, iterations: u32) -> ScramCredential {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, &salt, iterations, &mut salted);
        let client_key = hmac(&salted, &[b"Client Key"]);
        ScramCredential {
            salt,
            iterations,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, &[b"Server Key"]),
        }
    }
}

/// Why an exchange failed. Every variant ends the authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramError {
    /// Not a SCRAM message of the expected shape.
    Malformed(&'static str),
    /// The client wants channel binding (`p=`), which needs TLS.
    ChannelBinding,
    /// The client-final message does not carry this exchange's nonce.
    NonceMismatch,
    /// The proof is wrong: wrong password.
    InvalidProof,
}

impl std::fmt::Display for ScramError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScramError::Malformed(what) => write!(f, "invalid SCRAM message: {what}"),
            ScramError::ChannelBinding => f.write_str("channel binding is not supported"),
            ScramError::NonceMismatch => f.write_str("invalid nonce"),
            ScramError::InvalidProof => f.write_str("invalid proof"),
        }
    }
}

/// The client-first message: who, and the client's nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The user name, with RFC 5802's `=2C` / `=3D` escapes undone.
    pub user: String,
    nonce: String,
    /// The GS2 header (`n,,`): the client-final message's `c=` must repeat it.
    gs2_header: String,
    /// `client-first-message-bare`: the message without its GS2 header, part of the
    /// AuthMessage.
    bare: String,
}

/// Parses `gs2-header client-first-message-bare`, e.g. `n,,n=default,r=fyko+d2lbbFgONRv9qkxdawL`.
pub fn client_first(message: &[u8]) -> Result<ClientFirst, ScramError> {
    let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    // gs2-header: a channel-binding flag, an optional authorization id, then the bare part.
    let mut gs2 = text.splitn(3, ',');
    let (flag, authzid, bare) = match (gs2.next(), gs2.next(), gs2.next()) {
        (Some(flag), Some(authzid), Some(bare)) => (flag, authzid, bare),
        _ => return Err(ScramError::Malformed("no GS2 header")),
    };
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed("bad channel binding flag")),
    }
    if !(authzid.is_empty() || authzid.starts_with("a=")) {
        return Err(ScramError::Malformed("bad authorization id"));
    }
    let mut attributes = bare.split(',');
    if bare.starts_with("m=") {
        return Err(ScramError::Malformed("unsupported mandatory extension"));
    }
    let user = attributes
        .next()
        .and_then(|a| a.strip_prefix("n="))
        .ok_or(ScramError::Malformed("no user name"))?;
    let nonce = attributes
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .filter(|n| !n.is_empty())
        .ok_or(ScramError::Malformed("no nonce"))?;
    // Anything after the nonce is an extension (Kafka's `tokenauth=true`); none changes
    // what the password check needs.
    Ok(ClientFirst {
        user: unescape_name(user)?,
        nonce: nonce.to_string(),
        gs2_header: format!("{flag},{authzid},"),
        bare: bare.to_string(),
    })
}

/// `saslname`: `=2C` is a comma, `=3D` an equals sign, and no other `=` may appear.
fn unescape_name(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escaped = rest.get(at..at + 3);
        out.push(match escaped {
            Some("=2C") => ',',
            Some("=3D") => '=',
            _ => return Err(ScramError::Malformed("bad escape in user name")),
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The server's half of an exchange, between its server-first message and the client's
/// final one.
#[derive(Debug, Clone)]
pub struct Exchange {
    gs2_header: String,
    client_first_bare: String,
    /// The client's nonce followed by the server's.
    nonce: String,
    /// The server-first message, as sent.
    pub server_first: String,
}

/// Answers the client-first message: the combined nonce, the salt and the iterations.
/// `server_nonce` is fresh randomness (printable, no commas).
pub fn server_first(
    credential: &ScramCredential,
    client: &ClientFirst,
    server_nonce: &str,
) -> Exchange {
    let nonce = format!("{}{server_nonce}", client.nonce);
    let server_first = format!(
        "r={nonce},s={},i={}",
        BASE64.encode(&credential.salt),
        credential.iterations
    );
    Exchange {
        gs2_header: client.gs2_header.clone(),
        client_first_bare: client.bare.clone(),
        nonce,
        server_first,
    }
}

/// Checks the client-final message `c=biws,r=<nonce>,p=<proof>`; on success returns the
/// server-final message `v=<signature>`.
pub fn client_final(
    credential: &ScramCredential,
    exchange: &Exchange,
    message: &[u8],
) -> Result<String, ScramError> {
    let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or(ScramError::Malformed("no proof"))?;
    let mut attributes = without_proof.split(',');
    let binding = attributes
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or(ScramError::Malformed("no channel binding"))?;
    let nonce = attributes
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(ScramError::Malformed("no nonce"))?;
    // Without channel binding, `c=` is the GS2 header again (`biws` for `n,,`).
    if binding != BASE64.encode(&exchange.gs2_header) {
        return Err(ScramError::ChannelBinding);
    }
    // Kafka checks that the nonce *ends with* the exchange's, and librdkafka 2.0 (Debian
    // 12's kcat) relies on it: it sends its own nonce again in front. The proof still
    // covers this exchange's server nonce, so an old proof cannot be replayed.
    if !nonce.ends_with(&exchange.nonce) {
        return Err(ScramError::NonceMismatch);
    }
    let proof = BASE64
        .decode(proof)
        .map_err(|_| ScramError::Malformed("proof is not base64"))?;
    if proof.len() != 32 {
        return Err(ScramError::InvalidProof);
    }
    let auth_message = [
        exchange.client_first_bare.as_bytes(),
        b",",
        exchange.server_first.as_bytes(),
        b",",
        without_proof.as_bytes(),
    ];
    let signature = hmac(&credential.stored_key, &auth_message);
    let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
    let stored_key: [u8; 32] = Sha256::digest(&client_key).into();
    if !bool::from(stored_key.ct_eq(&credential.stored_key)) {
        return Err(ScramError::InvalidProof);
    }
    let server_signature = hmac(&credential.server_key, &auth_message);
    Ok(format!("v={}", BASE64.encode(server_signature)))
}

/// HMAC-SHA-256 of the concatenated `parts`.
fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example exchange, byte for byte.
    #[test]
    fn the_rfc_7677_exchange() {
        let salt = BASE64
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .unwrap_or_default();
        let credential = ScramCredential::new(b"pencil", salt, 4096);
        let first = client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let first = first.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.user, "user");
        let exchange = server_first(&credential, &first, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        assert_eq!(
            exchange.server_first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let last = client_final(
            &credential,
            &exchange,
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
              p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        );
        assert_eq!(
            last,
            Ok("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_string())
        );
    }

    #[test]
    fn a_wrong_password_a_replayed_nonce_and_channel_binding_are_refused() {
        let salt = BASE64
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .unwrap_or_default();
        let wrong = ScramCredential::new(b"pencil2", salt.clone(), 4096);
        let right = ScramCredential::new(b"pencil", salt, 4096);
        let first =
            client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap_or_else(|e| panic!("{e}"));
        let final_message = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
              p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let exchange = server_first(&wrong, &first, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
        assert_eq!(
            client_final(&wrong, &exchange, final_message),
            Err(ScramError::InvalidProof)
        );
        // The same proof in an exchange with another server nonce.
        let other = server_first(&right, &first, "another-nonce");
        assert_eq!(
            client_final(&right, &other, final_message),
            Err(ScramError::NonceMismatch)
        );
        assert_eq!(
            client_first(b"p=tls-unique,,n=user,r=abc"),
            Err(ScramError::ChannelBinding)
        );
    }

    #[test]
    fn malformed_client_messages() {
        for bad in [
            &b""[..],
            b"n,,",
            b"n,,r=abc",
            b"n,,n=user",
            b"n,,n=user,r=",
            b"x,,n=user,r=abc",
            b"n,,m=ext,n=user,r=abc",
            b"n,,n=us=er,r=abc",
            b"n,,n=user=2,r=abc",
            b"\xff,,n=user,r=abc",
        ] {
            assert!(
                matches!(client_first(bad), Err(ScramError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let first = client_first(b"n,a=x,n=a=2Cb=3Dc,r=abc,tokenauth=true");
        assert_eq!(first.map(|f| f.user), Ok("a,b=c".to_string()));
    }
}
