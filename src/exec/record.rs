//! A transport that records every script it is given and answers from a list (for tests that
//! check what would be sent, with no host at all).

use super::{Connector, HostError, ScriptOutput, Transport};
use crate::inventory::Host;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Shared log of (host name, script) pairs, in the order they were run.
pub type Log = Arc<Mutex<Vec<(String, String)>>>;

pub struct RecordConnector {
    pub log: Log,
    /// Answers the recording transport gives for each successive script on a host.
    pub answers: Vec<ScriptOutput>,
}

struct RecordTransport {
    host: String,
    log: Log,
    answers: std::vec::IntoIter<ScriptOutput>,
}

impl Transport for RecordTransport {
    fn run_script(&mut self, script: &str, _deadline: Instant) -> Result<ScriptOutput, HostError> {
        self.log
            .lock()
            .expect("log")
            .push((self.host.clone(), script.to_string()));
        self.answers
            .next()
            .ok_or_else(|| HostError::Failed("recording transport ran out of answers".into()))
    }
}

impl Connector for RecordConnector {
    fn connect(&self, host: &Host, _deadline: Instant) -> Result<Box<dyn Transport>, HostError> {
        Ok(Box::new(RecordTransport {
            host: host.name.clone(),
            log: self.log.clone(),
            answers: self.answers.clone().into_iter(),
        }))
    }
}

/// What a scripted host answers to one script (or why it cannot be reached).
pub type Answer = Arc<dyn Fn(&str, &str) -> Result<ScriptOutput, HostError> + Send + Sync>;

/// Whether a scripted host can be reached (the error it gives otherwise).
pub type Reach = Arc<dyn Fn(&str) -> Result<(), HostError> + Send + Sync>;

/// A connector whose hosts answer as a test scripts them, per host and per script: `connect`
/// says whether a host can be reached (the error it gives otherwise), `answer(host, script)`
/// what each script prints and its exit status. Every script run is logged, so a test checks
/// what reached which host; the code under test runs as in production, only the network is
/// replaced.
pub struct ScriptedConnector {
    pub log: Log,
    pub connect: Reach,
    pub answer: Answer,
}

struct ScriptedTransport {
    host: String,
    log: Log,
    answer: Answer,
}

impl Transport for ScriptedTransport {
    fn run_script(&mut self, script: &str, _deadline: Instant) -> Result<ScriptOutput, HostError> {
        self.log
            .lock()
            .expect("log")
            .push((self.host.clone(), script.to_string()));
        (self.answer)(&self.host, script)
    }
}

impl Connector for ScriptedConnector {
    fn connect(&self, host: &Host, _deadline: Instant) -> Result<Box<dyn Transport>, HostError> {
        (self.connect)(&host.name)?;
        Ok(Box::new(ScriptedTransport {
            host: host.name.clone(),
            log: self.log.clone(),
            answer: self.answer.clone(),
        }))
    }
}
