//! Keeps the API server trusting the webhook: writes the mesh's root
//! certificates into the `caBundle` of every webhook in our
//! `MutatingWebhookConfiguration` (`--webhook-configuration`, with
//! `--source kube`).
//!
//! The install manifests ship the configuration without a `caBundle`, since
//! the CA is created at first start. The object is watched, so re-applying
//! the manifests (which blanks the field again) heals at once.

use futures::StreamExt as _;
use k8s_openapi::{ByteString, api::admissionregistration::v1::MutatingWebhookConfiguration};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
    runtime::{WatchStreamExt as _, watcher},
};
use tokio::sync::watch;

/// Patches `name`'s `caBundle`s to `roots_pem` whenever the configuration
/// appears or changes (a watch on that one object), until `shutdown`.
pub async fn run(
    client: Client,
    name: String,
    roots_pem: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client);
    let selector = format!("metadata.name={name}");
    let mut events = watcher(api.clone(), watcher::Config::default().fields(&selector))
        .default_backoff()
        .boxed();
    let mut last_problem = None;
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let problem = match event {
            None => return,
            // The list is complete: the object exists (it came as InitApply)
            // or it does not, which deserves a warning.
            Some(Ok(watcher::Event::InitDone | watcher::Event::Apply(_))) => {
                match ensure(&api, &name, roots_pem.as_bytes()).await {
                    Ok(0) => None,
                    Ok(patched) => {
                        tracing::info!(configuration = %name, webhooks = patched, "wrote the mesh root into the webhook caBundle");
                        None
                    }
                    Err(e) => Some(e),
                }
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => Some(e.to_string()),
        };
        if problem != last_problem {
            if let Some(problem) = &problem {
                tracing::warn!(configuration = %name, error = %problem, "cannot register the injection webhook's CA; injection through the API server fails until this is fixed");
            }
            last_problem = problem;
        }
    }
}

/// Patches every webhook whose `caBundle` differs; how many it patched.
async fn ensure(
    api: &Api<MutatingWebhookConfiguration>,
    name: &str,
    roots: &[u8],
) -> Result<usize, String> {
    let current = api.get_opt(name).await.map_err(|e| e.to_string())?.ok_or_else(|| {
        format!("MutatingWebhookConfiguration {name} does not exist: apply manifests/install, or pass --webhook-configuration")
    })?;
    let stale = stale_webhooks(&current, roots);
    if stale.is_empty() {
        return Ok(0);
    }
    let mut webhooks = current.webhooks.clone().unwrap_or_default();
    for i in &stale {
        if let Some(webhook) = webhooks.get_mut(*i) {
            webhook.client_config.ca_bundle = Some(ByteString(roots.to_vec()));
        }
    }
    // The resource version makes this a compare-and-swap: if someone changed
    // the configuration meanwhile, the API server answers 409 and their
    // change, arriving on the watch, starts the next round.
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": current.metadata.resource_version},
        "webhooks": webhooks,
    });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| e.to_string())?;
    Ok(stale.len())
}

/// Indexes of the webhooks whose `caBundle` is not `roots`.
fn stale_webhooks(config: &MutatingWebhookConfiguration, roots: &[u8]) -> Vec<usize> {
    config
        .webhooks
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, w)| w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(roots))
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::admissionregistration::v1::{MutatingWebhook, WebhookClientConfig};

    use super::*;

    fn webhook(bundle: Option<&[u8]>) -> MutatingWebhook {
        MutatingWebhook {
            name: "inject.braid.dev".into(),
            client_config: WebhookClientConfig {
                ca_bundle: bundle.map(|b| ByteString(b.to_vec())),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn only_webhooks_with_another_bundle_are_patched() {
        let config = MutatingWebhookConfiguration {
            webhooks: Some(vec![
                webhook(None),
                webhook(Some(b"root")),
                webhook(Some(b"old root")),
            ]),
            ..Default::default()
        };
        assert_eq!(stale_webhooks(&config, b"root"), [0, 2]);
        assert!(stale_webhooks(&MutatingWebhookConfiguration::default(), b"root").is_empty());
    }
}
