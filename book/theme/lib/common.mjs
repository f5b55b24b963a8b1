// Shared helpers of the book renderer: hast builders, text utilities, warnings, and the
// rendering context that render.mjs fills in (the current page and the site's link resolvers).

/** Set by render.mjs: the page being rendered and the functions that resolve site URLs. */
export const ctx = {
  page: null,               // { href, doc, macros, mathErrors }
  assetHref: (url) => url,  // MyST public file -> relative href of its copy in the book
  pageHref: () => null,     // MyST page URL (/slug#id) -> relative href, or null
  publicText: () => null,   // text of a MyST public file, or null
};

export const warnings = [];
const warned = new Set();
export function warn(message) {
  if (warned.has(message)) return;
  warned.add(message);
  warnings.push(message);
  process.stderr.write(`warning: ${message}\n`);
}

export const el = (tagName, properties = {}, children = []) => ({ type: 'element', tagName, properties, children });
export const txt = (value) => ({ type: 'text', value: String(value ?? '') });
export const raw = (value) => ({ type: 'raw', value });
export const esc = (s) => String(s ?? '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
export const stripTags = (s) => String(s ?? '').replace(/<[^>]*>/g, '').replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>');
// eslint-disable-next-line no-control-regex
export const stripAnsi = (s) => String(s ?? '').replace(/\u001b\[[0-9;?]*[ -/]*[@-~]/g, '').replace(/\u001b[()][A-Z0-9]/g, '');
export const asText = (v) => (Array.isArray(v) ? v.join('') : String(v ?? ''));
export const capitalize = (s) => (s ? s.charAt(0).toUpperCase() + s.slice(1) : s);

export function plainText(node) {
  if (!node) return '';
  if (typeof node.value === 'string' && !node.children) return node.value;
  return (node.children ?? []).map(plainText).join('');
}
