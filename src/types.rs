//! Typed values users give us (names, MACs, IPv4 networks, addresses, remote paths). Pure.
//!
//! Every user value becomes one of these before it reaches a template or a remote command, so a
//! value that could inject into a shell line or a config file is rejected at the door.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Implements Display-based Serialize and FromStr-based Deserialize for a typed value.
macro_rules! string_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A user value as error messages echo it: quoted, control characters (terminal escapes
/// included) escaped, and cut after 60 characters, so a huge or hostile value is never printed whole.
pub fn shown(s: &str) -> String {
    const MAX: usize = 60;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    let total = s.chars().count();
    if total > MAX {
        out += &format!("…\" ({total} characters)");
        return format!("\"{out}");
    }
    format!("\"{out}\"")
}

/// A line of an input file as error messages echo it: control characters escaped, cut after
/// 100 characters.
pub fn shown_line(s: &str) -> String {
    const MAX: usize = 100;
    let mut out = String::new();
    for c in s.chars().take(MAX) {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    let total = s.chars().count();
    if total > MAX {
        out += &format!("… ({total} characters)");
    }
    out
}

/// A node, profile or group name: `[a-z0-9-]`, 1–63 characters, no leading or trailing `-`, and
/// no `--` (Xen names a guest in mid-migration `NAME--incoming` / `NAME--migratedaway`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if s.is_empty() || s.len() > 63 || !ok_chars || s.starts_with('-') || s.ends_with('-') {
            return Err(format!(
                "invalid name {}: use 1-63 lowercase letters, digits and '-' (not at either end), e.g. \"hnode1\"",
                shown(s)
            ));
        }
        if s.contains("--") {
            return Err(format!(
                "invalid name {}: \"--\" is reserved (Xen calls a guest in mid-migration NAME--incoming and NAME--migratedaway); use a single '-'",
                shown(s)
            ));
        }
        Ok(Name(s.to_string()))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_serde!(Name);

/// A unicast Ethernet address, stored canonically as lowercase `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac([u8; 6]);

impl Mac {
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl FromStr for Mac {
    type Err = String;
    /// Accepts `aa:bb:cc:dd:ee:ff`, `AA-BB-CC-DD-EE-FF` and Cisco's `aabb.ccdd.eeff`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid MAC {}: write six hex octets like 52:54:00:00:02:01 (also accepted: 52-54-00-00-02-01, 5254.0000.0201)", shown(s))
        };
        // from_str_radix would take "+2" as an octet: only hex digits and the separators count.
        if !s.chars().all(|c| c.is_ascii_hexdigit() || ":-.".contains(c)) {
            return Err(bad());
        }
        let hex: String = if s.len() == 17 && (s.split(':').count() == 6 || s.split('-').count() == 6) {
            let sep = if s.contains(':') { ':' } else { '-' };
            if s.split(sep).any(|p| p.len() != 2) {
                return Err(bad());
            }
            s.split(sep).collect()
        } else if s.len() == 14 && s.split('.').count() == 3 && s.split('.').all(|p| p.len() == 4) {
            s.split('.').collect()
        } else {
            return Err(bad());
        };
        let mut octets = [0u8; 6];
        for (i, o) in octets.iter_mut().enumerate() {
            *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
        }
        if octets == [0; 6] {
            return Err(format!(
                "invalid MAC {}: the all-zero address is not a real interface",
                shown(s)
            ));
        }
        if octets[0] & 1 == 1 {
            return Err(format!(
                "invalid MAC {}: it is a multicast/broadcast address (lowest bit of the first octet set); a NIC has a unicast address",
                shown(s)
            ));
        }
        Ok(Mac(octets))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}
string_serde!(Mac);

/// An IPv4 network in CIDR notation, normalised to its network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

impl Cidr {
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(mask(self.prefix))
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }
    /// Addresses usable by hosts (not the network or broadcast address).
    pub fn is_host_address(&self, ip: Ipv4Addr) -> bool {
        let host_bits = !mask(self.prefix);
        self.contains(ip)
            && (self.prefix >= 31 || (u32::from(ip) & host_bits != 0 && u32::from(ip) & host_bits != host_bits))
    }
    /// The n-th address of the network (0 is the network address itself).
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let host_bits = !mask(self.prefix);
        (n <= host_bits).then(|| Ipv4Addr::from(u32::from(self.network) + n))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid network {}: write an IPv4 network in CIDR form like 10.0.0.0/24",
                shown(s)
            )
        };
        let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        let network = Ipv4Addr::from(u32::from(ip) & mask(prefix));
        if network != ip {
            return Err(format!(
                "invalid network {}: host bits are set; did you mean {network}/{prefix}?",
                shown(s)
            ));
        }
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}
string_serde!(Cidr);

/// An inclusive IPv4 range `first-last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl IpRange {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.first <= ip && ip <= self.last
    }
}

impl FromStr for IpRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid range {}: write FIRST-LAST like 10.0.0.100-10.0.0.199",
                shown(s)
            )
        };
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let first: Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
        let last: Ipv4Addr = b.trim().parse().map_err(|_| bad())?;
        if first > last {
            return Err(format!("invalid range {}: {first} comes after {last}", shown(s)));
        }
        Ok(IpRange { first, last })
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}
string_serde!(IpRange);

/// Where cloudctl connects: `host` or `host:port`, host being an IPv4 address or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: Option<u16>,
}

impl FromStr for Address {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "invalid address {}: {why}; write host or host:port, e.g. 10.0.0.2 or 10.0.0.2:2222",
                shown(s)
            )
        };
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (
                h,
                Some(
                    p.parse::<u16>()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| bad("bad port"))?,
                ),
            ),
            None => (s, None),
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            && !host.starts_with('-');
        if !host_ok {
            return Err(bad("the host may hold only letters, digits, '.' and '-'"));
        }
        Ok(Address {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(p) => write!(f, "{}:{p}", self.host),
            None => f.write_str(&self.host),
        }
    }
}
string_serde!(Address);

/// An absolute path on a remote host, in a safe alphabet: letters, digits and `/ . _ - + : @`,
/// no empty, `.` or `..` component. Paths reach shell-sourced files, fstab, Apache, DRBD, my.cnf
/// and pxelinux lines, so nothing in them may quote, expand, split or climb out of a directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RemotePath(String);

impl RemotePath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The same path with `suffix` appended to its file name (for temp and backup files).
    pub fn with_suffix(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.0)
    }
    /// The directory holding this path.
    pub fn parent(&self) -> &str {
        match self.0.rfind('/') {
            Some(0) => "/",
            Some(i) => &self.0[..i],
            None => ".",
        }
    }
    /// Whether this path is `dir` or lies under it.
    pub fn is_within(&self, dir: &str) -> bool {
        let dir = dir.trim_end_matches('/');
        self.0 == dir || dir.is_empty() || self.0.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
    }
}

/// Characters a remote path may hold besides ASCII letters and digits.
pub const PATH_PUNCTUATION: &str = "/._-+:@";

impl FromStr for RemotePath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: String| {
            format!(
                "invalid remote path {}: {why}; write an absolute path like /srv/tftp using letters, digits and / . _ - + : @",
                shown(s)
            )
        };
        if !s.starts_with('/') {
            return Err(bad("it is not absolute".into()));
        }
        if s.len() > 4095 {
            return Err(bad(format!("it is {} bytes long, more than a path may be", s.len())));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !c.is_ascii_alphanumeric() && !PATH_PUNCTUATION.contains(*c))
        {
            return Err(bad(format!("{} is not allowed in a path", shown(&c.to_string()))));
        }
        if s != "/" {
            for part in s[1..].split('/') {
                match part {
                    "" => return Err(bad("it has an empty component (// or a trailing /)".into())),
                    "." | ".." => return Err(bad(format!("it has a {part:?} component; write the path it means"))),
                    _ => {}
                }
            }
        }
        Ok(RemotePath(s.to_string()))
    }
}

impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_serde!(RemotePath);

/// Kernel or hypervisor arguments: one line of printable text (a newline would add directives
/// to a pxelinux file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelArgs(String);

impl KernelArgs {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KernelArgs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // Quotes and backslashes would end or escape the quoted cmdline string of a Xen xl.cfg.
        if s.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
            return Err(format!(
                "invalid kernel arguments {}: keep them on one line, without control characters, '\"' or '\\'",
                shown(s)
            ));
        }
        Ok(KernelArgs(s.trim().to_string()))
    }
}

impl fmt::Display for KernelArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_serde!(KernelArgs);

/// A network interface name as Linux accepts it (at most 15 bytes) in a safe alphabet: letters,
/// digits, `.`, `_` and `-`, e.g. `eth0`, `enp3s0f0.100`, `br_lan`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interface(String);

impl Interface {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Interface {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let chars_ok = s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if s.is_empty() || s.len() > 15 || !chars_ok || s == "." || s == ".." || s.starts_with('-') {
            return Err(format!(
                "invalid interface name {}: Linux names have 1-15 characters; use letters, digits, '.', '_' and '-' (not first), e.g. eth0, enp3s0f0.100, br_lan",
                shown(s)
            ));
        }
        Ok(Interface(s.to_string()))
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_serde!(Interface);

/// A BMC user name (IPMI allows 16 bytes): letters of either case, digits, `.`, `_`, `@`, `-`,
/// e.g. `ADMIN`, `Administrator`, `USERID`, `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpmiUser(String);

impl IpmiUser {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for IpmiUser {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let chars_ok = s.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
        if s.is_empty() || s.len() > 16 || !chars_ok || s.starts_with('-') {
            return Err(format!(
                "invalid IPMI user {}: BMC user names have 1-16 characters; use letters, digits, '.', '_', '@' and '-' (not first), e.g. ADMIN",
                shown(s)
            ));
        }
        Ok(IpmiUser(s.to_string()))
    }
}

impl fmt::Display for IpmiUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_serde!(IpmiUser);

/// A disk size: a whole number with a unit `K`, `M`, `G` or `T` (powers of 1024, optional `iB`),
/// e.g. `4G` or `512MiB`. Kept in bytes; shown in the largest unit that divides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(u64);

impl Size {
    pub fn bytes(&self) -> u64 {
        self.0
    }
    pub fn from_mib(mib: u64) -> Size {
        Size(mib << 20)
    }
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid size {}: use a whole number with a unit K, M, G or T (powers of 1024), e.g. \"4G\" or \"512M\"",
                shown(s)
            )
        };
        let t = s.trim();
        let t = t.strip_suffix("iB").unwrap_or(t);
        let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        let shift = match unit {
            "K" | "k" => 10,
            "M" => 20,
            "G" => 30,
            "T" => 40,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        match n.checked_mul(1 << shift) {
            Some(bytes) if bytes >= 1 << 20 => Ok(Size(bytes)),
            Some(_) => Err(format!("size {} is too small: a disk needs at least 1M", shown(s))),
            None => Err(format!("size {} is too large", shown(s))),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, unit) = [(40, "T"), (30, "G"), (20, "M"), (10, "K")]
            .iter()
            .find(|(shift, _)| self.0 % (1u64 << shift) == 0)
            .map_or((self.0, ""), |(shift, u)| (self.0 >> shift, *u));
        write!(f, "{n}{unit}")
    }
}
string_serde!(Size);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print_canonically() {
        assert_eq!("4G".parse::<Size>().unwrap().bytes(), 4 << 30);
        assert_eq!("512MiB".parse::<Size>().unwrap().to_string(), "512M");
        assert_eq!("2048M".parse::<Size>().unwrap().to_string(), "2G");
        for bad in ["", "4", "4X", "-1G", "1.5G", "4 G", "512K", "99999999999T"] {
            assert!(bad.parse::<Size>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn mac_forms_are_canonicalised() {
        for form in [
            "52:54:00:00:02:01",
            "52-54-00-00-02-01",
            "5254.0000.0201",
            "52:54:00:00:02:01".to_uppercase().as_str(),
        ] {
            assert_eq!(form.parse::<Mac>().unwrap().to_string(), "52:54:00:00:02:01", "{form}");
        }
    }

    #[test]
    fn bad_macs_are_refused_with_reason() {
        assert!("00:00:00:00:00:00".parse::<Mac>().unwrap_err().contains("all-zero"));
        assert!("01:00:5e:00:00:01".parse::<Mac>().unwrap_err().contains("multicast"));
        assert!("ff:ff:ff:ff:ff:ff".parse::<Mac>().unwrap_err().contains("multicast"));
        for bad in [
            "52:54:00:00:02",
            "52:54:00:00:02:0g",
            "52:54:00-00:02:01",
            "5254000002:01",
            "",
            "52:54:00:00:02:01;",
            "+2:54:00:00:02:01",
            "52:+4:00:00:02:01",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    #[test]
    fn names_refuse_shell_and_config_metacharacters() {
        for bad in [
            "a b", "a;b", "$(id)", "a\nb", "\"q\"", "-x", "x-", "Upper", "", "a'b", "a/b",
        ] {
            assert!(bad.parse::<Name>().is_err(), "{bad:?}");
        }
        assert!("hnode-1".parse::<Name>().is_ok());
    }

    #[test]
    fn cidr_and_ranges() {
        let c: Cidr = "10.0.0.0/24".parse().unwrap();
        assert!(c.contains("10.0.0.5".parse().unwrap()));
        assert!(!c.contains("10.0.1.5".parse().unwrap()));
        assert!(!c.is_host_address("10.0.0.255".parse().unwrap()));
        assert!("10.0.0.1/24".parse::<Cidr>().unwrap_err().contains("10.0.0.0/24"));
        assert!("10.0.0.9-10.0.0.1".parse::<IpRange>().is_err());
    }

    #[test]
    fn remote_paths_keep_a_safe_alphabet_and_no_dot_components() {
        for good in [
            "/",
            "/srv/tftp",
            "/dev/disk/by-path/pci-0000:00:1f.2-ata-1",
            "/srv/a_b/c+d/.hidden",
            "/x@y",
        ] {
            assert!(good.parse::<RemotePath>().is_ok(), "{good}");
        }
        for bad in [
            "srv",
            "/srv/",
            "/srv//x",
            "/srv/../etc",
            "/srv/.",
            "/./srv",
            "/a b",
            "/a\"b",
            "/$(id)",
            "/`id`",
            "/a;b",
            "/a\nb",
            "/a,b",
            "/a'b",
            "/a#b",
            "/a$b",
            "/a\\b",
        ] {
            assert!(bad.parse::<RemotePath>().is_err(), "{bad:?}");
        }
        let p: RemotePath = "/srv/www".parse().unwrap();
        assert!(p.is_within("/srv") && p.is_within("/srv/www") && p.is_within("/") && !p.is_within("/sr"));
    }

    #[test]
    fn names_refuse_double_dash() {
        assert!("db--migratedaway".parse::<Name>().unwrap_err().contains("--"));
        assert!("a-b-c".parse::<Name>().is_ok());
    }

    #[test]
    fn interfaces_and_ipmi_users() {
        for good in ["eth0", "enp3s0f0.100", "br_lan", "abcdefghijklmno"] {
            assert!(good.parse::<Interface>().is_ok(), "{good}");
        }
        for bad in ["", "abcdefghijklmnop", "a b", "a/b", "..", "-x", "a:1", "a,b"] {
            assert!(bad.parse::<Interface>().is_err(), "{bad:?}");
        }
        for good in ["ADMIN", "Administrator", "USERID", "root", "ops.team"] {
            assert!(good.parse::<IpmiUser>().is_ok(), "{good}");
        }
        for bad in ["", "a b", "12345678901234567", "$(id)", "-U"] {
            assert!(bad.parse::<IpmiUser>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn echoed_values_are_cut_and_escaped() {
        let huge = "a".repeat(50_000_000);
        let e = huge.parse::<Name>().unwrap_err();
        assert!(e.len() < 300, "{} bytes", e.len());
        assert!(e.contains("(50000000 characters)"));
        let e = "\u{1b}]0;pwned\u{7}".parse::<Mac>().unwrap_err();
        assert!(!e.contains('\u{1b}') && e.contains("\\u{1b}"), "{e}");
    }

    #[test]
    fn kernel_args_stay_on_one_line() {
        assert!("console=ttyS0\nDEFAULT evil".parse::<KernelArgs>().is_err());
        assert_eq!(
            "console=ttyS0 quiet".parse::<KernelArgs>().unwrap().as_str(),
            "console=ttyS0 quiet"
        );
    }

    #[test]
    fn addresses() {
        assert_eq!("h.example:2222".parse::<Address>().unwrap().port, Some(2222));
        for bad in ["h;rm", "h:0", "h:99999", "$(x)", ""] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
    }
}
