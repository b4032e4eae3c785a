//! AWS Signature Version 4: how an SQS request proves who sent it — checked when the
//! broker has a password (`--requirepass`), which then is the *secret access key*.
//!
//! The client never sends its secret. It sends a signature: an HMAC-SHA256, under a key
//! derived from the secret, of a *canonical* description of the request (method, path,
//! query, the headers it chose to sign, the SHA-256 of the body). The server rebuilds the
//! same description from what it received and computes the same HMAC; if one byte of the
//! signed parts was changed on the way, or the sender did not know the secret, the two
//! differ. The key is derived in steps (secret -> date -> region -> service ->
//! "aws4_request"), so a leaked derived key is worth one day, one region, one service.
//!
//! ```text
//! Authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/sqs/aws4_request,
//!                SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=<hex>
//! ```
//!
//! Any access key id is accepted (there are no users here); the secret must be the
//! password. No check of the request's age is made (AWS refuses one older than 15
//! minutes, against replays).

use hmac::{Hmac, KeyInit, Mac};
use hyper::HeaderMap;
use sha2::{Digest, Sha256};

use super::digest::hex;
use super::errors::SqsError;

/// What a request's `Authorization` header says.
#[derive(Debug, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub access_key: &'a str,
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub signed_headers: Vec<&'a str>,
    pub signature: &'a str,
}

/// Parses `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
pub fn parse(header: &str) -> Option<Authorization<'_>> {
    let rest = header.strip_prefix("AWS4-HMAC-SHA256")?.trim_start();
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part.trim().split_once('=')?;
        match key {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    let mut scope = credential?.split('/');
    let (Some(access_key), Some(date), Some(region), Some(service), Some("aws4_request"), None) = (
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
        scope.next(),
    ) else {
        return None;
    };
    Some(Authorization {
        access_key,
        date,
        region,
        service,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    })
}

/// The region a request was signed for, if it was signed (for the ARNs in replies).
pub fn region(headers: &HeaderMap) -> Option<String> {
    let header = headers.get("authorization")?.to_str().ok()?;
    parse(header).map(|a| a.region.to_string())
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length: this cannot fail.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The parts of a request its signature covers.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Checks the request's signature against `secret`.
pub fn verify(request: &Request<'_>, secret: &str) -> Result<(), SqsError> {
    let headers = request.headers;
    let missing = || {
        SqsError::denied(
            "MissingAuthenticationToken",
            "Request is missing Authentication Token: sign it (AWS signature version 4) with \
             the broker's password as the secret access key",
        )
    };
    let header = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .ok_or_else(missing)?;
    let auth = parse(header).ok_or_else(|| {
        SqsError::denied(
            "IncompleteSignature",
            "The Authorization header is not an AWS4-HMAC-SHA256 signature",
        )
    })?;
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|h| h.to_str().ok())
        .ok_or_else(missing)?;
    let expected = signature(request, secret, &auth, amz_date);
    // Compare in full, not up to the first difference, so the time taken says nothing.
    let same = expected.len() == auth.signature.len()
        && expected
            .bytes()
            .zip(auth.signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(SqsError::denied(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key (the broker's password) and signing method.",
        ))
    }
}

/// The signature a client holding `secret` computes for this request.
fn signature(
    request: &Request<'_>,
    secret: &str,
    auth: &Authorization<'_>,
    amz_date: &str,
) -> String {
    let mut canonical_headers = String::new();
    for name in &auth.signed_headers {
        let values: Vec<String> = request
            .headers
            .get_all(*name)
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let mut pairs: Vec<&str> = request.query.split('&').filter(|p| !p.is_empty()).collect();
    pairs.sort_unstable();
    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{}\n{}",
        request.method,
        request.path,
        pairs.join("&"),
        auth.signed_headers.join(";"),
        hex(&Sha256::digest(request.body)),
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), auth.date.as_bytes());
    for part in [auth.region, auth.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    hex(&hmac(&key, string_to_sign.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's own worked example ("GET with no query", from the SigV4 test suite): the
    /// signature must come out as AWS's documentation prints it.
    #[test]
    fn the_signature_of_awss_test_suite_example() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "example.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        let header = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        headers.insert("authorization", header.parse().unwrap());
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let get = |headers, body| Request {
            method: "GET",
            path: "/",
            query: "",
            headers,
            body,
        };
        assert_eq!(verify(&get(&headers, b""), secret), Ok(()));
        let wrong = verify(&get(&headers, b""), "not the secret").unwrap_err();
        assert_eq!(wrong.code, "SignatureDoesNotMatch");
        let tampered = verify(&get(&headers, b"x"), secret).unwrap_err();
        assert_eq!(tampered.code, "SignatureDoesNotMatch");
        assert_eq!(region(&headers).as_deref(), Some("us-east-1"));
        let unsigned = verify(&get(&HeaderMap::new(), b""), secret).unwrap_err();
        assert_eq!(unsigned.code, "MissingAuthenticationToken");
    }
}
