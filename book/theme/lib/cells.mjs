// Notebook cells in the book: highlighted code and Jupyter outputs (streams, errors,
// HTML tables, images written as files, LaTeX and Markdown).
import hljs from 'highlight.js/lib/core';
import hljsPython from 'highlight.js/lib/languages/python';
import hljsBash from 'highlight.js/lib/languages/bash';
import hljsYaml from 'highlight.js/lib/languages/yaml';
import hljsJson from 'highlight.js/lib/languages/json';
import hljsMarkdown from 'highlight.js/lib/languages/markdown';
import hljsLatex from 'highlight.js/lib/languages/latex';
import hljsMakefile from 'highlight.js/lib/languages/makefile';
import hljsPlaintext from 'highlight.js/lib/languages/plaintext';

import { asText, ctx, el, esc, raw, stripAnsi, txt, warn } from './common.mjs';
import { markdownToHtml, texInText } from './tex.mjs';

for (const [name, lang] of Object.entries({
  python: hljsPython, bash: hljsBash, yaml: hljsYaml, json: hljsJson, markdown: hljsMarkdown,
  latex: hljsLatex, makefile: hljsMakefile, plaintext: hljsPlaintext,
})) hljs.registerLanguage(name, lang);
const LANG_ALIASES = { ipython: 'python', ipython3: 'python', python3: 'python', py: 'python', sh: 'bash',
  shell: 'bash', console: 'bash', yml: 'yaml', md: 'markdown', myst: 'markdown', tex: 'latex', text: 'plaintext' };

function highlight(code, lang) {
  const name = LANG_ALIASES[lang] ?? lang;
  if (name && hljs.getLanguage(name)) {
    try {
      return { html: hljs.highlight(code, { language: name, ignoreIllegals: true }).value, lang: name };
    } catch { /* fall through to plain text */ }
  }
  return { html: esc(code), lang: name || 'text' };
}

export function codeBlock(value, lang, props = {}) {
  const { html, lang: used } = highlight(value ?? '', lang);
  return el('pre', { ...props, className: ['code', ...(props.className ?? [])], dataLang: used }, [
    el('code', { className: ['hljs', `language-${used}`] }, [raw(html)]),
  ]);
}

// nbval's cell markers (# NBVAL_CHECK_OUTPUT, ...) are test plumbing: the book does not show them.
export const stripTestMarkers = (code) => String(code ?? '').replace(/^[ \t]*#[ \t]*NBVAL_[A-Z_]+[ \t]*\r?\n?/gm, '');

const MIME_ORDER = ['text/html', 'image/svg+xml', 'image/png', 'image/jpeg', 'image/gif', 'image/webp',
  'text/latex', 'text/markdown', 'text/plain'];

export function mimeContent(item) {
  if (item == null) return '';
  if (typeof item === 'string') return item;
  if (item.content !== undefined) return asText(item.content);
  if (item.path) return ctx.publicText(item.path) ?? '';
  return '';
}

// calad's own outputs: the run's provenance (shown once, in the page footer) and the numbers a chapter
// records for its regression test (not shown).
export const PROVENANCE_MIME = 'application/vnd.calad.provenance+json';
export const RECORD_MIME = 'application/vnd.calad.record+json';
const DEFAULT_ALT = /^<(Figure|matplotlib)[^>]*>$/;

function provenanceOf(item) {
  if (item && typeof item === 'object' && item.content !== undefined) {
    try { return typeof item.content === 'string' ? JSON.parse(item.content) : item.content; } catch { return null; }
  }
  if (item && item.path) {
    try { return JSON.parse(ctx.publicText(item.path) ?? 'null'); } catch { return null; }
  }
  return item && typeof item === 'object' ? item : null;
}

function renderMime(data, metadata = {}) {
  if (data[PROVENANCE_MIME]) {
    if (ctx.page) ctx.page.provenance = provenanceOf(data[PROVENANCE_MIME]) ?? ctx.page.provenance;
    return null;
  }
  if (data[RECORD_MIME]) return null;
  const mime = MIME_ORDER.find((m) => data[m]) ?? Object.keys(data).find((m) => m.startsWith('image/'));
  if (!mime) {
    const kinds = Object.keys(data).join(', ');
    warn(`${ctx.page.href}: output with no displayable type (${kinds}) skipped`);
    return null;
  }
  const item = data[mime];
  if (mime.startsWith('image/')) {
    let src;
    if (item.path) src = ctx.assetHref(item.path);
    else if (mime === 'image/svg+xml') return el('div', { className: ['output', 'output-image'] }, [raw(mimeContent(item))]);
    else src = `data:${mime};base64,${mimeContent(item)}`;
    // the alt text: calad.plots.savefig's, else the caption of the figure that embeds the image
    const meta = metadata?.[mime] ?? {};
    const plain = data['text/plain'] ? stripAnsi(mimeContent(data['text/plain'])).trim() : '';
    const alt = meta.alt || (plain && !DEFAULT_ALT.test(plain) ? plain : '') || ctx.figureCaption || '';
    const props = { src, alt };
    if (meta.width) props.width = meta.width;
    return el('div', { className: ['output', 'output-image'] }, [el('img', props)]);
  }
  if (mime === 'text/html') {
    return el('div', { className: ['output', 'output-html'] }, [raw(mimeContent(item))]);
  }
  if (mime === 'text/markdown') {
    return el('div', { className: ['output', 'output-markdown'] }, [raw(markdownToHtml(mimeContent(item)))]);
  }
  if (mime === 'text/latex') {
    const tex = mimeContent(item).trim();
    return el('div', { className: ['output', 'output-latex'] }, [raw(texInText(tex))]);
  }
  return el('pre', { className: ['output', 'output-text'] }, [txt(stripAnsi(mimeContent(item)))]);
}

export function renderOutput(jd) {
  if (!jd) return null;
  switch (jd.output_type) {
    case 'stream': {
      const full = jd.path ? ctx.publicText(jd.path) : null;
      return el('pre', { className: ['output', 'output-stream', jd.name === 'stderr' ? 'stderr' : 'stdout'] },
        [txt(stripAnsi(full ?? asText(jd.text)))]);
    }
    case 'error': {
      const full = jd.path ? ctx.publicText(jd.path) : null;
      const tb = full ?? (Array.isArray(jd.traceback) ? jd.traceback.join('\n') : asText(jd.traceback));
      return el('pre', { className: ['output', 'output-error'] }, [txt(stripAnsi(tb || `${jd.ename}: ${jd.evalue}`))]);
    }
    case 'execute_result':
    case 'display_data':
    case 'update_display_data':
      return renderMime(jd.data ?? {}, jd.metadata ?? {});
    default:
      return null;
  }
}
