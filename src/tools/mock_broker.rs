//! `mock-broker`: librdkafka's mock Kafka cluster on loopback as a process of its own, for tests and
//! benchmarks. It prints its bootstrap address on the first line and serves until a signal stops it.

use crate::config::cli::MockBrokerArgs;
use crate::sim::mock::MockBroker;

pub fn main(args: MockBrokerArgs) -> i32 {
    let mock = match MockBroker::start(1) {
        Ok(b) => b,
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
    let _ = std::io::Write::flush(&mut std::io::stdout());
    super::stopped_by_signals().wait_for_stop();
    0
}
