//! Weights mean what they say: inside `MIN_WEIGHT..=MAX_WEIGHT` a node's share of first choices
//! is its weight over the total (checked at both ends of the range over 200 000 keys), outside
//! it the formula breaks down numerically (shown with the scores themselves), and a services
//! file with a weight outside the range is refused with its line and column.

use crate::common;

use std::process::Command;

use keyrouter::ranking::hash::{hash_str, score, weighted_score};
use keyrouter::ranking::{NodeSpec, Service, ServiceSpec, MAX_WEIGHT, MIN_WEIGHT};

const KEYS: usize = 200_000;

fn service(nodes: &[(&str, f64)]) -> Service {
    let spec = ServiceSpec {
        name: "w".into(),
        nodes: nodes.iter().map(|&(n, weight)| NodeSpec::weighted(n, weight)).collect(),
    };
    Service::build(spec).unwrap_or_else(|e| panic!("{nodes:?}: {e}")).0
}

fn key(i: usize) -> String {
    format!("key-{i}")
}

/// The first choice for each of the `KEYS` keys.
fn winners(s: &Service) -> Vec<String> {
    (0..KEYS).map(|i| s.lookup(&key(i), 1, 1).unwrap()[0].to_string()).collect()
}

fn count(winners: &[String], node: &str) -> usize {
    winners.iter().filter(|w| *w == node).count()
}

/// `got / want - 1`.
fn relative_error(got: f64, want: f64) -> f64 {
    got / want - 1.0
}

#[test]
fn the_range_is_what_the_documentation_says() {
    assert_eq!((MIN_WEIGHT, MAX_WEIGHT), (1e-6, 1e6));
    for w in [MIN_WEIGHT, 1.0, MAX_WEIGHT] {
        assert!(Service::build(ServiceSpec { name: "s".into(), nodes: vec![NodeSpec::weighted("a", w)] }).is_ok());
    }
    for w in [MIN_WEIGHT * 0.999, MAX_WEIGHT * 1.001, f64::MAX, f64::MIN_POSITIVE, 0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err =
            Service::build(ServiceSpec { name: "s".into(), nodes: vec![NodeSpec::weighted("a", w)] }).unwrap_err();
        assert!(err.to_string().contains("a weight must be from 1e-6 to 1e6"), "{w}: {err}");
    }
}

#[test]
fn two_to_one_holds_at_both_ends_of_the_range() {
    // The reference, in the middle of the range.
    let middle = winners(&service(&[("light", 1.0), ("heavy", 2.0)]));
    for (light, heavy) in [(MIN_WEIGHT, 2.0 * MIN_WEIGHT), (MAX_WEIGHT / 2.0, MAX_WEIGHT)] {
        let w = winners(&service(&[("light", light), ("heavy", heavy)]));
        let (l, h) = (count(&w, "light"), count(&w, "heavy"));
        assert_eq!(l + h, KEYS);
        let ratio = h as f64 / l as f64;
        assert!(relative_error(ratio, 2.0).abs() <= 0.02, "weights {light:e} : {heavy:e}: ratio {ratio}");
        let share = h as f64 / KEYS as f64;
        assert!(relative_error(share, 2.0 / 3.0).abs() <= 0.02, "weights {light:e} : {heavy:e}: share {share}");
        // Only the ratio of the weights matters: scaled weights pick the very same nodes.
        let moved = w.iter().zip(&middle).filter(|(a, b)| a != b).count();
        assert_eq!(moved, 0, "weights {light:e} : {heavy:e}: {moved} keys differ from 1 : 2");
    }
}

#[test]
fn the_widest_ratio_in_one_service_keeps_the_others_shares() {
    // The lightest and the heaviest weights side by side: the two heavy nodes still share 1 : 2,
    // and the light one gets its 1e-12 (that is, none of 200 000 keys).
    let w = winners(&service(&[("lightest", MIN_WEIGHT), ("half", MAX_WEIGHT / 2.0), ("heaviest", MAX_WEIGHT)]));
    let (half, heaviest) = (count(&w, "half"), count(&w, "heaviest"));
    assert_eq!(count(&w, "lightest"), 0);
    let ratio = heaviest as f64 / half as f64;
    assert!(relative_error(ratio, 2.0).abs() <= 0.02, "ratio {ratio}");
}

/// The first choice between two nodes by the weighted score itself, as the table computes it
/// (ties broken by the raw score), for weights the table would refuse.
fn raw_heavy_share(light: f64, heavy: f64) -> f64 {
    let (hl, hh) = (hash_str("light"), hash_str("heavy"));
    let mut heavy_wins = 0;
    for i in 0..KEYS {
        let kh = hash_str(&key(i));
        let (rl, rh) = (score(kh, hl), score(kh, hh));
        let (sl, sh) = (weighted_score(rl, light), weighted_score(rh, heavy));
        if (sh, rh) > (sl, rl) {
            heavy_wins += 1;
        }
    }
    heavy_wins as f64 / KEYS as f64
}

#[test]
fn beyond_the_range_the_shares_stop_following_the_weights() {
    // In the range, the bare formula agrees with the table.
    let inside = raw_heavy_share(MAX_WEIGHT / 2.0, MAX_WEIGHT);
    assert!(relative_error(inside, 2.0 / 3.0).abs() <= 0.02, "{inside}");
    // Near f64::MAX the scores overflow to infinity, the ties go to the raw hash, and 2 : 1 is
    // far off (the 1.58 : 1 seen in the field): what the range keeps out.
    let share = raw_heavy_share(f64::MAX / 2.0, f64::MAX);
    let ratio = share / (1.0 - share);
    eprintln!("weights f64::MAX / 2 : f64::MAX: {ratio:.3} : 1");
    assert!(relative_error(ratio, 2.0).abs() > 0.1, "2 : 1 near f64::MAX gave {ratio} : 1");
}

#[test]
fn the_binary_refuses_a_weight_outside_the_range_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.toml");
    let write = |weight: &str| {
        let src = format!(
            "[[Services]]\nName = \"w\"\nNodes = [\n  \"a:80\",\n  {{ Node = \"b:80\", Weight = {weight} }},\n]\n"
        );
        std::fs::write(&file, src).unwrap();
    };
    let check = || Command::new(common::BIN).arg("check").arg("--services").arg(&file).output().unwrap();

    for bad in ["1.7976931348623157e308", "2e6", "1e-7"] {
        write(bad);
        let out = check();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{bad}: {stderr}");
        assert!(stderr.contains("w.toml:5:29: node \"b:80\": Weight "), "{bad}: {stderr}");
        assert!(stderr.contains("is outside 1e-6..=1e6"), "{bad}: {stderr}");
    }
    for good in ["1e-6", "1e6", "2.5"] {
        write(good);
        let out = check();
        assert!(out.status.success(), "{good}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
