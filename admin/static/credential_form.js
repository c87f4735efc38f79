// The new-credential form shows only the fields that apply to the chosen auth type (and
// grant, token location, lifetime source, injection). Without JavaScript every field shows,
// each with its help text, and the server uses only those that apply; a use and type the API
// does not pair are refused with words saying so.
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

  // "Used as" and "Type" stay a pair the API accepts: a type only targets use (OAuth2, ...)
  // makes it a target credential; a use that does not allow the type picks the first it does.
  var use = form.elements["credential_type"];
  var type = form.elements["auth_type"];
  var allowed = JSON.parse(type.getAttribute("data-allowed") || "{}");

  function allows(useValue, typeValue) {
    return (allowed[useValue] || [typeValue]).indexOf(typeValue) !== -1;
  }

  function pair(changed) {
    if (allows(use.value, type.value)) return;
    if (changed === type) {
      var other = Object.keys(allowed).filter(function (u) { return allows(u, type.value); });
      if (other.length) use.value = other[0];
    } else if (allowed[use.value]) {
      type.value = allowed[use.value][0];
    }
  }

  form.addEventListener("change", function (event) {
    pair(event.target);
    update();
  });
  update();
})();
