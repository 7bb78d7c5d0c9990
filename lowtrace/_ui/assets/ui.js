// The traces list's small conveniences; every action also works without this script.
// Select-all, action buttons enabled by how many traces are selected, "/" focuses the filter.
(function () {
  "use strict";
  var form = document.getElementById("ui-selection");
  if (form) {
    var boxes = function () {
      return Array.prototype.slice.call(document.querySelectorAll("input[name=id][form=ui-selection]"));
    };
    var all = document.querySelector(".ui-all");
    var update = function () {
      var n = boxes().filter(function (b) { return b.checked; }).length;
      form.querySelectorAll("button[data-need]").forEach(function (button) {
        var need = Number(button.dataset.need);
        button.disabled = need === 2 ? n !== 2 : n < need;
      });
      if (all) all.checked = n > 0 && n === boxes().length;
      form.dataset.selected = String(n);
    };
    document.addEventListener("change", function (ev) {
      if (ev.target === all) boxes().forEach(function (b) { b.checked = all.checked; });
      update();
    });
    update();
  }
  document.addEventListener("keydown", function (ev) {
    var q = document.querySelector(".ui-q");
    if (ev.key === "/" && q && document.activeElement !== q &&
        !/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName)) {
      ev.preventDefault();
      q.focus();
      q.select();
    }
  });
  document.documentElement.dataset.ready = "true";
})();
