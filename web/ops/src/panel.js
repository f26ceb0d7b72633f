// The side panel: connection state, live counters, the selected item, the legend.
import { css, DRIVER_COLOURS, DROPOFF_COLOUR, RIDE_COLOURS } from './palette.js';

const $ = (id) => document.getElementById(id);

export function showConnection(text, refused = false) {
  const el = $('connection');
  el.textContent = text;
  el.className = refused ? 'refused' : 'muted';
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
  ];
  $('legend').replaceChildren(...rows);
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
