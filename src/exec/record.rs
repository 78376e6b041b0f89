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
