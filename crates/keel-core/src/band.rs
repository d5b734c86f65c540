//! The health band: what the engine concludes from a score, what reports
//! group by, what the account list filters on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Health band, worst first (so `Ord` sorts at-risk accounts first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Band {
    /// At risk.
    Red,
    /// Watch.
    Yellow,
    /// Healthy.
    Green,
}

impl Band {
    /// Every band, worst first.
    pub const ALL: [Band; 3] = [Band::Red, Band::Yellow, Band::Green];

    /// Lowercase name, as stored and as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Red => "red",
            Self::Yellow => "yellow",
            Self::Green => "green",
        }
    }

    /// Every band's name, worst first.
    pub fn names() -> [&'static str; 3] {
        Self::ALL.map(Band::as_str)
    }
}

impl fmt::Display for Band {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a band.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a band (red, yellow, green)")]
pub struct UnknownBand(pub String);

impl FromStr for Band {
    type Err = UnknownBand;

    fn from_str(s: &str) -> Result<Self, UnknownBand> {
        Self::ALL.into_iter().find(|b| b.as_str() == s).ok_or_else(|| UnknownBand(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order_is_worst_first() {
        for b in Band::ALL {
            assert_eq!(b.as_str().parse::<Band>(), Ok(b));
            assert_eq!(serde_json::to_string(&b).unwrap(), format!("\"{b}\""));
        }
        assert!(Band::Red < Band::Green);
        assert_eq!("blue".parse::<Band>(), Err(UnknownBand("blue".into())));
    }
}
