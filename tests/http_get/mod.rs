//! `GET` over plain HTTP/1.1 for the end-to-end tests that read the dashboard's
//! `/api/state` from a running `infralab` process.

use std::io::{Read, Write};

/// `GET path` with `Connection: close`: the response's body, or "" when nothing answers
/// (yet).
pub fn body(addr: &str, path: &str) -> String {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    if stream.write_all(request.as_bytes()).is_ok() {
        let _ = stream.read_to_string(&mut response);
    }
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}
