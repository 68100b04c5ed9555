//! The argument parser over the whole u64 range of every numeric flag: each value is accepted
//! and reaches the settings, or is refused with a message naming the flag and its range; never
//! a panic.

use keyrouter::cli::{Cli, Command};
use proptest::prelude::*;

/// A numeric flag: where it goes on the command line, its range as its errors state it, and
/// where the parsed value lands.
struct Flag {
    args: &'static [&'static str],
    flag: &'static str,
    range: std::ops::RangeInclusive<u64>,
    shown: &'static str,
    unit: &'static str,
    get: fn(&Cli) -> u64,
}

fn diff(cli: &Cli) -> (u64, u64) {
    match &cli.command {
        Some(Command::Diff { samples, replicas, .. }) => (*samples, replicas.unwrap_or(0)),
        other => panic!("not diff: {other:?}"),
    }
}

const SERVE: &[&str] = &["--address", "127.0.0.1:0"];
const DIFF: &[&str] = &["diff", "old.toml", "new.toml"];

fn secs(d: std::time::Duration) -> u64 {
    d.as_secs()
}

fn flags() -> Vec<Flag> {
    vec![
        Flag {
            args: SERVE,
            flag: "--workers",
            range: 0..=512,
            shown: "0..=512",
            unit: "",
            get: |c| c.settings().workers as u64,
        },
        Flag {
            args: SERVE,
            flag: "--heavy-lookups",
            range: 0..=512,
            shown: "0..=512",
            unit: "",
            get: |c| c.settings().limits.heavy_lookups as u64,
        },
        Flag {
            args: SERVE,
            flag: "--max-connections",
            range: 0..=10_000_000,
            shown: "0..=10000000",
            unit: "",
            get: |c| c.settings().max_connections as u64,
        },
        Flag {
            args: SERVE,
            flag: "--max-service-series",
            range: 0..=1_000_000,
            shown: "0..=1000000",
            unit: "",
            get: |c| c.settings().max_service_series as u64,
        },
        Flag {
            args: SERVE,
            flag: "--max-answer-nodes",
            range: 1..=10_000_000,
            shown: "1..=10000000",
            unit: "",
            get: |c| c.settings().limits.max_answer_nodes,
        },
        Flag {
            args: SERVE,
            flag: "--max-services-bytes",
            range: 1..=(4 << 30),
            shown: "1..=4294967296",
            unit: "",
            get: |c| c.settings().max_services_bytes,
        },
        Flag {
            args: SERVE,
            flag: "--heavy-lookup-work",
            range: 0..=u64::MAX,
            shown: "",
            unit: "",
            get: |c| c.settings().limits.heavy_work,
        },
        Flag {
            args: SERVE,
            flag: "--request-timeout",
            range: 1..=86_400,
            shown: "from 1s to 24h",
            unit: "",
            get: |c| secs(c.settings().limits.request_timeout),
        },
        Flag {
            args: SERVE,
            flag: "--request-timeout",
            range: 1..=86_400,
            shown: "from 1s to 24h",
            unit: "s",
            get: |c| secs(c.settings().limits.request_timeout),
        },
        Flag {
            args: SERVE,
            flag: "--shutdown-timeout",
            range: 1..=3_600,
            shown: "from 1s to 1h",
            unit: "",
            get: |c| secs(c.settings().shutdown_timeout),
        },
        Flag {
            args: SERVE,
            flag: "--shutdown-delay",
            range: 0..=3_600,
            shown: "from 0s to 1h",
            unit: "",
            get: |c| secs(c.settings().shutdown_delay),
        },
        Flag {
            args: SERVE,
            flag: "--shutdown-delay",
            range: 0..=60,
            shown: "from 0s to 1h",
            unit: "m",
            get: |c| secs(c.settings().shutdown_delay) / 60,
        },
        Flag {
            args: DIFF,
            flag: "--samples",
            range: 1..=100_000_000,
            shown: "1..=100000000",
            unit: "",
            get: |c| diff(c).0,
        },
        Flag {
            args: DIFF,
            flag: "--replicas",
            range: 1..=1_000_000,
            shown: "1..=1000000",
            unit: "",
            get: |c| diff(c).1,
        },
    ]
}

/// Values all over u64, and many near the ranges' bounds.
fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..=200_000_000,
        (0u32..64).prop_map(|b| 1u64 << b),
        (0u32..64, -2i64..=2).prop_map(|(b, d)| (1u64 << b).wrapping_add_signed(d)),
        prop::sample::select(vec![
            0,
            1,
            60,
            61,
            511,
            512,
            513,
            3_600,
            3_601,
            86_400,
            86_401,
            1_000_000,
            1_000_001,
            10_000_000,
            10_000_001,
            100_000_000,
            100_000_001,
            4 << 30,
            (4 << 30) + 1,
            u64::MAX
        ]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_numeric_flag_accepts_its_range_and_refuses_the_rest_with_its_name_and_range(v in value()) {
        for f in flags() {
            let text = format!("{v}{}", f.unit);
            let mut args = vec!["keyrouter"];
            args.extend(f.args);
            args.extend([f.flag, &text]);
            match Cli::parse_from(args.clone()) {
                Ok(cli) => {
                    prop_assert!(f.range.contains(&v), "{} {text} was accepted", f.flag);
                    prop_assert_eq!((f.get)(&cli), v, "{} {}", f.flag, text);
                    // Valid settings: the shutdown deadline is finite arithmetic.
                    let s = cli.settings();
                    let budget = keyrouter::signals::ShutdownBudget { delay: s.shutdown_delay, timeout: s.shutdown_timeout };
                    prop_assert!(budget.deadline() <= std::time::Duration::from_secs(2 * 3_600 + 1));
                }
                Err(e) => {
                    let message = e.to_string();
                    prop_assert!(!f.range.contains(&v), "{} {text} was refused: {message}", f.flag);
                    prop_assert_eq!(e.exit_code(), 2);
                    prop_assert!(message.contains(f.flag) && message.contains(f.shown), "{} {text}: {message}", f.flag);
                }
            }
        }
    }
}
