// "Show password": the checkbox is hidden until this script runs, so without
// script the form is the plain password form.
(function () {
  "use strict";
  document.querySelectorAll("p.reveal").forEach(function (row) {
    var box = row.querySelector("input[type=checkbox]");
    if (!box) { return; }
    row.hidden = false;
    box.addEventListener("change", function () {
      document.querySelectorAll('input[data-reveal="' + box.id + '"]').forEach(function (input) {
        input.type = box.checked ? "text" : "password";
      });
    });
  });
}());
