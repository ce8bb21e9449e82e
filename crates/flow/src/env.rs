//! Where `${NAME}` references in a flow get their values. The flow crate reads no process
//! environment: whoever starts a [`crate::Run`] hands it an [`Environment`], so a test or
//! a simulation decides exactly what a flow sees, and only the binary touches the real one.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The variables `${NAME}` in a flow's templates resolve from, passed to
/// [`crate::Run::start`] for every run.
///
/// The `concierge` binary builds one over its own process environment
/// ([`Environment::from_fn`] with a lookup of the variable at render time, so a value is
/// read when the flow needs it, as an operator expects); tests and simulations build one
/// from fixed pairs ([`Environment::from_pairs`]). The [`Default`] has no variable set:
/// every `${NAME}` renders empty. Cloning is cheap (one shared lookup), so one value can
/// sit in a shared, read-only program and be handed to every call.
///
/// `Debug` never prints a value: `${NAME}` is where flows keep tokens and passwords.
#[derive(Clone)]
pub struct Environment(Arc<Lookup>);

/// Answers one variable's value, `None` when it is not set.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

impl Environment {
    /// An environment that asks `lookup` for a variable each time a template reads it;
    /// `None` means not set (the reference renders empty).
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self(Arc::new(lookup))
    }

    /// An environment holding exactly `pairs` (name, value); any other name is not set.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let map: BTreeMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self::from_fn(move |name| map.get(name).cloned())
    }

    /// The value of `name`, or `None` when it is not set.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }

    /// The lookup as the template renderer takes it.
    pub(crate) fn lookup(&self) -> &Lookup {
        &*self.0
    }
}

impl Default for Environment {
    fn default() -> Self {
        Self::from_fn(|_| None)
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Environment(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_answer_their_names_only_and_debug_shows_no_value() {
        let env = Environment::from_pairs([("CRM_TOKEN", "s3cret")]);
        assert_eq!(env.get("CRM_TOKEN").as_deref(), Some("s3cret"));
        assert_eq!(env.get("OTHER"), None);
        assert_eq!(Environment::default().get("CRM_TOKEN"), None);
        assert!(!format!("{env:?}").contains("s3cret"));
    }
}
