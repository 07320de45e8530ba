//! `Seq<T>`: a sequence inside a body that decodes without allocating (docs/PROTOCOL.md
//! section 2). On the wire: a varint element count, a varint byte length, then the elements'
//! postcard encodings back to back. Decoding borrows the bytes; iteration decodes lazily.

use core::marker::PhantomData;
use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeTuple, Serializer};

/// A sequence of `T`, either borrowed from a decoded body or from a slice being encoded.
#[derive(Clone, Copy, Debug)]
pub enum Seq<'a, T> {
    /// Decoded: `count` elements encoded in `bytes`.
    Encoded { count: u32, bytes: &'a [u8] },
    /// To encode.
    Slice(&'a [T]),
}

impl<T> Default for Seq<'_, T> {
    fn default() -> Self {
        Seq::Slice(&[])
    }
}

impl<'a, T> Seq<'a, T> {
    pub fn len(&self) -> usize {
        match self {
            Seq::Encoded { count, .. } => *count as usize,
            Seq::Slice(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<'a, T: Deserialize<'a> + Clone> Seq<'a, T> {
    /// The elements in order. A decoding error ends the iteration with `Err`; callers that
    /// need all-or-nothing call [`Seq::validate`] first.
    pub fn iter(&self) -> SeqIter<'a, T> {
        match *self {
            Seq::Encoded { count, bytes } => SeqIter::Encoded {
                rest: bytes,
                remaining: count,
                _t: PhantomData,
            },
            Seq::Slice(s) => SeqIter::Slice(s.iter()),
        }
    }

    /// Checks that exactly `count` elements decode from the bytes, with nothing left over.
    pub fn validate(&self) -> Result<(), postcard::Error> {
        let Seq::Encoded { count, bytes } = *self else {
            return Ok(());
        };
        let mut rest = bytes;
        for _ in 0..count {
            let (_, r) = postcard::take_from_bytes::<T>(rest)?;
            rest = r;
        }
        if rest.is_empty() {
            Ok(())
        } else {
            Err(postcard::Error::DeserializeBadEncoding)
        }
    }
}

pub enum SeqIter<'a, T> {
    Encoded {
        rest: &'a [u8],
        remaining: u32,
        _t: PhantomData<T>,
    },
    Slice(core::slice::Iter<'a, T>),
}

impl<'a, T: Deserialize<'a> + Clone> Iterator for SeqIter<'a, T> {
    type Item = Result<T, postcard::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            SeqIter::Encoded {
                rest, remaining, ..
            } => {
                if *remaining == 0 {
                    return None;
                }
                *remaining -= 1;
                match postcard::take_from_bytes::<T>(rest) {
                    Ok((v, r)) => {
                        *rest = r;
                        Some(Ok(v))
                    }
                    Err(e) => {
                        *remaining = 0;
                        Some(Err(e))
                    }
                }
            }
            SeqIter::Slice(it) => it.next().cloned().map(Ok),
        }
    }
}

impl<T: Serialize> Serialize for Seq<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Seq::Encoded { count, bytes } => {
                let mut t = serializer.serialize_tuple(2)?;
                t.serialize_element(&u64::from(*count))?;
                t.serialize_element(&Bytes(bytes))?;
                t.end()
            }
            Seq::Slice(items) => {
                // postcard writes tuples without a prefix, so (count, byte length, elements...)
                // gives exactly the bytes of (count, bytes(elements)).
                let mut len = 0usize;
                for item in items.iter() {
                    len += postcard::serialize_with_flavor(
                        item,
                        postcard::ser_flavors::Size::default(),
                    )
                    .map_err(serde::ser::Error::custom)?;
                }
                let mut t = serializer.serialize_tuple(2 + items.len())?;
                t.serialize_element(&(items.len() as u64))?;
                t.serialize_element(&(len as u64))?;
                for item in items.iter() {
                    t.serialize_element(item)?;
                }
                t.end()
            }
        }
    }
}

/// Serializes as a postcard byte string.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a, T: 'a> Deserialize<'de> for Seq<'a, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<'a, T>(PhantomData<(&'a (), T)>);
        impl<'de: 'a, 'a, T: 'a> Visitor<'de> for V<'a, T> {
            type Value = Seq<'a, T>;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a sequence: count, byte length, elements")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let count: u64 = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let bytes: &'de [u8] = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                // Every element takes at least one byte: a larger count is a lie, refused
                // before anyone sizes a buffer by it.
                if count > bytes.len() as u64 {
                    return Err(de::Error::custom("sequence count exceeds its bytes"));
                }
                Ok(Seq::Encoded {
                    count: count as u32,
                    bytes,
                })
            }
        }
        deserializer.deserialize_tuple(2, V(PhantomData))
    }
}
