//! A minimal HTTP/1.1 client for a node's own API (plain `http://`, one request per
//! connection): GET, or POST with a body; the status code checked and the JSON answer decoded.
//! `neuroshard up` polls its nodes with it and `neuroshard wallet` talks to its node.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a whole exchange may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `GET path` from `node` (`http://127.0.0.1:8000`, with or without the scheme or a trailing
/// slash), the answer decoded from JSON.
pub(crate) async fn get<T: DeserializeOwned>(node: &str, path: &str) -> anyhow::Result<T> {
    exchange(node, "GET", path, &[]).await
}

/// `POST path` to `node` with `body` (raw bytes), the answer decoded from JSON.
pub(crate) async fn post<T: DeserializeOwned>(
    node: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<T> {
    exchange(node, "POST", path, body).await
}

async fn exchange<T: DeserializeOwned>(
    node: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<T> {
    let host = host_of(node)?;
    let raw = tokio::time::timeout(TIMEOUT, round_trip(host, method, path, body))
        .await
        .with_context(|| {
            format!("the node at {host} did not answer {path} within {TIMEOUT:?}")
        })??;
    let (code, body) = split_response(&raw).with_context(|| format!("{method} {path}"))?;
    if !(200..300).contains(&code) {
        bail!("{method} {path}: {} (HTTP {code})", error_message(body));
    }
    serde_json::from_slice(body).with_context(|| format!("decoding the answer to {path}"))
}

async fn round_trip(host: &str, method: &str, path: &str, body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut stream = tokio::net::TcpStream::connect(host).await.with_context(|| {
        format!("cannot reach the node at {host}: is `neuroshard node` running? (--node picks another)")
    })?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(&[head.as_bytes(), body].concat()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(response)
}

/// `host:port` of a node address; only plain http (the API listens on loopback by default).
fn host_of(node: &str) -> anyhow::Result<&str> {
    if node.contains("://") && !node.starts_with("http://") {
        bail!("node address {node}: only http:// is supported");
    }
    let host = node.trim_start_matches("http://").trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        bail!("node address {node}: expected http://HOST:PORT");
    }
    Ok(host)
}

/// The status code and body of a raw response (the server answers with a `Content-Length`
/// body and closes the connection).
fn split_response(raw: &[u8]) -> anyhow::Result<(u16, &[u8])> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP header block in the answer")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no status code in {:?}", head.lines().next()))?;
    Ok((code, &raw[end + 4..]))
}

/// The node's `{"error": "..."}` message, or the body as text.
fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<neuroshard_api::ErrorBody>(body) {
        Ok(answer) => answer.error,
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_responses_and_error_bodies() {
        assert_eq!(host_of("http://127.0.0.1:8000/").unwrap(), "127.0.0.1:8000");
        assert_eq!(host_of("127.0.0.1:9").unwrap(), "127.0.0.1:9");
        assert!(host_of("https://127.0.0.1:8000").is_err());
        assert!(host_of("http://127.0.0.1:8000/api").is_err());
        let raw = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(split_response(raw).unwrap(), (503, &b"{}"[..]));
        assert!(split_response(b"garbage").is_err());
        let body = br#"{"error":"this network has no ledger"}"#;
        assert_eq!(error_message(body), "this network has no ledger");
        assert_eq!(error_message(b"Not Found\n"), "Not Found");
    }
}
