//! EIP-712 hashing for what Polymarket signs: CTF Exchange orders (V1, V2, V3) and ClobAuth (L1).
//!
//! digest = keccak256(0x19 0x01 ‖ domainSeparator ‖ hashStruct(message)).

use std::sync::OnceLock;

use crate::abi::{address_word, check_width, uint_word, Address, Word};
use crate::error::KeyError;
use crate::keccak::{keccak256, keccak256_parts};

pub const DOMAIN_TYPE: &str =
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)";
pub const DOMAIN_TYPE_NO_CONTRACT: &str =
    "EIP712Domain(string name,string version,uint256 chainId)";
pub const ORDER_V1_TYPE: &str = "Order(uint256 salt,address maker,address signer,address taker,uint256 tokenId,uint256 makerAmount,uint256 takerAmount,uint256 expiration,uint256 nonce,uint256 feeRateBps,uint8 side,uint8 signatureType)";
pub const ORDER_V2_TYPE: &str = "Order(uint256 salt,address maker,address signer,uint256 tokenId,uint256 makerAmount,uint256 takerAmount,uint8 side,uint8 signatureType,uint256 timestamp,bytes32 metadata,bytes32 builder)";
pub const CLOB_AUTH_TYPE: &str =
    "ClobAuth(address address,string timestamp,uint256 nonce,string message)";
pub const CLOB_AUTH_MESSAGE: &str = "This message attests that I control the given wallet";
pub const EXCHANGE_NAME: &str = "Polymarket CTF Exchange";
pub const CLOB_AUTH_DOMAIN_NAME: &str = "ClobAuthDomain";

struct TypeHashes {
    domain: Word,
    domain_no_contract: Word,
    order_v1: Word,
    order_v2: Word,
    clob_auth: Word,
    exchange_name: Word,
    clob_auth_name: Word,
    clob_auth_message: Word,
}

fn th() -> &'static TypeHashes {
    static T: OnceLock<TypeHashes> = OnceLock::new();
    T.get_or_init(|| TypeHashes {
        domain: keccak256(DOMAIN_TYPE.as_bytes()),
        domain_no_contract: keccak256(DOMAIN_TYPE_NO_CONTRACT.as_bytes()),
        order_v1: keccak256(ORDER_V1_TYPE.as_bytes()),
        order_v2: keccak256(ORDER_V2_TYPE.as_bytes()),
        clob_auth: keccak256(CLOB_AUTH_TYPE.as_bytes()),
        exchange_name: keccak256(EXCHANGE_NAME.as_bytes()),
        clob_auth_name: keccak256(CLOB_AUTH_DOMAIN_NAME.as_bytes()),
        clob_auth_message: keccak256(CLOB_AUTH_MESSAGE.as_bytes()),
    })
}

/// Domain separator for `{name, version, chainId[, verifyingContract]}`.
pub fn domain_separator(
    name: &str,
    version: &str,
    chain_id: u64,
    verifying_contract: Option<&Address>,
) -> Word {
    let t = th();
    let name_h = keccak256(name.as_bytes());
    let version_h = keccak256(version.as_bytes());
    let chain = uint_word(u128::from(chain_id));
    match verifying_contract {
        Some(a) => keccak256_parts(&[&t.domain, &name_h, &version_h, &chain, &address_word(a)]),
        None => keccak256_parts(&[&t.domain_no_contract, &name_h, &version_h, &chain]),
    }
}

/// `keccak256(0x1901 ‖ domainSeparator ‖ structHash)`.
pub fn digest(domain_separator: &Word, struct_hash: &Word) -> Word {
    keccak256_parts(&[b"\x19\x01", domain_separator, struct_hash])
}

/// Which Polymarket CTF Exchange order format: V1 (legacy struct), V2, V3 (V2 struct, domain "3").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderVersion {
    V1,
    V2,
    V3,
}

impl OrderVersion {
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        match s {
            "1" => Ok(Self::V1),
            "2" => Ok(Self::V2),
            "3" => Ok(Self::V3),
            _ => Err(KeyError::input(
                "version",
                format!("unknown order version {s:?}: use \"1\", \"2\" or \"3\""),
            )),
        }
    }

    pub fn domain_version(self) -> &'static str {
        match self {
            Self::V1 => "1",
            Self::V2 => "2",
            Self::V3 => "3",
        }
    }

    /// Whether the signed struct is the V1 one (taker, expiration, nonce, feeRateBps).
    pub fn legacy_struct(self) -> bool {
        self == Self::V1
    }
}

/// Domain separator of the Polymarket CTF Exchange at `exchange`.
pub fn exchange_domain(version: OrderVersion, chain_id: u64, exchange: &Address) -> Word {
    let t = th();
    let version_h = keccak256(version.domain_version().as_bytes());
    keccak256_parts(&[
        &t.domain,
        &t.exchange_name,
        &version_h,
        &uint_word(u128::from(chain_id)),
        &address_word(exchange),
    ])
}

/// The fields of a V1 order (all uint256 as 32-byte big-endian words).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrderV1 {
    pub salt: Word,
    pub maker: Address,
    pub signer: Address,
    pub taker: Address,
    pub token_id: Word,
    pub maker_amount: Word,
    pub taker_amount: Word,
    pub expiration: Word,
    pub nonce: Word,
    pub fee_rate_bps: Word,
    pub side: u8,
    pub signature_type: u8,
}

/// The fields of a V2/V3 order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OrderV2 {
    pub salt: Word,
    pub maker: Address,
    pub signer: Address,
    pub token_id: Word,
    pub maker_amount: Word,
    pub taker_amount: Word,
    pub side: u8,
    pub signature_type: u8,
    pub timestamp: Word,
    pub metadata: Word,
    pub builder: Word,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    V1(OrderV1),
    V2(OrderV2),
}

fn check_side_and_type(side: u8, signature_type: u8, max_type: u8) -> Result<(), KeyError> {
    if side > 1 {
        return Err(KeyError::input("side", "must be 0 (BUY) or 1 (SELL)"));
    }
    if signature_type > max_type {
        return Err(KeyError::input(
            "signatureType",
            format!(
                "must be 0..={max_type} (EOA, POLY_PROXY, POLY_GNOSIS_SAFE{})",
                if max_type == 3 { ", POLY_1271" } else { "" }
            ),
        ));
    }
    Ok(())
}

impl OrderV1 {
    pub fn struct_hash(&self) -> Result<Word, KeyError> {
        check_side_and_type(self.side, self.signature_type, 2)?;
        let t = th();
        Ok(keccak256_parts(&[
            &t.order_v1,
            &self.salt,
            &address_word(&self.maker),
            &address_word(&self.signer),
            &address_word(&self.taker),
            &self.token_id,
            &self.maker_amount,
            &self.taker_amount,
            &self.expiration,
            &self.nonce,
            &self.fee_rate_bps,
            &uint_word(u128::from(self.side)),
            &uint_word(u128::from(self.signature_type)),
        ]))
    }
}

impl OrderV2 {
    pub fn struct_hash(&self) -> Result<Word, KeyError> {
        check_side_and_type(self.side, self.signature_type, 3)?;
        let t = th();
        Ok(keccak256_parts(&[
            &t.order_v2,
            &self.salt,
            &address_word(&self.maker),
            &address_word(&self.signer),
            &self.token_id,
            &self.maker_amount,
            &self.taker_amount,
            &uint_word(u128::from(self.side)),
            &uint_word(u128::from(self.signature_type)),
            &self.timestamp,
            &self.metadata,
            &self.builder,
        ]))
    }
}

impl Order {
    pub fn struct_hash(&self) -> Result<Word, KeyError> {
        match self {
            Order::V1(o) => o.struct_hash(),
            Order::V2(o) => o.struct_hash(),
        }
    }
}

/// The EIP-712 digest (= Polymarket order hash / id) of `order` on `exchange`.
pub fn order_digest(
    order: &Order,
    version: OrderVersion,
    chain_id: u64,
    exchange: &Address,
) -> Result<Word, KeyError> {
    match (order, version.legacy_struct()) {
        (Order::V1(_), true) | (Order::V2(_), false) => {}
        _ => {
            return Err(KeyError::input(
                "version",
                "order fields do not match the version (V1 has taker/expiration/nonce/feeRateBps; V2/V3 have timestamp/metadata/builder)",
            ))
        }
    }
    let sh = order.struct_hash()?;
    Ok(digest(&exchange_domain(version, chain_id, exchange), &sh))
}

/// The ClobAuth (L1) digest: domain `{ClobAuthDomain, "1", chainId}`.
pub fn clob_auth_digest(address: &Address, timestamp: &str, nonce: &Word, chain_id: u64) -> Word {
    let t = th();
    let sh = keccak256_parts(&[
        &t.clob_auth,
        &address_word(address),
        &keccak256(timestamp.as_bytes()),
        nonce,
        &t.clob_auth_message,
    ]);
    let dom = keccak256_parts(&[
        &t.domain_no_contract,
        &t.clob_auth_name,
        &keccak256(b"1"),
        &uint_word(u128::from(chain_id)),
    ]);
    digest(&dom, &sh)
}

/// Reject uint8 words that do not fit (used by callers parsing side/signatureType as words).
pub fn small_uint(field: &str, w: &Word) -> Result<u8, KeyError> {
    check_width(field, w, 8)?;
    Ok(w[31])
}

/// Polymarket CTF Exchange contracts (venues.md §2). `None`: not known for that combination.
pub fn exchange_address(chain_id: u64, neg_risk: bool, version: OrderVersion) -> Option<Address> {
    let hex = match (chain_id, version, neg_risk) {
        (137, OrderVersion::V1, false) => "4bFb41d5B3570DeFd03C39a9A4D8dE6Bd8B8982E",
        (137, OrderVersion::V1, true) => "C5d563A36AE78145C45a50134d48A1215220f80a",
        (80002, OrderVersion::V1, false) => "dFE02Eb6733538f8Ea35D585af8DE5958AD99E40",
        (137, OrderVersion::V2, false) => "E111180000d2663C0091e4f400237545B87B996B",
        (137, OrderVersion::V2, true) => "e2222d279d744050d28e00520010520000310F59",
        (137, OrderVersion::V3, false) => "e3333700cA9d93003F00f0F71f8515005F6c00Aa",
        _ => return None,
    };
    let mut out = [0u8; 20];
    crate::hex::decode_into("exchange", hex, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{parse_address, parse_uint256};
    use crate::hex::encode_0x;
    use crate::secp::EthKey;

    const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    #[test]
    fn domain_separators_go_order_utils() {
        let zero = [0u8; 20];
        let cases = [
            (
                80002,
                Some(&zero),
                "0x029ca49b31e01a0230787b3673a6977ee0dbb02f78e68d2ee41d330893e17594",
            ),
            (
                137,
                Some(&zero),
                "0x0ba60c2a4504ef46ef2d139f27cd131dbc8b9643d0565a54bb14de0e31cd5600",
            ),
            (
                80002,
                None,
                "0xf231a704e0942ea4f4f4a68a19fa01e198ddae4595d821697230159c60e562b0",
            ),
            (
                137,
                None,
                "0xaee1d7dd93bb10f6c6a59417017905bc5dbec7ddbd71475cd19d8a95845e632d",
            ),
        ];
        for (chain, c, want) in cases {
            assert_eq!(
                encode_0x(&domain_separator(EXCHANGE_NAME, "1", chain, c)),
                want
            );
        }
        assert_eq!(
            exchange_domain(OrderVersion::V1, 137, &zero),
            domain_separator(EXCHANGE_NAME, "1", 137, Some(&zero))
        );
    }

    #[test]
    fn v2_order_kat() {
        let maker = parse_address("maker", "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266").unwrap();
        let o = Order::V2(OrderV2 {
            salt: parse_uint256("salt", "123456789").unwrap(),
            maker,
            signer: maker,
            token_id: parse_uint256(
                "tokenId",
                "71321045679252212594626385532706912750332728571942532289631379312455583992563",
            )
            .unwrap(),
            maker_amount: parse_uint256("m", "100000000").unwrap(),
            taker_amount: parse_uint256("t", "50000000").unwrap(),
            side: 0,
            signature_type: 0,
            timestamp: parse_uint256("ts", "1713398400000").unwrap(),
            metadata: [0; 32],
            builder: [0; 32],
        });
        let ex = exchange_address(137, false, OrderVersion::V2).unwrap();
        let d = order_digest(&o, OrderVersion::V2, 137, &ex).unwrap();
        assert_eq!(
            encode_0x(&d),
            "0x32961c48ddac87ed3582f8e02097cd0eff4fcf80460306bd44b3710438dfa64c"
        );
        let sig = EthKey::from_hex(KEY).unwrap().sign_digest(&d).unwrap();
        assert_eq!(encode_0x(&sig), "0x89f178136333c8ebb32a19146cb891233e3202d474be6ef730c24dbc06ae4d2a0c99948a86d9b57de0f2c0bb8ec6964aa244ecf17cfa3a95b86878d0b64ad78a1b");
        // V1 struct under a V2 version is refused, not silently hashed.
        assert!(order_digest(&Order::V1(OrderV1::default()), OrderVersion::V2, 137, &ex).is_err());
    }

    #[test]
    fn clob_auth_kat() {
        let k = EthKey::from_hex(KEY).unwrap();
        let d = clob_auth_digest(&k.address(), "10000000", &uint_word(23), 80002);
        assert_eq!(encode_0x(&k.sign_digest(&d).unwrap()), "0xf62319a987514da40e57e2f4d7529f7bac38f0355bd88bb5adbb3768d80de6c1682518e0af677d5260366425f4361e7b70c25ae232aff0ab2331e2b164a1aedc1b");
    }

    #[test]
    fn bad_side_and_type() {
        let o = OrderV2 {
            side: 2,
            ..OrderV2::default()
        };
        assert!(o.struct_hash().is_err());
        let o = OrderV1 {
            signature_type: 3,
            ..OrderV1::default()
        };
        assert!(o.struct_hash().is_err());
    }
}
