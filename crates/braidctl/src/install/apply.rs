//! Server-side apply of one object through the dynamic API: discovery maps
//! its apiVersion and kind to a resource, a read before the apply tells
//! created, configured and unchanged apart.

use std::collections::{BTreeSet, HashMap};

use anyhow::Context as _;
use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams},
    core::GroupVersionKind,
    discovery::{ApiCapabilities, ApiResource, Scope},
};

use super::manifests::kind_of;

/// The field manager of everything braidctl applies.
const FIELD_MANAGER: &str = "braidctl";

/// What applying an object did (or, in a dry run, would do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// It did not exist.
    Created,
    /// It existed and changed.
    Configured,
    /// It existed and already matched.
    Unchanged,
    /// Dry run only: it would be created in a namespace the same run
    /// creates, which the server cannot check before that namespace exists.
    Unchecked,
}

/// Applies objects; remembers discovery answers per kind.
pub(super) struct Applier {
    client: Client,
    dry_run: bool,
    resources: HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>,
}

// === impl Applier ===

impl Applier {
    /// An applier for `client`; `dry_run` asks for server-side dry runs.
    pub(super) fn new(client: Client, dry_run: bool) -> Self {
        Self {
            client,
            dry_run,
            resources: HashMap::new(),
        }
    }

    /// Applies `object`. A namespaced object whose namespace is in
    /// `pending` (created by this dry run) is not sent.
    pub(super) async fn apply(
        &mut self,
        object: &DynamicObject,
        pending: &BTreeSet<String>,
    ) -> anyhow::Result<Outcome> {
        let what = describe(object);
        let api = self
            .api(object)
            .await
            .with_context(|| format!("cannot apply {what}"))?;
        let name = object.metadata.name.as_deref().unwrap_or_default();
        if object
            .metadata
            .namespace
            .as_ref()
            .is_some_and(|ns| pending.contains(ns))
        {
            return Ok(Outcome::Unchecked);
        }
        let before = api
            .get_opt(name)
            .await
            .map_err(hint)
            .with_context(|| format!("cannot read {what}"))?;
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        if self.dry_run {
            params = params.dry_run();
        }
        let after = api
            .patch(name, &params, &Patch::Apply(object))
            .await
            .map_err(hint)
            .with_context(|| format!("cannot apply {what}"))?;
        Ok(match before {
            None => Outcome::Created,
            Some(before) if comparable(&before) == comparable(&after) => Outcome::Unchanged,
            Some(_) => Outcome::Configured,
        })
    }

    /// The line printed for `object`.
    pub(super) fn line(&self, object: &DynamicObject, outcome: Outcome) -> String {
        let suffix = if self.dry_run { " (dry run)" } else { "" };
        let what = describe(object);
        match outcome {
            Outcome::Created => format!("{what} created{suffix}"),
            Outcome::Configured => format!("{what} configured{suffix}"),
            Outcome::Unchanged => format!("{what} unchanged{suffix}"),
            Outcome::Unchecked => format!(
                "{what} created (dry run; not checked by the server: its namespace does not exist yet)"
            ),
        }
    }

    /// The API of `object`'s kind, scoped to its namespace when it has one.
    async fn api(&mut self, object: &DynamicObject) -> anyhow::Result<Api<DynamicObject>> {
        let types = object
            .types
            .as_ref()
            .context("the object has no apiVersion/kind")?;
        let gvk = GroupVersionKind::try_from(types)?;
        let (resource, capabilities) = match self.resources.get(&gvk) {
            Some(found) => found.clone(),
            None => {
                let found = kube::discovery::pinned_kind(&self.client, &gvk)
                    .await
                    .map_err(hint)
                    .with_context(|| {
                        format!(
                            "the API server does not serve {} {}",
                            types.api_version, types.kind
                        )
                    })?;
                self.resources.insert(gvk, found.clone());
                found
            }
        };
        let client = self.client.clone();
        Ok(match (capabilities.scope, &object.metadata.namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client, ns, &resource),
            (Scope::Namespaced, None) => Api::default_namespaced_with(client, &resource),
            (Scope::Cluster, _) => Api::all_with(client, &resource),
        })
    }
}

/// `Kind namespace/name`, or `Kind name` for cluster-scoped objects.
pub(super) fn describe(object: &DynamicObject) -> String {
    let name = object.metadata.name.as_deref().unwrap_or("?");
    match &object.metadata.namespace {
        Some(ns) => format!("{} {ns}/{name}", kind_of(object)),
        None => format!("{} {name}", kind_of(object)),
    }
}

/// The object without what every write (or dry run) changes by itself.
fn comparable(object: &DynamicObject) -> serde_json::Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    // Controllers write status at any time; it is not ours.
    if let Some(object) = value.as_object_mut() {
        object.remove("status");
    }
    if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        for field in ["managedFields", "resourceVersion", "generation"] {
            meta.remove(field);
        }
    }
    value
}

/// The API server's message, plus what to do for the errors a user can fix.
pub(crate) fn hint(error: kube::Error) -> anyhow::Error {
    match &error {
        kube::Error::Api(status) => {
            let hint = match status.code {
                403 => {
                    "; this needs cluster-admin rights (check with `kubectl auth can-i '*' '*'`)"
                }
                401 => "; the kubeconfig's credentials were refused: log in again",
                _ => "",
            };
            anyhow::anyhow!("{} (HTTP {}){hint}", status.message, status.code)
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => anyhow::anyhow!(
            "{error}; is the API server of the kubeconfig's current context reachable?"
        ),
        _ => error.into(),
    }
}
