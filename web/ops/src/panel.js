// The side panel: connection state, the product selector, live counters, the market
// toggle, the areas, the selected item, the legend; and the text shown when hovering a
// cell or an area.
import {
  AREA_COLOURS,
  css,
  DRIVER_COLOURS,
  DROPOFF_COLOUR,
  MARKET_COLOURS,
  RIDE_COLOURS,
  SURGE_LOW,
} from './palette.js';

export const MARKET_METRICS = ['off', 'supply', 'demand', 'surge'];

const $ = (id) => document.getElementById(id);

export function showConnection(text, refused = false) {
  const el = $('connection');
  el.textContent = text;
  el.className = refused ? 'refused' : 'muted';
}

// One option per product of GET /v1/products, and "all products" (value ""); each says
// how many drivers on the map serve it. Rebuilt only when the products change, so an
// open list stays open while the counts tick.
export function showProductPicker(products, current, onPick) {
  const select = $('product');
  const options = [{ name: '', label: 'all products' }, ...products.map((name) => ({ name, label: name }))];
  select.replaceChildren(
    ...options.map(({ name, label }) => {
      const option = document.createElement('option');
      option.value = name;
      option.dataset.label = label;
      option.textContent = label;
      return option;
    }),
  );
  select.value = current ?? '';
  select.onchange = () => onPick(select.value === '' ? null : select.value);
}

export function showProductCounts(counts, total) {
  for (const option of $('product').options) {
    const n = option.value === '' ? total : counts[option.value];
    option.textContent = n === undefined ? option.dataset.label : `${option.dataset.label} · ${n} driver${n === 1 ? '' : 's'}`;
  }
}

// Whose market the cells show: the product selected, or every product together.
export function showMarketScope(product) {
  $('market-scope').textContent =
    product === null
      ? 'every product: all available drivers, riders summed, the highest surge'
      : `${product} only: its drivers, its riders, its surge`;
}

export function showCounts(driverCounts, rideCounts) {
  fillCounts($('driver-counts'), driverCounts, DRIVER_COLOURS, 'drivers');
  fillCounts($('ride-counts'), rideCounts, RIDE_COLOURS, 'rides');
  $('drivers-total').textContent = sum(driverCounts);
  $('rides-total').textContent = sum(rideCounts);
}

export function showFigures({ requests_per_min: rate, match_rate: matched, p95_eta_s: eta }) {
  $('requests-per-min').textContent = rate === undefined ? '–' : rate.toFixed(1);
  $('match-rate').textContent = matched == null ? '–' : `${Math.round(matched * 100)} %`;
  $('p95-eta').textContent = eta == null ? '–' : `${Math.floor(eta / 60)}:${String(eta % 60).padStart(2, '0')}`;
}

export function showDetails(item) {
  const el = $('details');
  el.textContent = item === null ? 'click a driver or a ride' : JSON.stringify(item, null, 1);
  el.className = item === null ? 'muted' : '';
}

export function showLegend() {
  const rows = [
    ...Object.entries(DRIVER_COLOURS).map(([s, c]) => swatch(c, `driver ${s.replace('_', ' ')}`)),
    ...Object.entries(RIDE_COLOURS).map(([s, c]) => swatch(c, `ride ${s.replace('_', ' ')}`, 'line')),
    swatch(DROPOFF_COLOUR, 'drop-off'),
    ...Object.entries(AREA_COLOURS).map(([k, c]) => swatch(c, k.replace('_', ' '), 'area')),
    ramp([MARKET_COLOURS.supply, MARKET_COLOURS.supply], 'supply (available drivers)'),
    ramp([MARKET_COLOURS.demand, MARKET_COLOURS.demand], 'demand (riders a minute)'),
    ramp([SURGE_LOW, MARKET_COLOURS.surge], 'surge ×1.1 to ×3'),
    note('market cells: of the product selected'),
  ];
  $('legend').replaceChildren(...rows);
}

// One button per metric; the page redraws the market layer with the one picked.
export function showMarketToggle(current, onPick) {
  const buttons = MARKET_METRICS.map((metric) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = metric;
    b.dataset.testid = `market-${metric}`;
    b.setAttribute('role', 'radio');
    b.setAttribute('aria-checked', String(metric === current));
    b.addEventListener('click', () => {
      showMarketToggle(metric, onPick);
      onPick(metric);
    });
    return b;
  });
  $('market-toggle').replaceChildren(...buttons);
}

export function showAreas(areas, queues) {
  const rows = areas.map((area) => {
    const li = swatch(AREA_COLOURS[area.kind] ?? [200, 200, 200], `${area.name} (${area.kind.replace('_', ' ')})`, 'area');
    li.dataset.testid = `area-${area.id}`;
    if (area.kind === 'airport') {
      const n = document.createElement('b');
      n.textContent = `${queues[area.id] ?? 0} in queue`;
      n.dataset.testid = `queue-${area.id}`;
      li.append(n);
    }
    return li;
  });
  $('area-list').replaceChildren(...rows);
  $('areas-total').textContent = areas.length;
}

// Hover text: a market cell's figures (of `product`, null: every product), or an area's
// kind, name and queue.
export function describe(layerId, object, queues, product) {
  if (layerId === 'market') {
    const rate = object.no_driver_rate === null ? '–' : `${Math.round(object.no_driver_rate * 100)} %`;
    return [
      `cell ${object.id} · ${product ?? 'every product'}`,
      `supply ${object.supply} available`,
      `demand ${object.demand_per_min.toFixed(1)} riders/min`,
      `no driver ${rate} of ${object.requests} requests`,
      `surge ×${object.surge.toFixed(1)}`,
    ].join('\n');
  }
  if (layerId === 'areas') {
    const { area } = object;
    const queue = area.kind === 'airport' ? `\n${queues[area.id] ?? 0} in queue` : '';
    return `${area.name} (${area.kind.replace('_', ' ')})${queue}`;
  }
  return null;
}

function note(text) {
  const li = document.createElement('li');
  li.className = 'muted note';
  li.textContent = text;
  return li;
}

function ramp([from, to], label) {
  const li = document.createElement('li');
  const bar = document.createElement('span');
  bar.className = 'swatch ramp';
  bar.style.background = `linear-gradient(to right, ${css(from)}, ${css(to)})`;
  li.append(bar, document.createTextNode(label));
  return li;
}

function fillCounts(list, counts, colours, what) {
  const rows = Object.keys(colours).map((status) => {
    const li = swatch(colours[status], status.replace('_', ' '));
    li.dataset.testid = `${what}-${status}`;
    const n = document.createElement('b');
    n.textContent = counts[status] ?? 0;
    li.append(n);
    return li;
  });
  list.replaceChildren(...rows);
}

function swatch(colour, label, kind = '') {
  const li = document.createElement('li');
  const dot = document.createElement('span');
  dot.className = `swatch ${kind}`;
  dot.style.background = css(colour);
  li.append(dot, document.createTextNode(label));
  return li;
}

function sum(counts) {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}
