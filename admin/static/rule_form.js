// The rule form's header and query checks: "Add" appends a row, "Remove" drops one. Without
// JavaScript the form still works: it always comes with spare empty rows, and the server
// ignores empty ones.
(function () {
  "use strict";
  var form = document.getElementById("rule-form");
  if (!form) return;

  function renumber(body) {
    Array.prototype.forEach.call(body.rows, function (row, i) {
      row.querySelectorAll("input, select").forEach(function (input) {
        input.name = input.name.replace(/-\d+-/, "-" + i + "-");
        input.id = input.name;
        var label = input.getAttribute("aria-label") || "";
        input.setAttribute("aria-label", label.replace(/^(\D+) \d+ /, "$1 " + (i + 1) + " "));
      });
    });
  }

  function clear(row) {
    row.querySelectorAll("input").forEach(function (input) { input.value = ""; });
    row.querySelectorAll("select").forEach(function (select) { select.selectedIndex = 0; });
    row.querySelectorAll(".error").forEach(function (error) { error.remove(); });
  }

  form.querySelectorAll("fieldset.check-rows").forEach(function (fieldset) {
    var body = fieldset.querySelector("tbody");
    var add = fieldset.querySelector(".add-row");
    add.hidden = false;
    fieldset.querySelectorAll(".remove-row").forEach(function (b) { b.hidden = false; });
    add.addEventListener("click", function () {
      var row = body.rows[body.rows.length - 1].cloneNode(true);
      clear(row);
      body.appendChild(row);
      renumber(body);
      row.querySelector("input").focus();
    });
    body.addEventListener("click", function (event) {
      var button = event.target.closest(".remove-row");
      if (!button) return;
      var row = button.closest("tr");
      if (body.rows.length > 1) row.remove(); else clear(row);
      renumber(body);
    });
  });
})();
