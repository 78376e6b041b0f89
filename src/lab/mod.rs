//! TEMPORARY compile shim written by the lead; helper-1 replaces this whole file.
use std::path::PathBuf;
pub struct LabRequest { pub name: String, pub hosts: u8, pub subnet: crate::types::Cidr, pub inventory: PathBuf }
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LabHost { pub name: String, pub role: String, pub netns: String, pub ip: std::net::Ipv4Addr, pub mac: String, pub sshd_pid: u32, pub host_key: PathBuf, pub fingerprint: String }
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LabState { pub name: String, pub dir: PathBuf, pub bridge: String, pub gateway: std::net::Ipv4Addr, pub subnet: String, pub hosts: Vec<LabHost>, pub inventory: PathBuf, pub inventory_sha256: String, pub client_key: PathBuf, pub known_hosts: PathBuf }
#[derive(Debug, Clone, serde::Serialize)]
pub struct HostHealth { pub name: String, pub netns_present: bool, pub sshd_running: bool, pub ssh_port_open: bool }
pub fn require_root() -> Result<(), String> { Err("shim".into()) }
pub fn up(_req: &LabRequest, _t: &crate::templates::Templates) -> anyhow::Result<LabState> { anyhow::bail!("shim") }
pub fn status(_name: &str) -> anyhow::Result<(LabState, Vec<HostHealth>)> { anyhow::bail!("shim") }
pub fn down(_name: &str) -> anyhow::Result<Vec<String>> { anyhow::bail!("shim") }
pub fn validate_name(_name: &str) -> Result<(), String> { Ok(()) }
