// The new-credential form shows only the fields that apply to the chosen auth type (and
// grant, token location, lifetime source, injection). Without JavaScript every field shows,
// each with its help text, and the server uses only those that apply.
(function () {
  "use strict";
  var form = document.getElementById("credential-form");
  if (!form) return;
  var blocks = form.querySelectorAll("[data-show-when]");

  function chosen(name) {
    var element = form.elements[name];
    return element ? element.value : undefined;
  }

  function update() {
    blocks.forEach(function (block) {
      var conditions = JSON.parse(block.getAttribute("data-show-when"));
      var shown = Object.keys(conditions).every(function (name) {
        return conditions[name].indexOf(chosen(name)) !== -1;
      });
      block.style.display = shown ? "" : "none";
    });
  }

  form.addEventListener("change", update);
  update();
})();
