//! Protobuf wire format, by hand, for the few messages the signer handles on its hot path.
//!
//! The reader follows the rules of upb (the protobuf runtime Python uses), so a payload is accepted
//! here exactly when `FromString` accepts it: tags of at most 5 bytes and below 2^32, field number 0
//! refused (except inside an unknown group, which upb skips without looking), varints of at most 10
//! bytes (bits past 64 dropped), lengths of at most 5 bytes that fit the message, groups matched by
//! field number and nested at most [`DEPTH_LIMIT`] deep (a sub-message counts one level too), wire
//! types 6 and 7 refused. Nothing here panics on input: every failure is a [`DecodeError`].

use core::fmt;

/// upb's default nesting limit: sub-messages plus groups below the top-level message.
pub const DEPTH_LIMIT: u32 = 100;

pub const VARINT: u8 = 0;
pub const FIXED64: u8 = 1;
pub const LEN: u8 = 2;
pub const START_GROUP: u8 = 3;
pub const END_GROUP: u8 = 4;
pub const FIXED32: u8 = 5;

/// Why a payload is not a valid message: what was wrong and at which byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub at: usize,
    pub what: String,
}

impl DecodeError {
    pub fn new(at: usize, what: impl Into<String>) -> Self {
        Self {
            at,
            what: what.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.what, self.at)
    }
}

impl std::error::Error for DecodeError {}

/// A cursor over one message's bytes. `base` is the offset of `buf` in the whole payload, so
/// errors name positions the sender can find.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            base: 0,
        }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Offset in the whole payload of the next byte.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn raw_varint(&mut self, max_len: usize, what: &str) -> Result<u64, DecodeError> {
        let start = self.offset();
        let mut v: u64 = 0;
        for i in 0..max_len {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(DecodeError::new(start, format!("{what} is cut off")));
            };
            self.pos += 1;
            // i <= 9: the 10th byte contributes its lowest bit only (the rest falls off).
            v |= u64::from(b & 0x7f) << (7 * i as u32);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::new(
            start,
            format!("{what} is longer than {max_len} bytes"),
        ))
    }

    /// A varint value (at most 10 bytes; bits past 64 are dropped, as upb does).
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        self.raw_varint(10, "a varint")
    }

    /// The next tag: (field number, wire type). Refuses field number 0 and wire types 6 and 7.
    pub fn tag(&mut self) -> Result<(u32, u8), DecodeError> {
        let start = self.offset();
        let t = self.raw_varint(5, "a field tag")?;
        let t = u32::try_from(t)
            .map_err(|_| DecodeError::new(start, "a field tag does not fit in 32 bits"))?;
        let (field, wt) = (t >> 3, (t & 7) as u8);
        if wt > FIXED32 {
            return Err(DecodeError::new(
                start,
                format!("wire type {wt} does not exist"),
            ));
        }
        if field == 0 && wt != END_GROUP {
            return Err(DecodeError::new(start, "field number 0 is not allowed"));
        }
        Ok((field, wt))
    }

    /// The bytes of a length-delimited field (its length prefix has at most 5 bytes).
    pub fn len_delimited(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.offset();
        let n = self.raw_varint(5, "a length prefix")?;
        let rest = self.buf.len() - self.pos;
        if n > rest as u64 {
            return Err(DecodeError::new(
                start,
                format!("a length of {n} runs past the end of its message ({rest} bytes left)"),
            ));
        }
        let out = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(out)
    }

    /// A reader over the bytes of a length-delimited field (a sub-message).
    pub fn sub(&mut self) -> Result<Reader<'a>, DecodeError> {
        let bytes = self.len_delimited()?;
        Ok(Reader {
            buf: bytes,
            pos: 0,
            base: self.offset() - bytes.len(),
        })
    }

    fn fixed(&mut self, n: usize) -> Result<(), DecodeError> {
        if self.buf.len() - self.pos < n {
            return Err(DecodeError::new(
                self.offset(),
                format!("a {}-bit fixed value is cut off", n * 8),
            ));
        }
        self.pos += n;
        Ok(())
    }

    /// Skip the value of a field whose tag was just read (an unknown field). `depth` is what is
    /// left of the nesting budget at this message; a group spends one level per nesting.
    pub fn skip(
        &mut self,
        tag_at: usize,
        field: u32,
        wt: u8,
        depth: u32,
    ) -> Result<(), DecodeError> {
        match wt {
            VARINT => self.varint().map(|_| ()),
            FIXED64 => self.fixed(8),
            LEN => self.len_delimited().map(|_| ()),
            FIXED32 => self.fixed(4),
            START_GROUP => self.skip_group(tag_at, field, depth),
            _ => Err(DecodeError::new(
                tag_at,
                format!("end of group {field} without its start"),
            )),
        }
    }

    fn skip_group(&mut self, start_at: usize, field: u32, depth: u32) -> Result<(), DecodeError> {
        let Some(depth) = depth.checked_sub(1) else {
            return Err(DecodeError::new(
                start_at,
                format!("groups and messages nest more than {DEPTH_LIMIT} deep"),
            ));
        };
        loop {
            if self.at_end() {
                return Err(DecodeError::new(
                    start_at,
                    format!("group {field} has no end"),
                ));
            }
            // Inside a group upb reads raw tags: field number 0 is let through.
            let at = self.offset();
            let t = self.raw_varint(5, "a field tag")?;
            let t = u32::try_from(t)
                .map_err(|_| DecodeError::new(at, "a field tag does not fit in 32 bits"))?;
            let (f, wt) = (t >> 3, (t & 7) as u8);
            match wt {
                END_GROUP if f == field => return Ok(()),
                END_GROUP => {
                    return Err(DecodeError::new(
                        at,
                        format!("end of group {f} inside group {field}"),
                    ))
                }
                6 | 7 => {
                    return Err(DecodeError::new(
                        at,
                        format!("wire type {wt} does not exist"),
                    ))
                }
                _ => self.skip(at, f, wt, depth)?,
            }
        }
    }

    /// The raw bytes from `from` (an offset in this reader's payload) to the current position.
    pub fn since(&self, from: usize) -> &'a [u8] {
        &self.buf[from - self.base..self.pos]
    }

    /// A valid UTF-8 string (proto3 `string` fields are checked, as upb does).
    pub fn string(&mut self, name: &str) -> Result<&'a str, DecodeError> {
        let at = self.offset();
        let b = self.len_delimited()?;
        core::str::from_utf8(b)
            .map_err(|_| DecodeError::new(at, format!("field {name}: not valid UTF-8")))
    }
}

// --- writing ---------------------------------------------------------------------------------

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn put_tag(out: &mut Vec<u8>, field: u32, wt: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wt));
}

/// A length-delimited field, always written (for fields with presence and map entries).
pub fn put_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    put_tag(out, field, LEN);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A proto3 string/bytes field without presence: omitted when empty.
pub fn put_bytes_nonempty(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    if !b.is_empty() {
        put_bytes(out, field, b);
    }
}

/// A proto3 integer field without presence: omitted when zero. `int64` goes as its two's
/// complement (10 bytes when negative).
pub fn put_uint_nonzero(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        put_tag(out, field, VARINT);
        put_varint(out, v);
    }
}

pub fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            assert_eq!(Reader::new(&b).varint().unwrap(), v);
        }
        // 10 bytes with bits past 64: dropped, as upb does; 11 bytes: refused.
        let mut b = vec![0xffu8; 9];
        b.push(0x7f);
        assert_eq!(Reader::new(&b).varint().unwrap(), u64::MAX);
        let mut b = vec![0x80u8; 10];
        b.push(0x01);
        assert!(Reader::new(&b).varint().is_err());
        assert!(Reader::new(&[0x80]).varint().is_err());
    }

    #[test]
    fn tags() {
        assert_eq!(Reader::new(&[0x0a]).tag().unwrap(), (1, LEN));
        assert_eq!(Reader::new(&[0x88, 0x80, 0x00]).tag().unwrap(), (1, VARINT));
        assert!(Reader::new(&[0x00]).tag().is_err()); // field 0
        assert!(Reader::new(&[0x0e]).tag().is_err()); // wire type 6
        assert!(Reader::new(&[0xf8, 0xff, 0xff, 0xff, 0x1f]).tag().is_err()); // > 32 bits
        assert!(Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01])
            .tag()
            .is_err());
    }

    #[test]
    fn groups_and_depth() {
        fn nest(n: usize) -> Vec<u8> {
            let mut b = Vec::new();
            for _ in 0..n {
                let mut g = vec![0xa3, 0x01];
                g.extend_from_slice(&b);
                g.extend_from_slice(&[0xa4, 0x01]);
                b = g;
            }
            b
        }
        for (n, ok) in [(100, true), (101, false)] {
            let b = nest(n);
            let mut r = Reader::new(&b);
            let (f, wt) = r.tag().unwrap();
            assert_eq!(r.skip(0, f, wt, DEPTH_LIMIT).is_ok(), ok, "{n}");
        }
        // A mismatched end, a missing end.
        let mut r = Reader::new(&[0xa3, 0x01, 0xac, 0x01]);
        let (f, wt) = r.tag().unwrap();
        assert!(r.skip(0, f, wt, DEPTH_LIMIT).is_err());
        let mut r = Reader::new(&[0xa3, 0x01, 0x08, 0x01]);
        let (f, wt) = r.tag().unwrap();
        assert!(r.skip(0, f, wt, DEPTH_LIMIT).is_err());
    }

    #[test]
    fn lengths() {
        assert!(Reader::new(&[0x05, 0x41]).len_delimited().is_err());
        assert_eq!(Reader::new(&[0x01, 0x41]).len_delimited().unwrap(), b"A");
        // A 5-byte length prefix (non-minimal) is fine, a 6-byte one is not.
        assert!(Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x00])
            .len_delimited()
            .is_ok());
        assert!(Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00])
            .len_delimited()
            .is_err());
        let e = Reader::new(&[0x01, 0xff]).string("x").unwrap_err();
        assert!(e.to_string().contains("UTF-8"), "{e}");
    }
}
