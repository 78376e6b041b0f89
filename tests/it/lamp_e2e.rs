//! `lamp deploy` and `lamp status` end to end on five real lab hosts: pen on hnode1, Apache/PHP on
//! hnode2 and hnode3 serving a bind-mounted directory shared through the machine's /tmp (no
//! OCFS2 driver here), MariaDB on hnode4. Real requests through pen, from four clients (the root
//! namespace and three lab hosts), bounded in count and time, to lab addresses only.

use crate::support::fixtures::lamp_section;
use crate::support::web::{nodes, requests};
use crate::support::{cloudctl, report, text, Lab};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// pen on hnode1.
const PEN: &str = "http://10.201.71.11";

/// `(where the client runs, the host index or None for the root namespace)`.
const CLIENTS: [(&str, Option<usize>); 4] = [
    ("root namespace", None),
    ("confignode", Some(0)),
    ("hnode1", Some(1)),
    ("hnode4", Some(4)),
];

struct Pids {
    pen: String,
    apache: [String; 2],
    mariadb: String,
}

fn pids(lab: &Lab) -> Pids {
    let pid = |i: usize, file: &str| {
        lab.sh_ok(i, &format!("p=$(cat {file}) && kill -0 $p && echo $p"))
            .trim()
            .to_string()
    };
    Pids {
        pen: pid(1, "/run/cloudctl-pen/pen.pid"),
        apache: [pid(2, "/run/apache2/apache2.pid"), pid(3, "/run/apache2/apache2.pid")],
        mariadb: pid(4, "/run/mysqld/mysqld.pid"),
    }
}

/// Per-host status of a `--json` apply.
fn statuses(out: &std::process::Output) -> BTreeMap<String, String> {
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)));
    doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap().to_string(),
                h["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn lamp_deploy_serves_through_pen_survives_a_web_node_and_converges() {
    crate::support::require_lab(&[
        "/usr/bin/pen",
        "/usr/sbin/apache2",
        "/usr/sbin/mariadbd",
        "/usr/bin/curl",
        "/usr/bin/php",
    ]);
    let lab = Lab::up("lamp", 5, 71);
    let inv = lab.inventory();
    let shared = lab.dir.path().join("www");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    lab.append_inventory(&format!("\n{}", lamp_section(shared.to_str().unwrap(), 10)));
    let mut outputs = String::new();
    let mut deploy = |extra: &[&str]| {
        let out = cloudctl(&[&["-i", inv.as_str(), "--yes"], extra, &["lamp", "deploy"]].concat());
        outputs += &text(&out.stdout);
        outputs += &text(&out.stderr);
        out
    };

    // First deploy: every node changes.
    let t = Instant::now();
    let out = deploy(&["--json"]);
    let first = t.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let all: BTreeMap<String, String> = ["hnode1", "hnode2", "hnode3", "hnode4"]
        .iter()
        .map(|h| (h.to_string(), "changed".to_string()))
        .collect();
    assert_eq!(statuses(&out), all);
    report(&format!(
        "lamp e2e: first deploy of 4 nodes took {:.1} s",
        first.as_secs_f64()
    ));

    // Persistent across reboots: pen's init script is enabled, the shared mount is in fstab.
    lab.sh_ok(1, "ls /etc/rc2.d/S*cloudctl-pen");
    for web in [2, 3] {
        let fstab = lab.sh_ok(web, "cat /etc/fstab");
        assert!(
            fstab.contains(&format!("{} /srv/www none bind 0 0", shared.display())),
            "{fstab}"
        );
    }

    // The password: generated once, only in 0600/0640 files.
    let stat = |i: usize, f: &str| lab.sh_ok(i, &format!("stat -c '%a %U:%G' {f}")).trim().to_string();
    assert_eq!(stat(4, "/etc/mysql/cloudctl-lamp.cnf"), "600 root:root");
    assert_eq!(stat(4, "/etc/mysql/cloudctl-lamp-grants.sql"), "600 root:root");
    assert_eq!(stat(2, "/etc/cloudctl/lamp-db.php"), "640 root:www-data");
    let password = lab
        .sh_ok(4, "sed -n 's/^password = //p' /etc/mysql/cloudctl-lamp.cnf")
        .trim()
        .to_string();
    assert_eq!(password.len(), 40, "a generated password");
    assert!(lab.sh_ok(3, "cat /etc/cloudctl/lamp-db.php").contains(&password));

    // 200 requests from four clients: all answered, the database reachable each time; each
    // client keeps its web node (within the tracking time), and both web nodes answer.
    let t = Instant::now();
    let mut backend_of = BTreeMap::new();
    for (name, client) in CLIENTS {
        let lines = requests(&lab, client, PEN, 50, None);
        assert_eq!(lines.len(), 50, "{name}: {lines:?}");
        assert!(!lines.iter().any(|l| l.starts_with("FAILED")), "{name}: {lines:?}");
        let seen: BTreeSet<&str> = nodes(&lines).into_iter().collect();
        assert_eq!(
            seen.len(),
            1,
            "{name} changed web node within the tracking time: {lines:?}"
        );
        backend_of.insert(name, seen.into_iter().next().unwrap().to_string());
    }
    let answered: BTreeSet<&String> = backend_of.values().collect();
    assert_eq!(answered.len(), 2, "both web nodes answer: {backend_of:?}");
    report(&format!(
        "lamp e2e: 200/200 requests through pen in {:.1} s, clients kept their web node: {backend_of:?}",
        t.elapsed().as_secs_f64()
    ));

    // PHP sessions are on the shared storage: one session (one cookie jar) continues from web
    // node to web node as clients tracked to different nodes use it.
    let jar = lab.dir.path().join("cookies").display().to_string();
    let mut session = Vec::new();
    for (_, client) in CLIENTS {
        session.extend(requests(&lab, client, PEN, 1, Some(&jar)));
    }
    let hits: Vec<&str> = session.iter().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(hits, ["1", "2", "3", "4"], "{session:?}");
    assert_eq!(
        nodes(&session).into_iter().collect::<BTreeSet<_>>().len(),
        2,
        "{session:?}"
    );

    // lamp status: every component up, pen sees both web nodes.
    let out = cloudctl(&["-i", &inv, "--json", "lamp", "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["healthy"], true);
    let backends = &doc["nodes"][0]["backends"];
    assert_eq!(backends.as_array().unwrap().len(), 2, "{doc}");
    assert!(backends.as_array().unwrap().iter().all(|b| b["answers"] == true));
    let human = text(&cloudctl(&["-i", &inv, "lamp", "status"]).stdout);
    assert!(
        human.contains("mariadb-settings") && human.contains("default engine MyISAM"),
        "{human}"
    );

    // A second deploy changes nothing and restarts nothing.
    let before = pids(&lab);
    let t = Instant::now();
    let out = deploy(&[]);
    let second = t.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("lamp deploy: no changes"),
        "{}",
        text(&out.stderr)
    );
    let after = pids(&lab);
    assert_eq!(
        (&after.pen, &after.apache, &after.mariadb),
        (&before.pen, &before.apache, &before.mariadb),
        "pids unchanged"
    );
    report(&format!(
        "lamp e2e: second deploy (no changes) took {:.2} s",
        second.as_secs_f64()
    ));

    // A dry run shows no change and no secret: the credentials files with the password masked.
    let out = deploy(&["-n", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("password = ********") && !shown.contains(&password),
        "secret files are shown with only their secret masked: {shown}"
    );

    // A changed pen timeout restarts pen and nothing else.
    let text_now = std::fs::read_to_string(&inv).unwrap();
    std::fs::write(&inv, text_now.replace("timeout = 10", "timeout = 20")).unwrap();
    let out = deploy(&["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut want: BTreeMap<String, String> = all.keys().map(|h| (h.clone(), "ok".to_string())).collect();
    want.insert("hnode1".into(), "changed".into());
    assert_eq!(statuses(&out), want);
    let changed = pids(&lab);
    assert_ne!(changed.pen, before.pen, "pen restarted");
    assert_eq!((&changed.apache, &changed.mariadb), (&before.apache, &before.mariadb));
    let cmdline = lab.sh_ok(1, &format!("tr '\\0' ' ' < /proc/{}/cmdline", changed.pen));
    assert!(cmdline.contains("-T 20"), "{cmdline}");

    // A site template Apache refuses is never activated: exit 3, old site and Apache kept.
    let templates = lab.dir.path().join("templates");
    std::fs::create_dir_all(templates.join("lamp-deploy")).unwrap();
    std::fs::write(
        templates.join("lamp-deploy/apache-site.conf.hbs"),
        "<VirtualHost *:{{port}}>\n\tDocumentRoot {{docroot}}\n\tNoSuchDirective on\n</VirtualHost>\n",
    )
    .unwrap();
    let site_before = lab.sh_ok(2, "cat /etc/apache2/sites-available/cloudctl-lamp.conf");
    let out = deploy(&["--templates", templates.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("NoSuchDirective"), "{}", text(&out.stderr));
    assert_eq!(
        lab.sh_ok(2, "cat /etc/apache2/sites-available/cloudctl-lamp.conf"),
        site_before
    );
    assert_eq!(pids(&lab).apache, before.apache);

    // Apache stops on one web node: no further request is lost, the other answers them all.
    let (down, up) = ("hnode2", "hnode3");
    lab.sh_ok(2, "service apache2 stop >/dev/null");
    let t = Instant::now();
    for (name, client) in CLIENTS {
        let lines = requests(&lab, client, PEN, 25, None);
        assert_eq!(lines.len(), 25, "{name}: {lines:?}");
        assert!(
            nodes(&lines).iter().all(|n| *n == up),
            "{name} after {down} stopped: {lines:?}"
        );
    }
    report(&format!(
        "lamp e2e: Apache stopped on {down}: 100/100 requests answered by {up} in {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    let out = cloudctl(&["-i", &inv, "--json", "lamp", "status"]);
    assert_eq!(out.status.code(), Some(1), "a component is down: {}", text(&out.stdout));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let web = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == down)
        .unwrap();
    assert!(web["components"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "apache2" && c["up"] == false));
    assert!(doc["nodes"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["address"] == "10.201.71.12:80" && b["answers"] == false));

    // Deploying again starts it; everything is up again.
    let out = deploy(&["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(statuses(&out)[down], "changed");
    assert_eq!(cloudctl(&["-i", &inv, "lamp", "status"]).status.code(), Some(0));

    assert!(
        !outputs.contains(&password),
        "the database password appeared in cloudctl's output"
    );
}
