//! Condition operators, as operators of hosted PBX "advanced nodes" name them.

// Caller input (digits, values) reaches this module: no slice or index that can panic.
#![deny(clippy::string_slice, clippy::indexing_slicing)]
use serde::Deserialize;

/// How a condition case compares the variable with its value, written by name in a flow
/// file (`operator = "EqualTo"`). Values are trimmed and, unless the node is
/// `case_sensitive`, compared in lower case; ordering compares numbers as numbers when
/// both sides are numbers, text otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Operator {
    /// Equal (as numbers when both are; for a secret, exact text in constant time).
    EqualTo,
    /// Not [`Self::EqualTo`].
    NotEqualTo,
    /// The value occurs in the variable.
    Contains,
    /// The value does not occur in the variable.
    NotContains,
    /// The variable begins with the value.
    StartsWith,
    /// The variable ends with the value.
    EndsWith,
    /// The variable orders after the value.
    GreaterThan,
    /// The variable orders after or equal to the value.
    GreaterThanOrEqual,
    /// The variable orders before the value.
    LessThan,
    /// The variable orders before or equal to the value.
    LessThanOrEqual,
    /// The variable is empty or unset (no value needed).
    IsEmpty,
    /// The variable has a value (no value needed).
    IsNotEmpty,
    /// The value is a regular expression that matches somewhere in the variable.
    Matches,
    /// The variable is within `value..=to`.
    Between,
    /// The variable (`system.now`, Unix seconds) falls within the opening hours of the
    /// `[schedules.<value>]` block.
    WithinSchedule,
}

impl Operator {
    /// Whether the operator compares against a value (`IsEmpty` does not).
    pub fn needs_value(self) -> bool {
        !matches!(self, Self::IsEmpty | Self::IsNotEmpty)
    }

    /// Tests `left` against `right` (and `to` for Between). Ordering compares numbers
    /// numerically when both sides parse as numbers, text otherwise. `regex` is the
    /// compiled pattern for Matches. For a `secret` left side, `EqualTo` and `NotEqualTo`
    /// compare the text exactly (never as numbers: `0101010` is not `101010`) and in
    /// constant time, so response timing cannot tell how much of a guessed code was right.
    pub(crate) fn test(
        self,
        left: &str,
        right: &str,
        to: &str,
        case_sensitive: bool,
        regex: Option<&regex::Regex>,
        secret: bool,
    ) -> bool {
        let fold = |s: &str| {
            if case_sensitive {
                s.to_owned()
            } else {
                s.to_lowercase()
            }
        };
        let (l, r) = (fold(left.trim()), fold(right.trim()));
        if secret && matches!(self, Self::EqualTo | Self::NotEqualTo) {
            use subtle::ConstantTimeEq;
            let equal: bool = l.as_bytes().ct_eq(r.as_bytes()).into();
            return equal == (self == Self::EqualTo);
        }
        let order = |a: &str, b: &str| match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x.partial_cmp(&y),
            _ => Some(a.cmp(b)),
        };
        use std::cmp::Ordering::*;
        match self {
            Self::EqualTo => order(&l, &r) == Some(Equal),
            Self::NotEqualTo => order(&l, &r) != Some(Equal),
            Self::Contains => l.contains(&r),
            Self::NotContains => !l.contains(&r),
            Self::StartsWith => l.starts_with(&r),
            Self::EndsWith => l.ends_with(&r),
            Self::GreaterThan => order(&l, &r) == Some(Greater),
            Self::GreaterThanOrEqual => matches!(order(&l, &r), Some(Greater | Equal)),
            Self::LessThan => order(&l, &r) == Some(Less),
            Self::LessThanOrEqual => matches!(order(&l, &r), Some(Less | Equal)),
            Self::IsEmpty => l.is_empty(),
            Self::IsNotEmpty => !l.is_empty(),
            Self::Matches => regex.is_some_and(|re| re.is_match(left)),
            // Judged by the interpreter, which holds the flow's schedules.
            Self::WithinSchedule => false,
            Self::Between => {
                let t = fold(to.trim());
                matches!(order(&l, &r), Some(Greater | Equal))
                    && matches!(order(&l, &t), Some(Less | Equal))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::string_slice)]
mod tests {
    use super::Operator::{self, *};

    fn t(op: Operator, l: &str, r: &str) -> bool {
        op.test(l, r, "", false, None, false)
    }

    #[test]
    fn operator_table() {
        let cases: &[(Operator, &str, &str, bool)] = &[
            (EqualTo, "true", "true", true),
            (EqualTo, "TRUE", "true", true),
            (EqualTo, "10", "10.0", true),
            (EqualTo, "101010", "202020", false),
            (NotEqualTo, "a", "b", true),
            (Contains, "gold member", "GOLD", true),
            (NotContains, "silver", "gold", true),
            (StartsWith, "+4670", "+46", true),
            (EndsWith, "+4670", "70", true),
            (GreaterThan, "10", "9", true),
            (GreaterThan, "b", "a", true),
            (GreaterThan, "10", "9a", false),
            (GreaterThanOrEqual, "5", "5", true),
            (LessThan, "9", "10", true),
            (LessThanOrEqual, "4.5", "5", true),
            (IsEmpty, "  ", "", true),
            (IsNotEmpty, "x", "", true),
        ];
        for (op, l, r, want) in cases {
            assert_eq!(t(*op, l, r), *want, "{op:?} {l:?} {r:?}");
        }
    }

    #[test]
    fn case_sensitivity_and_between_and_matches() {
        assert!(!EqualTo.test("TRUE", "true", "", true, None, false));
        assert!(Between.test("3", "1", "5", false, None, false));
        assert!(Between.test("5", "1", "5", false, None, false));
        assert!(!Between.test("6", "1", "5", false, None, false));
        let re = regex::Regex::new("^[0-9]{6}$").unwrap();
        assert!(Matches.test("101010", "", "", false, Some(&re), false));
        assert!(!Matches.test("10101", "", "", false, Some(&re), false));
    }

    #[test]
    fn secrets_compare_as_exact_text() {
        assert!(EqualTo.test("101010", "101010", "", false, None, true));
        assert!(!EqualTo.test("0101010", "101010", "", false, None, true));
        assert!(
            EqualTo.test("0101010", "101010", "", false, None, false),
            "numbers otherwise"
        );
        assert!(!EqualTo.test("101011", "101010", "", false, None, true));
        assert!(NotEqualTo.test("101011", "101010", "", false, None, true));
        assert!(!NotEqualTo.test("101010", "101010", "", false, None, true));
    }
}
