//! Tests of the compiled PreparePolymarketOrder step. The canonical encodings marked "upb" were
//! produced by Python's protobuf (upb) `SerializeToString(deterministic=True)` on the same input.

use super::*;
use crate::hex::decode_vec;
use crate::wire::{put_bytes, put_tag, put_varint, FIXED32, START_GROUP};

const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const ADDR: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const TOKEN: &str = "71321045679252212594626385532706912750332728571942532289631379312455583992563";

fn hex(s: &str) -> Vec<u8> {
    decode_vec("test", s).unwrap()
}

fn canon_hex(input: &[u8]) -> String {
    let c = PrepareRequest::decode(input).unwrap().canonical();
    encode_0x(&c)[2..].to_owned()
}

/// A tiny xorshift generator: reproducible inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn string(&mut self) -> String {
        const PARTS: &[&str] = &[
            "a", "Z", "0", "9", "é", "€", "😀", "\"", "\\", "\n", "\u{1}", " ",
        ];
        let n = self.below(6);
        (0..n)
            .map(|_| PARTS[self.below(PARTS.len() as u64) as usize])
            .collect()
    }
}

fn random_request(rng: &mut Rng) -> PrepareRequest {
    let mut m = PrepareRequest {
        request_id: rng.string(),
        chain_id: if rng.below(2) == 0 { 0 } else { rng.next() },
        neg_risk: rng.below(2) == 0,
        exchange: rng.string(),
        account: rng.string(),
        order_type: rng.string(),
        defer_exec: rng.below(2) == 0,
        post_only: rng.below(2) == 0,
        path: rng.string(),
        timestamp: rng.next() as i64 >> rng.below(64),
        ..PrepareRequest::default()
    };
    m.key = match rng.below(4) {
        0 => None,
        1 => Some(KeyRef::default()),
        2 => Some(KeyRef {
            choice: KeyChoice::Wallet(rng.string()),
            unknown: Vec::new(),
        }),
        _ => Some(KeyRef {
            choice: KeyChoice::Session(rng.string()),
            unknown: vec![0x18, 0x01],
        }),
    };
    for _ in 0..rng.below(6) {
        let k = rng.string();
        if m.get(&k).is_none() {
            m.order.push((k, rng.string()));
        }
    }
    if rng.below(3) == 0 {
        put_tag(&mut m.unknown, 20 + rng.below(100) as u32, VARINT);
        put_varint(&mut m.unknown, rng.next());
    }
    m
}

fn sorted(mut m: PrepareRequest) -> PrepareRequest {
    m.order.sort();
    m
}

#[test]
fn canonical_round_trips() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..2000 {
        let m = random_request(&mut rng);
        let c = m.canonical();
        let back = PrepareRequest::decode(&c).unwrap();
        assert_eq!(sorted(back.clone()), sorted(m.clone()));
        assert_eq!(back.canonical(), c);
        assert_eq!(back.fingerprint(), m.fingerprint());
    }
}

#[test]
fn canonical_matches_upb_on_odd_inputs() {
    // Fields out of order, unknown fields first: known fields in number order, unknowns last.
    assert_eq!(canon_hex(&hex("a001050a0141a80107")), "0a0141a00105a80107");
    // A known field number with another wire type is an unknown field.
    assert_eq!(canon_hex(&hex("0805")), "0805");
    assert_eq!(canon_hex(&hex("210100000000000000")), "210100000000000000");
    // Map: a repeated key keeps the last value; an empty entry is ("", "").
    assert_eq!(canon_hex(&hex("1a060a01610a0162")), "1a050a01621200");
    assert_eq!(canon_hex(&hex("1a00")), "1a040a001200");
    // upb's key order: common prefix bytewise, then the longer key first ("" last).
    let mut m = PrepareRequest::default();
    for k in ["b", "ab", "a", "ba", "\0", "\0\0", ""] {
        m.order.push((k.to_owned(), String::new()));
    }
    let c = m.canonical();
    let keys: Vec<Vec<u8>> = fields(&c)
        .into_iter()
        .map(|(_, e)| fields(&e)[0].1.clone())
        .collect();
    let want: [&[u8]; 7] = [b"\0\0", b"\0", b"ab", b"a", b"ba", b"b", b""];
    assert_eq!(keys, want);
    // A map entry with unknown fields is not in the map: re-encoded among the unknown fields.
    let m = PrepareRequest::decode(&hex("1a070a016112001805")).unwrap();
    assert!(m.order.is_empty());
    assert_eq!(encode_0x(&m.canonical()), "0x1a050a01611805");
    assert_eq!(
        canon_hex(&hex("a00101 1a050a01611805 0a0141 1a060a0162120163"
            .replace(' ', "")
            .as_str())),
        "0a01411a060a0162120163a001011a050a01611805"
    );
    assert_eq!(
        canon_hex(&hex("1a0b18050a0161120162120163")),
        "1a080a01611201631805"
    );
    assert_eq!(
        canon_hex(&hex("1a060a01611201621a080a01611201631801")),
        "1a060a01611201621a080a01611201631801"
    );
    assert_eq!(canon_hex(&hex("1a070a01611b08011c")), "1a070a01611b08011c");
    // Non-minimal varints inside an unknown entry are kept as sent; known fields are re-encoded.
    assert_eq!(
        canon_hex(&hex("1a078a0081006118 01".replace(' ', "").as_str())),
        "1a050a01611801"
    );
    // KeyRef: the oneof is present even when empty; merges keep the last choice and all unknowns.
    assert_eq!(canon_hex(&hex("12020a00")), "12020a00");
    assert_eq!(canon_hex(&hex("1200")), "1200");
    assert_eq!(
        canon_hex(&hex("12030a016112031201 62".replace(' ', "").as_str())),
        "1203120162"
    );
    assert_eq!(canon_hex(&hex("12030a01611200")), "12030a0161");
    assert_eq!(canon_hex(&hex("12021801")), "12021801");
    assert_eq!(
        canon_hex(&hex("12051801 0a0161 12052002120162"
            .replace(' ', "")
            .as_str())),
        "120712016218012002"
    );
    assert_eq!(
        canon_hex(&hex("12020801120 30a0161".replace(' ', "").as_str())),
        "12050a01610801"
    );
    // Scalars: bool from any non-zero varint, int64 negative as 10 bytes, 10-byte varints cut.
    assert_eq!(canon_hex(&hex("2802")), "2801");
    assert_eq!(canon_hex(&hex("2800")), "");
    assert_eq!(
        canon_hex(&hex("60ffffffffffffffffff01")),
        "60ffffffffffffffffff01"
    );
    assert_eq!(
        canon_hex(&hex("20ffffffffffffffffff7f")),
        "20ffffffffffffffffff01"
    );
    assert_eq!(canon_hex(&hex("88800005")), "88800005"); // unknown, kept raw
    assert_eq!(canon_hex(&hex("a3010801a401")), "a3010801a401");
    assert_eq!(canon_hex(&hex("a3010a02a301a401")), "a3010a02a301a401");
    assert_eq!(canon_hex(&hex("a3010001a401")), "a3010001a401"); // field 0 inside a group
    assert_eq!(canon_hex(&hex("a50101020304")), "a50101020304");
}

#[test]
fn malformed_inputs_are_errors_that_say_what() {
    let cases: &[(&str, &str)] = &[
        ("0001", "field number 0"),
        ("0200", "field number 0"),
        ("0c", "end of group"),
        ("0e", "wire type 6"),
        ("0f", "wire type 7"),
        ("1a050a016112", "runs past the end"), // a map entry cut short
        ("0a01ff", "request_id: not valid UTF-8"),
        ("1a030a01ff", "order (a key): not valid UTF-8"),
        ("12030a01ff", "key.wallet: not valid UTF-8"),
        ("2080808080808080808080 01", "longer than 10 bytes"),
        ("808080808001", "longer than 5 bytes"),
        ("f8ffffff1f00", "32 bits"),
        ("0a0541", "runs past the end"),
        ("0affffffff0f", "runs past the end"),
        ("0a808080808000", "longer than 5 bytes"),
        ("a301ac01", "end of group 21 inside group 20"),
        ("a3010801", "group 20 has no end"),
        ("a10101 0203".trim_end(), "cut off"),
        ("0a0080", "cut off"),
        ("12020c00", "end of group"),
        ("1a010c", "end of group"),
    ];
    for (h, want) in cases {
        let input = hex(&h.replace(' ', ""));
        let e = PrepareRequest::decode(&input).expect_err(h);
        assert!(e.to_string().contains(want), "{h}: {e}");
    }
    // A group spanning past the end of its sub-message.
    assert!(PrepareRequest::decode(&hex("1202a301a401")).is_err());
}

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

#[test]
fn nesting_limit_is_upbs() {
    assert!(PrepareRequest::decode(&nest(100)).is_ok());
    let e = PrepareRequest::decode(&nest(101)).unwrap_err();
    assert!(e.to_string().contains("nest more than 100"), "{e}");
    for field in [2u32, 3] {
        for (n, ok) in [(99, true), (100, false)] {
            let mut b = Vec::new();
            put_bytes(&mut b, field, &nest(n));
            assert_eq!(
                PrepareRequest::decode(&b).is_ok(),
                ok,
                "field {field} depth {n}"
            );
        }
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(12345);
    let good = valid_request("r-1", "BUY").canonical();
    for cut in 0..good.len() {
        let _ = PrepareRequest::decode(&good[..cut]);
    }
    for _ in 0..20_000 {
        let mut b = good.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(b.len() as u64) as usize;
            match rng.below(3) {
                0 => b[i] = rng.next() as u8,
                1 => {
                    b.remove(i);
                }
                _ => b.insert(i, rng.next() as u8),
            }
        }
        if let Ok(m) = PrepareRequest::decode(&b) {
            // Whatever decodes has a canonical form that decodes to the same message.
            let c = m.canonical();
            assert_eq!(PrepareRequest::decode(&c).unwrap().canonical(), c);
        }
    }
    for _ in 0..20_000 {
        let n = rng.below(64) as usize;
        let b: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        let _ = PrepareRequest::decode(&b);
    }
    // A stray fixed32 on the wire for a known number: unknown, not an error.
    let mut b = Vec::new();
    put_tag(&mut b, 7, FIXED32);
    b.extend_from_slice(&[1, 2, 3, 4]);
    put_tag(&mut b, 30, START_GROUP);
    put_tag(&mut b, 30, crate::wire::END_GROUP);
    assert_eq!(PrepareRequest::decode(&b).unwrap().unknown, b);
}

// --- the order step ----------------------------------------------------------------------------

fn valid_request(rid: &str, side: &str) -> PrepareRequest {
    let order = [
        ("salt", "123456789"),
        ("maker", ADDR),
        ("signer", ADDR),
        ("tokenId", TOKEN),
        ("makerAmount", "100000000"),
        ("takerAmount", "50000000"),
        ("side", side),
        ("signatureType", "0"),
        ("timestamp", "1713398400000"),
    ];
    PrepareRequest {
        request_id: rid.to_owned(),
        key: Some(KeyRef {
            choice: KeyChoice::Wallet("main".to_owned()),
            unknown: Vec::new(),
        }),
        order: order
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        account: "main".to_owned(),
        order_type: "FOK".to_owned(),
        timestamp: 1_700_000_123,
        ..PrepareRequest::default()
    }
}

fn set(m: &mut PrepareRequest, k: &str, v: &str) {
    match m.order.iter_mut().find(|(key, _)| key == k) {
        Some(slot) => slot.1 = v.to_owned(),
        None => m.order.push((k.to_owned(), v.to_owned())),
    }
}

fn unset(m: &mut PrepareRequest, k: &str) {
    m.order.retain(|(key, _)| key != k);
}

struct Fixture {
    key: EthKey,
    secret: HmacKey,
}

impl Fixture {
    fn new() -> Self {
        Self {
            key: EthKey::from_hex(KEY).unwrap(),
            secret: HmacKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap(),
        }
    }
    fn creds(&self) -> L2Creds<'_> {
        L2Creds {
            secret: &self.secret,
            api_key: "api-key",
            passphrase: "s3cret-passphrase",
            address: ADDR,
        }
    }
    fn prepare(&self, m: &PrepareRequest) -> Result<Prepared, KeyError> {
        prepare(m, &self.key, &self.creds(), || 1_699_999_999)
    }
}

#[test]
fn prepares_the_v2_known_answer() {
    let f = Fixture::new();
    let p = f.prepare(&valid_request("r-1", "BUY")).unwrap();
    // crossbook_keys::eip712 tests: the same order, hash and signature.
    assert_eq!(
        encode_0x(&p.hash),
        "0x32961c48ddac87ed3582f8e02097cd0eff4fcf80460306bd44b3710438dfa64c"
    );
    let sig = "0x89f178136333c8ebb32a19146cb891233e3202d474be6ef730c24dbc06ae4d2a0c99948a86d9b57de0f2c0bb8ec6964aa244ecf17cfa3a95b86878d0b64ad78a1b";
    assert_eq!(encode_0x(&p.signature), sig);
    let want = format!(
        concat!(
            r#"{{"order":{{"salt":123456789,"maker":"{a}","signer":"{a}","tokenId":"{t}","#,
            r#""makerAmount":"100000000","takerAmount":"50000000","side":"BUY","signatureType":0,"#,
            r#""timestamp":"1713398400000","metadata":"{z}","builder":"{z}","expiration":"0","#,
            r#""signature":"{s}"}},"owner":"api-key","orderType":"FOK","deferExec":false,"postOnly":false}}"#
        ),
        a = ADDR,
        t = TOKEN,
        z = ZERO_BYTES32,
        s = sig
    );
    assert_eq!(String::from_utf8(p.body.clone()).unwrap(), want);
    let headers: Vec<(&str, &str)> = p.headers().collect();
    let l2 = f
        .secret
        .l2_signature("1700000123", "POST", "/order", &p.body);
    assert_eq!(
        headers,
        [
            ("POLY_ADDRESS", ADDR),
            ("POLY_API_KEY", "api-key"),
            ("POLY_PASSPHRASE", "s3cret-passphrase"),
            ("POLY_SIGNATURE", l2.as_str()),
            ("POLY_TIMESTAMP", "1700000123"),
        ]
    );
    // The passphrase never shows in Debug output.
    assert!(!format!("{p:?}").contains("s3cret"));
}

#[test]
fn options_reach_body_and_headers() {
    let f = Fixture::new();
    let mut m = valid_request("r-2", "sell");
    m.timestamp = 0;
    m.path = "/v2/order".to_owned();
    m.defer_exec = true;
    m.post_only = true;
    m.order_type = "GTD".to_owned();
    set(&mut m, "signatureType", "EOA");
    set(&mut m, "expiration", "17\"00");
    set(&mut m, "salt", "000123");
    let p = f.prepare(&m).unwrap();
    let body = String::from_utf8(p.body.clone()).unwrap();
    assert!(body.starts_with(r#"{"order":{"salt":123,"#), "{body}");
    assert!(
        body.contains(r#""side":"SELL","signatureType":0,"#),
        "{body}"
    );
    assert!(body.contains(r#""expiration":"17\"00","#), "{body}");
    assert!(body.ends_with(r#""orderType":"GTD","deferExec":true,"postOnly":true}"#));
    let ts = p.headers().find(|h| h.0 == "POLY_TIMESTAMP").unwrap().1;
    assert_eq!(ts, "1699999999");
    let l2 = f.secret.l2_signature(ts, "POST", "/v2/order", &p.body);
    assert!(p.headers().any(|h| h == ("POLY_SIGNATURE", l2.as_str())));
    // neg_risk and chain pick the exchange (a different hash); an explicit exchange wins.
    let plain = f.prepare(&valid_request("r", "BUY")).unwrap().hash;
    let mut nr = valid_request("r", "BUY");
    nr.neg_risk = true;
    assert_ne!(f.prepare(&nr).unwrap().hash, plain);
    nr.exchange = "0xE111180000d2663C0091e4f400237545B87B996B".to_owned();
    assert_eq!(f.prepare(&nr).unwrap().hash, plain);
    let mut chain = valid_request("r", "BUY");
    chain.chain_id = 80002;
    let e = f.prepare(&chain).unwrap_err().to_string();
    assert_eq!(
        e,
        "exchange: no known exchange for version 2 on chain 80002: pass exchange="
    );
}

#[test]
fn refusals_name_the_field() {
    let f = Fixture::new();
    let err = |edit: &dyn Fn(&mut PrepareRequest)| {
        let mut m = valid_request("r", "BUY");
        edit(&mut m);
        f.prepare(&m).unwrap_err().to_string()
    };
    assert_eq!(
        err(&|m| m.order_type = "IOC".to_owned()),
        "order_type: 'IOC' is not one of ['FAK', 'FOK', 'GTC', 'GTD']"
    );
    assert_eq!(
        err(&|m| m.order_type = "it's".to_owned()),
        "order_type: \"it's\" is not one of ['FAK', 'FOK', 'GTC', 'GTD']"
    );
    assert_eq!(err(&|m| unset(m, "salt")), "salt: missing from the order");
    assert_eq!(
        err(&|m| unset(m, "timestamp")),
        "timestamp: missing from the order"
    );
    assert!(err(&|m| set(m, "maker", "0x12")).starts_with("maker: "));
    assert!(err(&|m| set(m, "tokenId", "-1")).starts_with("tokenId: "));
    assert_eq!(
        err(&|m| set(m, "side", "2")),
        "side: must be 0 (BUY) or 1 (SELL)"
    );
    assert_eq!(
        err(&|m| set(m, "side", "256")),
        "side: expected a small non-negative int"
    );
    assert!(err(&|m| set(m, "side", "buy it")).starts_with("side: unknown value"));
    assert!(err(&|m| set(m, "signatureType", "4")).starts_with("signatureType: must be 0..=3"));
    assert!(err(&|m| set(m, "metadata", "0x01")).starts_with("metadata: "));
    assert!(
        err(&|m| set(m, "signer", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"))
            .starts_with("signer: is not the signing key's address 0xf39F")
    );
    // Accepted by the signature, refused by the body (as the Python path does, after signing).
    assert_eq!(
        err(&|m| set(m, "salt", "0x10")),
        "salt: expected a non-negative integer (int or decimal string)"
    );
    assert_eq!(
        err(&|m| set(m, "side", "+1")),
        "side: expected BUY/SELL or 0/1"
    );
    assert_eq!(
        err(&|m| set(m, "signatureType", "eoa")),
        "signatureType: expected a non-negative integer (int or decimal string)"
    );
    // POLY_1271 has no signer rule; a digit side with leading zeros is still a side.
    let mut m = valid_request("r", "01");
    set(&mut m, "signatureType", "3");
    set(
        &mut m,
        "signer",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    );
    let body = String::from_utf8(f.prepare(&m).unwrap().body).unwrap();
    assert!(
        body.contains(r#""side":"SELL","signatureType":3,"#),
        "{body}"
    );
    // ...but not an amount side for the notional.
    assert_eq!(
        wallet_notional(&m).unwrap_err().to_string(),
        "side: expected 0/1 or BUY/SELL"
    );
}

#[test]
fn notional_is_pythons_decimal_string() {
    for (raw, want) in [
        ("5000000", "5"),
        ("1500000", "1.5"),
        ("1", "0.000001"),
        ("10", "0.00001"),
        ("0", "0"),
        ("000", "0"),
        ("1234567", "1.234567"),
        ("00012000000", "12"),
        ("1000000000000000000000000000", "1000000000000000000000"),
        (
            "1234567890123456789012345678",
            "1234567890123456789012.345678",
        ),
    ] {
        assert_eq!(usdc_decimal(raw).as_deref(), Some(want), "{raw}");
    }
    assert_eq!(usdc_decimal("12345678901234567890123456789"), None);
    let mut m = valid_request("r", "BUY");
    assert_eq!(wallet_notional(&m).unwrap(), "100");
    set(&mut m, "side", "1");
    assert_eq!(wallet_notional(&m).unwrap(), "50");
    set(&mut m, "takerAmount", "0x10");
    assert_eq!(
        wallet_notional(&m).unwrap_err().to_string(),
        "makerAmount/takerAmount: expected a non-negative integer in 6-decimal units"
    );
    unset(&mut m, "side");
    assert_eq!(wallet_notional(&m).unwrap(), "");
}

#[test]
fn python_rules_flag() {
    let m = valid_request("r", "BUY");
    assert!(!m.needs_python_rules());
    for (k, v, flagged) in [
        ("side", "١", true),
        ("signatureType", "٢", true),
        ("makerAmount", "²", true),
        ("takerAmount", "12345678901234567890123456789", true),
        ("takerAmount", "00001234567890123456789012345678", false),
        ("salt", "18446744073709551616", true),
        ("salt", "18446744073709551615", false),
        ("salt", "0x18446744073709551616", false),
        ("tokenId", "١", false),
    ] {
        let mut m = valid_request("r", "BUY");
        set(&mut m, k, v);
        assert_eq!(m.needs_python_rules(), flagged, "{k}={v}");
    }
}

#[test]
fn json_strings_are_orjsons() {
    let mut out = Vec::new();
    json_str(
        &mut out,
        "a\"b\\c\u{0}\u{1f}\u{8}\u{c}\n\r\t\u{7f}é😀\u{2028}",
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "\"a\\\"b\\\\c\\u0000\\u001f\\b\\f\\n\\r\\t\u{7f}é😀\u{2028}\""
    );
}

/// Fields of one message level: (number, wire type, raw value bytes or varint as bytes).
fn fields(b: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let mut r = Reader::new(b);
    let mut out = Vec::new();
    while !r.at_end() {
        let (f, wt) = r.tag().unwrap();
        let v = match wt {
            VARINT => r.varint().unwrap().to_string().into_bytes(),
            LEN => r.len_delimited().unwrap().to_vec(),
            _ => panic!("unexpected wire type {wt}"),
        };
        out.push((f, v));
    }
    out
}

#[test]
fn reply_encoding() {
    let f = Fixture::new();
    let p = f.prepare(&valid_request("r-9", "BUY")).unwrap();
    let audit = Audit {
        request_id: "r-9",
        key: "wallet:main",
        notional: "100",
        cumulative: "",
        signed_at_ms: 1_700_000_000_123,
    };
    let reply = encode_reply(&p, &audit, b"");
    let top = fields(&reply);
    let nums: Vec<u32> = top.iter().map(|x| x.0).collect();
    assert_eq!(nums, [1, 2, 3, 4, 4, 4, 4, 4, 5]);
    assert_eq!(top[0].1, encode_0x(&p.hash).into_bytes());
    assert_eq!(top[1].1, encode_0x(&p.signature).into_bytes());
    assert_eq!(top[2].1, p.body);
    let entries: Vec<(String, String)> = top[3..8]
        .iter()
        .map(|(_, e)| {
            let kv = fields(e);
            assert_eq!((kv[0].0, kv[1].0), (1, 2));
            (
                String::from_utf8(kv[0].1.clone()).unwrap(),
                String::from_utf8(kv[1].1.clone()).unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = p
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(entries, want);
    let a = fields(&top[8].1);
    assert_eq!(
        a,
        [
            (1, b"r-9".to_vec()),
            (2, b"signed".to_vec()),
            (3, b"wallet:main".to_vec()),
            (4, b"100".to_vec()),
            (6, b"1700000000123".to_vec()),
        ]
    );
    // With a session: cumulative and the blob are there.
    let audit = Audit {
        cumulative: "100",
        ..audit
    };
    let top = fields(&encode_reply(&p, &audit, b"blob"));
    assert_eq!(top.last().unwrap(), &(6, b"blob".to_vec()));
    assert!(fields(&top[8].1).contains(&(5, b"100".to_vec())));
}
