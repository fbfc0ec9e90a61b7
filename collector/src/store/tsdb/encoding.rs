//! Byte-level helpers shared by the WAL, block and column formats:
//! LEB128 varints, zigzag signed varints, length-prefixed strings, and a
//! bounds-checked reader that reports where the data ran out or went wrong.

use std::fmt;

pub fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

pub fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_uvarint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

pub fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// Why decoding failed, with the offset (relative to the decoded slice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub what: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

impl std::error::Error for DecodeError {}

pub type DResult<T> = Result<T, DecodeError>;

/// A cursor over a byte slice; every read is bounds checked.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn err<T>(&self, what: impl Into<String>) -> DResult<T> {
        Err(DecodeError {
            offset: self.pos,
            what: what.into(),
        })
    }

    pub fn bytes(&mut self, n: usize) -> DResult<&'a [u8]> {
        if self.remaining() < n {
            return self.err(format!(
                "truncated: need {n} bytes, have {}",
                self.remaining()
            ));
        }
        let b = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }

    pub fn u8(&mut self) -> DResult<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub fn u32_le(&mut self) -> DResult<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64_le(&mut self) -> DResult<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub fn uvarint(&mut self) -> DResult<u64> {
        let mut v: u64 = 0;
        let mut shift = 0u32;
        loop {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return self.err("varint overflows 64 bits");
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return self.err("varint overflows 64 bits");
            }
        }
    }

    /// A uvarint used as a length or count, refused when larger than `max`.
    pub fn len(&mut self, max: usize) -> DResult<usize> {
        let v = self.uvarint()?;
        if v > max as u64 {
            return self.err(format!("length {v} exceeds limit {max}"));
        }
        Ok(v as usize)
    }

    pub fn varint(&mut self) -> DResult<i64> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    pub fn str(&mut self) -> DResult<&'a str> {
        let n = self.len(self.remaining())?;
        let b = self.bytes(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s),
            Err(_) => self.err("string is not valid UTF-8"),
        }
    }

    pub fn len_bytes(&mut self) -> DResult<&'a [u8]> {
        let n = self.len(self.remaining())?;
        self.bytes(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_truncation_is_an_error() {
        let mut b = Vec::new();
        for v in [0i64, 1, -1, 63, -64, 1 << 40, i64::MIN, i64::MAX] {
            put_varint(&mut b, v);
        }
        put_uvarint(&mut b, u64::MAX);
        put_str(&mut b, "héllo");
        let mut r = Reader::new(&b);
        for v in [0i64, 1, -1, 63, -64, 1 << 40, i64::MIN, i64::MAX] {
            assert_eq!(r.varint().unwrap(), v);
        }
        assert_eq!(r.uvarint().unwrap(), u64::MAX);
        assert_eq!(r.str().unwrap(), "héllo");
        assert!(r.is_empty());
        let mut r = Reader::new(&b[..b.len() - 2]);
        for _ in 0..9 {
            r.varint().unwrap();
        }
        assert!(r.str().is_err());
        assert!(Reader::new(&[0xff; 11]).uvarint().is_err());
    }
}
