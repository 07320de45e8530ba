//! One blocking connection to one Kafka broker: the 4-byte big-endian size framing, request
//! headers and correlation ids around the `kafka-protocol` codecs. One request at a time
//! (the forwarder is sequential by design: docs/FORWARDING.md section 5), each call bounded
//! as a whole by the request timeout, every response by `response_bytes_max` before it is
//! allocated.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use super::error::KafkaError;

/// The client id Kafka logs for outpost's connections.
pub const CLIENT_ID: &str = concat!("outpost-", env!("CARGO_PKG_VERSION"));

pub struct Conn {
    stream: TcpStream,
    addr: String,
    /// Each call must finish within this (the socket timeouts are set to what is left
    /// before every read and write, so a trickling peer cannot stretch a call).
    timeout: Duration,
    correlation: i32,
    response_bytes_max: usize,
}

impl Conn {
    /// Connects with `timeout` for the connect and for every later read and write.
    pub fn connect(
        addr: &str,
        timeout: Duration,
        response_bytes_max: usize,
    ) -> Result<Conn, KafkaError> {
        let err = |source| KafkaError::Connect {
            addr: addr.to_owned(),
            source,
        };
        let mut last = None;
        for sa in addr.to_socket_addrs().map_err(err)? {
            match TcpStream::connect_timeout(&sa, timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(timeout)).map_err(err)?;
                    stream.set_write_timeout(Some(timeout)).map_err(err)?;
                    stream.set_nodelay(true).map_err(err)?;
                    return Ok(Conn {
                        stream,
                        addr: addr.to_owned(),
                        timeout,
                        correlation: 0,
                        response_bytes_max,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(err(last.unwrap_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the address resolved to nothing",
            )
        })))
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `req` as version `version` and waits for its response.
    pub fn call<R: Request>(
        &mut self,
        api: &'static str,
        req: &R,
        version: i16,
    ) -> Result<R::Response, KafkaError> {
        self.correlation = self.correlation.wrapping_add(1);
        let sent = self.correlation;
        let frame = encode_request(api, req, version, sent)?;
        let deadline = Instant::now() + self.timeout;
        let io = |source| KafkaError::Io {
            addr: self.addr.clone(),
            api,
            source,
        };
        write_by(&mut self.stream, &frame, deadline).map_err(io)?;
        let mut size = [0u8; 4];
        read_by(&mut self.stream, &mut size, deadline).map_err(io)?;
        let bytes = i32::from_be_bytes(size);
        let len = usize::try_from(bytes)
            .ok()
            .filter(|&n| n <= self.response_bytes_max && n >= 4)
            .ok_or_else(|| KafkaError::ResponseSize {
                addr: self.addr.clone(),
                api,
                bytes: i64::from(bytes),
                max: self.response_bytes_max,
            })?;
        let mut body = vec![0u8; len];
        read_by(&mut self.stream, &mut body, deadline).map_err(io)?;
        let (got, resp) = decode_response::<R>(api, &self.addr, body, version)?;
        if got != sent {
            return Err(KafkaError::Correlation {
                addr: self.addr.clone(),
                api,
                sent,
                got,
            });
        }
        Ok(resp)
    }
}

fn left(deadline: Instant) -> std::io::Result<Duration> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        return Err(std::io::Error::new(
            ErrorKind::TimedOut,
            "request_timeout_ms passed before the answer was complete",
        ));
    }
    Ok(d)
}

/// `write_all` that gives up at `deadline`.
fn write_by(s: &mut TcpStream, mut buf: &[u8], deadline: Instant) -> std::io::Result<()> {
    while !buf.is_empty() {
        s.set_write_timeout(Some(left(deadline)?))?;
        match s.write(buf) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `read_exact` that gives up at `deadline`.
fn read_by(s: &mut TcpStream, mut buf: &mut [u8], deadline: Instant) -> std::io::Result<()> {
    while !buf.is_empty() {
        s.set_read_timeout(Some(left(deadline)?))?;
        match s.read(buf) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The whole request frame: size, header, body.
pub fn encode_request<R: Request>(
    api: &'static str,
    req: &R,
    version: i16,
    correlation_id: i32,
) -> Result<Bytes, KafkaError> {
    let enc = |e: anyhow::Error| KafkaError::Encode {
        api,
        detail: format!("{e:#}"),
    };
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(&[0; 4]);
    header
        .encode(&mut buf, R::header_version(version))
        .map_err(enc)?;
    req.encode(&mut buf, version).map_err(enc)?;
    let body = i32::try_from(buf.len() - 4).map_err(|_| KafkaError::Encode {
        api,
        detail: format!("request of {} bytes", buf.len()),
    })?;
    buf[..4].copy_from_slice(&body.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes a response body (without its size prefix): its correlation id and message.
pub fn decode_response<R: Request>(
    api: &'static str,
    addr: &str,
    body: Vec<u8>,
    version: i16,
) -> Result<(i32, R::Response), KafkaError> {
    let dec = |e: anyhow::Error| KafkaError::Decode {
        addr: addr.to_owned(),
        api,
        detail: format!("{e:#}"),
    };
    let mut buf = Bytes::from(body);
    let header =
        ResponseHeader::decode(&mut buf, R::Response::header_version(version)).map_err(dec)?;
    let resp = R::Response::decode(&mut buf, version).map_err(dec)?;
    Ok((header.correlation_id, resp))
}
