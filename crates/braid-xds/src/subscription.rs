//! What a watch asks the server for: everything of a type (wildcard) and/or a
//! set of names, changed at run time.

use std::collections::BTreeSet;

use crate::WILDCARD;

/// The initial subscription of a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subscription {
    /// Every resource of the type (sent as `"*"`). Names added later with
    /// [`ClientHandle::subscribe`](crate::ClientHandle::subscribe) are kept
    /// alongside the wildcard and do not narrow it.
    Wildcard,
    /// Only these names. May be empty: nothing is requested for the type until
    /// a name is subscribed (an empty first request would mean wildcard to
    /// an xDS server).
    Names(BTreeSet<String>),
}

/// The subscription state of one type: the wildcard flag and explicit names.
#[derive(Clone, Debug, Default)]
pub(crate) struct Subscribed {
    wildcard: bool,
    names: BTreeSet<String>,
}

// === impl Subscription ===

impl Subscription {
    /// An explicit subscription to `names`.
    pub fn names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Names(names.into_iter().map(Into::into).collect())
    }
}

// === impl Subscribed ===

impl Subscribed {
    pub(crate) fn new(subscription: Subscription) -> Self {
        match subscription {
            Subscription::Wildcard => Self {
                wildcard: true,
                names: BTreeSet::new(),
            },
            Subscription::Names(names) => Self {
                wildcard: false,
                names,
            },
        }
    }

    pub(crate) fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// How many explicit names are subscribed.
    pub(crate) fn name_count(&self) -> usize {
        self.names.len()
    }

    /// Whether there is anything to ask the server for.
    pub(crate) fn is_empty(&self) -> bool {
        !self.wildcard && self.names.is_empty()
    }

    /// Whether a resource with this name is wanted. A server may race an
    /// update against our unsubscribe; applying it would leave a resource the
    /// server will never remove, so unwanted names are dropped.
    pub(crate) fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    /// `resource_names_subscribe` of a stream's initial request.
    pub(crate) fn initial_names(&self) -> Vec<String> {
        let wildcard = self.wildcard.then(|| WILDCARD.to_string());
        wildcard
            .into_iter()
            .chain(self.names.iter().cloned())
            .collect()
    }

    /// Adds names ([`WILDCARD`] turns the wildcard on); returns those that
    /// were not subscribed yet. Empty names are ignored: no resource has one.
    pub(crate) fn add(&mut self, names: Vec<String>) -> Vec<String> {
        names
            .into_iter()
            .filter(|n| match n.as_str() {
                "" => false,
                WILDCARD => !std::mem::replace(&mut self.wildcard, true),
                _ => self.names.insert(n.clone()),
            })
            .collect()
    }

    /// Removes names ([`WILDCARD`] turns the wildcard off); returns those
    /// that were subscribed.
    pub(crate) fn remove(&mut self, names: Vec<String>) -> Vec<String> {
        names
            .into_iter()
            .filter(|n| match n.as_str() {
                WILDCARD => std::mem::replace(&mut self.wildcard, false),
                _ => self.names.remove(n),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_asks_for_star_and_wants_everything() {
        let mut s = Subscribed::new(Subscription::Wildcard);
        assert_eq!(s.add(vec!["a".into()]), vec!["a".to_string()]);
        assert_eq!(s.initial_names(), vec!["*".to_string(), "a".to_string()]);
        assert!(s.wants("anything"));
        assert!(!s.is_empty());
    }

    #[test]
    fn names_track_additions_and_removals() {
        let mut s = Subscribed::new(Subscription::names(["a"]));
        assert_eq!(s.add(vec!["a".into(), "b".into()]), vec!["b".to_string()]);
        assert!(s.wants("b") && !s.wants("c"));
        assert_eq!(
            s.remove(vec!["a".into(), "c".into()]),
            vec!["a".to_string()]
        );
        assert_eq!(s.initial_names(), vec!["b".to_string()]);
        s.remove(vec!["b".into()]);
        assert!(s.is_empty());
    }

    #[test]
    fn star_toggles_the_wildcard_and_empty_names_are_ignored() {
        let mut s = Subscribed::new(Subscription::names(["a"]));
        assert_eq!(s.add(vec!["*".into(), "".into()]), vec!["*".to_string()]);
        assert!(s.is_wildcard() && s.wants("b"));
        assert!(s.add(vec!["*".into()]).is_empty());
        assert_eq!(s.remove(vec!["*".into()]), vec!["*".to_string()]);
        assert!(!s.is_wildcard() && !s.wants("b") && s.wants("a"));
    }
}
