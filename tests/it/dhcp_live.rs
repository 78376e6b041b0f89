//! `node add` / `node remove` change the running dhcpd live through OMAPI on a real ConfigNode
//! test host: dhcpd keeps its pid, the host objects follow the inventory, the OMAPI key never
//! shows, a CSV of 100 rows goes live in one omshell session, and without OMAPI the change falls
//! back to a validated restart that says so.

use crate::support::{cloudctl, text, Lab, TFTPD};

const KEY: &str = "/etc/dhcp/cloudctl-omapi.key";

/// Whether the running dhcpd has a host object `name`, asked through OMAPI with the ConfigNode's
/// own key (read there, as an administrator would), and its IP as omshell prints it (hex bytes).
fn live_host(lab: &Lab, name: &str) -> Option<String> {
    let script = format!(
        "s=$(sed -n 's/.*secret \"\\([^\"]*\\)\".*/\\1/p' {KEY}); \
         printf 'server 127.0.0.1\\nport 7911\\nkey-algorithm hmac-sha256\\nkey cloudctl-omapi %s\\nconnect\\nnew host\\nset name = \"{name}\"\\nopen\\n' \"$s\" | omshell"
    );
    let out = lab.sh_ok(0, &script);
    assert!(!out.contains("not connected"), "omshell could not connect: {out}");
    if out.contains("can't open object: not found") {
        return None;
    }
    let ip = out.lines().rev().find_map(|l| l.strip_prefix("ip-address = "));
    Some(ip.unwrap_or_else(|| panic!("no ip-address in {out}")).to_string())
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn node_changes_reach_the_running_dhcpd_live_and_fall_back_to_a_restart() {
    crate::support::require_lab(&["/usr/bin/omshell"]);
    let _tftpd = TFTPD.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tomapi", 1, 200);
    let inv = lab.inventory();
    lab.sh_ok(0, "mkdir -p /srv/tftp/images/hnode && echo k > /srv/tftp/images/hnode/vmlinuz && echo i > /srv/tftp/images/hnode/initrd.img");
    let said = std::cell::RefCell::new(String::new());
    let ok = |args: &[&str]| {
        let out = cloudctl(&[&["-i", &inv, "--yes"], args].concat());
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{args:?}: {all}");
        said.borrow_mut().push_str(&all);
        all
    };
    ok(&["config", "init"]);
    assert_eq!(
        lab.sh_ok(0, &format!("stat -c '%a %U' {KEY}")).trim(),
        "600 root",
        "the OMAPI key is root's alone"
    );
    let secret = lab.sh_ok(0, &format!("sed -n 's/.*secret \"\\([^\"]*\\)\".*/\\1/p' {KEY}"));
    let secret = secret.trim().to_string();
    assert_eq!(secret.len(), 44, "a 256-bit key, base64: {secret:?}");

    // Ten adds and removes, each seen in the running dhcpd, which keeps its pid.
    let pid = lab.dhcpd_pid();
    for i in 0..10 {
        let (name, mac) = (format!("live{i}"), format!("52:54:00:aa:00:{i:02x}"));
        let out = ok(&["--json", "node", "add", &name, "--mac", &mac]);
        assert!(!out.contains("restarted dhcpd"), "{out}");
        let ip = live_host(&lab, &name).unwrap_or_else(|| panic!("{name} is not in the running dhcpd"));
        let want = lab.node_ip(&name);
        let hex: Vec<String> = want.octets().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(ip, hex.join(":"), "{name} has its inventory address live");
        if i % 2 == 1 {
            ok(&["node", "remove", &name]);
            assert_eq!(live_host(&lab, &name), None, "{name} removed from the running dhcpd");
        }
    }
    assert_eq!(
        lab.dhcpd_pid(),
        pid,
        "dhcpd kept its pid across 10 live adds and 5 removes"
    );
    assert!(
        !said.borrow().contains(&secret) && !std::fs::read_to_string(&inv).unwrap().contains(&secret),
        "the OMAPI secret never shows"
    );

    // When OMAPI refuses (the key changed since dhcpd started) the change still lands, by a
    // restart that says so (and dhcpd then runs with the new key).
    let rotate = || {
        lab.sh_ok(
            0,
            &format!(
                "s=$(head -c 32 /dev/urandom | base64); sed -i \"s|secret \\\"[^\\\"]*\\\"|secret \\\"$s\\\"|\" {KEY}"
            ),
        )
    };
    rotate();
    let out = ok(&["node", "remove", "live0"]);
    assert!(out.contains("restarted dhcpd instead"), "the fallback is named: {out}");
    assert_ne!(lab.dhcpd_pid(), pid, "the fallback restarted dhcpd");
    // A node removed live and added again by a restart is served: the lease file's record of the
    // live removal does not outlive the restart.
    rotate();
    let out = ok(&["node", "add", "live1", "--mac", "52:54:00:aa:00:01"]);
    assert!(out.contains("restarted dhcpd instead"), "{out}");
    assert!(live_host(&lab, "live1").is_some(), "live1 is served after the restart");
    assert_eq!(live_host(&lab, "live0"), None, "live0 stays removed after the restart");
    assert!(
        live_host(&lab, "live2").is_some(),
        "live2, added live, survives the restart"
    );
    let leases = lab.sh_ok(0, "cat /var/lib/dhcp/dhcpd.leases");
    assert!(
        !leases.contains("host live1 {"),
        "the restart dropped the live records: {leases}"
    );
    // And live changes work again with the key dhcpd now has.
    let pid = lab.dhcpd_pid();
    let out = ok(&["node", "remove", "live2"]);
    assert!(!out.contains("restarted dhcpd"), "{out}");
    assert_eq!(live_host(&lab, "live2"), None);
    assert_eq!(lab.dhcpd_pid(), pid);

    // A CSV of 100 rows is one omshell session: live, and its rows are served.
    let csv = lab.dir.path().join("rack.csv");
    let rows: String = (0..100)
        .map(|i| format!("rack{i},52:54:00:ab:{:02x}:{:02x},,hnode\n", i / 256, i % 256))
        .collect();
    std::fs::write(&csv, format!("name,mac,ip,role\n{rows}")).expect("write the CSV");
    let out = ok(&["node", "add", "--from", &csv.display().to_string()]);
    assert!(!out.contains("restarted dhcpd"), "100 rows go live: {out}");
    assert_eq!(lab.dhcpd_pid(), pid, "dhcpd kept its pid across the CSV");
    for name in ["rack0", "rack42", "rack99"] {
        assert!(live_host(&lab, name).is_some(), "{name} is in the running dhcpd");
    }
    ok(&["node", "remove", "rack42"]);
    assert_eq!(live_host(&lab, "rack42"), None, "rack42 removed live");
    assert_eq!(lab.dhcpd_pid(), pid);
}
