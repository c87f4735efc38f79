// The notifier form shows only the chosen type's destination: the URL for a webhook, the
// recipients for e-mail. Without JavaScript both show, each saying which type it is for, and
// the server sends only the chosen type's field.
(function () {
  "use strict";
  var form = document.getElementById("notifier-form");
  if (!form || !form.elements.kind) return;
  var blocks = form.querySelectorAll("[data-for-kind]");

  function update() {
    var kind = form.elements.kind.value;
    blocks.forEach(function (block) {
      block.hidden = block.getAttribute("data-for-kind") !== kind;
    });
  }

  form.elements.kind.addEventListener("change", update);
  update();
})();
