// keyrouter status page: the "Where does this key go?" form. It asks the real lookup API and
// shows its answer as any client gets it. Every piece of data goes into the page through
// textContent, never as HTML.
"use strict";
(function () {
  var form = document.getElementById("lookup");
  if (!form) {
    return;
  }
  var result = document.getElementById("lookup-result");
  var request = document.getElementById("lookup-request");
  var status = document.getElementById("lookup-status");
  var nodes = document.getElementById("lookup-nodes");
  var error = document.getElementById("lookup-error");
  var body = document.getElementById("lookup-body");

  function show(line, answer, message, text) {
    status.textContent = line;
    nodes.replaceChildren();
    (answer || []).forEach(function (node) {
      var item = document.createElement("li");
      item.textContent = node;
      nodes.appendChild(item);
    });
    error.textContent = message || "";
    error.hidden = !message;
    body.textContent = text;
    result.hidden = false;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var params = new URLSearchParams();
    params.set("key", form.elements.key.value);
    ["min", "max"].forEach(function (field) {
      var value = form.elements[field].value.trim();
      if (value !== "") {
        params.set(field, value);
      }
    });
    // Ids separated by commas: one `exclude` each, as a client repeats it.
    form.elements.exclude.value.split(",").forEach(function (id) {
      id = id.trim();
      if (id !== "") {
        params.append("exclude", id);
      }
    });
    if (form.elements.spread.value !== "") {
      params.set("spread", form.elements.spread.value);
    }
    var url = "/service/" + encodeURIComponent(form.elements.service.value) + "?" + params.toString();
    request.textContent = "GET " + url;
    result.setAttribute("aria-busy", "true");
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        return response.text().then(function (text) {
          var line = "HTTP " + response.status;
          var fingerprint = response.headers.get("Keyrouter-Fingerprint");
          if (fingerprint) {
            line += " · service fingerprint " + fingerprint;
          }
          var parsed = null;
          try {
            parsed = JSON.parse(text);
          } catch (e) {
            parsed = null;
          }
          if (response.ok && Array.isArray(parsed)) {
            show(line, parsed, "", text);
          } else {
            var message = parsed && typeof parsed.error === "string" ? parsed.error : "unexpected answer";
            show(line, [], message, text);
          }
        });
      })
      .catch(function (e) {
        show("no answer", [], "the request failed: " + e.message, "");
      })
      .finally(function () {
        result.removeAttribute("aria-busy");
      });
  });
})();
