//! Planner for `lamp deploy`: pen on the balancer, Apache/PHP on the web nodes over the shared
//! filesystem, MariaDB with the seed's MyISAM settings on the database node(s); the read-only
//! probes it needs and their parsers. Pure.

pub mod facts;
pub mod status;
pub mod storage;

use super::masked::SecretField;
pub(crate) use super::{command, config, dir, file, strings, FileSpec};
use super::{install_packages, masked_file, CommandStep, HostPlan, Plan, Step, When, SECRET_FACT};
use crate::error::Error;
use crate::inventory::lamp::LampSection;
use crate::inventory::{Host, Inventory};
use crate::plan::steps::on_change;
use crate::plan::{StepId, Steps};
use crate::templates::Templates;
use crate::types::Name;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

/// The database and account the web nodes use.
pub const DB_NAME: &str = "lamp";
pub const DB_USER: &str = "lamp_web";
/// Where the database node keeps the web account's password (read back on every deploy).
pub const DB_CREDENTIALS: &str = "/etc/mysql/cloudctl-lamp.cnf";
const DB_GRANTS: &str = "/etc/mysql/cloudctl-lamp-grants.sql";
const DB_CNF: &str = "/etc/mysql/mariadb.conf.d/60-cloudctl-lamp.cnf";
/// Where each web node keeps its copy of the database settings (outside the docroot).
pub const WEB_DB_CONFIG: &str = "/etc/cloudctl/lamp-db.php";
pub const APACHE_SITE: &str = "/etc/apache2/sites-available/cloudctl-lamp.conf";
const APACHE_PORTS: &str = "/etc/apache2/ports.conf";
pub const PEN_SERVICE: &str = "cloudctl-pen";
pub const PEN_CONTROL: &str = "/run/cloudctl-pen/control";

pub const PEN_PACKAGES: [&str; 1] = ["pen"];
pub const WEB_PACKAGES: [&str; 4] = ["apache2", "libapache2-mod-php", "php-mysql", "php-cli"];
pub const DB_PACKAGES: [&str; 2] = ["mariadb-server", "mariadb-client"];

/// The effective MariaDB settings the seed needs, as `mariadbd --help --verbose` prints them.
pub const MARIADB_SETTINGS: [(&str, &str); 4] = [
    ("external-locking", "TRUE"),
    ("delay-key-write", "OFF"),
    ("query-cache-size", "0"),
    ("default-storage-engine", "MyISAM"),
];

/// scripts/lamp/mariadb-check.sh (its arguments and what it does are described there).
const MARIADB_CHECK: &str = include_str!("../../../scripts/lamp/mariadb-check.sh");

/// scripts/lamp/mariadb-verify.sh (its arguments and what it does are described there).
const MARIADB_VERIFY: &str = include_str!("../../../scripts/lamp/mariadb-verify.sh");

/// scripts/lamp/apache-check.sh (its arguments and what it does are described there).
const APACHE_CHECK: &str = include_str!("../../../scripts/lamp/apache-check.sh");

/// scripts/lamp/apache-enable.sh (what it does is described there).
const APACHE_ENABLE: &str = include_str!("../../../scripts/lamp/apache-enable.sh");
const APACHE_ENABLED: &str =
    "[ -e /etc/apache2/sites-enabled/cloudctl-lamp.conf ] && [ ! -e /etc/apache2/sites-enabled/000-default.conf ]";

/// A generated password: 32-64 ASCII letters and digits, so it needs no quoting in SQL, PHP or
/// my.cnf. Never printed: `Debug` and `Display` hide it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn parse(s: &str) -> Option<Secret> {
        ((32..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())).then(|| Secret(s.to_string()))
    }
    /// A 40-character secret made from random bytes read by the caller (planners stay pure):
    /// bytes are taken when below 248 (a multiple of 62, so every character is equally likely).
    /// `None` if too few were usable; read more and call again.
    pub fn from_random(bytes: &[u8]) -> Option<Secret> {
        const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let s: String = bytes
            .iter()
            .filter(|b| **b < 248)
            .take(40)
            .map(|b| ALPHABET[*b as usize % 62] as char)
            .collect();
        (s.len() == 40).then_some(Secret(s))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// What read-only probes of the LAMP nodes found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// The password stored on the (first) database node by an earlier deploy.
    pub db_password: Option<Secret>,
    /// Per web node.
    pub web: BTreeMap<String, WebFacts>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebFacts {
    /// Signatures `wipefs` finds on the DRBD backing disk (`drbd` = metadata already created);
    /// `None`: the disk does not exist.
    pub disk_signatures: Option<Vec<String>>,
    /// `storage = "bind"`: the shared directory exists.
    pub bind_source: bool,
    /// `uname -n` (DRBD's `on` sections and o2cb's cluster.conf name nodes by it).
    pub hostname: Option<String>,
    /// The DRBD kernel module's version (8.4 and 9 want different resource syntax).
    pub drbd_version: Option<String>,
    /// `[lamp.drbd] md`: each member disk that exists, with the signatures on it.
    pub md_members: BTreeMap<String, Vec<String>>,
    /// The md array (`[lamp.drbd] disk` with `md`) is running.
    pub md_active: bool,
}

/// The `[lamp]` section, or a usage error saying how to add one.
pub fn section(inv: &Inventory) -> Result<&LampSection, Error> {
    inv.lamp.as_ref().map(|l| l.get_ref()).ok_or_else(|| {
        Error::Usage("the inventory has no [lamp] section; add one naming the balancer, web and database nodes (see examples/lamp.toml and README.md)".into())
    })
}

/// Which part of the stack a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Balancer,
    Web,
    Database,
}

/// Every LAMP node with its roles, in the order balancer, web nodes, database nodes.
pub fn nodes(lamp: &LampSection) -> Vec<(Name, Vec<Role>)> {
    let mut out: Vec<(Name, Vec<Role>)> = Vec::new();
    let mut add = |n: &Name, r: Role| match out.iter_mut().find(|(m, _)| m == n) {
        Some((_, roles)) => roles.push(r),
        None => out.push((n.clone(), vec![r])),
    };
    add(lamp.balancer.get_ref(), Role::Balancer);
    for w in lamp.web.get_ref() {
        add(w, Role::Web);
    }
    for d in lamp.databases() {
        add(d, Role::Database);
    }
    out
}

pub fn host(inv: &Inventory, name: &Name) -> Result<Host, Error> {
    Ok(inv.select(&[name.to_string()]).map_err(Error::Usage)?.remove(0))
}

/// The node's `ip` (validation made sure LAMP nodes have one).
pub fn ip(inv: &Inventory, name: &Name) -> Ipv4Addr {
    inv.node
        .iter()
        .find(|n| n.name.get_ref() == name)
        .and_then(|n| n.ip.as_ref())
        .map(|ip| *ip.get_ref())
        .expect("validated: LAMP nodes have an ip")
}

/// A read-only probe for one node's facts.
pub fn facts_script(lamp: &LampSection, roles: &[Role]) -> String {
    let mut s = String::new();
    if roles.contains(&Role::Web) {
        s += &storage::facts_script(lamp);
    }
    if roles.contains(&Role::Database) {
        s += &crate::shell::Script::new()
            .call(
                "[ -f",
                &[DB_CREDENTIALS],
                " ] && sed -n 's/^password = \\([A-Za-z0-9]*\\)$/",
            )
            .text(SECRET_FACT)
            .text("password \\1/p' ")
            .word(DB_CREDENTIALS)
            .text("\n")
            .build();
    }
    s + "exit 0\n"
}

/// Adds what one node's probe printed to `facts`.
pub fn parse_facts(facts: &mut Facts, node: &Name, roles: &[Role], output: &str) {
    if roles.contains(&Role::Web) {
        facts.web.insert(node.to_string(), storage::parse_facts(output));
    }
    if roles.contains(&Role::Database) && facts.db_password.is_none() {
        facts.db_password = output
            .lines()
            .find_map(|l| l.strip_prefix(SECRET_FACT).unwrap_or(l).strip_prefix("password "))
            .and_then(Secret::parse);
    }
}

/// `sh -c SCRIPT sh ARGS...`: a fixed script, values only as arguments.
pub(crate) fn sh(script: &str, args: &[&str]) -> Vec<String> {
    [strings(&["sh", "-c", script, "sh"]), strings(args)].concat()
}

/// Restarts the service when one of `ids` changed (which starts it if it was stopped), then starts
/// it unless it runs.
fn restarted(name: &str, ids: &[&StepId]) -> [Step; 2] {
    [
        on_change(&["service", name, "restart"], ids),
        command(
            &["service", name, "start"],
            When::Unless(strings(&["service", name, "status"])),
        ),
    ]
}

/// Starts the service unless it runs, then reloads it gracefully when one of `ids` changed.
fn reloaded(name: &str, ids: &[&StepId]) -> [Step; 2] {
    [
        command(
            &["service", name, "start"],
            When::Unless(strings(&["service", name, "status"])),
        ),
        on_change(&["service", name, "reload"], ids),
    ]
}

pub fn plan(inv: &Inventory, templates: &Templates, facts: &Facts, password: &Secret) -> Result<Plan, Error> {
    let lamp = section(inv)?;
    let cloud = inv.cloud.name.to_string();
    let mut hosts = Vec::new();
    for (name, roles) in nodes(lamp) {
        let mut steps = Vec::new();
        for role in &roles {
            steps.extend(match role {
                Role::Balancer => balancer_steps(inv, lamp, templates, &cloud)?,
                Role::Web => web_steps(inv, lamp, templates, facts, password, &name, &cloud)?,
                Role::Database => database_steps(inv, lamp, templates, password, &name, &cloud)?,
            });
        }
        hosts.push(HostPlan {
            host: host(inv, &name)?,
            exclusive: true,
            steps,
        });
    }
    Ok(Plan {
        title: "lamp deploy".into(),
        confirm: true,
        redact: Vec::new(),
        hosts,
    })
}

fn balancer_steps(inv: &Inventory, lamp: &LampSection, templates: &Templates, cloud: &str) -> Result<Vec<Step>, Error> {
    let backends: Vec<String> = lamp
        .web
        .get_ref()
        .iter()
        .map(|w| format!("{}:{}", ip(inv, w), lamp.pen.backend_port))
        .collect();
    let syntax = |p: &str| Some(strings(&["sh", "-n", p]));
    let mut steps = Steps::new();
    steps.push(install_packages(&PEN_PACKAGES));
    let pen_default = steps.file(config(
        "pen-default",
        "/etc/default/cloudctl-pen",
        templates.render(
            "lamp-deploy/pen-default",
            &json!({ "cloud": cloud, "port": lamp.pen.port, "timeout": lamp.pen.timeout, "backends": backends.join(" ") }),
        )?,
        syntax("{}"),
    )?)?;
    let pen_init = steps.file(file(FileSpec {
        id: "pen-init",
        path: "/etc/init.d/cloudctl-pen",
        content: templates.render("lamp-deploy/pen-init", &json!({ "cloud": cloud }))?,
        mode: 0o755,
        owner: None,
        validate: syntax("{}"),
        secret: false,
    })?)?;
    // Started at boot like any init script (systemd runs it through its SysV generator).
    steps.push(command(
        &["update-rc.d", PEN_SERVICE, "defaults"],
        When::Unless(sh("ls /etc/rc2.d/S*\"$1\" >/dev/null 2>&1", &[PEN_SERVICE])),
    ));
    steps.extend(restarted(PEN_SERVICE, &[&pen_default, &pen_init]));
    steps.build()
}

fn web_steps(
    inv: &Inventory,
    lamp: &LampSection,
    templates: &Templates,
    facts: &Facts,
    password: &Secret,
    node: &Name,
    cloud: &str,
) -> Result<Vec<Step>, Error> {
    let mount = lamp.mount.get_ref().to_string();
    let (docroot, sessions) = (format!("{mount}/htdocs"), format!("{mount}/sessions"));
    let mut packages = WEB_PACKAGES.to_vec();
    packages.extend(storage::packages(lamp));
    let mut steps = Steps::new();
    steps.push(install_packages(&packages));
    steps.extend(storage::steps(inv, lamp, templates, facts, node, cloud)?);
    let check = |kind: &str| Some(sh(APACHE_CHECK, &[kind, "{}"]));
    let ports = steps.file(config(
        "apache-ports",
        APACHE_PORTS,
        templates.render(
            "lamp-deploy/apache-ports.conf",
            &json!({ "cloud": cloud, "port": lamp.pen.backend_port }),
        )?,
        check("ports"),
    )?)?;
    let site = steps.file(config(
        "apache-site",
        APACHE_SITE,
        templates.render(
            "lamp-deploy/apache-site.conf",
            &json!({ "cloud": cloud, "node": node, "port": lamp.pen.backend_port, "mount": mount, "docroot": docroot, "sessions": sessions }),
        )?,
        check("site"),
    )?)?;
    steps.push(dir("/etc/cloudctl", 0o755)?);
    // A web node that runs a mysqld of its own (several mysqld) uses it; else the database node.
    let dbs = lamp.databases();
    let db_host = if dbs.contains(&node) { node } else { dbs[0] };
    steps.push(masked_file(
        FileSpec {
            id: "lamp-db",
            path: WEB_DB_CONFIG,
            content: templates.render(
                "lamp-deploy/db-config.php",
                &json!({ "cloud": cloud, "host": ip(inv, db_host).to_string(), "database": DB_NAME, "user": DB_USER, "password": password.expose() }),
            )?,
            mode: 0o640,
            owner: Some("root:www-data"),
            validate: Some(strings(&["php", "-l", "{}"])),
            secret: true,
        },
        &[SecretField::new("'password' => '", "'")],
        &[password.expose()],
    )?);
    steps.push(command(
        &["sh", "-c", APACHE_ENABLE],
        When::Unless(strings(&["sh", "-c", APACHE_ENABLED])),
    ));
    // The docroot is shared: only the first web node writes it (two writers would race on the
    // same temporary files).
    if node == &lamp.web.get_ref()[0] {
        steps.push(dir(&docroot, 0o755)?);
        // Like Debian's /var/lib/php/sessions: anyone may create, nobody may list.
        steps.push(dir(&sessions, 0o1733)?);
        for page in ["index.php", "status.php"] {
            steps.push(config(
                page,
                &format!("{docroot}/{page}"),
                templates.render(&format!("lamp-deploy/{page}"), &json!({ "cloud": cloud }))?,
                Some(strings(&["php", "-l", "{}"])),
            )?);
        }
    }
    steps.extend(reloaded("apache2", &[&ports, &site]));
    steps.build()
}

fn database_steps(
    inv: &Inventory,
    lamp: &LampSection,
    templates: &Templates,
    password: &Secret,
    node: &Name,
    cloud: &str,
) -> Result<Vec<Step>, Error> {
    let datadir = lamp.datadir();
    let mut steps = Steps::new();
    steps.push(install_packages(&DB_PACKAGES));
    let mut check = sh(MARIADB_CHECK, &["{}"]);
    check.extend(
        MARIADB_SETTINGS
            .iter()
            .flat_map(|(k, v)| [k.to_string(), v.to_string()]),
    );
    let cnf = steps.file(config(
        "mariadb-cnf",
        DB_CNF,
        templates.render(
            "lamp-deploy/mariadb.cnf",
            &json!({ "cloud": cloud, "bind": ip(inv, node).to_string(), "datadir": datadir }),
        )?,
        Some(check),
    )?)?;
    if datadir != "/var/lib/mysql" && node == lamp.databases()[0] {
        steps.push(command(
            &[
                "mariadb-install-db",
                "--user=mysql",
                "--skip-test-db",
                &format!("--datadir={datadir}"),
            ],
            When::Unless(strings(&["test", "-d", &format!("{datadir}/mysql")])),
        ));
    }
    steps.extend(restarted("mariadb", &[&cnf]));
    steps.push(command(&["sh", "-c", MARIADB_VERIFY], When::Always));
    let web_ips: Vec<String> = lamp.web.get_ref().iter().map(|w| ip(inv, w).to_string()).collect();
    let data =
        json!({ "cloud": cloud, "database": DB_NAME, "user": DB_USER, "password": password.expose(), "web": web_ips });
    // Shown in a dry run with only the password masked, where the template writes it.
    let secret = |id, path, template: &str, validate: &Option<Vec<String>>, field: SecretField| {
        masked_file(
            FileSpec {
                id,
                path,
                content: templates.render(template, &data)?,
                mode: 0o600,
                owner: Some("root:root"),
                validate: validate.clone(),
                secret: true,
            },
            &[field],
            &[password.expose()],
        )
    };
    // my_print_defaults parses it as MariaDB will; its output (the password) goes nowhere.
    let client_check = Some(sh(
        "my_print_defaults --defaults-file=\"$1\" client | grep -q '^--password='",
        &["{}"],
    ));
    steps.push(secret(
        "db-credentials",
        DB_CREDENTIALS,
        "lamp-deploy/db-client.cnf",
        &client_check,
        SecretField::new("password = ", ""),
    )?);
    let grants = steps.file(secret(
        "db-grants",
        DB_GRANTS,
        "lamp-deploy/db-grants.sql",
        &None,
        SecretField::new("IDENTIFIED BY '", "'"),
    )?)?;
    // The SQL arrives on the client's stdin from the file: the password is in no argv. The
    // client's messages may quote the SQL (and so the password): they are not passed on.
    steps.push(Step::Command(CommandStep {
        argv: sh(
            "mariadb --batch < \"$1\" >/dev/null 2>&1 || { echo \"the database refused $1; run 'mariadb < $1' as root on this node to see why\" >&2; exit 1; }",
            &[DB_GRANTS],
        ),
        when: When::Changed(vec![grants, cnf]),
    }));
    steps.build()
}
