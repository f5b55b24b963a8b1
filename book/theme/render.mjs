#!/usr/bin/env node
// The calad book's site renderer: MyST's content JSON -> static, offline HTML pages.
//
// `myst build --html` runs this as the template's `build.render` command, with
//   BUILD_DIRECTORY  MyST's HTML folder (<project>/_build/html), written to unless
//   CALAD_BOOK_HTML  names another output folder (calad_lib.book uses <out>/html),
// and leaves the site JSON next to BUILD_DIRECTORY (<project>/_build/site: config.json,
// content/*.json, public/ with figures and notebook files). It can also be run by hand:
//   node render.mjs <site-dir> <out-dir>
// Optional labels: CALAD_BOOK_PRESET, CALAD_BOOK_COMMIT, CALAD_BOOK_DATE.
// CALAD_BOOK_STATUS names a JSON file that receives {ok, pages, assets, warnings, error}: with it
// the renderer reports failures there and exits 0, because `myst build` keeps its content server
// (and so itself) running when a render command fails.
//
// Every page gets: the sidebar table of contents (current page highlighted), previous/next
// links, KaTeX math (rendered here, fonts copied), highlighted code, notebook outputs
// (text, HTML tables, images written as files under build/), figures, admonitions,
// proofs, cross-references, citations with a reference list. Nothing is fetched.
// This file holds the site structure and the page layout; lib/ holds the pieces:
//   lib/handlers.mjs  MyST nodes -> HTML      lib/cells.mjs  code and notebook outputs
//   lib/tex.mjs       KaTeX and Markdown      lib/common.mjs helpers, warnings, context
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ctx, esc, plainText, stripTags, warn, warnings } from './lib/common.mjs';
import { katexMacros } from './lib/tex.mjs';
import { citeId, collectFootnotes, renderTree } from './lib/handlers.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MODULES = path.join(HERE, 'node_modules');

// ---------------------------------------------------------------- inputs and outputs
const STATUS = process.env.CALAD_BOOK_STATUS;
function writeStatus(status) {
  if (STATUS) fs.writeFileSync(STATUS, JSON.stringify({ ...status, warnings }, null, 1));
}
function fail(message) {
  process.stderr.write(`calad book renderer: ${message}\n`);
  writeStatus({ ok: false, error: message });
  process.exit(STATUS ? 0 : 1);
}
process.on('uncaughtException', (error) => fail(`${error?.message ?? error}`.split('\n')[0]));

const args = process.argv.slice(2);
const MYST_HTML = process.env.BUILD_DIRECTORY;
if (args.length !== 2 && !MYST_HTML) fail('BUILD_DIRECTORY is not set (run through `myst build --html`, or pass <site-dir> <out-dir>)');
const OUT = path.resolve(args[1] ?? (process.env.CALAD_BOOK_HTML || MYST_HTML));
const SITE = path.resolve(args[0] ?? path.join(path.dirname(MYST_HTML), 'site'));
if (!fs.existsSync(path.join(SITE, 'config.json'))) fail(`no site JSON at ${SITE}/config.json; run \`myst build --html\``);

const PRESET = process.env.CALAD_BOOK_PRESET || '';
const COMMIT = process.env.CALAD_BOOK_COMMIT || '';
const DATE = process.env.CALAD_BOOK_DATE || '';

const readJSON = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));

// ---------------------------------------------------------------- site structure
const config = readJSON(path.join(SITE, 'config.json'));
const project = (config.projects ?? [])[0] ?? fail('config.json lists no project');
const pageFile = (slug) => `${slug === project.index ? 'index' : slug.replace(/[\\/]/g, '.')}.html`;

const docs = new Map();
function loadDoc(slug) {
  if (!docs.has(slug)) {
    const file = path.join(SITE, 'content', `${slug}.json`);
    if (!fs.existsSync(file)) fail(`missing page JSON ${path.relative(SITE, file)}`);
    docs.set(slug, readJSON(file));
  }
  return docs.get(slug);
}

const indexDoc = loadDoc(project.index);
const entries = [
  { slug: project.index, title: indexDoc.frontmatter?.title ?? project.title, level: 1 },
  ...(project.pages ?? []),
];
// Display depth: entries under a part heading (a toc entry without a file) are not indented for it.
{
  const parts = [];
  for (const e of entries) {
    while (parts.length && parts[parts.length - 1] >= (e.level ?? 1)) parts.pop();
    e.depth = Math.max(1, (e.level ?? 1) - parts.length);
    if (!e.slug) parts.push(e.level ?? 1);
  }
}
const pages = entries.filter((e) => e.slug).map((e) => {
  const doc = loadDoc(e.slug);
  const base = path.basename(doc.location ?? '');
  const m = base.match(/^(\d+)[_-]/);
  return {
    ...e,
    title: doc.frontmatter?.title ?? e.title ?? e.slug,
    short: doc.frontmatter?.short_title,
    number: m && Number(m[1]) > 0 ? String(Number(m[1])) : '',
    href: pageFile(e.slug),
    doc,
  };
});
const slugOfUrl = new Map(pages.map((p) => [p.slug === project.index ? '/' : `/${p.slug}`, p.slug]));
slugOfUrl.set(`/${project.index}`, project.index);

// Collect every cited work for the book-wide reference list.
const allCitations = new Map();
for (const p of pages) {
  for (const [label, data] of Object.entries(p.doc.references?.cite?.data ?? {})) {
    if (!allCitations.has(label)) allCitations.set(label, data);
  }
}
const BIB_FILE = 'bibliography.html';
const hasBibliography = allCitations.size > 0;

// ---------------------------------------------------------------- assets
const BUILD_ASSETS = 'build';
const copied = new Map();
/** Copy a file from MyST's public folder into OUT/build/ and return its relative href. */
function assetHref(url) {
  if (!url) return url;
  if (/^(https?:|data:|mailto:)/i.test(url)) return url;
  const clean = decodeURIComponent(url.split('#')[0].split('?')[0]).replace(/^\/+/, '');
  if (copied.has(clean)) return copied.get(clean);
  const source = path.join(SITE, 'public', clean);
  if (!fs.existsSync(source)) {
    warn(`asset ${url} is not in the site's public folder`);
    return url;
  }
  const href = `${BUILD_ASSETS}/${path.basename(clean)}`;
  fs.mkdirSync(path.join(OUT, BUILD_ASSETS), { recursive: true });
  fs.copyFileSync(source, path.join(OUT, href));
  copied.set(clean, href);
  return href;
}

function publicText(p) {
  const file = path.join(SITE, 'public', String(p).replace(/^\/+/, ''));
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
}

// ---------------------------------------------------------------- links and references
function pageHref(url) {
  const [p, hash] = String(url).split('#');
  const clean = p.replace(/\.json$/, '').replace(/\/+$/, '') || '/';
  const slug = slugOfUrl.get(clean) ?? slugOfUrl.get(`/${clean.replace(/^\/+/, '')}`);
  if (slug === undefined) return null;
  const file = pageFile(slug);
  if (file === ctx.page.href) return hash ? `#${hash}` : '#';
  return hash ? `${file}#${hash}` : file;
}

ctx.assetHref = assetHref;
ctx.pageHref = pageHref;
ctx.publicText = publicText;

// ---------------------------------------------------------------- page assembly
const bookTitle = project.title ?? 'Book';
const shortTitle = project.short_title ?? bookTitle.split(/\s+[—–-]\s+/)[0];
const subtitle = project.subtitle ?? (bookTitle.includes('—') ? bookTitle.split('—').slice(1).join('—').trim() : '');
const authors = (project.authors ?? []).map((a) => a.name).filter(Boolean);

function sidebar(current) {
  const items = entries.map((e) => {
    if (!e.slug) return `<li class="toc-part">${esc(e.title)}</li>`;
    const p = pages.find((q) => q.slug === e.slug);
    const isCurrent = p.href === current;
    const num = p.number ? `<span class="toc-num">${esc(p.number)}</span>` : '';
    return `<li class="toc-level-${e.depth}${isCurrent ? ' current' : ''}"><a href="${p.href}"${isCurrent ? ' aria-current="page"' : ''}>${num}<span class="toc-title">${esc(p.short ?? p.title)}</span></a></li>`;
  });
  if (hasBibliography) {
    const isCurrent = current === BIB_FILE;
    items.push(`<li class="toc-level-1 toc-back${isCurrent ? ' current' : ''}"><a href="${BIB_FILE}"${isCurrent ? ' aria-current="page"' : ''}><span class="toc-title">References</span></a></li>`);
  }
  const build = [PRESET && `preset <b>${esc(PRESET)}</b>`, COMMIT && `commit ${esc(COMMIT)}`, DATE && esc(DATE)].filter(Boolean).join(' · ');
  return `<nav class="sidebar" id="sidebar" aria-label="Table of contents">
  <a class="book-title" href="index.html">${esc(shortTitle)}</a>
  ${subtitle ? `<p class="book-subtitle">${esc(subtitle)}</p>` : ''}
  <ol class="toc">
    ${items.join('\n    ')}
  </ol>
  <div class="sidebar-footer">
    <button type="button" class="code-toggle" aria-pressed="false">Hide code</button>
    ${build ? `<p class="build-info">Built with ${build}</p>` : ''}
  </div>
</nav>`;
}

function pager(index, list) {
  const prev = index > 0 ? list[index - 1] : null;
  const next = index >= 0 && index < list.length - 1 ? list[index + 1] : null;
  const link = (p, rel, label) => (p
    ? `<a class="pager-${rel}" rel="${rel}" href="${p.href}"><span class="pager-label">${label}</span><span class="pager-title">${esc(p.short ?? p.title)}</span></a>`
    : '<span></span>');
  return `<nav class="pager" aria-label="Previous and next chapter">${link(prev, 'prev', '← Previous')}${link(next, 'next', 'Next →')}</nav>`;
}

function onThisPage(tree) {
  const heads = [];
  const visit = (n) => {
    if (n.type === 'heading' && n.depth === 2 && (n.html_id || n.identifier)) heads.push(n);
    if (n.type !== 'heading') (n.children ?? []).forEach(visit);
  };
  visit(tree);
  if (heads.length < 2) return '';
  const items = heads.map((h) => `<li><a href="#${esc(h.html_id || h.identifier)}">${esc(plainText(h))}</a></li>`);
  return `<nav class="page-toc" aria-label="On this page"><p class="page-toc-title">On this page</p><ol>${items.join('')}</ol></nav>`;
}

function layout({ href, title, body, toc = '', nav = '', description = '' }) {
  const fullTitle = href === 'index.html' && title === bookTitle ? bookTitle : `${title} — ${shortTitle}`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(stripTags(fullTitle))}</title>
${description ? `<meta name="description" content="${esc(description)}">` : ''}
${authors.length ? `<meta name="author" content="${esc(authors.join(', '))}">` : ''}
<meta name="generator" content="calad book theme (MyST site JSON)">
<link rel="stylesheet" href="_static/fonts.css">
<link rel="stylesheet" href="_static/katex/katex.min.css">
<link rel="stylesheet" href="_static/book.css">
</head>
<body>
<a class="skip-link" href="#main">Skip to the text</a>
<input type="checkbox" id="nav-toggle" class="nav-toggle" aria-hidden="true">
<header class="topbar">
  <label for="nav-toggle" class="nav-button" title="Table of contents">☰</label>
  <a class="topbar-title" href="index.html">${esc(shortTitle)}</a>
</header>
${sidebar(href)}
<label for="nav-toggle" class="nav-scrim" aria-hidden="true"></label>
<div class="page">
  <main id="main" class="main">
    ${banner()}
    <article class="article">
${body}
    </article>
    ${nav}
  </main>
  ${toc}
</div>
<script src="_static/book.js"></script>
</body>
</html>
`;
}

// A smoke build runs every chapter at CI size: its numbers show the pipeline working, not the findings.
function banner() {
  if (PRESET !== 'smoke') return '';
  return `<div class="preset-banner" role="note"><b>Smoke build.</b> Every chapter ran with the CI-sized
    <code>smoke</code> preset: its numbers illustrate the pipeline, not the findings. The book of record is
    built with <code>make book</code> (the <code>default</code> preset).</div>`;
}

function pageBody(p) {
  const { doc } = p;
  const fm = doc.frontmatter ?? {};
  ctx.page = { href: p.href, doc, macros: katexMacros(fm.math ?? project.math), mathErrors: 0 };
  const content = renderTree(doc.mdast);

  const meta = [];
  if (p.number) meta.push(`<span class="chapter-label">Chapter ${esc(p.number)}</span>`);
  if (doc.kind === 'Notebook') meta.push('<span class="kind">Notebook</span>');
  const nbExport = (fm.exports ?? []).find((e) => e.format === 'ipynb' && e.url);
  if (nbExport) {
    const href = assetHref(nbExport.url);
    const name = nbExport.filename ?? path.basename(href);
    meta.push(`<a class="download" href="${href}" download="${esc(name)}">Download ${esc(name)}</a>`);
  }
  const run = ctx.page.provenance;
  const preset = run?.preset ?? PRESET;
  if (doc.kind === 'Notebook' && preset) meta.push(`<span class="preset">outputs from preset <b>${esc(preset)}</b></span>`);

  let html = `<header class="page-header">
  ${meta.length ? `<p class="page-meta">${meta.join('<span class="sep"> · </span>')}</p>` : ''}
  <h1 class="page-title">${esc(fm.title ?? p.title)}</h1>
  ${fm.subtitle ? `<p class="page-subtitle">${esc(fm.subtitle)}</p>` : ''}
</header>
${content}`;

  if (p.href === 'index.html') {
    const items = [];
    let chapters = 0;
    entries.forEach((e, i) => {
      if (!e.slug) {
        if (entries.slice(i + 1).some((f) => f.slug)) items.push(`<li class="chapter-part">${esc(e.title)}</li>`);
        return;
      }
      const q = pages.find((r) => r.slug === e.slug);
      if (q.href === 'index.html') return;
      chapters += 1;
      const d = q.doc.frontmatter?.description;
      items.push(`<li class="chapter-level-${e.depth}"><a href="${q.href}">${q.number ? `<span class="toc-num">${esc(q.number)}</span>` : ''}<span>${esc(q.title)}</span></a>${d ? `<p>${esc(d)}</p>` : ''}</li>`);
    });
    if (chapters) html += `\n<section class="chapter-list" id="chapters"><h2>Chapters</h2><ol>${items.join('')}</ol></section>`;
  }

  const footnotes = collectFootnotes(doc.mdast);
  if (footnotes.length) {
    const items = footnotes.map((f) => {
      const inner = renderTree({ type: 'root', children: f.children ?? [] }).trim();
      const back = ` <a class="footnote-back" href="#fnref-${esc(f.identifier)}" aria-label="back to the text">↩</a>`;
      const body = inner.endsWith('</p>') ? `${inner.slice(0, -4)}${back}</p>` : inner + back;
      return `<li id="fn-${esc(f.identifier)}">${body}</li>`;
    });
    html += `\n<section class="footnotes"><h2>Notes</h2><ol>${items.join('')}</ol></section>`;
  }

  if (run) {
    const bits = [`preset <b>${esc(run.preset)}</b>`, `commit <code>${esc(run.commit)}</code>`, esc(run.date),
      `device ${esc(run.device)}`];
    html += `\n<footer class="page-provenance"><p>The outputs on this page were computed by chapter
  <code>${esc(run.chapter)}</code> with ${bits.join(' · ')}.</p></footer>`;
  }

  const cite = doc.references?.cite;
  if (cite?.order?.length) {
    const items = cite.order.map((label) => `<li id="${citeId(label)}">${cite.data?.[label]?.html ?? esc(label)}</li>`);
    html += `\n<section class="references" id="references"><h2>References</h2><ol class="bibliography">${items.join('')}</ol></section>`;
  }
  return html;
}

function writePage(file, html) {
  fs.writeFileSync(path.join(OUT, file), html);
}

// ---------------------------------------------------------------- static assets
function copyDir(from, to, filter = () => true) {
  fs.mkdirSync(to, { recursive: true });
  for (const name of fs.readdirSync(from)) {
    const src = path.join(from, name);
    if (fs.statSync(src).isDirectory()) copyDir(src, path.join(to, name), filter);
    else if (filter(name)) fs.copyFileSync(src, path.join(to, name));
  }
}

/** @font-face rules for the body and heading fonts (latin, latin-ext and greek subsets, woff2 only). */
function fontFaces() {
  const wanted = [
    ['source-serif-4', ['400', '400-italic', '600', '600-italic', '700']],
    ['source-sans-3', ['400', '600', '700']],
  ];
  const rules = [];
  fs.mkdirSync(path.join(OUT, '_static', 'fonts'), { recursive: true });
  for (const [pkg, variants] of wanted) {
    const dir = path.join(MODULES, '@fontsource', pkg);
    for (const v of variants) {
      const css = fs.readFileSync(path.join(dir, `${v}.css`), 'utf8');
      for (const block of css.split('/*').slice(1)) {
        const name = block.slice(0, block.indexOf('*/')).trim();
        if (!/-(latin|latin-ext|greek)-\d+-(normal|italic)$/.test(name)) continue;
        const rule = block.slice(block.indexOf('@font-face'));
        const woff2 = rule.match(/url\(\.\/files\/([^)]+\.woff2)\)/);
        if (!woff2) continue;
        fs.copyFileSync(path.join(dir, 'files', woff2[1]), path.join(OUT, '_static', 'fonts', woff2[1]));
        rules.push(rule.replace(/src:[^;]+;/, `src: url(fonts/${woff2[1]}) format('woff2');`).trim());
      }
    }
  }
  return `/* Source Serif 4 and Source Sans 3 (SIL Open Font License 1.1), from @fontsource */\n${rules.join('\n')}\n`;
}

function copyStatic() {
  const stat = path.join(OUT, '_static');
  fs.mkdirSync(stat, { recursive: true });
  const katexDist = path.join(MODULES, 'katex', 'dist');
  fs.mkdirSync(path.join(stat, 'katex'), { recursive: true });
  fs.copyFileSync(path.join(katexDist, 'katex.min.css'), path.join(stat, 'katex', 'katex.min.css'));
  copyDir(path.join(katexDist, 'fonts'), path.join(stat, 'katex', 'fonts'), (n) => n.endsWith('.woff2') || n.endsWith('.woff') || n.endsWith('.ttf'));
  fs.writeFileSync(path.join(stat, 'fonts.css'), fontFaces());
  for (const f of ['book.css', 'book.js']) fs.copyFileSync(path.join(HERE, f), path.join(stat, f));
}

// ---------------------------------------------------------------- main
function main() {
  fs.mkdirSync(OUT, { recursive: true });
  copyStatic();
  const navList = pages.concat(hasBibliography ? [{ href: BIB_FILE, title: 'References' }] : []);
  let mathErrors = 0;
  pages.forEach((p, i) => {
    const body = pageBody(p);
    mathErrors += ctx.page.mathErrors;
    const html = layout({
      href: p.href, title: p.title, body, toc: onThisPage(p.doc.mdast), nav: pager(i, navList),
      description: p.doc.frontmatter?.description ?? '',
    });
    writePage(p.href, html);
  });
  if (hasBibliography) {
    const items = [...allCitations.entries()]
      .sort((a, b) => stripTags(a[1].html).localeCompare(stripTags(b[1].html)))
      .map(([label, data]) => `<li id="${citeId(label)}">${data.html ?? esc(label)}</li>`);
    const body = `<header class="page-header"><h1 class="page-title">References</h1></header>
<p>Every work cited in the book.</p>
<ol class="bibliography bibliography-all">${items.join('')}</ol>`;
    writePage(BIB_FILE, layout({ href: BIB_FILE, title: 'References', body, nav: pager(navList.length - 1, navList) }));
  }
  const summary = `rendered ${pages.length} page(s)${hasBibliography ? ' + references' : ''}, ${copied.size} asset(s) into ${OUT}`;
  process.stdout.write(`${summary}\n`);
  if (mathErrors) warn(`${mathErrors} formula(s) could not be rendered by KaTeX`);
  writeStatus({ ok: true, pages: pages.length, assets: copied.size });
}

main();
