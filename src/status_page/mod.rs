//! The status page (`GET /` and `/status`): one self-contained HTML page that says which table
//! this replica serves, what the last reload did, and how each service shares its first choices.
//!
//! Pure rendering: from one [`Live`] snapshot and the last [`ReloadRecord`] to a string. No
//! actix, no I/O; the handler in `http/status.rs` loads the table once, renders on the blocking
//! pool and adds the headers (Content-Security-Policy among them). Every dynamic string (service
//! names and nodes come from Consul and may hold `<`, quotes and any Unicode; error messages
//! quote them) goes through [`escape_into`]. The page's script and style are separate embedded
//! resources ([`SCRIPT`], [`STYLE`]), so the policy allows no inline code at all.
//!
//! The page is bounded whatever the table: at most [`MAX_SERVICES`] services (in name order),
//! [`MAX_BARS`] nodes per service (the largest shares), [`MAX_NAMES`] names per reload list and
//! [`MAX_TEXT_CHARS`] characters of any one name or message, each cut with a note that says
//! how much more there is.

pub mod traffic;

use std::fmt::Write as _;

use crate::impact::Share;
use crate::logging::count;
use crate::ranking::{fingerprint_hex, Algorithm, Service};
use crate::table::state::{Live, ReloadOutcome, ReloadRecord};

/// The page's script: the lookup form (plain JS, no library).
pub const SCRIPT: &str = include_str!("page.js");

/// The page's style sheet.
pub const STYLE: &str = include_str!("page.css");

/// Most services shown on the page (the first, in name order).
pub const MAX_SERVICES: usize = 50;

/// Most nodes shown per service (the largest shares).
pub const MAX_BARS: usize = 25;

/// Most names listed per list of the last reload (added, removed, changed).
pub const MAX_NAMES: usize = 50;

/// Longest name or message shown, in characters; longer ones are cut with an ellipsis.
pub const MAX_TEXT_CHARS: usize = 200;

/// Longest reload error shown, in characters.
const MAX_ERROR_CHARS: usize = 4000;

/// Appends `s` to `out` with the five characters that matter in HTML text and quoted attribute
/// values escaped: `&`, `<`, `>`, `"` and `'`.
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// `s`, escaped by [`escape_into`].
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

/// Appends `s` escaped, cut after `limit` characters with an ellipsis.
fn escape_cut(out: &mut String, s: &str, limit: usize) {
    match s.char_indices().nth(limit) {
        None => escape_into(out, s),
        Some((end, _)) => {
            escape_into(out, &s[..end]);
            out.push('…');
        }
    }
}

/// Each node's share of first choices, largest first (ties by node name), at most `limit` of
/// them, with the share of all the nodes left out.
///
/// A weighted service scores `-w / ln(u)`, and for one key node i has the largest score with
/// probability `w_i / Σw` (`ranking::hash::weighted_score` proves it; tests/integration/weight_range.rs
/// measures it); a service without weights, or whose weights are all equal, ranks like one where
/// every node weighs 1, so each has `1 / n`.
pub fn shares(service: &Service, limit: usize) -> (Vec<(usize, f64)>, f64) {
    let n = service.len();
    let weight = |i: usize| if service.is_weighted() { service.weights()[i] } else { 1.0 };
    let total: f64 = (0..n).map(weight).sum();
    if n == 0 || total <= 0.0 {
        return (Vec::new(), 0.0);
    }
    let nodes = service.nodes();
    let order = |a: &usize, b: &usize| weight(*b).total_cmp(&weight(*a)).then_with(|| nodes[*a].cmp(&nodes[*b]));
    let mut shown: Vec<usize> = (0..n).collect();
    if limit < n {
        if limit == 0 {
            return (Vec::new(), 1.0);
        }
        shown.select_nth_unstable_by(limit - 1, order);
        shown.truncate(limit);
    }
    shown.sort_unstable_by(order);
    let shown_weight: f64 = shown.iter().map(|&i| weight(i)).sum();
    let rest = ((total - shown_weight) / total).max(0.0);
    (shown.into_iter().map(|i| (i, weight(i) / total)).collect(), rest)
}

/// A share as a percentage for people: two decimals, more for tiny shares.
fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p == 0.0 || p >= 0.1 {
        format!("{p:.2} %")
    } else {
        format!("{p:.2e} %")
    }
}

/// Seconds since the Unix epoch as `YYYY-MM-DD hh:mm:ss UTC`.
pub fn utc(at: f64) -> String {
    let secs = at.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Whether a client that sent `accept` wants JSON rather than HTML: the quality it gives
/// `application/json` is above the one it gives `text/html`, or the same but named more
/// specifically (`application/json, */*`, axios's default). Each type's quality comes from the most
/// specific range that matches it; no `Accept` at all, or a full tie such as `*/*`, is HTML.
pub fn prefers_json(accept: &str) -> bool {
    let quality = |kind: &str, sub: &str| -> (f64, u8) {
        let mut best: Option<(u8, f64)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let Some((t, s)) = media.split_once('/') else { continue };
            let specificity = match (t == kind, s == sub, t == "*" && s == "*", s == "*") {
                (true, true, _, _) => 3,
                (true, false, _, true) => 2,
                (_, _, true, _) => 1,
                _ => continue,
            };
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, v)| v.trim().parse::<f64>().ok())
                .filter(|q| (0.0..=1.0).contains(q))
                .unwrap_or(1.0);
            if best.is_none_or(|(spec, _)| specificity > spec) {
                best = Some((specificity, q));
            }
        }
        best.map_or((0.0, 0), |(spec, q)| (q, spec))
    };
    let (json, html) = (quality("application", "json"), quality("text", "html"));
    json.0 > 0.0 && json > html
}

/// The short JSON index of the endpoints that `GET /` answers a client that asks for JSON;
/// `algorithm` is the served table's.
pub fn index_json(algorithm: Algorithm) -> String {
    let index = serde_json::json!({
        "name": "keyrouter",
        "version": env!("CARGO_PKG_VERSION"),
        "algorithm": algorithm.number(),
        "endpoints": {
            "/service": "the service names",
            "/service/{name}": "the nodes for a key: GET, HEAD or POST with key (or keys), min, max",
            "/table": "the table and its fingerprints",
            "/status": "the status page (HTML)",
            "/status/traffic.json": "the counters of the status page's traffic view",
            "/metrics": "Prometheus metrics",
            "/healthz": "liveness",
            "/readyz": "readiness",
            "/openapi.yaml": "the API description"
        }
    });
    index.to_string()
}

/// The whole page for `live`, the table being served, and `last`, the last reload attempt;
/// `started_at` and `now` in seconds since the Unix epoch.
pub fn render(live: &Live, last: Option<&ReloadRecord>, started_at: f64, now: f64) -> String {
    let table = &live.table;
    let mut out = String::with_capacity(8192);
    out.push_str(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        "<title>keyrouter status</title>\n",
        "<link rel=\"stylesheet\" href=\"/status.css\">\n",
        "<script src=\"/status.js\" defer></script>\n</head>\n<body>\n<header>\n",
    ));
    let _ = write!(
        out,
        "<h1>keyrouter <span class=\"version\">{}</span></h1>\n<p class=\"meta\">ranking algorithm \
         <span id=\"algorithm\">{}</span> · {} · {} · started {} · page rendered {}</p>\n</header>\n<main>\n",
        env!("CARGO_PKG_VERSION"),
        table.algorithm().number(),
        count(table.len(), "service"),
        count(table.node_count(), "node"),
        utc(started_at),
        utc(now),
    );
    let _ = write!(
        out,
        "<section aria-labelledby=\"table-h\">\n<h2 id=\"table-h\">Table fingerprint</h2>\n\
         <p class=\"fingerprint\" id=\"fingerprint\">{}</p>\n<p class=\"hint\">Replicas that show the \
         same fingerprint answer every lookup the same way (<a href=\"/table\">/table</a>).</p>\n</section>\n",
        fingerprint_hex(table.fingerprint())
    );
    render_reload(&mut out, last, started_at);
    render_form(&mut out, live);
    render_services(&mut out, live);
    out.push_str(TRAFFIC_SECTION);
    out.push_str(concat!(
        "</main>\n<footer>\n<p>Endpoints: <a href=\"/table\">/table</a> · <a href=\"/service\">/service</a> · ",
        "<a href=\"/metrics\">/metrics</a> · <a href=\"/healthz\">/healthz</a> · <a href=\"/readyz\">/readyz</a> · ",
        "<a href=\"/openapi.yaml\">/openapi.yaml</a></p>\n</footer>\n</body>\n</html>\n",
    ));
    out
}

/// The live traffic view: filled and refreshed by `/status/traffic.js` from
/// `/status/traffic.json` (see [`traffic`]).
const TRAFFIC_SECTION: &str = concat!(
    "<section aria-labelledby=\"traffic-h\" id=\"traffic\">\n<h2 id=\"traffic-h\">Traffic</h2>\n",
    "<p id=\"traffic-note\" class=\"hint\" aria-live=\"polite\">Loading…</p>\n",
    "<div class=\"traffic-wrap\"><table class=\"traffic\" id=\"traffic-table\">\n<caption>Per service, over the last minute: the busiest ",
    "50, then the services beyond --max-service-series and those not in the table</caption>\n",
    "<thead><tr><th scope=\"col\">service</th><th scope=\"col\" class=\"num\">lookups/s</th>",
    "<th scope=\"col\" class=\"num\">4xx</th><th scope=\"col\" class=\"num\">5xx</th>",
    "<th scope=\"col\" class=\"num\">shed</th><th scope=\"col\" class=\"num\">p99</th></tr></thead>\n",
    "<tbody id=\"traffic-rows\"></tbody>\n</table></div>\n",
    "<h3>Recent reloads</h3>\n<ol id=\"traffic-reloads\" class=\"reloads\"></ol>\n",
    "<noscript><p>The traffic view needs JavaScript; <a href=\"/metrics\">/metrics</a> has the same counters.</p></noscript>\n",
    "<script src=\"/status/traffic.js\" defer></script>\n</section>\n",
);

fn render_reload(out: &mut String, last: Option<&ReloadRecord>, started_at: f64) {
    out.push_str("<section aria-labelledby=\"reload-h\">\n<h2 id=\"reload-h\">Last reload</h2>\n");
    let Some(record) = last else {
        let _ = writeln!(
            out,
            "<p id=\"reload-result\" class=\"result none\">None since the process started ({}).</p>\n</section>",
            utc(started_at)
        );
        return;
    };
    let (class, word) = match record.outcome {
        ReloadOutcome::Changed { .. } => ("ok", "OK"),
        ReloadOutcome::Unchanged => ("ok", "OK, unchanged"),
        ReloadOutcome::Failed(_) => ("failed", "FAILED"),
    };
    let _ =
        write!(out, "<p id=\"reload-result\" class=\"result {class}\"><strong>{word}</strong> at {} (", utc(record.at));
    escape_cut(out, &record.cause, MAX_TEXT_CHARS);
    out.push(')');
    match &record.outcome {
        ReloadOutcome::Unchanged => out.push_str(": the file gives the table already served.</p>\n"),
        ReloadOutcome::Failed(reason) => {
            out.push_str(": still serving the previous table.</p>\n<pre id=\"reload-error\" class=\"error\">");
            escape_cut(out, reason, MAX_ERROR_CHARS);
            out.push_str("</pre>\n");
        }
        ReloadOutcome::Changed { added, removed, moved } => {
            out.push_str(": a new table is served.</p>\n");
            render_names(out, "added", added);
            render_names(out, "removed", removed);
            if !moved.is_empty() {
                out.push_str(
                    "<table class=\"moved\" id=\"reload-moved\">\n<caption>Changed services: share of keys whose \
                     first choice moved</caption>\n<thead><tr><th scope=\"col\">service</th><th scope=\"col\" \
                     class=\"num\">moved</th></tr></thead>\n<tbody>\n",
                );
                for (name, share) in moved.iter().take(MAX_NAMES) {
                    out.push_str("<tr><td class=\"name\">");
                    escape_cut(out, name, MAX_TEXT_CHARS);
                    let _ = writeln!(out, "</td><td class=\"num\">{share}</td></tr>");
                }
                out.push_str("</tbody>\n</table>\n");
                more(out, moved.len(), MAX_NAMES, "changed service");
            }
        }
    }
    out.push_str("</section>\n");
}

/// "Added: a, b" with at most [`MAX_NAMES`] names.
fn render_names(out: &mut String, what: &str, names: &[String]) {
    if names.is_empty() {
        return;
    }
    let _ = write!(out, "<p class=\"names\" id=\"reload-{what}\">{} {what}: ", count(names.len(), "service"));
    for (i, name) in names.iter().take(MAX_NAMES).enumerate() {
        out.push_str(if i > 0 { ", <q>" } else { "<q>" });
        escape_cut(out, name, MAX_TEXT_CHARS);
        out.push_str("</q>");
    }
    if names.len() > MAX_NAMES {
        let _ = write!(out, " and {} more", names.len() - MAX_NAMES);
    }
    out.push_str("</p>\n");
}

/// A note for the `total - shown` items left out, if any.
fn more(out: &mut String, total: usize, shown: usize, thing: &str) {
    if total > shown {
        let _ = writeln!(out, "<p class=\"more\">{} more not shown.</p>", count(total - shown, thing));
    }
}

fn render_form(out: &mut String, live: &Live) {
    out.push_str(concat!(
        "<section aria-labelledby=\"lookup-h\">\n<h2 id=\"lookup-h\">Where does this key go?</h2>\n",
        "<form id=\"lookup\" class=\"lookup\">\n",
        "<div><label for=\"lookup-service\">Service</label>",
        "<input id=\"lookup-service\" name=\"service\" list=\"service-names\" required autocomplete=\"off\" spellcheck=\"false\"></div>\n",
        "<div><label for=\"lookup-key\">Key</label>",
        "<input id=\"lookup-key\" name=\"key\" required autocomplete=\"off\" spellcheck=\"false\"></div>\n",
        "<div><label for=\"lookup-min\">Min</label>",
        "<input id=\"lookup-min\" name=\"min\" inputmode=\"numeric\" placeholder=\"1\" autocomplete=\"off\"></div>\n",
        "<div><label for=\"lookup-max\">Max</label>",
        "<input id=\"lookup-max\" name=\"max\" inputmode=\"numeric\" placeholder=\"min\" autocomplete=\"off\"></div>\n",
        "<div><label for=\"lookup-exclude\">Exclude</label>",
        "<input id=\"lookup-exclude\" name=\"exclude\" placeholder=\"Ids, comma-separated\" autocomplete=\"off\" spellcheck=\"false\"></div>\n",
        "<div><label for=\"lookup-spread\">Spread</label>",
        "<select id=\"lookup-spread\" name=\"spread\"><option value=\"\">none</option><option value=\"zone\">zone</option></select></div>\n",
        "<div><button type=\"submit\">Look up</button></div>\n</form>\n<datalist id=\"service-names\">\n",
    ));
    for name in live.table.names().iter().take(MAX_SERVICES).filter(|n| n.chars().nth(MAX_TEXT_CHARS).is_none()) {
        out.push_str("<option value=\"");
        escape_into(out, name);
        out.push_str("\"></option>\n");
    }
    out.push_str(concat!(
        "</datalist>\n",
        "<div id=\"lookup-result\" class=\"lookup-result\" aria-live=\"polite\" hidden>\n",
        "<p id=\"lookup-request\" class=\"request\"></p>\n<p id=\"lookup-status\"></p>\n",
        "<ol id=\"lookup-nodes\"></ol>\n<p id=\"lookup-error\" class=\"error\" hidden></p>\n",
        "<pre id=\"lookup-body\"></pre>\n</div>\n",
        "<noscript><p>The form needs JavaScript. Without it, ask the API: ",
        "<code>GET /service/NAME?key=KEY&amp;min=1&amp;max=3&amp;exclude=ID&amp;spread=zone</code></p></noscript>\n",
        "<p class=\"hint\">The form asks the lookup API (<code>GET /service/{name}</code>) and shows its answer ",
        "as any client gets it.</p>\n</section>\n",
    ));
}

fn render_services(out: &mut String, live: &Live) {
    let table = &live.table;
    out.push_str("<section aria-labelledby=\"services-h\">\n<h2 id=\"services-h\">Services</h2>\n");
    if table.len() > MAX_SERVICES {
        let _ = writeln!(
            out,
            "<p class=\"more\" id=\"services-more\">The first {MAX_SERVICES} of {} services, in name order; \
             {} more not shown. <a href=\"/table\">/table</a> lists them all, the form above looks up any.</p>",
            table.len(),
            table.len() - MAX_SERVICES
        );
    } else if table.is_empty() {
        out.push_str("<p>No services are loaded.</p>\n");
    }
    for (index, service) in table.services().iter().enumerate().take(MAX_SERVICES) {
        render_service(out, live, index, service);
    }
    out.push_str("</section>\n");
}

fn render_service(out: &mut String, live: &Live, index: usize, service: &Service) {
    out.push_str("<section class=\"service\" data-service=\"");
    escape_cut(out, service.name(), MAX_TEXT_CHARS);
    let _ = write!(out, "\" aria-labelledby=\"service-{index}\">\n<h3 id=\"service-{index}\">");
    escape_cut(out, service.name(), MAX_TEXT_CHARS);
    let _ = write!(
        out,
        "</h3>\n<p class=\"service-meta\"><span class=\"node-count\">{}</span> · fingerprint \
         <code class=\"service-fingerprint\">{}</code> · {}",
        count(service.len(), "node"),
        fingerprint_hex(service.fingerprint()),
        if service.is_weighted() { "weighted" } else { "unweighted: equal shares" }
    );
    if let Some(change) = live.last_change(index) {
        let moved = Share { value: change.moved, bound: None };
        let _ = write!(out, " · changed {} ({moved} of first choices moved)", utc(change.at));
    }
    out.push_str("</p>\n");
    let (shown, rest) = shares(service, MAX_BARS);
    if shown.is_empty() {
        out.push_str("<p>No nodes: every lookup with min ≥ 1 is a 400.</p>\n</section>\n");
        return;
    }
    let largest = shown.first().map_or(1.0, |s| s.1);
    // A zone column only for a service with zones (`spread=zone` spreads answers over them).
    let zones = service.zones();
    let zone_head = if zones.is_some() { "<th scope=\"col\">zone</th>" } else { "" };
    let zone_blank = if zones.is_some() { "<td></td>" } else { "" };
    let _ = write!(
        out,
        "<table class=\"shares\">\n<caption>Share of first choices per node, largest first (bars relative to the largest)</caption>\n\
         <thead><tr><th scope=\"col\">node</th>{zone_head}<th scope=\"col\" class=\"num\">weight</th><th scope=\"col\" \
         class=\"num\">share</th><th scope=\"col\" class=\"bar\"><span class=\"visually-hidden\">bar</span></th></tr></thead>\n<tbody>\n",
    );
    for &(i, share) in &shown {
        let node = &service.nodes()[i];
        let _ = write!(out, "<tr class=\"node\" data-share=\"{share}\"><td class=\"name\">");
        escape_cut(out, node, MAX_TEXT_CHARS);
        let id = &service.ids()[i];
        if id != node {
            out.push_str(" <span class=\"id\">Id ");
            escape_cut(out, id, MAX_TEXT_CHARS);
            out.push_str("</span>");
        }
        if let Some(zones) = zones {
            out.push_str("</td><td class=\"zone\">");
            match &zones[i] {
                Some(zone) => escape_cut(out, zone, MAX_TEXT_CHARS),
                None => out.push_str("<span class=\"none\">none</span>"),
            }
        }
        let _ = writeln!(
            out,
            "</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"bar\"><meter min=\"0\" \
             max=\"{largest}\" value=\"{share}\" aria-hidden=\"true\"></meter></td></tr>",
            service.weights()[i],
            percent(share)
        );
    }
    out.push_str("</tbody>\n<tfoot>\n");
    if shown.len() < service.len() {
        let _ = writeln!(
            out,
            "<tr class=\"rest\"><td>{} more node{}</td>{zone_blank}<td></td><td class=\"num\">{}</td><td></td></tr>",
            service.len() - shown.len(),
            if service.len() - shown.len() == 1 { "" } else { "s" },
            percent(rest)
        );
    }
    let _ = write!(
        out,
        "<tr class=\"total\"><th scope=\"row\">total</th>{zone_blank}<td></td><td class=\"num\">100 %</td><td></td></tr>\n</tfoot>\n</table>\n</section>\n",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ranking::{NodeSpec, ServiceSpec};

    #[test]
    fn escaping_covers_the_five_characters_and_leaves_the_rest() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("узел 🚀 a:80"), "узел 🚀 a:80");
        assert_eq!(escape(""), "");
        assert_eq!(escape("&amp;"), "&amp;amp;");
        let mut out = String::new();
        escape_cut(&mut out, &"é<".repeat(300), MAX_TEXT_CHARS);
        assert_eq!(out.matches("&lt;").count(), MAX_TEXT_CHARS / 2);
        assert!(out.ends_with('…'));
    }

    fn service(nodes: &[(&str, f64)]) -> Service {
        let spec = ServiceSpec {
            name: "s".into(),
            nodes: nodes.iter().map(|&(n, weight)| NodeSpec::weighted(n, weight)).collect(),
        };
        Service::build(spec).unwrap().0
    }

    #[test]
    fn shares_follow_the_weights_largest_first() {
        let s = service(&[("a", 1.0), ("b", 2.0), ("c", 1.0), ("d", 4.0)]);
        let (shown, rest) = shares(&s, 10);
        let named: Vec<(&str, f64)> = shown.iter().map(|&(i, sh)| (s.nodes()[i].as_str(), sh)).collect();
        assert_eq!(named, [("d", 0.5), ("b", 0.25), ("a", 0.125), ("c", 0.125)]);
        assert_eq!(rest, 0.0);
        let (shown, rest) = shares(&s, 2);
        assert_eq!(shown.len(), 2);
        assert!((rest - 0.25).abs() < 1e-12);
    }

    #[test]
    fn equal_weights_give_equal_shares() {
        for w in [1.0, 2.5] {
            let s = service(&[("x", w), ("y", w), ("z", w)]);
            let (shown, _) = shares(&s, 10);
            assert!(shown.iter().all(|&(_, sh)| (sh - 1.0 / 3.0).abs() < 1e-15), "{shown:?}");
            assert_eq!(shown.iter().map(|&(i, _)| i).collect::<Vec<_>>(), [0, 1, 2]);
        }
        assert_eq!(shares(&service(&[]), 10), (vec![], 0.0));
    }

    #[test]
    fn json_is_chosen_only_when_preferred() {
        assert!(prefers_json("application/json"));
        assert!(prefers_json("application/json, text/plain, */*"));
        assert!(prefers_json("text/html;q=0.5, application/json"));
        assert!(prefers_json("application/*"));
        assert!(!prefers_json(""));
        assert!(!prefers_json("*/*"));
        assert!(!prefers_json("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"));
        assert!(!prefers_json("application/json;q=0.5, text/html"));
        assert!(!prefers_json("text/html, application/json"));
        assert!(!prefers_json("garbage;;;,,"));
    }

    #[test]
    fn utc_renders_civil_time() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_745_000.9), "2026-11-27 02:03:20 UTC");
    }

    #[test]
    fn the_index_is_json_naming_the_endpoints() {
        let v: serde_json::Value = serde_json::from_str(&index_json(Algorithm::V2)).unwrap();
        assert_eq!(v["algorithm"], 2);
        assert_eq!(v["name"], "keyrouter");
        assert!(v["endpoints"]["/status"].is_string() && v["endpoints"]["/service/{name}"].is_string());
    }
}
