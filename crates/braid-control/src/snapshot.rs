//! Immutable, versioned snapshots of every resource the xDS server serves,
//! plus a short history of which names changed, so streams can forward a
//! change without diffing everything.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    sync::Arc,
};

use braid_api::type_url;

/// How many past change sets a snapshot keeps. A stream that fell further
/// behind diffs the whole type instead (correct, just slower).
const HISTORY: usize = 64;

/// The resource types served, in a fixed order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    /// `braid.workload.v1alpha1.Workload`
    Workload = 0,
    /// `braid.workload.v1alpha1.Service`
    Service = 1,
    /// `braid.security.v1alpha1.Authorization`
    Authorization = 2,
    /// `braid.security.v1alpha1.PeerAuthentication`
    PeerAuthentication = 3,
    /// `braid.route.v1alpha1.HttpRoute`
    HttpRoute = 4,
}

/// One encoded resource with its version.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// xDS resource name.
    pub name: String,
    /// Content hash; equal versions mean equal bytes.
    pub version: String,
    /// The encoded message.
    pub body: prost_types::Any,
}

/// Every resource of one type, by name.
pub type Resources = BTreeMap<String, Arc<Resource>>;

/// The names that changed (updated, added or removed) in one publish.
#[derive(Clone, Debug, Default)]
pub struct ChangeSet {
    /// The snapshot version this change produced.
    pub version: u64,
    /// Changed names per type, indexed by `ResourceType as usize`.
    pub names: [BTreeSet<String>; ResourceType::COUNT],
}

/// Everything the xDS server serves at one point in time.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Increases by one with each publish; starts at 1 for the first full load.
    pub version: u64,
    /// Resources per type, indexed by `ResourceType as usize`.
    pub types: [Arc<Resources>; ResourceType::COUNT],
    /// The most recent change sets, oldest first.
    pub history: VecDeque<Arc<ChangeSet>>,
}

// === impl ResourceType ===

impl ResourceType {
    /// How many types there are: the length of every per-type array.
    pub const COUNT: usize = 5;

    /// Every type, in order.
    pub const ALL: [ResourceType; Self::COUNT] = [
        Self::Workload,
        Self::Service,
        Self::Authorization,
        Self::PeerAuthentication,
        Self::HttpRoute,
    ];

    /// The xDS type URL.
    pub fn type_url(self) -> &'static str {
        match self {
            Self::Workload => type_url::WORKLOAD,
            Self::Service => type_url::SERVICE,
            Self::Authorization => type_url::AUTHORIZATION,
            Self::PeerAuthentication => type_url::PEER_AUTHENTICATION,
            Self::HttpRoute => type_url::HTTP_ROUTE,
        }
    }

    /// The type for a URL; `None` when not served.
    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.type_url() == url)
    }
}

// === impl Resource ===

impl Resource {
    /// Encodes `message` of type `ty` under `name`; the version is a hash of the bytes.
    pub fn encode(ty: ResourceType, name: String, message: &impl prost::Message) -> Self {
        let value = message.encode_to_vec();
        let version = format!("{:016x}", crate::hash::fnv64(&value));
        Self {
            name,
            version,
            body: prost_types::Any {
                type_url: ty.type_url().to_string(),
                value,
            },
        }
    }
}

// === impl Snapshot ===

impl Snapshot {
    /// The resources of one type.
    pub fn resources(&self, ty: ResourceType) -> &Resources {
        &self.types[ty as usize]
    }

    /// The names of `ty` changed after version `since`, or `None` when the
    /// history no longer reaches back that far (diff everything instead).
    pub fn changed_since(&self, ty: ResourceType, since: u64) -> Option<BTreeSet<String>> {
        if since >= self.version {
            return Some(BTreeSet::new());
        }
        let oldest = self.history.front()?.version;
        if oldest > since + 1 {
            return None;
        }
        let mut names = BTreeSet::new();
        for change in self.history.iter().filter(|c| c.version > since) {
            names.extend(change.names[ty as usize].iter().cloned());
        }
        Some(names)
    }

    /// The next snapshot: `updates` replace or remove (`None`) resources.
    /// Returns `None` when nothing actually changed.
    pub fn next(&self, updates: crate::index::Updates) -> Option<Snapshot> {
        let mut change = ChangeSet {
            version: self.version + 1,
            ..Default::default()
        };
        let mut types = self.types.clone();
        for (i, updates) in updates.into_iter().enumerate() {
            let current = &self.types[i];
            let mut changed = BTreeSet::new();
            for (name, update) in updates {
                let same = match (&update, current.get(&name)) {
                    (Some(new), Some(old)) => new.version == old.version,
                    (None, None) => true,
                    _ => false,
                };
                if !same {
                    let map = Arc::make_mut(&mut types[i]);
                    match update {
                        Some(resource) => map.insert(name.clone(), resource),
                        None => map.remove(&name),
                    };
                    changed.insert(name);
                }
            }
            change.names[i] = changed;
        }
        if change.names.iter().all(BTreeSet::is_empty) {
            return None;
        }
        let mut history = self.history.clone();
        history.push_back(Arc::new(change));
        while history.len() > HISTORY {
            history.pop_front();
        }
        Some(Snapshot {
            version: self.version + 1,
            types,
            history,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(name: &str, body: &str) -> Option<Arc<Resource>> {
        let msg = braid_api::braid::workload::v1alpha1::Workload {
            uid: name.into(),
            name: body.into(),
            ..Default::default()
        };
        Some(Arc::new(Resource::encode(
            ResourceType::Workload,
            name.into(),
            &msg,
        )))
    }

    fn updates(items: Vec<(&str, Option<Arc<Resource>>)>) -> crate::index::Updates {
        let mut u: crate::index::Updates = Default::default();
        for (n, r) in items {
            u[0].insert(n.to_string(), r);
        }
        u
    }

    #[test]
    fn unchanged_resources_publish_nothing() {
        let s1 = Snapshot::default()
            .next(updates(vec![("a/1", res("a/1", "x"))]))
            .unwrap();
        assert_eq!(s1.version, 1);
        assert!(
            s1.next(updates(vec![("a/1", res("a/1", "x")), ("a/2", None)]))
                .is_none()
        );
    }

    #[test]
    fn history_lists_changed_names_until_it_runs_out() {
        let mut s = Snapshot::default()
            .next(updates(vec![("a/0", res("a/0", "0"))]))
            .unwrap();
        for i in 1..=HISTORY as u64 + 5 {
            s = s
                .next(updates(vec![("a/x", res("a/x", &i.to_string()))]))
                .unwrap();
        }
        let v = s.version;
        assert_eq!(
            s.changed_since(ResourceType::Workload, v - 1)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            s.changed_since(ResourceType::Service, v - 1).unwrap().len(),
            0
        );
        assert!(s.changed_since(ResourceType::Workload, 1).is_none());
        let removed = s.next(updates(vec![("a/x", None)])).unwrap();
        assert!(
            removed
                .resources(ResourceType::Workload)
                .get("a/x")
                .is_none()
        );
        assert!(
            removed
                .changed_since(ResourceType::Workload, v)
                .unwrap()
                .contains("a/x")
        );
    }
}
