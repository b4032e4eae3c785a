//! # SASL: who may talk to the broker
//!
//! With `--requirepass`, a Kafka connection must authenticate before it may do anything
//! but ask which APIs the broker speaks — Kafka's `SASL_PLAINTEXT` listener. The client
//! names a mechanism (`SaslHandshake`), then sends the mechanism's messages wrapped in
//! `SaslAuthenticate` requests until the mechanism says yes or no:
//!
//! - `PLAIN` (RFC 4616): one message, `authzid NUL user NUL password`. The password
//!   crosses the network as it is, as with Redis's `AUTH`.
//! - `SCRAM-SHA-256` (RFC 5802/7677, see [`super::scram`]): two round trips, and the
//!   password never crosses the network.
//!
//! There is one user, `default`, as Redis's `AUTH default <password>` (any other name is
//! refused: there are no per-user rights to give it). A failed attempt is answered with
//! `SASL_AUTHENTICATION_FAILED` after Kafka's `connection.failed.authentication.delay.ms`
//! (100 ms), and the connection is closed; so is a connection that sends any other API
//! before authenticating, as Kafka does (`IllegalSaslStateException`). Without a password,
//! `SaslHandshake` and `SaslAuthenticate` answer `ILLEGAL_SASL_STATE`, as on Kafka's
//! `PLAINTEXT` listener.
//!
//! Since Kafka 1.0 the mechanism's messages travel in `SaslAuthenticate` requests
//! (`SaslHandshake` v1). After a `SaslHandshake` v0 they travel bare, as `size, bytes` with
//! no request header, and so do the answers: librdkafka (kcat, confluent-kafka) checks
//! that the broker still offers v0 before it will authenticate at all, so both are spoken.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::scram::{self, Exchange, ScramCredential};
use super::str_bytes;

/// The mechanisms offered, in `SaslHandshake`'s answer.
pub const MECHANISMS: [&str; 2] = ["PLAIN", "SCRAM-SHA-256"];
/// The one user name accepted.
pub const USER: &str = "default";
/// The largest request a connection may send before it has authenticated (Kafka's
/// `sasl.server.max.receive.size`): strangers cannot make the broker buffer 100 MiB.
pub const MAX_UNAUTHENTICATED_REQUEST: usize = 512 * 1024;
/// How long a failed attempt waits for its answer (Kafka's
/// `connection.failed.authentication.delay.ms`): guessing costs the guesser time.
pub const FAILED_AUTHENTICATION_DELAY: Duration = Duration::from_millis(100);

/// The password, as the broker keeps it: its SHA-256 (for `PLAIN`) and its SCRAM keys,
/// salted once per start.
pub struct Credentials {
    password_hash: [u8; 32],
    scram: ScramCredential,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

impl Credentials {
    pub fn new(password: &str) -> Credentials {
        let mut salt = vec![0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        Credentials {
            password_hash: Sha256::digest(password.as_bytes()).into(),
            scram: ScramCredential::new(password.as_bytes(), salt, scram::ITERATIONS),
        }
    }

    /// Compares hashes, so neither the password's length nor where a guess goes wrong
    /// shows in the time taken.
    fn password_is(&self, guess: &[u8]) -> bool {
        let guess: [u8; 32] = Sha256::digest(guess).into();
        guess.ct_eq(&self.password_hash).into()
    }
}

/// A mechanism `SaslHandshake` can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    ScramSha256,
}

/// Where one connection is in authenticating.
#[derive(Debug)]
pub enum Authentication {
    /// Authenticated, or no password is set: every API is served.
    Done,
    /// Waiting for `SaslHandshake`.
    Handshake,
    /// Mechanism chosen; waiting for its first message (`framed`: in a
    /// `SaslAuthenticate` request, else bare).
    Started { mechanism: Mechanism, framed: bool },
    /// SCRAM: server-first sent; waiting for the client's proof.
    ScramProof {
        exchange: Box<Exchange>,
        framed: bool,
    },
}

impl Authentication {
    /// The state of a new connection.
    pub fn new(credentials: Option<&Credentials>) -> Authentication {
        match credentials {
            Some(_) => Authentication::Handshake,
            None => Authentication::Done,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self, Authentication::Done)
    }

    /// The next frame is a bare SASL message, not a Kafka request (after `SaslHandshake` v0).
    pub fn expects_bare_token(&self) -> bool {
        matches!(
            self,
            Authentication::Started { framed: false, .. }
                | Authentication::ScramProof { framed: false, .. }
        )
    }

    /// Whether `api` may be served now: before authentication, ApiVersions and the SASL
    /// step that comes next.
    pub fn allows(&self, api: ApiKey) -> bool {
        match self {
            Authentication::Done => true,
            Authentication::Handshake => {
                matches!(api, ApiKey::ApiVersions | ApiKey::SaslHandshake)
            }
            Authentication::Started { .. } | Authentication::ScramProof { .. } => {
                matches!(api, ApiKey::ApiVersions | ApiKey::SaslAuthenticate)
            }
        }
    }
}

/// A SASL answer, and whether the connection closes after it.
pub struct Step<R> {
    pub response: R,
    pub close: bool,
    /// The attempt failed (for statistics).
    pub failed: bool,
}

impl<R> Step<R> {
    fn open(response: R) -> Step<R> {
        Step {
            response,
            close: false,
            failed: false,
        }
    }
}

/// `SaslHandshake` of `version`: the client names its mechanism.
pub fn handshake(
    credentials: Option<&Credentials>,
    state: &mut Authentication,
    request: &SaslHandshakeRequest,
    version: i16,
) -> Step<SaslHandshakeResponse> {
    let offered = MECHANISMS.iter().map(|m| str_bytes(*m)).collect();
    let response = SaslHandshakeResponse::default().with_mechanisms(offered);
    if credentials.is_none() || state.is_done() {
        return Step::open(response.with_error_code(ResponseError::IllegalSaslState.code()));
    }
    let mechanism = match request.mechanism.as_str() {
        "PLAIN" => Mechanism::Plain,
        "SCRAM-SHA-256" => Mechanism::ScramSha256,
        _ => {
            return Step {
                response: response.with_error_code(ResponseError::UnsupportedSaslMechanism.code()),
                close: true,
                failed: true,
            };
        }
    };
    *state = Authentication::Started {
        mechanism,
        framed: version >= 1,
    };
    Step::open(response)
}

/// `SaslAuthenticate`: one message of the chosen mechanism.
pub async fn authenticate(
    credentials: Option<&Credentials>,
    state: &mut Authentication,
    request: &SaslAuthenticateRequest,
) -> Step<SaslAuthenticateResponse> {
    let Some(credentials) = credentials.filter(|_| !state.is_done()) else {
        return Step::open(
            SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(str_bytes(
                    "SaslAuthenticate is not expected: no SASL exchange is in progress",
                ))),
        );
    };
    let answer = evaluate(credentials, state, &request.auth_bytes);
    match answer {
        Ok(reply) => Step::open(SaslAuthenticateResponse::default().with_auth_bytes(reply)),
        Err(message) => {
            tokio::time::sleep(FAILED_AUTHENTICATION_DELAY).await;
            Step {
                response: SaslAuthenticateResponse::default()
                    .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                    .with_error_message(Some(str_bytes(message))),
                close: true,
                failed: true,
            }
        }
    }
}

/// A bare SASL message (after `SaslHandshake` v0): the bare answer, or `None` when the
/// attempt failed and the connection must close (this exchange has no error message).
pub async fn bare_token(
    credentials: Option<&Credentials>,
    state: &mut Authentication,
    token: &[u8],
) -> Option<Bytes> {
    let answer = credentials
        .ok_or_else(String::new)
        .and_then(|c| evaluate(c, state, token));
    match answer {
        Ok(reply) => Some(reply),
        Err(message) => {
            tracing::debug!("kafka: {message}");
            tokio::time::sleep(FAILED_AUTHENTICATION_DELAY).await;
            None
        }
    }
}

/// One message of the mechanism under way: its answer (empty once `PLAIN` has
/// accepted), or why the attempt failed. Moves `state` on: to `Done` once the client is
/// authenticated, back to `Handshake` after a failure.
fn evaluate(
    credentials: &Credentials,
    state: &mut Authentication,
    token: &[u8],
) -> Result<Bytes, String> {
    let answer = match std::mem::replace(state, Authentication::Done) {
        Authentication::Started {
            mechanism: Mechanism::Plain,
            ..
        } => plain(credentials, token).map(|()| Bytes::new()),
        Authentication::Started {
            mechanism: Mechanism::ScramSha256,
            framed,
        } => scram_first(credentials, token).map(|exchange| {
            let reply = Bytes::from(exchange.server_first.clone().into_bytes());
            *state = Authentication::ScramProof {
                exchange: Box::new(exchange),
                framed,
            };
            reply
        }),
        Authentication::ScramProof { exchange, .. } => {
            scram::client_final(&credentials.scram, &exchange, token)
                .map(|server_final| Bytes::from(server_final.into_bytes()))
                .map_err(|e| scram_failure(&e))
        }
        Authentication::Done | Authentication::Handshake => {
            Err("Authentication failed: SaslAuthenticate before SaslHandshake".to_string())
        }
    };
    if answer.is_err() {
        *state = Authentication::Handshake;
    }
    answer
}

/// `PLAIN`: `authzid NUL user NUL password`; the authorization id, if any, must be the
/// user (Kafka's rule).
fn plain(credentials: &Credentials, token: &[u8]) -> Result<(), String> {
    let parts: Vec<&[u8]> = token.split(|b| *b == 0).collect();
    let [authzid, user, password] = parts[..] else {
        return Err(format!(
            "Authentication failed: Invalid SASL/PLAIN response: expected 3 tokens, got {}",
            parts.len()
        ));
    };
    if !authzid.is_empty() && authzid != user {
        return Err(
            "Authentication failed: Client requested an authorization id that is \
                    different from username"
                .to_string(),
        );
    }
    // Both checks always run: the answer's timing does not tell which one failed.
    let user_ok = user == USER.as_bytes();
    let password_ok = credentials.password_is(password);
    if user_ok && password_ok {
        Ok(())
    } else {
        Err("Authentication failed: Invalid username or password".to_string())
    }
}

/// SCRAM's client-first message: the server-first answer, with a fresh nonce.
fn scram_first(credentials: &Credentials, token: &[u8]) -> Result<Exchange, String> {
    let first = scram::client_first(token).map_err(|e| scram_failure(&e))?;
    if first.user != USER {
        return Err(scram_failure(&scram::ScramError::InvalidProof));
    }
    // Letters and digits, as Kafka's nonces.
    let nonce: String = rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    Ok(scram::server_first(&credentials.scram, &first, &nonce))
}

fn scram_failure(e: &scram::ScramError) -> String {
    match e {
        scram::ScramError::InvalidProof => "Authentication failed during authentication due to \
                                            invalid credentials with SASL mechanism SCRAM-SHA-256"
            .to_string(),
        other => format!("Authentication failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;

    fn authenticate_now(
        credentials: &Credentials,
        state: &mut Authentication,
        token: &[u8],
    ) -> Step<SaslAuthenticateResponse> {
        let request =
            SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        runtime.block_on(authenticate(Some(credentials), state, &request))
    }

    fn start(credentials: &Credentials, mechanism: &str) -> Authentication {
        let mut state = Authentication::new(Some(credentials));
        assert!(!state.allows(ApiKey::Metadata));
        assert!(state.allows(ApiKey::ApiVersions));
        let request = SaslHandshakeRequest::default().with_mechanism(str_bytes(mechanism));
        let step = handshake(Some(credentials), &mut state, &request, 1);
        assert_eq!(step.response.error_code, 0);
        assert!(!state.allows(ApiKey::Metadata));
        state
    }

    #[test]
    fn plain_accepts_default_with_the_password_and_nothing_else() {
        let credentials = Credentials::new("secret");
        for (token, ok) in [
            (&b"\0default\0secret"[..], true),
            (b"default\0default\0secret", true),
            (b"\0default\0wrong", false),
            (b"\0admin\0secret", false),
            (b"other\0default\0secret", false),
            (b"\0default\0secret\0", false),
            (b"secret", false),
            (b"\0default\0", false),
        ] {
            let mut state = start(&credentials, "PLAIN");
            let step = authenticate_now(&credentials, &mut state, token);
            let label = String::from_utf8_lossy(token);
            assert_eq!(state.is_done(), ok, "{label}");
            assert_eq!(step.close, !ok, "{label}");
            assert_eq!(step.response.error_code, if ok { 0 } else { 58 }, "{label}");
        }
    }

    #[test]
    fn unknown_mechanisms_close_the_connection_and_no_password_means_illegal_state() {
        let credentials = Credentials::new("secret");
        let mut state = Authentication::new(Some(&credentials));
        let request = SaslHandshakeRequest::default().with_mechanism(str_bytes("GSSAPI"));
        let step = handshake(Some(&credentials), &mut state, &request, 1);
        assert_eq!((step.response.error_code, step.close), (33, true));
        assert_eq!(step.response.mechanisms.len(), 2);

        let mut open = Authentication::new(None);
        assert!(open.allows(ApiKey::Metadata));
        let request = SaslHandshakeRequest::default().with_mechanism(str_bytes("PLAIN"));
        let step = handshake(None, &mut open, &request, 1);
        assert_eq!((step.response.error_code, step.close), (34, false));
    }

    /// A whole SCRAM exchange, the client side computed here from the RFC's formulas.
    #[test]
    fn scram_with_the_right_password_and_the_wrong_one() {
        use hmac::{Hmac, KeyInit, Mac};
        let credentials = Credentials::new("secret");
        for (password, ok) in [("secret", true), ("Secret", false)] {
            let mut state = start(&credentials, "SCRAM-SHA-256");
            let first = authenticate_now(&credentials, &mut state, b"n,,n=default,r=clientnonce");
            assert_eq!(first.response.error_code, 0);
            let server_first =
                String::from_utf8(first.response.auth_bytes.to_vec()).unwrap_or_default();
            let fields: Vec<&str> = server_first.split(',').collect();
            let nonce = fields[0].trim_start_matches("r=");
            assert!(nonce.starts_with("clientnonce") && nonce.len() > 20);
            let salt = BASE64
                .decode(fields[1].trim_start_matches("s="))
                .unwrap_or_default();
            assert_eq!(fields[2], "i=4096");

            let mut salted = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, 4096, &mut salted);
            let mac = |key: &[u8], data: &[u8]| -> Vec<u8> {
                let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                    .unwrap_or_else(|e| panic!("{e}"));
                m.update(data);
                m.finalize().into_bytes().to_vec()
            };
            let client_key = mac(&salted, b"Client Key");
            let stored_key = Sha256::digest(&client_key);
            let without_proof = format!("c=biws,r={nonce}");
            let auth = format!("n=default,r=clientnonce,{server_first},{without_proof}");
            let signature = mac(&stored_key, auth.as_bytes());
            let proof: Vec<u8> = client_key
                .iter()
                .zip(&signature)
                .map(|(a, b)| a ^ b)
                .collect();
            let last = format!("{without_proof},p={}", BASE64.encode(proof));
            let step = authenticate_now(&credentials, &mut state, last.as_bytes());
            assert_eq!(state.is_done(), ok, "{password}");
            assert_eq!(step.response.error_code, if ok { 0 } else { 58 });
            if ok {
                let server_key = mac(&salted, b"Server Key");
                let expected = format!("v={}", BASE64.encode(mac(&server_key, auth.as_bytes())));
                assert_eq!(step.response.auth_bytes, Bytes::from(expected));
            }
        }
    }
}
