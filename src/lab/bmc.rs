//! A lab VM's BMC: the chassis-control side of OpenIPMI's `ipmi_sim`, which answers IPMI over
//! LAN (lanplus) for a lab VM and runs `cloudctl lab bmc-chassis --name LAB VM REQUEST…` for
//! each chassis command; this turns the request into the VM's power (QEMU started, killed, or
//! its power button pressed). So `ipmitool … chassis power soft` from the ConfigNode reaches a
//! lab VM as it reaches a real machine's BMC. Parsing is pure; `chassis` acts on this machine.

use super::LAB_ROOT;
use crate::error::{Error, Exit};
use std::io::Write;
use std::path::Path;

/// One chassis request as ipmi_sim words it (`get power`, `set power 0`, `set shutdown 1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `get PARM…`: print `PARM:VALUE` for each.
    Get(Vec<String>),
    /// `set power 1`: switch on.
    PowerOn,
    /// `set power 0`: switch off at once (the plug).
    PowerOff,
    /// `set shutdown 1`: a soft shutdown (the ACPI power button).
    Shutdown,
    /// `set reset 1`: off and on again.
    Reset,
    /// `set boot …` / `set identify …`: accepted, nothing to do for a lab VM.
    Ignored,
}

/// Reads ipmi_sim's words; the error is what ipmi_sim shows its client.
pub fn parse(words: &[String]) -> Result<Request, String> {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["get", parms @ ..] if !parms.is_empty() => Ok(Request::Get(parms.iter().map(|p| p.to_string()).collect())),
        ["set", "power", "1"] => Ok(Request::PowerOn),
        ["set", "power", "0"] => Ok(Request::PowerOff),
        ["set", "shutdown", "1"] => Ok(Request::Shutdown),
        ["set", "reset", "1"] => Ok(Request::Reset),
        ["set", "boot" | "identify", ..] => Ok(Request::Ignored),
        _ => Err(format!("lab BMC: unsupported chassis request {:?}", w.join(" "))),
    }
}

/// The answer to `get PARM`, given whether the VM is on.
pub fn value(parm: &str, on: bool) -> Result<String, String> {
    match parm {
        "power" => Ok(format!("power:{}", u8::from(on))),
        "boot" => Ok("boot:default".into()),
        _ => Err(format!("lab BMC: cannot get {parm:?}")),
    }
}

/// Does `request` to VM `vm` of lab `name`; every request is logged to `bmc-VM.log` in the
/// lab's folder. Errors go to stdout (ipmi_sim reads them there) with exit 1.
pub fn chassis(name: &str, vm: &str, request: &[String]) -> Result<Exit, Error> {
    let result = parse(request).and_then(|r| act(name, vm, &r));
    log(name, vm, request, &result);
    match result {
        Ok(lines) => {
            for l in lines {
                crate::outln!("{l}");
            }
            Ok(Exit::Ok)
        }
        Err(e) => {
            crate::outln!("{e}");
            Ok(Exit::Failed)
        }
    }
}

fn act(name: &str, vm: &str, r: &Request) -> Result<Vec<String>, String> {
    let err = |e: anyhow::Error| format!("lab BMC of {vm}: {e:#}");
    match r {
        Request::Get(parms) => {
            let on = super::is_on(name, vm).map_err(err)?;
            parms.iter().map(|p| value(p, on)).collect()
        }
        Request::PowerOn => super::power_on(name, vm).map(|_| Vec::new()).map_err(err),
        Request::PowerOff => super::power_off(name, vm).map(|_| Vec::new()).map_err(err),
        Request::Shutdown => super::power_button(name, vm).map(|_| Vec::new()).map_err(err),
        Request::Reset => {
            super::power_off(name, vm).map_err(err)?;
            super::power_on(name, vm).map(|_| Vec::new()).map_err(err)
        }
        Request::Ignored => Ok(Vec::new()),
    }
}

/// Appends `TIME REQUEST -> ok|ERROR` to the lab's BMC log of the VM (best effort: a log that
/// cannot be written must not change the power).
fn log(name: &str, vm: &str, request: &[String], result: &Result<Vec<String>, String>) {
    let path = Path::new(LAB_ROOT).join(name).join(format!("bmc-{vm}.log"));
    let outcome = match result {
        Ok(_) => "ok".to_string(),
        Err(e) => e.clone(),
    };
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{} {} -> {outcome}", crate::ui::timestamp(), request.join(" "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn ipmi_sims_requests_are_read() {
        assert_eq!(parse(&words("get power")), Ok(Request::Get(vec!["power".into()])));
        assert_eq!(parse(&words("set power 1")), Ok(Request::PowerOn));
        assert_eq!(parse(&words("set power 0")), Ok(Request::PowerOff));
        assert_eq!(parse(&words("set shutdown 1")), Ok(Request::Shutdown));
        assert_eq!(parse(&words("set reset 1")), Ok(Request::Reset));
        assert_eq!(parse(&words("set boot pxe")), Ok(Request::Ignored));
        assert!(parse(&words("set power 7")).unwrap_err().contains("set power 7"));
        assert!(parse(&words("get")).is_err());
        assert_eq!(value("power", true).as_deref(), Ok("power:1"));
        assert_eq!(value("power", false).as_deref(), Ok("power:0"));
        assert!(value("reset", true).is_err());
    }
}
