// TeX in the book: KaTeX rendering with the book's macros, math inside plain text and
// inside Markdown notebook outputs.
import katex from 'katex';
import MarkdownIt from 'markdown-it';

import { ctx, esc, warn } from './common.mjs';

export function katexMacros(math) {
  const macros = {};
  for (const [name, def] of Object.entries(math ?? {})) macros[name] = typeof def === 'string' ? def : def?.macro;
  return macros;
}

export function renderTeX(tex, displayMode) {
  const html = katex.renderToString(tex, {
    displayMode, throwOnError: false, strict: 'ignore', trust: false, output: 'htmlAndMathml',
    macros: ctx.page.macros,
  });
  if (html.includes('katex-error')) {
    ctx.page.mathErrors += 1;
    warn(`${ctx.page.href}: KaTeX could not render ${JSON.stringify(tex.slice(0, 80))}`);
  }
  return html;
}

/** A display equation gets one number (MyST's): numbering environments become their unnumbered forms. */
export function singleNumber(tex) {
  return String(tex)
    .replace(/\\(begin|end)\{(align|gather)\*?\}/g, (_, be, env) => `\\${be}{${env}ed}`)
    .replace(/\\(begin|end)\{equation\*?\}/g, '');
}

/** Replace $...$, $$...$$, \(...\), \[...\] in a plain string by KaTeX HTML (text parts are escaped). */
const MATH_RE = /\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\]|\\\(([\s\S]+?)\\\)|(?<![\\$\w])\$(?!\s)((?:\\\$|[^$\n])+?)(?<!\s)\$(?![\w$])/g;
export function texInText(s, escapeText = true) {
  let out = '';
  let last = 0;
  for (const m of s.matchAll(MATH_RE)) {
    const text = s.slice(last, m.index);
    out += escapeText ? esc(text) : text;
    const display = m[1] ?? m[2];
    out += display !== undefined ? renderTeX(display.trim(), true) : renderTeX((m[3] ?? m[4]).trim(), false);
    last = m.index + m[0].length;
  }
  const rest = s.slice(last);
  return out + (escapeText ? esc(rest) : rest);
}

// Markdown outputs (IPython.display.Markdown): markdown-it with math protected by placeholders.
const md = new MarkdownIt({ html: true, linkify: false, typographer: false });
export function markdownToHtml(source) {
  const stash = [];
  const protectedSource = source.replace(MATH_RE, (whole) => {
    stash.push(texInText(whole));
    return `\uE000${stash.length - 1}\uE001`;
  });
  const html = md.render(protectedSource);
  return html.replace(/\uE000(\d+)\uE001/g, (_, i) => stash[Number(i)]);
}
