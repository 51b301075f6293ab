//! A small validating JSON scanner that borrows from the frame.
//!
//! Venue frames are parsed straight into the few fields the books need; everything else is
//! skipped but still validated, so a truncated or corrupt frame is rejected as a whole. Strings
//! without escapes are borrowed (zero-copy); only escaped strings allocate. Every access is
//! bounds-checked and nesting depth is capped, so no input can panic or overflow the stack.

use std::borrow::Cow;

/// Deepest nesting accepted; real venue frames stay below 6.
const MAX_DEPTH: u32 = 64;

/// A JSON syntax error at a byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: usize,
    pub what: &'static str,
}

pub type JResult<T> = Result<T, SyntaxError>;

/// A scalar as the books want it: text of a string or number, or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scalar<'a> {
    /// The key was not in the object.
    #[default]
    Absent,
    Null,
    /// A JSON string's value or a JSON number's text.
    Text(Cow<'a, str>),
    /// `true`/`false`, an object or an array: present but not a scalar we can read.
    Other,
}

impl<'a> Scalar<'a> {
    pub fn text(&self) -> Option<&str> {
        match self {
            Scalar::Text(t) => Some(t),
            _ => None,
        }
    }
}

pub struct Scanner<'a> {
    s: &'a str,
    pos: usize,
    depth: u32,
}

impl<'a> Scanner<'a> {
    pub fn new(s: &'a str) -> Self {
        Scanner {
            s,
            pos: 0,
            depth: 0,
        }
    }

    /// A scanner positioned at `pos` (an offset previously returned by [`Scanner::pos`]).
    pub fn at(s: &'a str, pos: usize) -> Self {
        Scanner { s, pos, depth: 0 }
    }

    /// The whole text being scanned.
    pub fn source(&self) -> &'a str {
        self.s
    }

    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.s.as_bytes()
    }

    #[inline]
    fn err<T>(&self, what: &'static str) -> JResult<T> {
        Err(SyntaxError {
            pos: self.pos,
            what,
        })
    }

    #[inline]
    pub fn skip_ws(&mut self) {
        while let Some(&c) = self.bytes().get(self.pos) {
            if c == b' ' || c == b'\n' || c == b'\r' || c == b'\t' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// Next non-blank byte without consuming it.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes().get(self.pos).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8, what: &'static str) -> JResult<()> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            self.err(what)
        }
    }

    /// After the last value: only blanks may follow.
    pub fn finish(&mut self) -> JResult<()> {
        if self.peek().is_some() {
            return self.err("unexpected data after the JSON value");
        }
        Ok(())
    }

    /// Reads a string (the opening quote is next).
    pub fn string(&mut self) -> JResult<Cow<'a, str>> {
        self.eat(b'"', "expected a string")?;
        let start = self.pos;
        let b = self.bytes();
        self.pos = skip_plain(b, self.pos);
        loop {
            match b.get(self.pos) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    let out = match self.s.get(start..self.pos) {
                        Some(t) => t,
                        None => return self.err("invalid string boundary"),
                    };
                    self.pos += 1;
                    return Ok(Cow::Borrowed(out));
                }
                Some(b'\\') => return self.string_escaped(start),
                Some(&c) if c < 0x20 => return self.err("control character in string"),
                Some(_) => self.pos += 1,
            }
        }
    }

    #[cold]
    fn string_escaped(&mut self, start: usize) -> JResult<Cow<'a, str>> {
        let mut out = String::with_capacity(self.pos - start + 16);
        match self.s.get(start..self.pos) {
            Some(t) => out.push_str(t),
            None => return self.err("invalid string boundary"),
        }
        let b = self.bytes();
        let mut run = self.pos;
        loop {
            match b.get(self.pos) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    match self.s.get(run..self.pos) {
                        Some(t) => out.push_str(t),
                        None => return self.err("invalid string boundary"),
                    }
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    match self.s.get(run..self.pos) {
                        Some(t) => out.push_str(t),
                        None => return self.err("invalid string boundary"),
                    }
                    self.pos += 1;
                    let e = match b.get(self.pos) {
                        Some(&e) => e,
                        None => return self.err("unterminated escape"),
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if b.get(self.pos) != Some(&b'\\')
                                    || b.get(self.pos + 1) != Some(&b'u')
                                {
                                    return self.err("unpaired surrogate in string");
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return self.err("unpaired surrogate in string");
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            match char::from_u32(cp) {
                                Some(ch) => out.push(ch),
                                None => return self.err("invalid \\u escape"),
                            }
                        }
                        _ => return self.err("invalid escape"),
                    }
                    run = self.pos;
                }
                Some(&c) if c < 0x20 => return self.err("control character in string"),
                Some(_) => self.pos += 1,
            }
        }
    }

    fn hex4(&mut self) -> JResult<u32> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.bytes().get(self.pos) {
                Some(&c) => match (c as char).to_digit(16) {
                    Some(d) => d,
                    None => return self.err("invalid \\u escape"),
                },
                None => return self.err("unterminated escape"),
            };
            v = (v << 4) | d;
            self.pos += 1;
        }
        Ok(v)
    }

    /// Reads a JSON number and returns its text.
    pub fn number(&mut self) -> JResult<&'a str> {
        self.skip_ws();
        let start = self.pos;
        let b = self.bytes();
        if b.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match b.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(c) if c.is_ascii_digit() => self.digits(),
            _ => return self.err("invalid number"),
        }
        if b.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !b.get(self.pos).is_some_and(u8::is_ascii_digit) {
                return self.err("invalid number");
            }
            self.digits();
        }
        if matches!(b.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(b.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !b.get(self.pos).is_some_and(u8::is_ascii_digit) {
                return self.err("invalid number");
            }
            self.digits();
        }
        match self.s.get(start..self.pos) {
            Some(t) => Ok(t),
            None => self.err("invalid number"),
        }
    }

    #[inline]
    fn digits(&mut self) {
        while self.bytes().get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> JResult<()> {
        let end = self.pos + word.len();
        if self.bytes().get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(())
        } else {
            self.err("invalid literal")
        }
    }

    /// A string or number as text, `null`, or any other value (skipped, validated).
    pub fn scalar(&mut self) -> JResult<Scalar<'a>> {
        match self.peek() {
            Some(b'"') => Ok(Scalar::Text(self.string()?)),
            Some(b'-' | b'0'..=b'9') => Ok(Scalar::Text(Cow::Borrowed(self.number()?))),
            Some(b'n') => {
                self.literal(b"null")?;
                Ok(Scalar::Null)
            }
            _ => {
                self.skip_value()?;
                Ok(Scalar::Other)
            }
        }
    }

    /// An integer value (JSON number without fraction or exponent); `None` for `null`.
    pub fn integer(&mut self) -> JResult<Option<i64>> {
        match self.peek() {
            Some(b'n') => {
                self.literal(b"null")?;
                Ok(None)
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                let t = self.number()?;
                match t.parse::<i64>() {
                    Ok(v) => Ok(Some(v)),
                    Err(_) => Err(SyntaxError {
                        pos: start,
                        what: "expected an integer",
                    }),
                }
            }
            _ => self.err("expected an integer"),
        }
    }

    /// Skips (and validates) one value of any type.
    pub fn skip_value(&mut self) -> JResult<()> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{') => self.object(|sc, _| sc.skip_value()),
            Some(b'[') => self.array(|sc| sc.skip_value()),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number().map(|_| ()),
            Some(_) => self.err("unexpected character"),
            None => self.err("unexpected end of frame"),
        }
    }

    fn enter(&mut self) -> JResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err("nesting too deep");
        }
        Ok(())
    }

    /// Walks an object; `f` is called with each key and must consume exactly its value.
    pub fn object<F>(&mut self, mut f: F) -> JResult<()>
    where
        F: FnMut(&mut Self, Cow<'a, str>) -> JResult<()>,
    {
        self.eat(b'{', "expected an object")?;
        self.enter()?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return self.err("expected an object key");
            }
            let key = self.string()?;
            self.eat(b':', "expected ':' after an object key")?;
            f(self, key)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return self.err("expected ',' or '}' in an object"),
            }
        }
    }

    /// Walks an array; `f` is called for each element and must consume it.
    pub fn array<F>(&mut self, mut f: F) -> JResult<()>
    where
        F: FnMut(&mut Self) -> JResult<()>,
    {
        self.eat(b'[', "expected an array")?;
        self.enter()?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            f(self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return self.err("expected ',' or ']' in an array"),
            }
        }
    }
}

/// Skips string bytes that need no attention (not `"`, not `\\`, not a control character), eight
/// at a time: ids, hashes and condition ids make up most of a venue frame's bytes.
#[inline]
fn skip_plain(b: &[u8], mut i: usize) -> usize {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i.wrapping_add(8)) {
        let Ok(arr) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(arr);
        let quote = w ^ (LO * u64::from(b'"'));
        let slash = w ^ (LO * u64::from(b'\\'));
        let special = (quote.wrapping_sub(LO) & !quote)
            | (slash.wrapping_sub(LO) & !slash)
            | (w.wrapping_sub(LO * 0x20) & !w);
        if special & HI != 0 {
            break;
        }
        i += 8;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(s: &str) -> bool {
        let mut sc = Scanner::new(s);
        sc.skip_value().and_then(|_| sc.finish()).is_ok()
    }

    #[test]
    fn validates_like_json() {
        for ok in [
            "{}",
            "[]",
            r#"{"a":[1,-2.5e+3,true,false,null,"x\"y\u00e9\ud83d\ude00"],"b":{}}"#,
            " [ 0 , 0.1 ] ",
            r#""\/\b\f\n\r\t""#,
        ] {
            assert!(valid(ok), "{ok}");
            assert!(serde_json::from_str::<serde_json::Value>(ok).is_ok());
        }
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\"}",
            "{\"a\":1,}",
            "01",
            "1.",
            "-",
            "tru",
            "\"\\x\"",
            "\"\u{1}\"",
            "[1 2]",
            "{} {}",
            "\"\\ud800\"",
            "{1:2}",
            "nul",
        ] {
            assert!(!valid(bad), "{bad}");
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(!valid(&deep));
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let mut sc = Scanner::new(r#""abc""#);
        assert!(matches!(sc.string(), Ok(Cow::Borrowed("abc"))));
        let mut sc = Scanner::new(r#""a\nb\u0041""#);
        assert_eq!(sc.string().ok().as_deref(), Some("a\nbA"));
    }

    proptest::proptest! {
        #[test]
        fn skip_plain_stops_at_the_first_special_byte(v in proptest::collection::vec(proptest::num::u8::ANY, 0..64), start in 0usize..8) {
            let start = start.min(v.len());
            let naive = v.iter().skip(start).position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .map_or(v.len(), |p| p + start);
            let fast = skip_plain(&v, start);
            proptest::prop_assert!(fast <= naive && naive - fast < 8, "fast {} naive {}", fast, naive);
        }

        #[test]
        fn agrees_with_serde_json(s in "[\\[\\]{}\":,0-9a-z\\\\ .eE+-]{0,40}") {
            let ours = valid(&s);
            let theirs = serde_json::from_str::<serde_json::Value>(&s).is_ok();
            proptest::prop_assert_eq!(ours, theirs, "{}", s);
        }
    }
}
