//! `demo`'s start: its arguments handed to [`crate::sim::demo`], which runs the exporter against an
//! in-process broker fed with synthetic traffic.

use crate::config::cli::DemoArgs;
use crate::sim::demo::{self, DemoOptions};

pub fn main(args: DemoArgs) -> i32 {
    let opts = DemoOptions { rate: args.rate, partitions: args.partitions, seed: args.seed };
    demo::run(args.settings, opts, super::stopped_by_signals())
}
