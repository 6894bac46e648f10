// Glue between the book and the vendored ipywidgets HTML manager.
//
// 1. Tell require.js where the vendored ipywidgets modules live.
//
// The HTML manager defines its modules under names like
// "@jupyter-widgets/controls"; require.js resolves those names relative to
// the page, and the modules load their icon fonts from the folder of that
// URL.  Mapping every name into this script's own folder (_static/) makes
// the fonts load from the book, at any page depth, instead of failing.
(function () {
  var base = document.currentScript.src.replace(/[^/]*$/, "") + "html-manager/";
  var names = {
    "@jupyter-widgets/base": "base",
    "@jupyter-widgets/base7": "base7",
    "@jupyter-widgets/controls": "controls",
    "@jupyter-widgets/controls7": "controls7",
    "@jupyter-widgets/html-manager": "html-manager",
    "@jupyter-widgets/html-manager/dist/libembed-amd": "libembed-amd",
  };
  var paths = {};
  Object.keys(names).forEach(function (name) {
    paths[name] = base + names[name];
  });
  window.require.config({ paths: paths });
})();

// 2. The HTML manager typesets widget labels through the MathJax 2 API
// (MathJax.Hub.Queue), but the book loads MathJax 3, which has no Hub.  Once
// MathJax 3 is in place (deferred scripts run before DOMContentLoaded), give
// it a one-method Hub that forwards to MathJax 3's typesetPromise.
document.addEventListener("DOMContentLoaded", function () {
  var mathjax = window.MathJax;
  if (!mathjax || mathjax.Hub) return;
  mathjax.Hub = {
    Queue: function (job) {
      var ready = (mathjax.startup && mathjax.startup.promise) || Promise.resolve();
      ready.then(function () {
        return mathjax.typesetPromise ? mathjax.typesetPromise([job[2]]) : null;
      });
    },
  };
});
