//! Host-free: under `host_key_policy = "accept-new"` a new host key is pinned through the
//! connector's system — into known_hosts for a real run, nowhere under --dry-run (still
//! accepted, so the dry run's read-only probes go on) — and a changed key is refused either way.

use super::*;
use crate::exec::effect::DryRunSystem;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPqIxu0wCQ2s16urOUUyF0BlTldjLAygyKp2D81Yymbv x";

fn connector(dir: &std::path::Path, system: Arc<dyn System>) -> SshConnector {
    SshConnector {
        user: "root".into(),
        identity: dir.join("id"),
        known_hosts: KnownHosts::new(dir.join("known_hosts")),
        policy: HostKeyPolicy::AcceptNew,
        connect_timeout: Duration::from_secs(1),
        system,
    }
}

fn host() -> Host {
    Host {
        name: "h1".into(),
        role: "hnode",
        host: "10.0.0.5".into(),
        port: 22,
    }
}

#[test]
fn a_dry_run_accepts_a_new_key_without_pinning_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("known_hosts"), "").unwrap();
    let dry = Arc::new(DryRunSystem::default());
    let c = connector(dir.path(), dry.clone());
    let key = HostKey::from_public(KEY).unwrap();
    c.verify(&host(), "10.0.0.5", None, &key).unwrap();
    assert_eq!(std::fs::read(dir.path().join("known_hosts")).unwrap(), b"");
    assert_eq!(dry.seen().len(), 1, "the dry run did not keep the pin it would make");
    assert!(!dir.path().join("known_hosts.lock").exists());
}

#[test]
fn a_real_run_pins_a_new_key_and_refuses_a_changed_one() {
    let dir = tempfile::tempdir().unwrap();
    let c = connector(dir.path(), Arc::new(RealSystem));
    let key = HostKey::from_public(KEY).unwrap();
    c.verify(&host(), "10.0.0.5", None, &key).unwrap();
    assert_eq!(c.known_hosts.lookup("10.0.0.5").unwrap(), Some(key.clone()));
    let other = HostKey {
        key_type: key.key_type.clone(),
        blob: [key.blob.clone(), vec![0]].concat(),
    };
    let changed = c.verify(&host(), "10.0.0.5", Some(key), &other);
    assert!(matches!(changed, Err(HostError::HostKey(m)) if m.contains("HOST KEY CHANGED")));
}
