//! `check-config`: validate the configuration exactly as the daemon would, then print every setting (secrets
//! masked), what the web config turns on and the librdkafka consumer properties, and let librdkafka itself
//! check them. Exit 0, or 2 with every problem listed.

use crate::config::{Config, RawSettings};

pub fn main(raw: RawSettings) -> i32 {
    let described = Config::describe(&raw);
    let cfg = match super::valid(Config::from_raw(&raw)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    for line in described {
        println!("{line}");
    }
    if let Some(web) = &cfg.http.web_config {
        println!("web config {}: {}", web.path().display(), web.summary());
    }
    match &cfg.remote_write {
        Some(rw) => println!("{}", rw.summary()),
        None => println!("remote write off (REMOTE_WRITE_URL unset)"),
    }
    println!("librdkafka consumer properties:");
    for (k, v) in crate::config::kafka::masked(&cfg.kafka.consumer_properties()) {
        println!("  {k}={v}");
    }
    if let Err(e) = cfg.kafka.consumer_config().create_native_config() {
        let e = crate::config::kafka::printable_error(&e);
        eprintln!("invalid configuration: librdkafka refuses the consumer properties: {e}");
        return super::EXIT_CONFIG;
    }
    for w in &cfg.warnings {
        println!("warning: {w}");
    }
    println!("configuration OK");
    0
}
