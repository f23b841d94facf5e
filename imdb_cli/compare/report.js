/* report.html's few lines of script: the tables read without them.
   - the disagreement table: sort by a column, show the reviews a chosen model got right;
   - the t-SNE maps: the hovered point's review, label and predictions in a panel.
   Written by hand because no library is worth inlining for this; the page's tests click
   and hover through it in a real browser. */
(function () {
  "use strict";

  function sortValue(cell, type) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { raw = cell.textContent; }
    if (type === "number") { return parseFloat(raw); }
    return raw.toLowerCase();
  }

  function makeSortable(table) {
    var body = table.tBodies[0];
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
    headers.forEach(function (th, column) {
      var type = th.getAttribute("data-sort-type");
      if (!type) { return; }
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      button.textContent = th.textContent;
      th.textContent = "";
      th.appendChild(button);
      button.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = sortValue(a.cells[column], type);
          var y = sortValue(b.cells[column], type);
          var order = x < y ? -1 : x > y ? 1 : 0;
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  }

  function makeFilterable(table, bar) {
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var buttons = Array.prototype.slice.call(bar.querySelectorAll("button[data-filter]"));
    var count = bar.querySelector("#disagreement-count");
    function show(filter) {
      var shown = 0;
      rows.forEach(function (row) {
        var right = row.getAttribute("data-right");
        var models = right ? right.split(" ") : [];
        var visible = filter === "all" ||
          (filter === "none" ? models.length === 0 : models.indexOf(filter) >= 0);
        row.hidden = !visible;
        if (visible) { shown += 1; }
      });
      buttons.forEach(function (b) {
        b.setAttribute("aria-pressed", String(b.getAttribute("data-filter") === filter));
      });
      count.textContent = shown + " of " + rows.length + " shown";
    }
    buttons.forEach(function (b) {
      b.addEventListener("click", function () { show(b.getAttribute("data-filter")); });
    });
    bar.hidden = false;
    show("all");
  }

  function paragraph(text, className) {
    var p = document.createElement("p");
    if (className) { p.className = className; }
    p.textContent = text;
    return p;
  }

  function showReview(panel, data, review) {
    // review: [id, true class, text, [[predicted class, probability] per model]]
    var truth = review[1];
    var heading = document.createElement("p");
    var strong = document.createElement("strong");
    strong.textContent = "review #" + review[0];
    heading.appendChild(strong);
    heading.appendChild(document.createTextNode(" · true label: " + data.classes[truth]));
    var predictions = review[3].map(function (p, model) {
      return data.models[model] + ": " + data.classes[p[0]] + " " + p[1].toFixed(2) +
        (p[0] === truth ? " ✓" : " ✗");
    }).join(" · ");
    panel.replaceChildren(
      heading,
      paragraph(predictions, "muted"),
      paragraph(review[2] || "(text not available)", "review-text")
    );
  }

  function connectMaps() {
    var island = document.getElementById("tsne-reviews");
    if (!island) { return; }
    var data = JSON.parse(island.textContent);
    document.querySelectorAll("[data-tsne-map]").forEach(function (wrapper) {
      var plot = wrapper.querySelector(".plotly-graph-div");
      var panel = wrapper.querySelector(".tsne-panel");
      if (!plot || !panel || typeof plot.on !== "function") { return; }
      plot.on("plotly_hover", function (event) {
        var point = event.points && event.points[0];
        if (!point || point.customdata === undefined) { return; }
        var review = data.reviews[point.customdata];
        if (review) { showReview(panel, data, review); }
      });
    });
  }

  var table = document.getElementById("disagreements-table");
  if (table) {
    makeSortable(table);
    var bar = document.getElementById("disagreement-filters");
    if (bar) { makeFilterable(table, bar); }
  }
  connectMaps();
})();
