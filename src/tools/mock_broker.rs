//! `mock-broker`: librdkafka's mock Kafka cluster on loopback as a process of its own, for tests and
//! benchmarks. It prints its bootstrap address on the first line and serves until a signal stops it.
//!
//! With `--brokers N` the cluster has N brokers (ids 1..=N, partition leaders spread over them). Lines on
//! standard input take a broker down and bring it back, without losing data (a restart of the process would):
//! `down 2`, `up 2`; each is answered by one line, `ok down 2` or `error: …`. End of input changes nothing.

use std::io::{BufRead, Write};
use std::sync::Arc;

use crate::config::cli::MockBrokerArgs;
use crate::sim::mock::MockBroker;

pub fn main(args: MockBrokerArgs) -> i32 {
    let mock = match MockBroker::start(args.brokers) {
        Ok(b) => Arc::new(b),
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if let Err(e) = mock.create_topic(&args.topic, args.partitions) {
        eprintln!("cannot create topic {}: {e}", args.topic);
        return 1;
    }
    println!("{}", mock.bootstrap_servers());
    let _ = std::io::stdout().flush();
    let control = mock.clone();
    let brokers = args.brokers;
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            let answer = command(&control, brokers, line.trim());
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{answer}");
            let _ = out.flush();
        }
    });
    super::stopped_by_signals().wait_for_stop();
    0
}

/// Runs one control line; returns the answer line.
fn command(mock: &MockBroker, brokers: i32, line: &str) -> String {
    let mut words = line.split_whitespace();
    let (verb, id) = (words.next(), words.next().and_then(|w| w.parse::<i32>().ok()));
    let up = match verb {
        Some("down") => false,
        Some("up") => true,
        _ => return format!("error: unknown command {line:?} (expected \"down ID\" or \"up ID\")"),
    };
    match id {
        Some(id) if (1..=brokers).contains(&id) && words.next().is_none() => match mock.set_broker_up(id, up) {
            Ok(()) => format!("ok {line}"),
            Err(e) => format!("error: {e}"),
        },
        _ => format!("error: expected a broker id from 1 to {brokers} in {line:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_lines_are_checked_and_answered() {
        let mock = MockBroker::start(2).unwrap();
        assert_eq!(command(&mock, 2, "down 2"), "ok down 2");
        assert_eq!(command(&mock, 2, "up 2"), "ok up 2");
        assert_eq!(command(&mock, 2, "down 3"), "error: expected a broker id from 1 to 2 in \"down 3\"");
        assert_eq!(command(&mock, 2, "down 1 2"), "error: expected a broker id from 1 to 2 in \"down 1 2\"");
        assert_eq!(
            command(&mock, 2, "restart 1"),
            "error: unknown command \"restart 1\" (expected \"down ID\" or \"up ID\")"
        );
    }
}
