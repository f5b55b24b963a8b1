// MyST mdast -> hast for the book: the node types of MyST's site JSON (blocks, cells,
// outputs, math, figures, admonitions, proofs, cross-references, citations, tables, ...),
// on top of myst-to-html's handlers for the standard Markdown nodes.
import { mystToHast } from 'myst-to-html';
import { toHtml } from 'hast-util-to-html';

import { capitalize, ctx, el, plainText, raw, stripAnsi, stripTags, txt, warn } from './common.mjs';
import { renderTeX, singleNumber } from './tex.mjs';
import { codeBlock, mimeContent, renderOutput, stripTestMarkers } from './cells.mjs';

function xrefHref(node) {
  const id = node.html_id ?? node.identifier;
  if (node.remote && node.url) {
    const base = ctx.pageHref(node.url);
    if (base === null) return null;
    if (!id || node.kind === 'page') return base;
    return base.startsWith('#') ? `#${id}` : `${base.split('#')[0]}#${id}`;
  }
  return id ? `#${id}` : null;
}

export const citeId = (label) => `cite-${String(label).replace(/[^A-Za-z0-9_.:-]/g, '-')}`;

const PROOF_END = new Set(['proof']);

const isImageOutput = (n) => {
  const data = n?.jupyter_data?.data;
  return !!data && Object.keys(data).some((m) => m.startsWith('image/'));
};

// ids of the cell outputs that a figure directive of the current page embeds
function figureOutputIds() {
  const page = ctx.page ?? {};
  if (!page.figureOutputs) {
    page.figureOutputs = new Set();
    const walk = (n, inFigure) => {
      if (!n || typeof n !== 'object') return;
      const fig = inFigure || (n.type === 'container' && (n.kind ?? 'figure') === 'figure');
      if (fig && n.type === 'outputs' && n.id) page.figureOutputs.add(n.id);
      (n.children ?? []).forEach((c) => walk(c, fig));
    };
    walk(page.doc?.mdast, false);
  }
  return page.figureOutputs;
}

const handlers = {
  block(state, node) {
    if (node.visibility === 'remove') return null;
    const isCode = node.kind === 'notebook-code';
    const tags = node.data?.tags ?? [];
    const className = [isCode ? 'cell' : 'content-block', ...tags.map((t) => `tag-${String(t).replace(/[^\w-]/g, '')}`)];
    const children = state.all(node);
    if (!children.length) return null;
    return el('div', { id: node.html_id || undefined, className }, children);
  },

  code(state, node) {
    if (node.visibility === 'remove') return null;
    const id = node.html_id || undefined;
    if (!node.executable) return codeBlock(node.value, node.lang, { id, className: node.class ? [node.class] : [] });
    const pre = codeBlock(stripTestMarkers(node.value), node.lang || 'python');
    if (node.visibility === 'hide') {
      return el('details', { id, className: ['cell-input', 'collapsed'] }, [el('summary', {}, [txt('Show code')]), pre]);
    }
    return el('div', { id, className: ['cell-input'] }, [pre]);
  },

  outputs(state, node) {
    // A figure directive that embeds a labelled cell (`:::{figure} #cell-label`) shows the cell's images
    // with a numbered caption; the cell itself then keeps only its text outputs, so nothing is shown twice.
    if (ctx.inFigure) {
      const images = (node.children ?? []).filter(isImageOutput).map((c) => state.one(c, node)).filter(Boolean);
      return images.length ? el('div', { className: ['cell-outputs', 'figure-outputs'] }, images) : null;
    }
    if (node.visibility === 'remove') return null;
    const embedded = node.id && figureOutputIds().has(node.id);
    const kept = embedded ? (node.children ?? []).filter((c) => !isImageOutput(c)) : node.children ?? [];
    const children = kept.map((c) => state.one(c, node)).filter(Boolean);
    if (!children.length) return null;
    const id = node.html_id || undefined;
    if (node.visibility === 'hide') {
      return el('details', { id, className: ['cell-outputs', 'collapsed'] }, [el('summary', {}, [txt('Show output')]), ...children]);
    }
    return el('div', { id, className: ['cell-outputs'] }, children);
  },

  output(state, node) {
    if (node.visibility === 'remove') return null;
    const out = renderOutput(node.jupyter_data);
    if (out && node.html_id) out.properties.id = node.html_id;
    return out;
  },

  math(state, node) {
    const html = renderTeX(singleNumber(node.value), true);
    const children = [raw(html)];
    if (node.enumerator && node.enumerated !== false) {
      children.push(el('span', { className: ['eq-number'] }, [txt(`(${node.enumerator})`)]));
    }
    return el('div', { id: node.html_id || undefined, className: ['math-display'] }, children);
  },

  inlineMath(state, node) {
    return raw(renderTeX(node.value, false));
  },

  heading(state, node) {
    const id = node.html_id || node.identifier || undefined;
    const children = [];
    if (node.enumerator && node.enumerated) children.push(el('span', { className: ['heading-number'] }, [txt(`${node.enumerator} `)]));
    children.push(...state.all(node));
    if (id) children.push(el('a', { className: ['anchor'], href: `#${id}`, ariaLabel: 'link to this section' }, [txt('#')]));
    return el(`h${Math.min(6, Math.max(2, node.depth))}`, { id }, children);
  },

  crossReference(state, node) {
    const href = node.resolved !== false ? xrefHref(node) : null;
    if (!href) {
      warn(`${ctx.page.href}: unresolved reference ${node.identifier ?? node.label}`);
      return el('span', { className: ['xref', 'unresolved'] }, state.all(node));
    }
    return el('a', { href, className: ['xref', node.kind ? `xref-${String(node.kind).replace(/[^\w-]/g, '-')}` : 'xref'] }, state.all(node));
  },

  link(state, node) {
    const url = node.url ?? '';
    let href = url;
    let className = [];
    if (node.static) {
      href = ctx.assetHref(url);
      className = ['download'];
    } else if (node.internal || (url.startsWith('/') && !url.startsWith('//'))) {
      href = ctx.pageHref(url);
      if (href === null) {
        href = ctx.assetHref(url);
        if (href === url) warn(`${ctx.page.href}: link to ${url} does not match a page`);
      }
      className = ['internal'];
    } else if (/^https?:/i.test(url)) {
      className = ['external'];
    }
    const props = { href, className, title: node.title || undefined };
    if (className[0] === 'external') props.rel = 'noopener';
    return el('a', props, state.all(node));
  },

  image(state, node) {
    const src = ctx.assetHref(node.url);
    const style = [];
    if (node.width) style.push(`width: ${/^\d+$/.test(node.width) ? `${node.width}px` : node.width}`);
    if (node.height) style.push(`height: ${/^\d+$/.test(node.height) ? `${node.height}px` : node.height}`);
    return el('img', {
      src, alt: node.alt ?? '', title: node.title || undefined,
      className: [node.align ? `align-${node.align}` : '', node.class ?? ''].filter(Boolean),
      style: style.length ? style.join('; ') : undefined,
    });
  },

  container(state, node) {
    const className = ['container', `container-${node.kind ?? 'figure'}`];
    if (node.class) className.push(node.class);
    const outer = [ctx.inFigure, ctx.figureCaption];
    ctx.inFigure = (node.kind ?? 'figure') === 'figure';
    const caption = (node.children ?? []).find((c) => c.type === 'caption');
    ctx.figureCaption = caption ? plainText(caption).replace(/\s+/g, ' ').trim() : '';
    try {
      return el('figure', { id: node.html_id || undefined, className }, state.all(node));
    } finally {
      [ctx.inFigure, ctx.figureCaption] = outer;
    }
  },
  caption(state, node) { return el('figcaption', {}, state.all(node)); },
  legend(state, node) { return el('div', { className: ['legend'] }, state.all(node)); },
  captionNumber(state, node) {
    const label = node.template ? node.template.replace('%s', node.enumerator ?? '') : plainText(node);
    return el('span', { className: ['caption-number'] }, [txt(`${label} `)]);
  },

  cite(state, node) {
    const data = ctx.page.doc.references?.cite?.data?.[node.label];
    const props = { className: ['cite'], href: `#${citeId(node.label)}` };
    if (data) props.title = stripTags(data.html);
    else {
      props.className.push('cite-missing');
      warn(`${ctx.page.href}: citation ${node.label} is not in the bibliography`);
    }
    const children = node.children?.length ? state.all(node) : [txt(node.label)];
    return el('a', props, children);
  },
  citeGroup(state, node) {
    const parts = state.all(node);
    const sep = node.kind === 'parenthetical' ? '; ' : ', ';
    const children = [];
    parts.forEach((p, i) => { if (i) children.push(txt(sep)); children.push(p); });
    if (node.kind === 'parenthetical') return el('span', { className: ['cite-group'] }, [txt('('), ...children, txt(')')]);
    return el('span', { className: ['cite-group', 'narrative'] }, children);
  },

  admonition(state, node) {
    const kind = node.kind ?? 'note';
    const className = ['admonition', kind, ...(node.class ? String(node.class).split(/\s+/) : [])];
    const [first, ...rest] = node.children ?? [];
    const hasTitle = first?.type === 'admonitionTitle';
    const title = hasTitle ? state.all(first) : [txt(capitalize(kind))];
    const body = state.all({ ...node, children: hasTitle ? rest : node.children ?? [] });
    if (className.includes('dropdown')) {
      return el('details', { className, id: node.html_id || undefined, open: node.open || undefined }, [
        el('summary', { className: ['admonition-title'] }, title), el('div', { className: ['admonition-body'] }, body)]);
    }
    return el('aside', { className, id: node.html_id || undefined }, [
      el('p', { className: ['admonition-title'] }, title), el('div', { className: ['admonition-body'] }, body)]);
  },
  admonitionTitle(state, node) { return el('p', { className: ['admonition-title'] }, state.all(node)); },

  proof(state, node) {
    const kind = node.kind ?? 'proof';
    const [first, ...rest] = node.children ?? [];
    const hasTitle = first?.type === 'admonitionTitle';
    const head = [el('span', { className: ['proof-kind'] }, [
      txt(capitalize(kind) + (node.enumerator && !PROOF_END.has(kind) && node.enumerated !== false ? ` ${node.enumerator}` : '')),
    ])];
    if (hasTitle) head.push(txt(' '), el('span', { className: ['proof-name'] }, [txt('('), ...state.all(first), txt(')')]));
    head.push(txt(PROOF_END.has(kind) ? '.' : ''));
    const body = state.all({ ...node, children: hasTitle ? rest : node.children ?? [] });
    return el('div', { id: node.html_id || undefined, className: ['proof', `proof-${kind}`] }, [
      el('p', { className: ['proof-title'] }, head), el('div', { className: ['proof-body'] }, body)]);
  },

  details(state, node) {
    return el('details', { className: ['dropdown'], open: node.open || undefined }, state.all(node));
  },
  summary(state, node) { return el('summary', {}, state.all(node)); },

  tabSet(state, node) { return el('div', { className: ['tab-set'] }, state.all(node)); },
  tabItem(state, node) {
    return el('section', { className: ['tab-item'] }, [
      el('p', { className: ['tab-title'] }, [txt(node.title ?? '')]), ...state.all(node)]);
  },
  grid(state, node) { return el('div', { className: ['grid'] }, state.all(node)); },
  card(state, node) { return el('div', { className: ['card'] }, state.all(node)); },
  cardTitle(state, node) { return el('p', { className: ['card-title'] }, state.all(node)); },
  header(state, node) { return el('div', { className: ['card-header'] }, state.all(node)); },
  footer(state, node) { return el('div', { className: ['card-footer'] }, state.all(node)); },
  aside(state, node) {
    const kind = node.kind ?? 'margin';
    return el('aside', { className: ['aside', kind] }, state.all(node));
  },
  margin(state, node) { return el('aside', { className: ['aside', 'margin'] }, state.all(node)); },
  div(state, node) { return el('div', { className: node.class ? String(node.class).split(/\s+/) : [] }, state.all(node)); },
  span(state, node) { return el('span', { className: node.class ? String(node.class).split(/\s+/) : [] }, state.all(node)); },
  embed(state, node) { return el('div', { className: ['embed'] }, state.all(node)); },
  include(state, node) { return el('div', { className: ['include'] }, state.all(node)); },
  iframe(state, node) {
    return el('p', { className: ['iframe-link'] }, [el('a', { href: node.src, rel: 'noopener', className: ['external'] }, [txt(node.src)])]);
  },
  inlineExpression(state, node) {
    if (node.children?.length) return el('span', { className: ['inline-expression'] }, state.all(node));
    const data = node.result?.data;
    if (data?.['text/plain']) return txt(stripAnsi(mimeContent(data['text/plain'])));
    return el('code', {}, [txt(node.value ?? '')]);
  },
  si(state, node) { return txt(node.value ?? plainText(node)); },
  mermaid(state, node) { return codeBlock(node.value, 'plaintext'); },
  comment() { return null; },
  mystTarget() { return null; },
  mystComment() { return null; },
  footnoteDefinition() { return null; }, // gathered into the page's footnote list below

  table(state, node) {
    const rows = node.children ?? [];
    const headRows = [];
    let i = 0;
    while (i < rows.length && (rows[i].children ?? []).length && rows[i].children.every((c) => c.header)) headRows.push(rows[i++]);
    const bodyRows = rows.slice(i);
    const section = (tag, rs) => (rs.length ? [el(tag, {}, rs.map((r) => state.one(r, node)).filter(Boolean))] : []);
    return el('div', { className: ['table-wrap'] }, [el('table', { className: node.class ? [node.class] : [] },
      [...section('thead', headRows), ...section('tbody', bodyRows)])]);
  },
  tableRow(state, node) { return el('tr', {}, state.all(node)); },
  tableCell(state, node) {
    const props = {};
    if (node.align) props.style = `text-align: ${node.align}`;
    if (node.colspan) props.colSpan = node.colspan;
    if (node.rowspan) props.rowSpan = node.rowspan;
    return el(node.header ? 'th' : 'td', props, state.all(node));
  },

  footnoteReference(state, node) {
    const n = node.enumerator ?? node.identifier;
    return el('sup', { className: ['footnote-ref'] }, [
      el('a', { href: `#fn-${node.identifier}`, id: `fnref-${node.identifier}` }, [txt(n)])]);
  },
};

function unknownHandler(state, node) {
  warn(`node type "${node.type}" has no dedicated rendering; its content is shown as is`);
  if (node.children?.length) return el('div', { className: [`unknown-${node.type}`] }, state.all(node));
  if (typeof node.value === 'string') return txt(node.value);
  return null;
}

export function collectFootnotes(tree) {
  const defs = [];
  const visit = (n) => {
    if (n.type === 'footnoteDefinition') defs.push(n);
    (n.children ?? []).forEach(visit);
  };
  visit(tree);
  return defs;
}

export function renderTree(tree) {
  const hast = mystToHast({ handlers, unknownHandler, allowDangerousHtml: true })(tree);
  return toHtml(hast, { allowDangerousHtml: true });
}
