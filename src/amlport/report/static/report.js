// amlport report: the interactive lineage graph (docs/design/0008-report.md).
// Names come from a workspace amlport does not control: they reach the page through
// textContent only, never as markup.
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var status = document.getElementById('graph-status');
  var panel = document.getElementById('panel');
  var search = document.getElementById('graph-search');
  var COLORS = {
    pipeline_run: '#3b5ba5', step_run: '#5b8def', run: '#5b8def', output: '#7fb77e',
    data: '#2e8b57', model: '#e08a2c', environment: '#9b6bc2', component: '#8a8f99',
    pipeline: '#3b5ba5'
  };
  var byIndex = {};
  data.nodes.forEach(function (n) { byIndex[n.i] = n; });

  function el(tag, textValue, cls) {
    var e = document.createElement(tag);
    if (textValue !== undefined && textValue !== null) { e.textContent = String(textValue); }
    if (cls) { e.className = cls; }
    return e;
  }

  if (typeof cytoscape !== 'function') {
    status.textContent = 'the graph library did not load';
    return;
  }
  var elements = [];
  data.nodes.forEach(function (n) {
    elements.push({ group: 'nodes', data: { id: n.i, label: n.short, kind: n.kind,
      color: COLORS[n.kind] || '#8a8f99' }, position: { x: n.x, y: n.y } });
  });
  data.edges.forEach(function (e, k) {
    elements.push({ group: 'edges', data: { id: 'e' + k, source: e.s, target: e.t, kind: e.kind } });
  });
  var cy = cytoscape({
    container: document.getElementById('cy'),
    elements: elements,
    minZoom: 0.05,
    maxZoom: 4,
    style: [
      { selector: 'node', style: {
        'background-color': 'data(color)', 'label': 'data(label)', 'font-size': 10,
        'color': '#1d2330', 'text-valign': 'bottom', 'text-margin-y': 3, 'width': 18,
        'height': 18, 'text-background-color': '#ffffff', 'text-background-opacity': 0.7,
        'text-background-padding': 1 } },
      { selector: 'node[kind = "pipeline_run"]', style: { 'shape': 'round-rectangle', 'width': 26 } },
      { selector: 'node[kind = "model"]', style: { 'shape': 'diamond', 'width': 22, 'height': 22 } },
      { selector: 'node[kind = "environment"]', style: { 'shape': 'hexagon' } },
      { selector: 'node[kind = "data"]', style: { 'shape': 'barrel' } },
      { selector: 'edge', style: {
        'width': 1.2, 'line-color': '#b8bfcc', 'target-arrow-color': '#b8bfcc',
        'target-arrow-shape': 'triangle', 'curve-style': 'bezier', 'arrow-scale': 0.8 } },
      { selector: 'edge[kind = "parent_of"]', style: { 'line-style': 'dashed',
        'line-color': '#d5dae3', 'target-arrow-color': '#d5dae3' } },
      { selector: '.faded', style: { 'opacity': 0.15 } },
      { selector: '.up', style: { 'border-width': 3, 'border-color': '#d9822b' } },
      { selector: 'edge.up', style: { 'line-color': '#d9822b', 'target-arrow-color': '#d9822b',
        'width': 2 } },
      { selector: '.down', style: { 'border-width': 3, 'border-color': '#2b8fd9' } },
      { selector: 'edge.down', style: { 'line-color': '#2b8fd9', 'target-arrow-color': '#2b8fd9',
        'width': 2 } },
      { selector: '.sel', style: { 'border-width': 4, 'border-color': '#c0392b',
        'font-weight': 'bold', 'font-size': 12 } },
      { selector: '.match', style: { 'border-width': 3, 'border-color': '#c0392b' } }
    ],
    // Positions come with the data: layered by the data flow (report/html.py).
    layout: { name: 'preset', fit: true, padding: 24 }
  });
  // A large graph fitted whole is dots: start readable at its top left, Fit shows it all.
  var READABLE = 0.85;
  if (cy.zoom() < READABLE) {
    var box = cy.elements().boundingBox();
    var spare = cy.width() - box.w * READABLE;  // a narrow graph is centred
    cy.zoom(READABLE);
    cy.pan({ x: Math.max(24, spare / 2) - box.x1 * READABLE, y: 24 - box.y1 * READABLE });
  }
  window.amlportGraph = cy;  // for the console and the browser test

  var shown = 'showing ' + data.nodes.length + ' nodes, ' + data.edges.length + ' edges';
  if (data.total > data.nodes.length) { shown += ' (of ' + data.total + ' nodes)'; }
  status.textContent = shown;
  status.setAttribute('data-nodes', String(cy.nodes().length));

  function nodeButton(n) {
    var li = el('li');
    var b = el('button', n.label, 'link k-' + n.kind);
    b.type = 'button';
    b.title = n.id;
    b.addEventListener('click', function () { select(cy.getElementById(n.i), true); });
    li.appendChild(el('span', n.kind, 'kind'));
    li.appendChild(b);
    return li;
  }

  function list(title, id, nodes) {
    var box = el('div');
    box.appendChild(el('h4', title + ' (' + nodes.length + ')'));
    var ul = el('ul');
    ul.id = id;
    nodes.forEach(function (n) { ul.appendChild(nodeButton(byIndex[n.id()])); });
    box.appendChild(ul);
    return box;
  }

  function clear() {
    cy.elements().removeClass('up down sel faded match');
  }

  function select(node, center) {
    clear();
    var n = byIndex[node.id()];
    var up = node.predecessors();
    var down = node.successors();
    cy.elements().addClass('faded');
    node.removeClass('faded').addClass('sel');
    up.removeClass('faded').addClass('up');
    down.removeClass('faded').addClass('down');
    if (center) { cy.animate({ center: { eles: node }, duration: 200 }); }
    panel.textContent = '';
    panel.setAttribute('data-selected', n.id);
    panel.appendChild(el('span', n.kind, 'kind'));
    panel.appendChild(el('h3', n.label, 'sel-title'));
    panel.appendChild(el('div', n.id, 'nid'));
    var dl = el('dl');
    Object.keys(n.attrs).forEach(function (k) {
      dl.appendChild(el('dt', k));
      dl.appendChild(el('dd', n.attrs[k]));
    });
    panel.appendChild(dl);
    panel.appendChild(list('Upstream: what it derives from', 'panel-upstream', up.nodes()));
    panel.appendChild(list('Downstream: what derives from it', 'panel-downstream', down.nodes()));
    var files = el('div');
    var count = n.files_total > n.files.length ?
      n.files.length + ' of ' + n.files_total : String(n.files.length);
    files.appendChild(el('h4', 'Files (' + count + ')'));
    var ul = el('ul', null, 'files');
    ul.id = 'panel-files';
    n.files.forEach(function (f) { ul.appendChild(el('li', f)); });
    files.appendChild(ul);
    panel.appendChild(files);
  }

  cy.on('tap', 'node', function (evt) { select(evt.target, false); });
  cy.on('tap', function (evt) { if (evt.target === cy) { clear(); } });

  search.addEventListener('input', function () {
    clear();
    var q = search.value.trim().toLowerCase();
    if (!q) { status.textContent = shown; return; }
    var hits = cy.nodes().filter(function (node) {
      var n = byIndex[node.id()];
      return n.label.toLowerCase().indexOf(q) >= 0 || n.id.toLowerCase().indexOf(q) >= 0;
    });
    cy.elements().addClass('faded');
    hits.removeClass('faded').addClass('match');
    status.textContent = hits.length + ' match' + (hits.length === 1 ? '' : 'es');
    if (hits.length) { cy.animate({ fit: { eles: hits, padding: 60 }, duration: 200 }); }
  });
  search.addEventListener('keydown', function (evt) {
    if (evt.key !== 'Enter') { return; }
    var hit = cy.nodes('.match');
    if (hit.length) { select(hit[0], true); }
  });
  document.getElementById('graph-fit').addEventListener('click', function () { cy.fit(null, 20); });
  document.getElementById('graph-clear').addEventListener('click', function () {
    clear();
    search.value = '';
    status.textContent = shown;
  });

  var all = document.getElementById('node-list');
  data.nodes.forEach(function (n) { all.appendChild(nodeButton(n)); });
}());
