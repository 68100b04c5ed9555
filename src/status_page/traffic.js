// keyrouter status page: live traffic. Polls /status/traffic.json every 2 s, keeps a minute of
// its cumulative counters and shows, per service, lookups per second, 4xx, 5xx, shed and p99
// over that minute (differences between the newest snapshot and the oldest), and the recent
// reloads. Every piece of data goes into the page through textContent, never as HTML.
"use strict";
(function () {
  var rows = document.getElementById("traffic-rows");
  if (!rows) {
    return;
  }
  var note = document.getElementById("traffic-note");
  var reloads = document.getElementById("traffic-reloads");
  var WINDOW_S = 60;
  var PERIOD_MS = 2000;
  var samples = [];

  function byName(data) {
    var map = Object.create(null);
    data.services.concat([data.other, data.unknown]).forEach(function (s) {
      map[s.name] = s;
    });
    return map;
  }

  function ms(seconds) {
    return Number((seconds * 1000).toPrecision(3)) + " ms";
  }

  // The 99th percentile of the lookups between two snapshots, as the bucket it falls in.
  function p99(le, now, base) {
    var total = now[now.length - 1] - (base ? base[base.length - 1] : 0);
    if (total <= 0) {
      return "—";
    }
    var target = Math.ceil(total * 0.99);
    for (var i = 0; i < now.length; i++) {
      if (now[i] - (base ? base[i] : 0) >= target) {
        return i < le.length ? "≤ " + ms(le[i]) : "> " + ms(le[le.length - 1]);
      }
    }
    return "—";
  }

  function cell(row, cls, text) {
    var td = document.createElement(cls === "name" ? "th" : "td");
    if (cls === "name") {
      td.scope = "row";
    }
    td.className = cls;
    td.textContent = text;
    row.appendChild(td);
  }

  function utc(at) {
    return new Date(at * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  function render() {
    var latest = samples[samples.length - 1];
    var base = samples[0];
    var span = latest.now - base.now;
    var data = latest.data;
    var shown = data.services.concat([data.other, data.unknown]).filter(function (s) {
      return s.counts.some(function (n) { return n > 0; });
    });
    rows.replaceChildren();
    shown.forEach(function (s) {
      var before = samples.length > 1 ? base.map[s.name] : null;
      var d = s.counts.map(function (n, i) { return n - (before ? before.counts[i] : 0); });
      var row = document.createElement("tr");
      row.dataset.service = s.name;
      cell(row, "name", s.name);
      cell(row, "rate", span > 0 ? (d.reduce(function (a, b) { return a + b; }, 0) / span).toFixed(1) : "—");
      cell(row, "c4xx num", String(d[1]));
      cell(row, "c5xx num", String(d[2]));
      cell(row, "shed num", String(d[3]));
      cell(row, "p99 num", p99(data.le, s.buckets, before ? before.buckets : null));
      rows.appendChild(row);
    });
    var text = span > 0
      ? "Over the last " + Math.round(span) + " s; refreshed every " + PERIOD_MS / 1000 + " s."
      : "Counts since each service was loaded; rates from the next refresh on.";
    if (data.more_services > 0) {
      text += " " + data.more_services + " less busy services not shown.";
    }
    if (shown.length === 0) {
      text += " No lookups yet.";
    }
    note.textContent = text;

    reloads.replaceChildren();
    data.reloads.forEach(function (r) {
      var item = document.createElement("li");
      item.className = "reload " + r.outcome;
      var line = utc(r.at) + " · " + r.cause + " · " + r.outcome;
      if (r.outcome === "changed") {
        line += ": +" + r.added + " −" + r.removed + " services";
        r.moved.forEach(function (m) {
          line += " · " + m[0] + " " + (m[1] * 100).toFixed(1) + " % moved";
        });
        if (r.more_moved > 0) {
          line += " · " + r.more_moved + " more changed";
        }
      } else if (r.error) {
        line += ": " + r.error;
      }
      item.textContent = line;
      reloads.appendChild(item);
    });
    if (data.reloads.length === 0) {
      var none = document.createElement("li");
      none.textContent = "None since the process started.";
      reloads.appendChild(none);
    }
  }

  function poll() {
    fetch("/status/traffic.json", { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        samples.push({ now: data.now, map: byName(data), data: data });
        while (samples.length > 1 && samples[1].now <= data.now - WINDOW_S) {
          samples.shift();
        }
        render();
      })
      .catch(function (e) {
        note.textContent = "Traffic unavailable: " + e.message;
      })
      .finally(function () {
        setTimeout(poll, PERIOD_MS);
      });
  }
  poll();
})();
