//! Figures as people read them, the same in the terminal (`keel report`,
//! `keel evaluate`) and on the dashboard: one mark for "undefined", shares
//! as percentages with one decimal, money in whole units with thousands
//! separators or exact to the cent, signed differences in points.

use rust_decimal::Decimal;

/// What an undefined figure reads as (a ratio over nothing, a missing date).
pub const UNDEFINED: &str = "—";

/// A share (0.912) as a percentage with one decimal ("91.2%").
pub fn pct(share: Option<f64>) -> String {
    share.map_or_else(|| UNDEFINED.to_owned(), |x| format!("{:.1}%", x * 100.0))
}

/// A difference of shares (0.05) in percentage points with its sign ("+5.0").
pub fn points(difference: Option<f64>) -> String {
    difference.map_or_else(|| UNDEFINED.to_owned(), |d| format!("{:+.1}", d * 100.0))
}

/// An amount in whole units with thousands separators ("1,234,567").
pub fn money(amount: f64) -> String {
    let whole = amount.round() as i64;
    let digits = whole.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if whole < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An exact amount to the cent ("1234.50"), as reports that add up print it.
pub fn cents(amount: Decimal) -> String {
    format!("{:.2}", amount.round_dp(2))
}

/// A cell a spreadsheet will not run: text that starts like a formula
/// (`=`, `+`, `-`, `@`, tab, carriage return) gets a leading `'` (OWASP's
/// advice against CSV injection). For exports meant for people; exports
/// meant for re-import keep their text as stored.
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_as_people_write_them() {
        assert_eq!(money(1_234_567.4), "1,234,567");
        assert_eq!(money(-950.0), "-950");
        assert_eq!(money(-1_950.0), "-1,950");
        assert_eq!(money(0.0), "0");
        assert_eq!(pct(Some(0.9123)), "91.2%");
        assert_eq!(pct(None), UNDEFINED);
        assert_eq!(points(Some(0.05)), "+5.0");
        assert_eq!(points(Some(-0.123)), "-12.3");
        assert_eq!(cents(Decimal::new(123_456, 3)), "123.46");
    }

    #[test]
    fn formula_like_cells_are_made_text() {
        assert_eq!(super::spreadsheet_safe("=1+1"), "'=1+1");
        assert_eq!(super::spreadsheet_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(super::spreadsheet_safe("-2"), "'-2");
        assert_eq!(super::spreadsheet_safe("Acme"), "Acme");
    }
}
