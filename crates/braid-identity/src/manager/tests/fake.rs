//! A certificate source for tests: a real [`Ca`] in the process, with
//! failures, gating and a record of when it was asked.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use rustls::pki_types::CertificateSigningRequestDer;
use tokio::{sync::Semaphore, time::Instant};

use crate::{
    Ca, SpiffeId,
    manager::{CertificateSource, IssuedChain, SignFuture, SourceError},
    testing::{id, new_ca},
};

/// Lifetime of the certificates the fake issues.
pub(super) const LIFETIME: Duration = Duration::from_secs(120);

/// How the fake answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    Issue,
    Unavailable,
    Refuse,
    /// Issues a certificate for another identity.
    WrongId,
    /// Sends a trust bundle that does not verify the chain.
    ForeignBundle,
}

pub(super) struct FakeSource {
    ca: Mutex<Arc<Ca>>,
    mode: Mutex<Mode>,
    /// When each request arrived, on tokio's clock.
    calls: Mutex<Vec<Instant>>,
    /// When set, each request waits for a permit.
    gate: Option<Semaphore>,
    /// Where the CAs were created; removed when the source is dropped.
    ca_dirs: Mutex<Vec<tempfile::TempDir>>,
}

// === impl FakeSource ===

impl FakeSource {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self::with_gate(None))
    }

    /// A source whose requests wait for [`Self::open`].
    pub(super) fn gated() -> Arc<Self> {
        Arc::new(Self::with_gate(Some(Semaphore::new(0))))
    }

    fn with_gate(gate: Option<Semaphore>) -> Self {
        let test = new_ca();
        Self {
            ca: Mutex::new(Arc::new(test.ca)),
            mode: Mutex::new(Mode::Issue),
            calls: Mutex::new(Vec::new()),
            gate,
            ca_dirs: Mutex::new(vec![test.dir]),
        }
    }

    pub(super) fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Lets `n` waiting requests through.
    pub(super) fn open(&self, n: usize) {
        if let Some(gate) = &self.gate {
            gate.add_permits(n);
        }
    }

    pub(super) fn calls(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().clone()
    }

    pub(super) fn call_count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    pub(super) fn ca(&self) -> Arc<Ca> {
        self.ca.lock().unwrap().clone()
    }

    /// Signs with a new root from now on; returns it.
    pub(super) fn rotate_root(&self) -> Arc<Ca> {
        let test = new_ca();
        let ca = Arc::new(test.ca);
        *self.ca.lock().unwrap() = ca.clone();
        self.ca_dirs.lock().unwrap().push(test.dir);
        ca
    }

    fn answer(
        &self,
        csr: &CertificateSigningRequestDer<'static>,
        asked: &SpiffeId,
    ) -> Result<IssuedChain, SourceError> {
        let mode = *self.mode.lock().unwrap();
        let ca = self.ca();
        let sign = |id: &SpiffeId| {
            ca.sign(csr, id, LIFETIME)
                .map(IssuedChain::from)
                .map_err(|e| SourceError::refused(id, e.to_string()))
        };
        match mode {
            Mode::Issue => sign(asked),
            Mode::Unavailable => Err(SourceError::unavailable("connection refused")),
            Mode::Refuse => Err(SourceError::refused(asked, "no pod on this node")),
            Mode::WrongId => sign(&id("shop", "someone-else")),
            Mode::ForeignBundle => {
                let mut issued = sign(asked)?;
                issued.trust_bundle = new_ca().ca.trust_bundle().clone();
                Ok(issued)
            }
        }
    }
}

impl CertificateSource for FakeSource {
    fn sign(&self, csr: CertificateSigningRequestDer<'static>, id: SpiffeId) -> SignFuture<'_> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(Instant::now());
            if let Some(gate) = &self.gate {
                let permit = gate
                    .acquire()
                    .await
                    .map_err(|_| SourceError::unavailable("gate closed"))?;
                permit.forget();
            }
            self.answer(&csr, &id)
        })
    }
}
