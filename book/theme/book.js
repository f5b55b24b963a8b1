// calad book: small progressive enhancements; every page reads fine without JavaScript.
(function () {
  'use strict';
  var KEY = 'calad-book-hide-code';
  var button = document.querySelector('.code-toggle');

  function applyHideCode(hide) {
    document.body.classList.toggle('hide-code', hide);
    if (button) {
      button.textContent = hide ? 'Show code' : 'Hide code';
      button.setAttribute('aria-pressed', String(hide));
    }
  }
  var hide = false;
  try { hide = window.localStorage.getItem(KEY) === '1'; } catch (e) { /* storage unavailable on file:// in some browsers */ }
  applyHideCode(hide);
  if (button) {
    button.addEventListener('click', function () {
      hide = !hide;
      try { window.localStorage.setItem(KEY, hide ? '1' : '0'); } catch (e) { /* ignore */ }
      applyHideCode(hide);
    });
  }

  // Left / right arrow keys: previous / next chapter.
  document.addEventListener('keydown', function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    var tag = document.activeElement && document.activeElement.tagName;
    if (tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT') return;
    var rel = event.key === 'ArrowLeft' ? 'prev' : event.key === 'ArrowRight' ? 'next' : null;
    var link = rel && document.querySelector('.pager a[rel="' + rel + '"]');
    if (link) window.location.href = link.href;
  });

  // Close the mobile table of contents after following a link in it.
  var toggle = document.getElementById('nav-toggle');
  document.querySelectorAll('.sidebar a').forEach(function (a) {
    a.addEventListener('click', function () { if (toggle) toggle.checked = false; });
  });

  var current = document.querySelector('.sidebar .current');
  if (current && current.scrollIntoView) current.scrollIntoView({ block: 'nearest' });

  // Self-check, recorded on <html data-selfcheck>: images that failed to load and the state of
  // the web fonts (math and text). The book's browser test reads it; readers never see it.
  window.addEventListener('load', function () {
    var done = function () {
      var images = Array.prototype.slice.call(document.images);
      var faces = [];
      if (document.fonts && document.fonts.forEach) document.fonts.forEach(function (f) { faces.push(f); });
      var family = function (f) { return f.family.replace(/["']/g, ''); };
      var result = {
        images: images.length,
        brokenImages: images.filter(function (i) { return !i.complete || i.naturalWidth === 0; }).map(function (i) { return i.getAttribute('src'); }),
        katexFontsLoaded: faces.filter(function (f) { return family(f).indexOf('KaTeX') === 0 && f.status === 'loaded'; }).length,
        fontErrors: faces.filter(function (f) { return f.status === 'error'; }).map(family),
        math: document.querySelectorAll('.katex').length,
        // display equations wider than the text column (they would be cut or scroll)
        overflowingMath: Array.prototype.slice.call(document.querySelectorAll('.math-display, .katex-display'))
          .filter(function (m) { return m.scrollWidth > m.clientWidth + 1; })
          .map(function (m) { return (m.textContent || '').slice(0, 60); }),
      };
      document.documentElement.setAttribute('data-selfcheck', JSON.stringify(result));
    };
    if (document.fonts && document.fonts.ready) document.fonts.ready.then(done, done); else done();
  });
})();
