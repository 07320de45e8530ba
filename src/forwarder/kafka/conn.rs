//! One blocking connection to one Kafka broker: the 4-byte big-endian size framing, request
//! headers and correlation ids around the `kafka-protocol` codecs. One request at a time
//! (the forwarder is sequential by design: docs/FORWARDING.md section 5), every read and
//! write bounded by the request timeout, every response by `response_bytes_max` before it is
//! allocated.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use super::error::KafkaError;

/// The client id Kafka logs for outpost's connections.
pub const CLIENT_ID: &str = concat!("outpost-", env!("CARGO_PKG_VERSION"));

pub struct Conn {
    stream: TcpStream,
    addr: String,
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
        let io = |source| KafkaError::Io {
            addr: self.addr.clone(),
            api,
            source,
        };
        self.stream.write_all(&frame).map_err(io)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(io)?;
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
        self.stream.read_exact(&mut body).map_err(io)?;
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
