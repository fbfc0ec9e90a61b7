//! One gRPC unary call whose request message is already zstd-compressed.
//!
//! Hand-written framing (the gRPC wire format's 5-byte message prefix, the
//! `grpc-encoding` header and the `grpc-status` trailer) because tonic 0.14
//! compresses zstd only at its default level 3 (its code says "FIXME: support
//! customizing the compression level"): in the end-to-end log bench that took
//! half the agent's CPU, while level 1 is about twice as fast. Compressing the
//! batch ourselves also does it once per batch rather than once per attempt.
//! Everything else (connection, HTTP/2, timeouts) stays tonic's `Channel`.

use http_body_util::{BodyExt, Full};
use prost::bytes::{BufMut, Bytes, BytesMut};
use tonic::{
    Code, Status,
    codegen::{Service, http},
    transport::Channel,
};

/// zstd level for log batches: the fastest regular level.
const ZSTD_LEVEL: i32 = 1;
/// The gRPC message prefix: compressed flag and big-endian u32 length.
const PREFIX_LEN: usize = 5;

/// A whole gRPC request body (prefix and message) for `payload`, zstd-compressed.
pub fn zstd_frame(payload: &[u8]) -> std::io::Result<Bytes> {
    let compressed = zstd::bulk::compress(payload, ZSTD_LEVEL)?;
    let len = u32::try_from(compressed.len()).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "compressed batch of {} bytes is too large",
                compressed.len()
            ),
        )
    })?;
    let mut frame = BytesMut::with_capacity(PREFIX_LEN + compressed.len());
    frame.put_u8(1);
    frame.put_u32(len);
    frame.put_slice(&compressed);
    Ok(frame.freeze())
}

/// Sends `frame` (from [`zstd_frame`]) to `path` with `authorization` (the bearer token)
/// if given; returns the reply message's bytes.
pub async fn unary(
    channel: &Channel,
    path: &'static str,
    frame: Bytes,
    authorization: Option<&http::HeaderValue>,
) -> Result<Bytes, Status> {
    let mut channel = channel.clone();
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .map_err(|e| Status::unavailable(format!("collector not ready: {e}")))?;
    let mut request = http::Request::builder();
    if let Some(a) = authorization {
        request = request.header(http::header::AUTHORIZATION, a.clone());
    }
    let request = request
        .method(http::Method::POST)
        .uri(http::Uri::from_static(path))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .header("grpc-encoding", "zstd")
        // No grpc-accept-encoding: the (tiny) reply comes back uncompressed.
        .body(tonic::body::Body::new(Full::new(frame)))
        .map_err(|e| Status::internal(format!("building the request: {e}")))?;
    let response = channel.call(request).await.map_err(|e| {
        // tonic's text is "transport error"; the cause (an untrusted certificate, a
        // refused connection) is in the chain.
        let mut text = format!("request failed: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        Status::unavailable(text)
    })?;
    let (head, body) = response.into_parts();
    // A refusal may come "trailers-only", in the headers.
    if let Some(status) = Status::from_header_map(&head.headers)
        && status.code() != Code::Ok
    {
        return Err(status);
    }
    if head.status != http::StatusCode::OK {
        return Err(Status::unavailable(format!(
            "collector answered HTTP {}",
            head.status
        )));
    }
    let collected = body
        .collect()
        .await
        .map_err(|e| Status::unavailable(format!("reading the reply: {e}")))?;
    let status = collected
        .trailers()
        .and_then(Status::from_header_map)
        .or_else(|| Status::from_header_map(&head.headers))
        .ok_or_else(|| Status::internal("reply without grpc-status"))?;
    if status.code() != Code::Ok {
        return Err(status);
    }
    message(collected.to_bytes())
}

/// The one message of a unary reply, unframed.
fn message(mut data: Bytes) -> Result<Bytes, Status> {
    if data.len() < PREFIX_LEN {
        return Err(Status::internal(format!(
            "reply of {} bytes has no message",
            data.len()
        )));
    }
    if data[0] != 0 {
        return Err(Status::internal(
            "reply is compressed though none was asked for",
        ));
    }
    let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    if data.len() != PREFIX_LEN + len {
        return Err(Status::internal(format!(
            "reply frame says {len} bytes, has {}",
            data.len() - PREFIX_LEN
        )));
    }
    Ok(data.split_off(PREFIX_LEN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trips_through_zstd() {
        let payload = b"a log line\n".repeat(1000);
        let frame = zstd_frame(&payload).unwrap();
        assert_eq!(frame[0], 1, "compressed flag");
        let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
        assert_eq!(frame.len(), PREFIX_LEN + len);
        assert!(len < payload.len() / 10);
        let back = zstd::bulk::decompress(&frame[PREFIX_LEN..], payload.len()).unwrap();
        assert_eq!(back, payload);
    }

    #[test]
    fn reply_frames_are_checked() {
        assert_eq!(
            message(Bytes::from_static(&[0, 0, 0, 0, 2, 8, 1])).unwrap(),
            Bytes::from_static(&[8, 1])
        );
        assert_eq!(
            message(Bytes::from_static(&[0, 0, 0, 0, 0])).unwrap().len(),
            0
        );
        for bad in [
            &[][..],
            &[0, 0, 0],
            &[1, 0, 0, 0, 1, 0],
            &[0, 0, 0, 0, 9, 1],
        ] {
            assert!(message(Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
        }
    }
}
