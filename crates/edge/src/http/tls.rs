//! TLS termination, and the session cache that makes a returning client's handshake cheap.
//!
//! A full TLS handshake costs the server an asymmetric operation (signing with the
//! certificate's key, an ECDHE exchange) and the client a round trip more before its first
//! request. A client that comes back — a browser opening its next connection, the load
//! balancer's health checker, a mobile app after a network switch — can skip most of that by
//! **resuming** the session it had: it presents the id of that session, the server finds
//! the secrets it kept in its *session cache*, and both derive new keys from them without a
//! certificate or a signature. This is the course's "SSL session caching" on a load
//! balancer: the balancer terminates TLS once for all the backends behind it, and keeps the
//! sessions so that its clients' reconnections stay cheap.
//!
//! Two ways to keep the state, both in rustls:
//! - a **server-side cache** (TLS 1.2 session ids; in TLS 1.3 a ticket that is only a key
//!   into the cache): bounded by `--tls-session-cache-size` entries, least recently used
//!   out first, lost on restart and not shared between servers — the default here, as it
//!   is in nginx (`ssl_session_cache`) and Redis (`tls-session-caching`);
//! - **session tickets** (`--tls-session-tickets yes`): the server encrypts the session
//!   state with a key only it knows and hands it to the client, keeping nothing itself —
//!   no memory per client, but every server that must resume it needs the ticket key.
//!
//! Every completed handshake is counted as full or resumed ([`TlsStats`]), and the stats
//! pages show both: the resumed share is the cache's hit ratio.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ServerSessionMemoryCache;
use tokio_rustls::TlsAcceptor;

/// Redis's `tls-session-cache-size` default.
const DEFAULT_CACHE_SIZE: usize = 20 * 1024;

/// The TLS flags every HTTP server takes (Redis's names).
#[derive(Debug, Clone, clap::Args)]
pub struct TlsArgs {
    /// Also serve HTTPS on this port (0 picks a free one; the stats page shows it).
    /// Needs `--tls-cert-file` and `--tls-key-file`.
    #[arg(long)]
    pub tls_port: Option<u16>,
    /// The certificate chain, PEM, the server's own certificate first.
    #[arg(long, requires = "tls_port")]
    pub tls_cert_file: Option<String>,
    /// The certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, requires = "tls_port")]
    pub tls_key_file: Option<String>,
    /// Keep sessions so returning clients resume them without a full handshake.
    #[arg(
        long,
        default_value = "yes",
        value_parser = service::settings::yes_no,
        action = clap::ArgAction::Set
    )]
    pub tls_session_caching: bool,
    /// Sessions the server-side cache holds (least recently used out first).
    #[arg(long, default_value_t = DEFAULT_CACHE_SIZE)]
    pub tls_session_cache_size: usize,
    /// Resume from session tickets (state kept by the client, encrypted) instead of the
    /// server-side cache.
    #[arg(
        long,
        default_value = "no",
        value_parser = service::settings::yes_no,
        action = clap::ArgAction::Set
    )]
    pub tls_session_tickets: bool,
}

impl TlsArgs {
    /// No TLS (tests and the defaults).
    pub fn off() -> Self {
        TlsArgs {
            tls_port: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_session_caching: true,
            tls_session_cache_size: DEFAULT_CACHE_SIZE,
            tls_session_tickets: false,
        }
    }
}

/// Handshakes counted by how they ended.
#[derive(Debug, Default)]
pub struct TlsStats {
    /// Full handshakes: certificate sent, signature made.
    pub full: AtomicU64,
    /// Resumed from the session cache or a ticket.
    pub resumed: AtomicU64,
    /// Failed (not TLS, an unknown CA on the client, timed out).
    pub failed: AtomicU64,
}

/// One server's TLS: the acceptor, and what it has done.
pub struct Tls {
    pub acceptor: TlsAcceptor,
    pub stats: TlsStats,
    /// The port it listens on, once bound (`--tls-port 0` picks one).
    addr: OnceLock<SocketAddr>,
}

impl Tls {
    /// The TLS endpoint `args` asks for; `None` without `--tls-port`.
    pub fn from_args(args: &TlsArgs) -> Result<Option<Arc<Tls>>, String> {
        if args.tls_port.is_none() {
            return Ok(None);
        }
        let (Some(cert_file), Some(key_file)) = (&args.tls_cert_file, &args.tls_key_file) else {
            return Err("--tls-port needs --tls-cert-file and --tls-key-file".into());
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
            .and_then(|certs| certs.collect())
            .map_err(|e| format!("--tls-cert-file {cert_file}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("--tls-cert-file {cert_file}: no certificate in it"));
        }
        let key = PrivateKeyDer::from_pem_file(key_file)
            .map_err(|e| format!("--tls-key-file {key_file}: {e}"))?;
        Tls::new(certs, key, args).map(Some)
    }

    /// From a certificate chain and key already in memory.
    pub fn new(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        args: &TlsArgs,
    ) -> Result<Arc<Tls>, String> {
        // ring, deprecated in rustls for lacking post-quantum key exchange: the tree
        // already builds it (for pgwire), where aws-lc-rs would add a C and cmake build.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("TLS certificate and key: {e}"))?;
        // ALPN: HTTP/2 for clients that offer it, else HTTP/1.1 (the listener serves both).
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.session_storage = if args.tls_session_caching && args.tls_session_cache_size > 0 {
            ServerSessionMemoryCache::new(args.tls_session_cache_size)
        } else {
            Arc::new(rustls::server::NoServerSessionStorage {})
        };
        if args.tls_session_tickets {
            config.ticketer =
                rustls::crypto::ring::Ticketer::new().map_err(|e| format!("TLS tickets: {e}"))?;
        }
        Ok(Arc::new(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            stats: TlsStats::default(),
            addr: OnceLock::new(),
        }))
    }

    /// Records a finished handshake.
    pub fn handshake_done(&self, kind: Option<rustls::HandshakeKind>) {
        let counter = match kind {
            Some(rustls::HandshakeKind::Resumed) => &self.stats.resumed,
            _ => &self.stats.full,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn handshake_failed(&self) {
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn bound(&self, addr: SocketAddr) {
        let _ = self.addr.set(addr);
    }

    /// Where HTTPS is served.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr.get().copied()
    }

    /// `tls_addr`, `tls_handshakes_full`, `tls_handshakes_resumed`, `tls_handshakes_failed`
    /// lines for a stats page.
    pub fn stats_lines(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "tls_addr:{}\ntls_handshakes_full:{}\ntls_handshakes_resumed:{}\ntls_handshakes_failed:{}\n",
            self.addr().map(|a| a.to_string()).unwrap_or_default(),
            get(&self.stats.full),
            get(&self.stats.resumed),
            get(&self.stats.failed),
        )
    }
}

/// The TLS lines of a stats page (nothing when TLS is off).
pub fn stats_lines(tls: Option<&Tls>) -> String {
    tls.map(Tls::stats_lines).unwrap_or_default()
}
