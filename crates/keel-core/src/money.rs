//! Exact money amounts with an ISO 4217 currency code.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ValueError;

/// A three-letter ISO 4217 currency code such as `USD`, stored uppercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// US dollars, the currency assumed when a file leaves it out.
    pub const USD: Currency = Currency(*b"USD");

    /// Parses a three-letter code, case-insensitively.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let raw = raw.trim();
        let bytes = raw.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return Err(ValueError::new(format!(
                "currency {raw:?} is not a three-letter ISO 4217 code such as USD"
            )));
        }
        Ok(Self([
            bytes[0].to_ascii_uppercase(),
            bytes[1].to_ascii_uppercase(),
            bytes[2].to_ascii_uppercase(),
        ]))
    }

    /// The code, e.g. `"EUR"`.
    pub fn as_str(&self) -> &str {
        // The constructor only admits ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl TryFrom<String> for Currency {
    type Error = ValueError;
    fn try_from(raw: String) -> Result<Self, ValueError> {
        Self::parse(&raw)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An exact decimal amount in one currency. MRR, deltas and prices use it;
/// it never goes through floating point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// The amount, with at most 6 decimal places.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// The currency of `amount`.
    pub currency: Currency,
}

impl Money {
    /// Parses a signed amount such as `-120.50`. Thousands separators and
    /// currency symbols are rejected rather than guessed at.
    pub fn parse(amount: &str, currency: &str) -> Result<Self, ValueError> {
        let currency = Currency::parse(currency)?;
        let raw = amount.trim();
        let amount = Decimal::from_str(raw).map_err(|_| {
            ValueError::new(format!(
                "{raw:?} is not a decimal amount such as 1250.00 (no thousands separators or currency symbols)"
            ))
        })?;
        if amount.scale() > 6 {
            return Err(ValueError::new(format!("{raw:?} has more than 6 decimal places")));
        }
        Ok(Self { amount: amount.normalize_keep_cents(), currency })
    }

    /// Parses an amount that must be zero or more, such as a contract's MRR.
    pub fn parse_non_negative(amount: &str, currency: &str) -> Result<Self, ValueError> {
        let money = Self::parse(amount, currency)?;
        if money.amount.is_sign_negative() && !money.amount.is_zero() {
            return Err(ValueError::new(format!(
                "{} is negative; MRR must be zero or more (record a contraction as a new, smaller line)",
                money.amount
            )));
        }
        Ok(money)
    }

    /// Builds an amount from whole cents, for generated data.
    pub fn from_cents(cents: i64, currency: Currency) -> Self {
        Self { amount: Decimal::new(cents, 2), currency }
    }
}

trait KeepCents {
    fn normalize_keep_cents(self) -> Self;
}

impl KeepCents for Decimal {
    /// Drops trailing zeros beyond two decimal places, so `10.500` and
    /// `10.50` are the same stored value while `10.50` keeps its cents.
    fn normalize_keep_cents(self) -> Self {
        let mut d = self.normalize();
        if d.scale() < 2 {
            d.rescale(2);
        }
        d
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_keeps_exact_decimals() {
        let m = Money::parse("1250.5", "usd").unwrap();
        assert_eq!(m.to_string(), "1250.50 USD");
        assert_eq!(Money::parse("10.500", "EUR").unwrap(), Money::parse("10.5", "eur").unwrap());
        assert_eq!(Money::parse("0.125", "USD").unwrap().amount.to_string(), "0.125");
    }

    #[test]
    fn money_rejects_what_it_cannot_read_exactly() {
        assert!(Money::parse("1,250.00", "USD").is_err());
        assert!(Money::parse("$5", "USD").is_err());
        assert!(Money::parse("5", "US").is_err());
        assert!(Money::parse("0.0000001", "USD").is_err());
        let err = Money::parse_non_negative("-1", "USD").unwrap_err();
        assert!(err.0.contains("negative"), "{err}");
        assert!(Money::parse_non_negative("0", "USD").is_ok());
    }
}
