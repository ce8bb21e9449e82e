//! Transfers through a registered SIP trunk (issue 23): a transfer node names the trunk in
//! its target, `target = "sip:+4612345@trunk:carrier"`, or in a field of its own,
//! `trunk = "carrier"`. The flow only names it; which trunks exist, their registrars and
//! credentials are the server's configuration, which checks every name a flow uses.
//!
//! A trunk carries a call the server places itself (a bridge), or one a 302 sends the
//! caller's side to; a REFER's target is called by the caller's phone, which has neither
//! the trunk's route nor its credentials, so REFER modes cannot name one.

// Flow text reaches this module: no slice or index that can panic.
#![deny(clippy::string_slice, clippy::indexing_slicing)]

use crate::model::TransferMode;

/// What stands in a target's host to name a trunk: `sip:USER@trunk:NAME`.
pub const TRUNK_HOST: &str = "trunk:";

/// A target that names a trunk, split: `sips:+4612345@trunk:carrier;user=phone` is
/// scheme `sips`, user `+4612345`, trunk `carrier`, params `;user=phone`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrunkTarget<'a> {
    /// `sip` or `sips`.
    pub scheme: &'a str,
    /// The user part: the number or name the trunk is asked to reach.
    pub user: &'a str,
    /// The trunk's name.
    pub trunk: &'a str,
    /// URI parameters and headers after the name, as written (`;user=phone`, `?…`).
    pub rest: &'a str,
}

impl<'a> TrunkTarget<'a> {
    /// `Some` when `target` (a rendered transfer target) names a trunk in its host.
    pub fn parse(target: &'a str) -> Option<Self> {
        let (scheme, rest) = target.split_once(':')?;
        if !(scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")) {
            return None;
        }
        let (user, host) = rest.rsplit_once('@')?;
        let name_and_rest = host.strip_prefix(TRUNK_HOST)?;
        let end = name_and_rest
            .find([';', '?'])
            .unwrap_or(name_and_rest.len());
        let (trunk, rest) = name_and_rest.split_at_checked(end)?;
        Some(Self {
            scheme,
            user,
            trunk,
            rest,
        })
    }
}

/// Whether `name` can name a trunk: 1 to 64 letters, digits, `-`, `_` or `.` (the same
/// rule as `[[trunks]] name` in the server's configuration).
pub fn is_trunk_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The trunk a transfer node goes through, from its target's source text and its `trunk`
/// field, or the field and message of what is wrong.
pub(crate) fn node_trunk(
    target: &str,
    field: Option<&str>,
    mode: TransferMode,
) -> Result<Option<String>, (&'static str, String)> {
    let in_target = match target.rsplit_once('@') {
        Some((_, host)) if host.starts_with(TRUNK_HOST) => {
            let named = TrunkTarget::parse(target)
                .map(|t| t.trunk)
                .unwrap_or_default();
            if !is_trunk_name(named) {
                return Err((
                    "target",
                    format!(
                        "{target:?}: after @{TRUNK_HOST} write the trunk's name itself (letters, digits, - _ .), not a template"
                    ),
                ));
            }
            Some(named)
        }
        _ => None,
    };
    if let Some(name) = field {
        if !is_trunk_name(name) {
            return Err((
                "trunk",
                format!("{name:?}: a trunk name is letters, digits, - _ . (at most 64)"),
            ));
        }
    }
    let trunk = match (in_target, field) {
        (Some(a), Some(b)) if a != b => {
            return Err((
                "trunk",
                format!("{b:?} differs from the trunk the target names ({a:?}): name one"),
            ))
        }
        (a, b) => a.or(b).map(str::to_owned),
    };
    if trunk.is_some() && matches!(mode, TransferMode::Refer | TransferMode::ReferOrBridge) {
        return Err((
            "mode",
            "a REFER target is called by the caller's phone, which cannot use our trunk: set mode = \"bridge\" or \"redirect\"".into(),
        ));
    }
    Ok(trunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_naming_a_trunk_splits_into_its_parts() {
        let t = TrunkTarget::parse("sips:+4612345@trunk:carrier;user=phone").unwrap();
        assert_eq!(
            (t.scheme, t.user, t.trunk, t.rest),
            ("sips", "+4612345", "carrier", ";user=phone")
        );
        assert_eq!(TrunkTarget::parse("sip:+4612345@carrier.example"), None);
        assert_eq!(TrunkTarget::parse("tel:+4612345"), None);
    }

    #[test]
    fn the_trunk_comes_from_the_target_or_the_field_and_both_must_agree() {
        let bridge = TransferMode::Bridge;
        assert_eq!(
            node_trunk("sip:{caller}@trunk:carrier", None, bridge),
            Ok(Some("carrier".into()))
        );
        assert_eq!(
            node_trunk(
                "sip:+46@sbc.example",
                Some("carrier"),
                TransferMode::Redirect
            ),
            Ok(Some("carrier".into()))
        );
        assert_eq!(node_trunk("sip:+46@sbc.example", None, bridge), Ok(None));
        assert_eq!(
            node_trunk("sip:+46@trunk:a", Some("b"), bridge)
                .unwrap_err()
                .0,
            "trunk"
        );
        assert_eq!(
            node_trunk("sip:+46@trunk:{which}", None, bridge)
                .unwrap_err()
                .0,
            "target"
        );
        assert_eq!(
            node_trunk("sip:+46@x", Some("no spaces"), bridge)
                .unwrap_err()
                .0,
            "trunk"
        );
    }

    #[test]
    fn refer_modes_cannot_go_through_a_trunk() {
        for mode in [TransferMode::Refer, TransferMode::ReferOrBridge] {
            assert_eq!(
                node_trunk("sip:+46@trunk:carrier", None, mode)
                    .unwrap_err()
                    .0,
                "mode"
            );
        }
    }
}
