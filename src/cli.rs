//! The command line (clap derive). Doc comments here are the `--help` text and the man pages.

mod values;

use crate::types::{Cidr, Mac, Name, RemotePath, Size};
use clap::{ArgAction, Args, Parser, Subcommand};
use std::path::PathBuf;
use values::{copy_source, grace, ipv4, lab_name, node_ip, profile, role, seconds, trimmed, typed};

/// The heading of the options every subcommand takes, listed after the subcommand's own (as cargo does).
const GLOBAL: &str = "Global options";

const AFTER_HELP: &str = "INVENTORY:
  -i FILE, else $CLOUDCTL_INVENTORY, else ./cloud.toml, else $XDG_CONFIG_HOME/cloudctl/cloud.toml.
  `cloudctl lab up` writes a ready one for a local lab.

OUTPUT:
  Human output and progress go to stderr; --json prints one JSON document on stdout.
  On a TTY progress is one line per host; otherwise one timestamped line per event (for cron).

";

/// Build and run a small private cloud from plain servers over SSH.
///
/// cloudctl reads the desired state of the cloud from one TOML inventory, plans what to change on
/// each host, shows the plan (--dry-run stops there), asks before changing anything, and applies it
/// over SSH, one session per host, hosts in parallel.
#[derive(Debug, Parser)]
#[command(name = "cloudctl", version, propagate_version = true, after_long_help = long_after_help(), after_help = "See --help for the inventory, output and exit status.")]
pub struct Cli {
    /// Inventory file (the cloud's desired state).
    #[arg(short = 'i', long, env = "CLOUDCTL_INVENTORY", global = true, help_heading = GLOBAL, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// Show what would change (file diffs, commands) and change nothing, anywhere.
    #[arg(short = 'n', long, global = true, help_heading = GLOBAL)]
    pub dry_run: bool,
    /// Apply without asking (required when there is no TTY).
    #[arg(short = 'y', long, global = true, help_heading = GLOBAL)]
    pub yes: bool,
    /// Print one JSON document on stdout instead of human output.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// Print only errors.
    #[arg(short, long, global = true, help_heading = GLOBAL, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail (repeat for more).
    #[arg(short, long, global = true, help_heading = GLOBAL, action = ArgAction::Count)]
    pub verbose: u8,
    /// Hosts worked on at the same time.
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub forks: u16,
    /// Directory whose `<noun>-<verb>/<file>.hbs` templates override the built-in ones.
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

fn long_after_help() -> String {
    format!("{AFTER_HELP}{}", crate::error::Exit::TABLE)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command on many hosts in parallel and show each host's output and exit status.
    ///
    /// One argument is a shell command line (pipes and globs work): cloudctl run -- 'df -h | tail -1'.
    /// Several arguments are passed exactly, each quoted: cloudctl run -- touch 'a file'.
    /// The command's stdin is empty (at end of input). `run` does not ask for confirmation: the command is the request.
    Run(RunArgs),
    /// Set up the ConfigNode: DHCP, TFTP and the PXE tree every other node boots from.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Register machines by MAC so they PXE-boot their profile; list and remove them.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Shared block storage on the storage nodes: md, DRBD primary/primary, AoE export.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Boot diskless hardware nodes (hypervisor hosts) and wait until they answer.
    #[command(subcommand)]
    Hnode(HnodeCommand),
    /// Guests on the hardware nodes: create, list, start, stop, live-migrate.
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Golden images in the shared instance store (the sources of `instance create --copy NAME`).
    #[command(subcommand)]
    Image(ImageCommand),
    /// The LAMP stack of the [lamp] section: pen, Apache/PHP on shared storage, MariaDB.
    #[command(subcommand)]
    Lamp(LampCommand),
    /// Pin and list SSH host keys in cloudctl's own known_hosts.
    #[command(subcommand)]
    Host(HostCommand),
    /// A local lab: real test hosts (network namespaces running sshd) on this machine. Needs root.
    #[command(subcommand)]
    Lab(LabCommand),
    /// Check the whole cloud, read-only, and print each problem with its fix (exit 1 if any).
    ///
    /// Probes every host in parallel with strict host keys: boot files missing under tftp_root
    /// (profiles, PXE loader, each node's PXE entry), DHCP fixed addresses inside the dynamic
    /// range, guests running on another node than recorded, on two nodes at once or without a
    /// record, guests on a drained node, memory over-committed by the guests recorded on a node,
    /// host keys that changed, hosts that do not answer, leftover one-time migration keys,
    /// clocks (of every host) off this machine's, a second DHCP server on the ConfigNode's network
    /// (one DHCPDISCOVER sent from the ConfigNode; never a REQUEST, so no lease is taken),
    /// registered nodes that are down and never got an address from the ConfigNode's dhcpd,
    /// DRBD devices disconnected, split-brained, resyncing or down (/proc/drbd), and degraded md
    /// arrays (/proc/mdstat: storage nodes' RAID, hardware nodes' multipath).
    /// --json prints the findings for monitoring.
    Doctor,
    /// The cloud as a whole: spread the guests evenly over the hardware nodes.
    #[command(subcommand)]
    Cloud(CloudCommand),
}

#[derive(Debug, Subcommand)]
pub enum CloudCommand {
    /// Live-migrate guests so the hardware nodes carry an even load (Ganeti's hbal idea).
    ///
    /// The score is the standard deviation of the nodes' memory load (recorded guests' memory
    /// over what the node has for guests) plus that of their vCPU load (guests' vCPUs over the
    /// node's CPUs), over the nodes that answer and are not drained; 0 is even. Moves are chosen
    /// greedily: each the one that lowers the score most, where the guest fits, until none lowers
    /// it or --max-moves. The plan (every move and the score after it) is shown first; --dry-run
    /// stops there, otherwise it asks (or needs --yes) and runs the moves one by one through
    /// `instance migrate`, stopping at the first that fails, then measures the score again.
    Rebalance(CloudRebalanceArgs),
}

#[derive(Debug, Args)]
pub struct CloudRebalanceArgs {
    /// Most migrations to plan and run.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_moves: usize,
    /// Give up on a migration that has not finished after this many seconds (the guest stays).
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = |s: &str| seconds("--timeout", s))]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Hosts to run on: all, confignode, snode, hnode, or node names. Lists as you type them:
    /// `--on hnode1,hnode2`, `--on hnode1 hnode2` or `--on hnode1 --on hnode2`.
    #[arg(long = "on", value_name = "GROUP|NAME", default_value = "all", value_delimiter = ',', num_args = 1.., value_parser = typed::<Name>)]
    pub on: Vec<String>,
    /// The command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Connect to hosts, show the fingerprint each offers, and pin it (replacing a changed key).
    ///
    /// Check the fingerprints on the hosts' consoles before confirming: this is the step that
    /// decides whom cloudctl trusts.
    Trust {
        /// Hosts: all, confignode, snode, hnode, or node names (`hnode1 hnode2` or `hnode1,hnode2`).
        #[arg(required = true, value_name = "GROUP|NAME", value_delimiter = ',', value_parser = typed::<Name>)]
        targets: Vec<String>,
    },
    /// Show the pinned host keys, with the inventory host each belongs to.
    List,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Create N hosts (ConfigNode + hardware nodes) and write a ready inventory for them.
    ///
    /// Each host is a network namespace on a lab bridge with private /etc, /var, /run and /srv and
    /// its own sshd and host key. The inventory goes to -i FILE (default ./cloud.toml) and already
    /// pins the hosts' keys.
    Up {
        /// Number of hosts (the first is the ConfigNode).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=50))]
        hosts: u8,
        /// Lab name (up to 8 lowercase letters and digits); several labs can run side by side.
        #[arg(long, default_value = "lab", value_parser = lab_name)]
        name: String,
        /// The lab network (a /16 to /24); the bridge takes .1, hosts .10 and up, VMs .201 and up.
        /// Default: the first of 10.201.0.0/24, 10.201.1.0/24, ... 10.201.255.0/24 that no
        /// interface, route or other lab on this machine uses (`lab up` says which it took).
        #[arg(long, value_name = "SUBNET", value_parser = typed::<Cidr>)]
        subnet: Option<String>,
        /// Add a VM machine of this role (repeatable): QEMU on the lab bridge that PXE-boots from
        /// the ConfigNode and is switched on by Wake-on-LAN (`node boot`). snode VMs (snode1, ...)
        /// get two virtio disks; two of them get a [storage] section. hnode VMs are hvm1, ...
        /// web VMs (web1, web2; two or none) are LAMP web servers: two disks, a cross-over cable
        /// to each other (eth1, 192.168.100.N), and this machine's Debian as their system.
        #[arg(long = "vm", value_enum, value_name = "ROLE")]
        vms: Vec<crate::lab::VmRole>,
        /// Size of each storage or web VM disk, in MiB.
        #[arg(long, value_name = "MIB", default_value_t = 64)]
        vm_disk_mib: u64,
    },
    /// Show the lab's hosts and whether each sshd is answering, and its VMs' power and SSH.
    Status {
        #[arg(long, default_value = "lab", value_parser = lab_name)]
        name: String,
    },
    /// Switch a lab VM off at once (its QEMU is killed, like pulling the power plug).
    PowerOff {
        #[arg(long, default_value = "lab", value_parser = lab_name)]
        name: String,
        /// The VM's name.
        vm: String,
    },
    /// Switch a lab VM on (its QEMU starts and PXE-boots), as Wake-on-LAN or a BMC does.
    PowerOn {
        #[arg(long, default_value = "lab", value_parser = lab_name)]
        name: String,
        /// The VM's name.
        vm: String,
    },
    /// Press a lab VM's power button (an ACPI event: the lab's node image shuts down cleanly).
    PowerButton {
        #[arg(long, default_value = "lab", value_parser = lab_name)]
        name: String,
        /// The VM's name.
        vm: String,
    },
    /// A lab BMC's chassis control: what ipmi_sim's `chassis_control` program is asked
    /// (`get power`, `set power 0|1`, `set shutdown 1`, ...), done to VM `vm` (not for direct use).
    #[command(hide = true)]
    BmcChassis {
        #[arg(long, value_parser = lab_name)]
        name: String,
        vm: String,
        /// The request, as ipmi_sim appends it.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        request: Vec<String>,
    },
    /// The lab's Wake-on-LAN listener (started by `lab up`; not for direct use).
    #[command(hide = true)]
    PowerListen {
        #[arg(long, value_parser = lab_name)]
        name: String,
    },
    /// Stop the lab's sshds, power listener and VMs and remove its namespaces, bridge, taps, files and inventory.
    Down {
        #[arg(long, default_value = "lab", value_parser = lab_name)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Install and configure dhcpd, tftpd and pxelinux on the ConfigNode (idempotent).
    ///
    /// Installs isc-dhcp-server, tftpd-hpa, pxelinux and syslinux-common when missing; renders
    /// dhcpd.conf (subnet, dynamic range, gateway, DNS, next-server, pxelinux.0, an include of the
    /// cloudctl-managed hosts file and of dhcpd.local.conf for your own settings), the dhcpd
    /// interface and the tftpd settings; stages pxelinux.0, ldlinux.c32, mboot.c32 and libcom32.c32
    /// into tftp_root with a default that boots the local disk; writes every node's host entry and
    /// per-MAC file; then starts or restarts the services, only when their configuration changed.
    /// Every dhcpd file is checked with `dhcpd -t` before it replaces the running one.
    /// With a ConfigNode pair (`[confignode] nodes`) both are converged by one plan: dhcpd as
    /// failover peers, keepalived (checked with `keepalived -t`) holding the floating address.
    Init,
    /// Show each ConfigNode: who holds the floating address, the DHCP failover state, and
    /// whether its DHCP hosts and TFTP tree match the inventory and the other ConfigNode.
    ///
    /// Exit 0 when all is in order, 1 when something is out of sync or a daemon is down, 4
    /// when a ConfigNode does not answer.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Add a node (or a rack from a CSV file) to the inventory and the ConfigNode.
    ///
    /// Writes the DHCP host entry and pxelinux.cfg/01-<mac> from the node's profile, validates,
    /// activates, and restarts dhcpd only if its configuration changed; the inventory keeps its
    /// comments and layout. MACs may be written aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF or
    /// aabb.ccdd.eeff. Without --ip the node gets the lowest free address outside the dynamic range.
    /// Adding a node exactly as it already is changes nothing.
    Add(NodeAddArgs),
    /// Remove a node from the inventory, its DHCP host entry and its per-MAC PXE file.
    ///
    /// Asks first (--yes in scripts; exit 6 without it and a TTY).
    Remove {
        /// The node's name.
        #[arg(value_parser = typed::<Name>)]
        name: String,
        /// With a ConfigNode pair, change the one that answers when the other is down.
        #[arg(long)]
        degraded: bool,
    },
    /// List the inventory's nodes: name, role, MAC, IP, profile.
    List,
    /// Boot a hardware or storage node from the network; with --wait, until it is up and trusted.
    ///
    /// What `hnode boot` does, for either role: the node's pinned host key, its overlay initrd and
    /// PXE entry on the ConfigNode, power-on, and with --wait the boot stages and a strict-host-key
    /// SSH check. A hardware node's hypervisor is then verified; a storage node's md, DRBD and AoE
    /// drivers and tools (mdadm, drbdadm, vblade).
    Boot(HnodeBootArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["name", "from"]))]
pub struct NodeAddArgs {
    /// Node name ([a-z0-9-]).
    #[arg(requires = "mac", value_parser = trimmed::<Name>)]
    pub name: Option<String>,
    /// The node's boot NIC MAC address.
    #[arg(long, value_name = "MAC", value_parser = trimmed::<Mac>)]
    pub mac: Option<String>,
    /// Fixed address (default: the lowest free one outside the dynamic range).
    #[arg(long, value_name = "IP", value_parser = node_ip)]
    pub ip: Option<String>,
    /// hnode (hardware node) or snode (storage node).
    #[arg(long, value_name = "ROLE", default_value = "hnode", value_parser = role)]
    pub role: String,
    /// Boot profile ([profiles.NAME]); defaults to the role.
    #[arg(long, value_name = "NAME", value_parser = profile)]
    pub profile: Option<String>,
    /// Add every node of a CSV file (name,mac,ip,role[,profile]; ip and role may be empty) in one run.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["name", "mac", "ip", "profile"])]
    pub from: Option<std::path::PathBuf>,
    /// With a ConfigNode pair, change the one that answers when the other is down (without it
    /// the change is refused, exit 4); `config init` brings the other level when it is back.
    #[arg(long)]
    pub degraded: bool,
}

#[derive(Debug, Subcommand)]
pub enum HnodeCommand {
    /// Boot a hardware node from the network and (with --wait) wait until it is up and trusted.
    ///
    /// Generates the node's SSH host key once (kept beside cloudctl's known_hosts and pinned
    /// there, so reboots never change it), writes a per-node overlay initrd (hostname, network,
    /// authorized_keys, host keys) and the node's PXE entry on the ConfigNode, and powers the
    /// node on from the ConfigNode. With --wait it reports the boot stages as they happen, connects
    /// with strict host-key checking, and verifies the hypervisor (`xl info` for Xen, /dev/kvm and
    /// QEMU for KVM). On timeout it says which stage was seen last (exit 4).
    Boot(HnodeBootArgs),
    /// Mark a hardware node drained in the inventory: placement puts no guest on it.
    ///
    /// Guests already there keep running; `hnode evacuate` moves them off.
    Drain(HnodeNameArg),
    /// Clear a hardware node's drained mark: placement may put guests on it again.
    Undrain(HnodeNameArg),
    /// Drain a hardware node and live-migrate every running guest off it.
    ///
    /// Each guest goes where placement puts it (see `instance create --hnode auto`), decided for
    /// all of them up front, and moves by `instance migrate` (its checks, its cleanup on failure),
    /// --parallel at a time. The report lists every guest and where it went; a guest that cannot
    /// move keeps running where it is and is named (exit 1). Stopped guests stay recorded on
    /// the node and are listed. Asks first (--yes in scripts; exit 6 without it and a TTY).
    Evacuate(HnodeEvacuateArgs),
    /// Power a drained hardware node off, once no guest is on it.
    ///
    /// Refused (exit 2, naming them) while a guest is recorded on the node or the node reports
    /// one running there, and while the node is not drained. With an `ipmi` table on the node it
    /// sends `chassis power soft` (an ACPI power-button press) to the BMC from the ConfigNode;
    /// otherwise it runs `poweroff` on the node over SSH. Then it waits, up to --wait seconds,
    /// until the node stops answering ping from the ConfigNode (exit 1 if it still answers). On
    /// a TTY you confirm by typing the node's name; scripts pass --yes (exit 6 without it).
    Poweroff(HnodePoweroffArgs),
}

#[derive(Debug, Args)]
pub struct HnodeNameArg {
    /// The hardware node's name.
    #[arg(value_parser = typed::<Name>)]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct HnodeEvacuateArgs {
    /// The hardware node's name.
    #[arg(value_parser = typed::<Name>)]
    pub name: String,
    /// Migrations running at the same time.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub parallel: u16,
    /// Give up on a guest whose migration has not finished after this many seconds (it stays).
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = |s: &str| seconds("--timeout", s))]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct HnodePoweroffArgs {
    /// The hardware node's name.
    #[arg(value_parser = typed::<Name>)]
    pub name: String,
    /// Seconds to wait for the node to stop answering ping (0: do not wait).
    #[arg(long, value_name = "SECONDS", default_value_t = 180, value_parser = |s: &str| seconds("--wait", s))]
    pub wait: u64,
}

#[derive(Debug, Args)]
pub struct HnodeBootArgs {
    /// The node's name.
    #[arg(value_parser = typed::<Name>)]
    pub name: String,
    /// How to power it on (default: the node's `power` setting, else wol).
    #[arg(long, value_enum, value_name = "HOW")]
    pub power: Option<PowerArg>,
    /// Wait up to SECONDS for the node to answer SSH with its pinned key, then verify it.
    #[arg(long, value_name = "SECONDS", value_parser = |s: &str| seconds("--wait", s))]
    pub wait: Option<u64>,
    /// With a ConfigNode pair, boot from the one that answers when the other is down (without
    /// it the boot is refused, exit 4); `config init` brings the other level when it is back.
    #[arg(long)]
    pub degraded: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PowerArg {
    /// Wake-on-LAN magic packet, sent on the ConfigNode's network.
    Wol,
    /// IPMI chassis power on (BMC address, user and password file from the inventory).
    Ipmi,
    /// Do not power it on (it is switched on by hand, or already booting).
    None,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Put a local image file into the shared instance store, as <store>/.images/NAME.
    ///
    /// The file goes through one hardware node that mounts [instances] store (--via, default the
    /// first that answers). Holes in a sparse file are not sent (SEEK_DATA/SEEK_HOLE) and stay
    /// holes on the far side. The data lands in a temp file beside the final name; the far side
    /// checks its size, and the sha256 of the data read back from where it wrote it against the
    /// one of the data this side read, and only then renames it into place, so an interrupted or
    /// failed push never leaves a partial image under NAME. Replacing an existing image asks
    /// first (--yes in scripts). --json reports size, bytes sent, rate and that checksum
    /// (data_sha256: the holes are not in it).
    Push(ImagePushArgs),
    /// Show the images in the store: name, size, space used on the store, last change.
    List(ImageViaArg),
    /// Delete an image from the store (asks first; --yes in scripts). Guests copied from it keep
    /// their own disks.
    Remove(ImageRemoveArgs),
}

#[derive(Debug, Args)]
pub struct ImageViaArg {
    /// The hardware node that mounts the store to go through (default: the first that answers).
    #[arg(long, value_name = "HNODE", value_parser = typed::<Name>)]
    pub via: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImagePushArgs {
    /// The local image file (raw disk image; sparse files are sent without their holes).
    pub file: PathBuf,
    /// The image's name in the store (default: the file's name without its extension).
    #[arg(value_parser = typed::<Name>)]
    pub name: Option<String>,
    #[command(flatten)]
    pub via: ImageViaArg,
}

#[derive(Debug, Args)]
pub struct ImageRemoveArgs {
    /// The image's name.
    #[arg(value_parser = typed::<Name>)]
    pub name: String,
    #[command(flatten)]
    pub via: ImageViaArg,
}

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Create a guest on a hardware node and start it; it is recorded in the inventory once it runs.
    ///
    /// The disk is a new sparse file in <store>/NAME/ on the shared storage ([instances] store), so
    /// a new guest never sees an old guest's data. Its root filesystem comes from debootstrap
    /// (mirror, variant and extra packages from [instances]; the finished tree is cached per
    /// suite/arch as a tarball, written atomically, so later creates take seconds) or from a copy
    /// of a filesystem image or of a stopped instance's disk. cloudctl then writes the guest's
    /// hostname, network (/etc/network/interfaces), fstab, resolv.conf and root's authorized_keys
    /// (the public half of [ssh] identity), gives it a new SSH host key (printed and pinned in
    /// cloudctl's known_hosts), locks root's password, and starts it. If anything fails, what this
    /// run created is removed again, and nothing it did not create.
    Create(InstanceCreateArgs),
    /// Show every guest: where it runs (asked from the hardware nodes), its state, memory and IP.
    ///
    /// Guests the inventory records on another node than the one they run on, and guests running
    /// without a record, are flagged. Exit 0 even when guests are stopped; 4 if a node is unreachable.
    List,
    /// Start a recorded guest on the hardware node the inventory records for it.
    Start(InstanceStartArgs),
    /// Shut a guest down (ACPI power button / xl shutdown), forcing it off after --grace seconds.
    Stop(InstanceStopArgs),
    /// Move a running guest to another hardware node without stopping it (live migration).
    ///
    /// Checks first, and moves nothing if one fails: the target is up and runs the same hypervisor
    /// version, has the memory, has the bridge, and sees the guest's disk (same file, readable);
    /// the guest runs on its recorded node and nowhere else. Then the target waits for the guest,
    /// the memory is copied while the guest runs (progress is shown), the guest pauses for the last
    /// pages (at most [instances] max_downtime_ms), and resumes on the target. cloudctl verifies it
    /// runs on the target and not on the source, stops the source's copy, and only then records the
    /// new node in the inventory. On any failure the guest keeps running on the source.
    ///
    /// The memory travels over SSH by default: the source gets a one-time key the target accepts
    /// only from the source's address and only to feed the waiting hypervisor, checked against the
    /// target's pinned host key; both are removed afterwards.
    ///
    /// --cleanup asks every hardware node where the guest really is (Xen's NAME--incoming and
    /// NAME--migratedaway included), records the node it runs on, stops stale paused copies and
    /// removes leftover keys. It never touches the guest's disk.
    Migrate(InstanceMigrateArgs),
    /// Stop a guest, forget it, and delete its folder on the shared storage.
    ///
    /// The folder is deleted only when it carries the create mark recorded for this guest
    /// (written by `instance create`) and holds nothing but the files create makes: a folder
    /// without the mark, with another guest's mark or with other files is refused (exit 2,
    /// nothing touched). --keep-disk stops the guest and forgets it, leaving the folder as it is.
    /// On a TTY you confirm by typing the guest's name; scripts pass --yes (without it and
    /// without a TTY: exit 6, nothing touched, as every command that changes hosts).
    Remove(InstanceRemoveArgs),
}

#[derive(Debug, Args)]
pub struct InstanceRemoveArgs {
    /// The instance's name.
    #[arg(value_parser = typed::<Name>)]
    pub name: String,
    /// Leave the guest's folder (its disk) on the shared storage.
    #[arg(long)]
    pub keep_disk: bool,
    /// Seconds to wait for the guest to power off before it is forced off (0: at once).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = grace)]
    pub grace: u32,
}

#[derive(Debug, Args)]
pub struct InstanceCreateArgs {
    /// The guest's name (also its hostname): lowercase letters, digits and '-'.
    #[arg(value_parser = typed::<Name>)]
    pub name: String,
    /// The hardware node to create and start it on; `auto` lets placement choose (the node with
    /// the most memory left after its recorded guests, then the fewest guests, then the name;
    /// never a drained or unanswering node or one of another hypervisor).
    #[arg(long, value_name = "HNODE|auto", value_parser = typed::<Name>)]
    pub hnode: String,
    /// Build the root filesystem with debootstrap SUITE (e.g. bookworm).
    #[arg(
        long,
        value_name = "SUITE",
        value_parser = typed::<Name>,
        conflicts_with = "copy",
        required_unless_present = "copy"
    )]
    pub debootstrap: Option<String>,
    /// Copy the root filesystem from an image file on the hardware node (an absolute path), from
    /// a stopped instance's disk (its name), or from an image of the store (its name, see
    /// `cloudctl image push`).
    #[arg(long, value_name = "SOURCE", value_parser = copy_source)]
    pub copy: Option<String>,
    /// Memory in MiB (default: [instances] memory).
    #[arg(long, value_name = "MiB")]
    pub memory: Option<u32>,
    /// Virtual CPUs (default: [instances] vcpus).
    #[arg(long, value_name = "N")]
    pub vcpus: Option<u8>,
    /// Disk size, e.g. 4G (default: [instances] disk; a copy is never made smaller than its source).
    #[arg(long, value_name = "SIZE", value_parser = typed::<Size>)]
    pub disk: Option<String>,
    /// IPv4 address (default: the first free one outside the DHCP dynamic range).
    #[arg(long, value_name = "IP", value_parser = ipv4)]
    pub ip: Option<String>,
    /// MAC address (default: derived from the name, 52:54:00:xx:xx:xx).
    #[arg(long, value_name = "MAC", value_parser = typed::<Mac>)]
    pub mac: Option<String>,
    #[command(flatten)]
    pub wait: GuestWaitArg,
}

#[derive(Debug, Args)]
pub struct GuestWaitArg {
    /// Then wait up to SECONDS (default 120) until the guest answers SSH with its pinned host key,
    /// reporting the stages it reaches; on timeout name the last one (exit 4).
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "120", value_parser = |s: &str| seconds("--wait", s))]
    pub wait: Option<u64>,
}

#[derive(Debug, Args)]
pub struct InstanceStartArgs {
    /// The instance's name.
    #[arg(value_parser = typed::<Name>)]
    pub name: String,
    #[command(flatten)]
    pub wait: GuestWaitArg,
}

#[derive(Debug, Args)]
pub struct InstanceStopArgs {
    /// The instance's name.
    #[arg(value_parser = typed::<Name>)]
    pub name: String,
    /// Seconds to wait for the guest to power off before it is forced off (0: at once).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = grace)]
    pub grace: u32,
}

#[derive(Debug, Args)]
pub struct InstanceMigrateArgs {
    /// The instance's name.
    #[arg(value_parser = typed::<Name>)]
    pub name: String,
    /// The hardware node to move it to; `auto` lets placement choose (as for `instance create --hnode auto`).
    #[arg(
        long,
        value_name = "HNODE|auto",
        value_parser = typed::<Name>,
        required_unless_present = "cleanup",
        conflicts_with = "cleanup"
    )]
    pub to: Option<String>,
    /// Find where the guest really runs, record it, stop stale copies and remove leftover keys.
    #[arg(long)]
    pub cleanup: bool,
    /// Send the guest's memory over plain TCP instead of SSH (anyone on the network can read it).
    #[arg(long)]
    pub unencrypted: bool,
    /// Limit the migration's bandwidth to this many MiB/s (default: no limit).
    #[arg(long, value_name = "MiB")]
    pub max_bandwidth: Option<u32>,
    /// Give up when the migration has not finished after this many seconds (the guest stays on the source).
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = |s: &str| seconds("--timeout", s))]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum LampCommand {
    /// Build the web stack: pen → Apache/PHP web nodes on shared storage → MariaDB (idempotent).
    ///
    /// On the balancer: pen (client tracking for [lamp.pen] timeout seconds, the seed's -T 10) run by
    /// /etc/init.d/cloudctl-pen with its settings in /etc/default/cloudctl-pen, started at boot and
    /// restarted only when they change. On every web node: Apache2 + PHP serving <mount>/htdocs,
    /// PHP sessions in <mount>/sessions, a status page (/status.php) naming the web node that
    /// answered and whether the database is reachable; every Apache file is checked with
    /// `apache2ctl -t` before it is activated. The shared filesystem is DRBD primary/primary with
    /// OCFS2 on top (DRBD metadata and mkfs.ocfs2 exactly once, refused on a disk that holds data),
    /// or with storage = "bind" a directory already shared between the web nodes, bind-mounted;
    /// both are listed in /etc/fstab. On the database node: MariaDB with external locking,
    /// delay-key-write OFF, query cache off and MyISAM as the default engine, checked with mariadbd
    /// before activation and read back from the running server. The web nodes' database password
    /// is generated once and kept on the database node (mode 0600); it is never printed, logged
    /// or passed on a command line. One mysqld is the default: OCFS2's o2cb stack has no
    /// cluster-wide POSIX locks, so several need `allow_multiple_mysqld = true`.
    Deploy,
    /// Show each LAMP component up or down and the web nodes pen balances to.
    ///
    /// Read-only. Exit status 0 when every component is up, 1 when one is down, 4 when a node
    /// cannot be reached.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Build the storage layer of [storage] on the storage nodes (idempotent).
    ///
    /// An md array from the member disks (mdadm.conf kept), a DRBD resource over it between the
    /// two storage nodes (primary/primary, protocol C, fencing, after-sb-2pri disconnect, a shared
    /// secret generated once and kept 0600, never printed), and an AoE export of the DRBD device
    /// with vblade restricted to the hardware nodes' MACs, started at boot. Every member disk is
    /// probed first (blkid -p): a disk holding a filesystem, a partition table or foreign metadata
    /// is refused, naming the disk and what it holds, unless --force-wipe names it. DRBD metadata
    /// is created and the initial sync forced only on a fresh resource, never on a re-run.
    Init(StorageInitArgs),
    /// Show md, DRBD (role, connection, disk state, sync) and AoE export state per storage node.
    Status,
}

#[derive(Debug, Args)]
pub struct StorageInitArgs {
    /// Only these storage nodes (default: both).
    #[arg(value_name = "SNODE", value_parser = typed::<Name>)]
    pub nodes: Vec<String>,
    /// Wipe this member disk although it holds data (asks you to type its name; --yes skips that).
    #[arg(long, value_name = "DISK", value_parser = typed::<RemotePath>)]
    pub force_wipe: Vec<String>,
}
