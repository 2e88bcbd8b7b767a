// Atoll UI: live training progress and live deployment traffic, by polling the pages' JSON.
// No framework, no inline script (the CSP allows only this file); text is set with textContent.
"use strict";

function getJSON(url) {
  return fetch(url, {headers: {Accept: "application/json"}, credentials: "same-origin"}).then(function (r) {
    if (!r.ok) { throw new Error("HTTP " + r.status); }
    return r.json();
  });
}

function setState(el, value) {
  el.textContent = "";
  var span = document.createElement("span");
  span.className = "state state-" + String(value).toLowerCase();
  span.textContent = value;
  el.appendChild(span);
}

function fmt(value, unit) {
  if (value === null || value === undefined) { return "–"; }
  var text = Math.abs(value) >= 100 ? value.toFixed(0) : value.toPrecision(3);
  return unit ? text + " " + unit : text;
}

function followTraining(section) {
  var url = section.dataset.poll;
  var progress = document.getElementById("progress");
  var log = document.getElementById("log");
  var frame = document.getElementById("notebook");
  var field = function (name) { return section.querySelector('[data-field="' + name + '"]'); };
  function tick() {
    getJSON(url).then(function (d) {
      setState(field("state"), d.task.state);
      progress.value = d.task.progress;
      field("percent").textContent = Math.round(d.task.progress * 100) + "%";
      field("update_time").textContent = (d.task.update_time || "").slice(0, 19);
      var error = field("error");
      error.textContent = d.task.error || "";
      error.hidden = !d.task.error;
      log.textContent = d.log_tail.join("\n");
      section.dataset.ended = d.ended ? "true" : "false";
      if (d.ended) {
        if (d.has_notebook && frame.hidden) {
          frame.src = frame.dataset.src;
          frame.hidden = false;
          document.getElementById("no-notebook").hidden = true;
        }
        return;
      }
      window.setTimeout(tick, 1000);
    }).catch(function () { window.setTimeout(tick, 3000); });
  }
  if (section.dataset.ended !== "true") { window.setTimeout(tick, 1000); }
}

function watchTraffic(section) {
  var url = section.dataset.metrics;
  function fill(root, figures) {
    root.querySelectorAll("[data-metric]").forEach(function (cell) {
      var key = cell.dataset.metric;
      var value = figures[key];
      if (/_total$/.test(key) && value !== null && value !== undefined) {
        cell.textContent = String(Math.round(value));
      } else {
        cell.textContent = fmt(value, key.indexOf("_ms") > 0 ? "ms" : "");
      }
    });
  }
  function tick() {
    getJSON(url).then(function (d) {
      document.querySelector('[data-field="availability"]').textContent = d.availability;
      fill(document.getElementById("totals"), d.metrics);
      d.replicas.forEach(function (r) {
        var row = section.querySelector('tr[data-replica="' + CSS.escape(r.name) + '"]');
        if (!row) { return; }
        setState(row.querySelector('[data-field="state"]'), r.state);
        row.querySelector('[data-field="restarts"]').textContent = r.restarts;
        row.querySelector('[data-field="error"]').textContent = r.error || "";
        fill(row, d.metrics.replicas[r.name] || {});
      });
      section.dataset.updated = String(Date.now());
    }).catch(function () { /* shown as stale figures; retried below */ })
      .then(function () { window.setTimeout(tick, 2000); });
  }
  tick();
}

document.addEventListener("DOMContentLoaded", function () {
  var live = document.getElementById("live");
  if (live) { followTraining(live); }
  var traffic = document.getElementById("traffic");
  if (traffic) { watchTraffic(traffic); }
});
