//! A transport that runs scripts on this machine with `sh` (for tests of the script layer and for
//! local targets); no SSH involved.

use super::{Connector, HostError, ScriptOutput, Transport};
use crate::inventory::Host;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

pub struct LocalTransport;

impl Transport for LocalTransport {
    fn run_script(&mut self, script: &str, _deadline: Instant) -> Result<ScriptOutput, HostError> {
        let mut child = Command::new("sh")
            .arg("-s")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| HostError::Unreachable(format!("cannot start sh: {e}")))?;
        let mut stdin = child.stdin.take().expect("piped");
        let script = script.to_string();
        let writer = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
        let out = child.wait_with_output().map_err(|e| HostError::Failed(e.to_string()))?;
        writer
            .join()
            .expect("writer thread")
            .map_err(|e| HostError::Failed(e.to_string()))?;
        let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
        output += &String::from_utf8_lossy(&out.stderr);
        Ok(ScriptOutput {
            output,
            status: out.status.code().unwrap_or(-1),
        })
    }

    fn run_fed(
        &mut self,
        command: &str,
        feed: &mut super::Feed,
        _deadline: Instant,
    ) -> Result<ScriptOutput, HostError> {
        LocalTransport::fed(command, feed)
    }
}

impl LocalTransport {
    fn fed(command: &str, feed: &mut super::Feed) -> Result<ScriptOutput, HostError> {
        let mut child = Command::new("sh")
            .args(["-c", &format!("exec 2>&1; {command}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| HostError::Unreachable(format!("cannot start sh: {e}")))?;
        let mut stdout = child.stdout.take().expect("piped");
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut stdout, &mut out).map(|_| out)
        });
        let mut stdin = child.stdin.take().expect("piped");
        let fed = feed(&mut stdin);
        drop(stdin);
        let status = child.wait().map_err(|e| HostError::Failed(e.to_string()))?;
        let out = reader
            .join()
            .expect("reader thread")
            .map_err(|e| HostError::Failed(e.to_string()))?;
        let out = ScriptOutput {
            output: String::from_utf8_lossy(&out).into_owned(),
            status: status.code().unwrap_or(-1),
        };
        match fed {
            Err(e) if out.status == 0 => Err(HostError::Failed(format!("sending the data: {e}"))),
            _ => Ok(out),
        }
    }
}

pub struct LocalConnector;

impl Connector for LocalConnector {
    fn connect(&self, _host: &Host, _deadline: Instant) -> Result<Box<dyn Transport>, HostError> {
        Ok(Box::new(LocalTransport))
    }
}
