//! `lamp status`: the read-only probe each LAMP node runs and what its output means — each
//! component up or down, the backends pen balances to and whether each answers. Pure.

use super::{Role, MARIADB_SETTINGS, PEN_CONTROL, PEN_SERVICE};
use crate::inventory::lamp::{LampSection, Storage};
use crate::shell::Script;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub address: String,
    pub roles: Vec<&'static str>,
    /// Set when the node could not be probed (then `components` is empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub components: Vec<Component>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<Backend>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Component {
    pub name: String,
    pub up: bool,
    pub detail: String,
}

/// A web node as pen sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backend {
    pub address: String,
    /// A TCP connection from the balancer to it succeeded.
    pub answers: bool,
    /// Connections pen has open to it now.
    pub connections: u64,
    /// Bytes pen sent to and received from it.
    pub sent: u64,
    pub received: u64,
}

impl NodeStatus {
    pub fn healthy(&self) -> bool {
        self.error.is_none() && self.components.iter().all(|c| c.up) && self.backends.iter().all(|b| b.answers)
    }
}

pub fn role_names(roles: &[Role]) -> Vec<&'static str> {
    roles
        .iter()
        .map(|r| match r {
            Role::Balancer => "balancer",
            Role::Web => "web",
            Role::Database => "database",
        })
        .collect()
}

/// `if CHECK; then printf 'up NAME YES'; else printf 'down NAME NO'; fi`, values quoted.
fn up(s: &mut Script, name: &str, check: &Script, yes: &str, no: &str) {
    s.text("if ")
        .script(check)
        .text(" >/dev/null 2>&1; then printf 'up %s %s\\n' ")
        .word(name)
        .text(" ")
        .word(yes)
        .text("; else printf 'down %s %s\\n' ")
        .word(name)
        .text(" ")
        .word(no)
        .text("; fi\n");
}

/// `service NAME status`, as a check.
fn service_status(service: &str) -> Script {
    let mut s = Script::new();
    s.text("service ").word(service).text(" status");
    s
}

/// The probe for one node; `backends` are the web nodes' `ip:port` (for the balancer).
pub fn script(lamp: &LampSection, roles: &[Role], backends: &[String]) -> String {
    let mut s = Script::new();
    let running =
        |s: &mut Script, name: &str, service: &str| up(s, name, &service_status(service), "running", "not running");
    if roles.contains(&Role::Balancer) {
        running(&mut s, "pen", PEN_SERVICE);
        s.text("penctl ")
            .word(PEN_CONTROL)
            .text(" servers 2>/dev/null | sed 's/^/pen /'\n");
        for b in backends {
            let (host, port) = b.rsplit_once(':').unwrap_or((b, "80"));
            // bash's /dev/tcp: a plain TCP connect, with nothing to install on the balancer.
            s.text("if timeout 3 bash -c 'exec 3<>\"/dev/tcp/$1/$2\"' sh ")
                .word(host)
                .text(" ")
                .word(port)
                .text(" 2>/dev/null; then echo ")
                .word(&format!("answers {b}"))
                .text("; else echo ")
                .word(&format!("silent {b}"))
                .text("; fi\n");
        }
    }
    if roles.contains(&Role::Web) {
        let mount = lamp.mount.get_ref().as_str();
        running(&mut s, "apache2", "apache2");
        let mut mounted = Script::new();
        mounted.text("mountpoint -q ").word(mount);
        up(
            &mut s,
            "mount",
            &mounted,
            &format!("{mount} mounted"),
            &format!("{mount} not mounted"),
        );
        let page = format!("{mount}/htdocs/status.php");
        let mut present = Script::new();
        present.text("test -f ").word(&page);
        up(
            &mut s,
            "docroot",
            &present,
            &format!("{page} present"),
            &format!("{page} missing"),
        );
        if let (Storage::DrbdOcfs2, Some(drbd)) = (lamp.storage, &lamp.drbd) {
            let res = drbd.get_ref().resource.as_str();
            running(&mut s, "o2cb", "o2cb");
            let marker = super::storage::split_brain_marker(res);
            s.text("echo \"drbd $(drbdadm role ")
                .word(res)
                .text(" 2>/dev/null | head -1) $(drbdadm dstate ")
                .word(res)
                .text(" 2>/dev/null | head -1) $(drbdadm cstate ")
                .word(res)
                .text(" 2>/dev/null | head -1)\"\n")
                .call("[ -e", &[&marker], " ] && printf 'split-brain %s %s\\n' ")
                .word(res)
                .text(" \"$(cat ")
                .word(&marker)
                .text(")\"\n");
        }
    }
    if roles.contains(&Role::Database) {
        running(&mut s, "mariadb", "mariadb");
        s.text("echo \"settings $(mariadb -N -B -e 'SELECT @@GLOBAL.skip_external_locking, @@GLOBAL.delay_key_write, @@GLOBAL.query_cache_size, @@GLOBAL.default_storage_engine' 2>/dev/null | tr '\\t' ' ')\"\n");
    }
    s.text("exit 0\n").build()
}

/// Turns a node's probe output into its status.
pub fn parse(name: &str, address: &str, roles: &[Role], output: &str) -> NodeStatus {
    let mut st = NodeStatus {
        name: name.into(),
        address: address.into(),
        roles: role_names(roles),
        error: None,
        components: Vec::new(),
        backends: Vec::new(),
    };
    let mut pen_servers: Vec<(String, u64, u64, u64)> = Vec::new();
    let mut answering: Vec<(String, bool)> = Vec::new();
    for line in output.lines() {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "up" | "down" => {
                let (name, detail) = rest.split_once(' ').unwrap_or((rest, ""));
                st.components.push(Component {
                    name: name.into(),
                    up: key == "up",
                    detail: detail.into(),
                })
            }
            "pen" => {
                // `0 addr 10.0.0.31 port 80 conn 0 max 0 hard 0 weight 0 prio 0 sx 0 rx 0`
                let f: Vec<&str> = rest.split_whitespace().collect();
                let field = |k: &str| f.iter().position(|x| *x == k).and_then(|i| f.get(i + 1)).copied();
                let num = |k: &str| field(k).and_then(|v| v.parse().ok()).unwrap_or(0);
                if let (Some(a), Some(p)) = (field("addr"), field("port")) {
                    pen_servers.push((format!("{a}:{p}"), num("conn"), num("sx"), num("rx")));
                }
            }
            "answers" | "silent" => answering.push((rest.into(), key == "answers")),
            "drbd" => {
                let f: Vec<&str> = rest.split_whitespace().collect();
                // DRBD 9 prints this node's role and disk state; 8.4 adds the peer's ("Primary/Primary").
                let up = f.first().is_some_and(|r| r.split('/').next() == Some("Primary"))
                    && f.get(1).is_some_and(|d| d.starts_with("UpToDate"))
                    && f.get(2) == Some(&"Connected");
                st.components.push(Component {
                    name: "drbd".into(),
                    up,
                    detail: if f.is_empty() { "down".into() } else { f.join(" ") },
                });
            }
            // After the drbd line: the split-brain handler's record, while still disconnected.
            "split-brain" => {
                let (res, when) = rest.split_once(' ').unwrap_or((rest, "?"));
                if let Some(c) = st
                    .components
                    .iter_mut()
                    .find(|c| c.name == "drbd" && !c.detail.ends_with(" Connected"))
                {
                    c.up = false;
                    c.detail = format!("SPLIT BRAIN (detected {when}): both web nodes changed the data while apart, and DRBD keeps them disconnected. Choose the node whose changes to drop; there, stop Apache (and MariaDB if it runs there), unmount the shared filesystem, `drbdadm secondary {res}` and `drbdadm connect --discard-my-data {res}`, after that `drbdadm connect {res}` on the other and `lamp deploy` ({})", c.detail);
                }
            }
            "settings" => {
                let want: Vec<&str> = vec!["0", "OFF", "0", "MyISAM"];
                let got: Vec<&str> = rest.split_whitespace().collect();
                let names: Vec<&str> = MARIADB_SETTINGS.iter().map(|(k, _)| *k).collect();
                st.components.push(Component {
                    name: "mariadb-settings".into(),
                    up: got == want,
                    detail: if got.is_empty() {
                        "server not answering".into()
                    } else if got == want {
                        "external-locking ON, delay-key-write OFF, query-cache-size 0, default engine MyISAM".into()
                    } else {
                        format!("{} = {}", names.join(", "), got.join(" "))
                    },
                });
            }
            _ => {}
        }
    }
    if roles.contains(&Role::Balancer) {
        let pen_up = st.components.iter().any(|c| c.name == "pen" && c.up);
        for (addr, answers) in answering {
            let known = pen_servers.iter().find(|(a, ..)| *a == addr);
            st.backends.push(Backend {
                address: addr.clone(),
                answers,
                connections: known.map_or(0, |k| k.1),
                sent: known.map_or(0, |k| k.2),
                received: known.map_or(0, |k| k.3),
            });
            if pen_up && known.is_none() {
                st.components.push(Component {
                    name: format!("pen backend {addr}"),
                    up: false,
                    detail: "pen does not list this web node (deploy again)".into(),
                });
            }
        }
    }
    st
}
