//! JSON lines for `consume --format json`, written by hand (one record shape; no JSON
//! dependency needed). Strings follow RFC 8259: quote, backslash and control characters are
//! escaped; bytes that are not UTF-8 become U+FFFD (lossy), like the text format.

use std::fmt::Write as _;

use crate::client::FetchedRecord;

/// Appends `s` as a JSON string literal (with its quotes).
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < '\u{20}' => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends bytes as a JSON string: UTF-8, invalid sequences replaced by U+FFFD.
pub fn push_bytes(out: &mut String, b: &[u8]) {
    push_str(out, &String::from_utf8_lossy(b));
}

/// One record as a JSON object on one line (no newline):
/// `{"topic":..,"partition":..,"offset":..,"timestamp_ms":..,"key":..|null,
/// "headers":[{"name":..,"value":..},..],"value":..}`.
pub fn record_line(out: &mut String, topic: &str, partition: u32, r: &FetchedRecord) {
    out.push_str("{\"topic\":");
    push_str(out, topic);
    let _ = write!(
        out,
        ",\"partition\":{partition},\"offset\":{},\"timestamp_ms\":{},\"key\":",
        r.offset, r.record.timestamp_ms
    );
    match &r.record.key {
        Some(k) => push_bytes(out, k),
        None => out.push_str("null"),
    }
    out.push_str(",\"headers\":[");
    for (i, (name, value)) in r.record.headers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        push_str(out, name);
        out.push_str(",\"value\":");
        push_bytes(out, value);
        out.push('}');
    }
    out.push_str("],\"value\":");
    push_bytes(out, &r.record.value);
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Record;

    fn s(x: &str) -> String {
        let mut out = String::new();
        push_str(&mut out, x);
        out
    }

    #[test]
    fn escapes_quotes_backslashes_and_controls() {
        assert_eq!(s(""), r#""""#);
        assert_eq!(s("plain text"), r#""plain text""#);
        assert_eq!(s(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(s(r"C:\dir\"), r#""C:\\dir\\""#);
        assert_eq!(s("a\nb\rc\td"), r#""a\nb\rc\td""#);
        assert_eq!(s("\u{8}\u{c}"), r#""\b\f""#);
        assert_eq!(s("\u{0}\u{1}\u{1f}"), r#""\u0000\u0001\u001f""#);
        // DEL, non-ASCII and the line separators JSON allows raw stay as they are.
        assert_eq!(s("\u{7f}é😀\u{2028}"), "\"\u{7f}é😀\u{2028}\"");
        // '/' needs no escape.
        assert_eq!(s("a/b"), r#""a/b""#);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut out = String::new();
        push_bytes(&mut out, b"ok\xff\xfe\"");
        assert_eq!(out, "\"ok\u{fffd}\u{fffd}\\\"\"");
    }

    #[test]
    fn record_line_shape() {
        let r = FetchedRecord {
            offset: 42,
            record: Record {
                timestamp_ms: -5,
                key: Some(b"k\"1".to_vec()),
                value: b"v\nx".to_vec(),
                headers: vec![("h".into(), b"1".to_vec()), ("t\\".into(), vec![0xff])],
            },
        };
        let mut out = String::new();
        record_line(&mut out, "t.1", 3, &r);
        assert_eq!(
            out,
            r#"{"topic":"t.1","partition":3,"offset":42,"timestamp_ms":-5,"key":"k\"1","headers":[{"name":"h","value":"1"},{"name":"t\\","value":"�"}],"value":"v\nx"}"#
        );
        let none = FetchedRecord {
            offset: 0,
            record: Record {
                timestamp_ms: 0,
                key: None,
                value: vec![],
                headers: vec![],
            },
        };
        let mut out = String::new();
        record_line(&mut out, "t", 0, &none);
        assert_eq!(
            out,
            r#"{"topic":"t","partition":0,"offset":0,"timestamp_ms":0,"key":null,"headers":[],"value":""}"#
        );
    }
}
