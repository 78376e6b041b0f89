//! Facts from many hosts at once: `gather` runs a `Fact`'s probe on every host in parallel
//! (bounded by `--forks`), each over its own connection, and parses each answer. Read-only.

use super::{fan_out, Connector, Limits};
use crate::error::Error;
use crate::inventory::Host;
use crate::plan::fact::Fact;
use crate::plan::without_secrets;
use std::time::{Duration, Instant};

/// `fact` on every host, in `hosts` order: the host's value, or the error that kept it from
/// answering (unreachable, host key refused, probe failed), one host's error never stopping
/// the others. `None`: the host was not asked because the run was interrupted (Ctrl-C).
pub fn gather<F: Fact>(
    hosts: &[Host],
    fact: &F,
    connector: &dyn Connector,
    limits: &Limits,
) -> Vec<Option<Result<F::Value, Error>>> {
    fan_out(hosts, limits.forks, |h| ask(h, fact, connector, limits.host_timeout))
}

/// `fact` on one host, within `timeout` from now (connecting included).
pub fn ask<F: Fact>(host: &Host, fact: &F, connector: &dyn Connector, timeout: Duration) -> Result<F::Value, Error> {
    let script = fact.script(host)?;
    let deadline = Instant::now() + timeout;
    let mut transport = connector.connect(host, deadline)?;
    let out = transport.run_script(&script, deadline)?;
    if fact.needs_success() && out.status != 0 {
        // The output goes into the message for the person reading it, minus any secret it holds.
        return Err(Error::Failed(anyhow::anyhow!(
            "probing {} failed (exit {}): {}",
            host.name,
            out.status,
            without_secrets(out.output.trim())
        )));
    }
    Ok(fact.parse(host, &out.output))
}

#[cfg(test)]
mod tests {
    //! `gather` host-free: a scripted connector stands in for the network, everything else runs
    //! as in production.
    use super::*;
    use crate::exec::record::{Log, ScriptedConnector};
    use crate::exec::{HostError, ScriptOutput};
    use std::sync::Arc;

    /// Asks a host its name back (the probe names the host, so the log shows who got what).
    struct Hostname;

    impl Fact for Hostname {
        type Value = String;
        fn script(&self, host: &Host) -> Result<String, Error> {
            Ok(crate::shell::Script::new().call("echo", &[&host.name], "\n").build())
        }
        fn parse(&self, host: &Host, output: &str) -> String {
            format!("{} says {}", host.name, output.trim())
        }
    }

    fn host(name: &str) -> Host {
        Host {
            name: name.into(),
            role: "hnode",
            host: format!("{name}.lab"),
            port: 22,
        }
    }

    fn limits(forks: usize) -> Limits {
        Limits {
            forks,
            host_timeout: Duration::from_secs(5),
        }
    }

    /// Hosts answer `name-output` with `status`; `down` cannot be reached.
    fn hosts_answering(status: i32) -> (ScriptedConnector, Log) {
        let log = Log::default();
        let connector = ScriptedConnector {
            log: log.clone(),
            connect: Arc::new(|name| match name {
                "down" => Err(HostError::Unreachable("down.lab:22: connection refused".into())),
                _ => Ok(()),
            }),
            answer: Arc::new(move |name, _| {
                Ok(ScriptOutput {
                    output: format!("{name}-output\n"),
                    status,
                })
            }),
        };
        (connector, log)
    }

    #[test]
    fn every_host_runs_the_probe_and_its_answer_is_parsed_for_it() {
        let (connector, log) = hosts_answering(0);
        let hosts = [host("a"), host("b"), host("c")];
        let got = gather(&hosts, &Hostname, &connector, &limits(2));
        let values: Vec<String> = got.into_iter().map(|r| r.unwrap().unwrap()).collect();
        assert_eq!(values, ["a says a-output", "b says b-output", "c says c-output"]);
        let mut asked = log.lock().unwrap().clone();
        asked.sort();
        let want: Vec<(String, String)> = ["a", "b", "c"]
            .iter()
            .map(|n| (n.to_string(), Hostname.script(&host(n)).unwrap()))
            .collect();
        assert_eq!(asked, want, "each host got its own probe, once");
    }

    #[test]
    fn an_unreachable_host_is_reported_as_such_and_the_others_still_answer() {
        let (connector, log) = hosts_answering(0);
        let hosts = [host("a"), host("down"), host("c")];
        let got = gather(&hosts, &Hostname, &connector, &limits(1));
        assert_eq!(got[0].as_ref().unwrap().as_ref().unwrap(), "a says a-output");
        match got[1].as_ref().unwrap() {
            Err(e @ Error::Unreachable(_)) => {
                assert_eq!(e.to_string(), "down.lab:22: connection refused");
                assert_eq!(e.exit(), crate::error::Exit::Unreachable);
            }
            other => panic!("down must be unreachable, not {other:?}"),
        }
        assert_eq!(got[2].as_ref().unwrap().as_ref().unwrap(), "c says c-output");
        let asked: Vec<String> = log.lock().unwrap().iter().map(|(h, _)| h.clone()).collect();
        assert!(!asked.contains(&"down".to_string()), "{asked:?}");
    }

    #[test]
    fn a_probe_that_fails_fails_its_host_with_its_output_minus_secrets() {
        let log = Log::default();
        let connector = ScriptedConnector {
            log,
            connect: Arc::new(|_| Ok(())),
            answer: Arc::new(|_, _| {
                Ok(ScriptOutput {
                    output: "@secret pw hunter2\nsh: 1: oops: not found\n".into(),
                    status: 127,
                })
            }),
        };
        let got = gather(&[host("a")], &Hostname, &connector, &limits(4));
        let e = got[0].as_ref().unwrap().as_ref().unwrap_err();
        assert_eq!(
            e.to_string(),
            "probing a failed (exit 127): @secret (not shown)\nsh: 1: oops: not found"
        );
        assert_eq!(e.exit(), crate::error::Exit::Failed);
    }

    /// A fact that reads its output whatever the exit status says.
    struct Listing;

    impl Fact for Listing {
        type Value = usize;
        fn script(&self, _: &Host) -> Result<String, Error> {
            Ok("true\n".into())
        }
        fn parse(&self, _: &Host, output: &str) -> usize {
            output.lines().count()
        }
        fn needs_success(&self) -> bool {
            false
        }
    }

    #[test]
    fn a_fact_may_read_its_output_whatever_the_status() {
        let (connector, _) = hosts_answering(3);
        let got = gather(&[host("a")], &Listing, &connector, &limits(1));
        assert_eq!(*got[0].as_ref().unwrap().as_ref().unwrap(), 1);
    }

    /// A host whose probe cannot be built is not asked, and the others are.
    struct Picky;

    impl Fact for Picky {
        type Value = ();
        fn script(&self, host: &Host) -> Result<String, Error> {
            match host.name.as_str() {
                "b" => Err(Error::Usage("b has no hypervisor".into())),
                _ => Ok("true\n".into()),
            }
        }
        fn parse(&self, _: &Host, _: &str) {}
    }

    #[test]
    fn a_probe_that_cannot_be_built_skips_only_its_host() {
        let (connector, log) = hosts_answering(0);
        let got = gather(&[host("a"), host("b")], &Picky, &connector, &limits(2));
        assert!(got[0].as_ref().unwrap().is_ok());
        assert_eq!(
            got[1].as_ref().unwrap().as_ref().unwrap_err().to_string(),
            "b has no hypervisor"
        );
        let asked: Vec<String> = log.lock().unwrap().iter().map(|(h, _)| h.clone()).collect();
        assert_eq!(asked, ["a"]);
    }
}
