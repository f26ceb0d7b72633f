// The live ops map: reads the ops token from the URL fragment, follows GET /v1/ops/stream
// and draws drivers, rides in flight, market cells, areas and an H3 grid with deck.gl
// over MapLibre; the side panel's product selector (from GET /v1/products) narrows the
// drivers, rides, counters and market cells to one product.
import 'maplibre-gl/dist/maplibre-gl.css';
import './style.css';

import { MapboxOverlay } from '@deck.gl/mapbox';
import { Map as MapLibreMap, setWorkerUrl } from 'maplibre-gl';

import { gridCells } from './grid.js';
import {
  airportLabelsLayer,
  areasLayer,
  driversLayer,
  dropoffsLayer,
  gridLayer,
  headingsLayer,
  marketLayer,
  pickupsLayer,
  rideLinksLayer,
} from './layers.js';
import { DRIVER_COLOURS, UNKNOWN_COLOUR } from './palette.js';
import {
  describe,
  showAreas,
  showConnection,
  showCounts,
  showDetails,
  showFigures,
  showLegend,
  showMarketScope,
  showMarketToggle,
  showProductCounts,
  showProductPicker,
} from './panel.js';
import {
  applyDelta,
  applySnapshot,
  countBy,
  createState,
  driverAt,
  driverColumns,
  driverPosition,
  productCounts,
  productMask,
  rideOf,
} from './state.js';
import { follow } from './stream.js';

const config = JSON.parse(document.getElementById('ops-config').textContent);
// The fragment never leaves the browser: not in the page request, not in any log.
const token = new URLSearchParams(window.location.hash.slice(1)).get('token');

/* global MAPLIBRE_WORKER_URL */
setWorkerUrl(MAPLIBRE_WORKER_URL); // a hashed asset beside the bundle (build.mjs)

// No tile server by default: a plain background, with the H3 grid for orientation.
const PLAIN_STYLE = {
  version: 8,
  sources: {},
  layers: [{ id: 'background', type: 'background', paint: { 'background-color': '#0e1621' } }],
};

const map = new MapLibreMap({
  container: 'map',
  style: config.basemap_style_url ?? PLAIN_STYLE,
  center: [config.area.lng, config.area.lat],
  zoom: 12,
  attributionControl: false,
});
const overlay = new MapboxOverlay({ interleaved: false, layers: [], onClick: select, getTooltip: tooltip });
map.addControl(overlay);

let state = createState();
let cells = [];
let drawn = driverColumns(state, driverColour);
let layers = [];
let pending = false;
let marketMetric = 'surge'; // the side panel's toggle: off, supply, demand or surge
let product = null; // the side panel's selector: one product's drivers and rides, or all
let marketCells = { state: null, changes: -1, product: null, cells: [] }; // the cells last drawn, kept while unchanged

function driverColour(status) {
  return DRIVER_COLOURS[status] ?? UNKNOWN_COLOUR;
}

function rideLinks(rides) {
  return rides
    .map((ride) => ({
      ride,
      from: ride.driver && driverPosition(state, ride.driver),
      to: ride.status === 'in_progress' && ride.dropoff ? ride.dropoff : ride.pickup,
    }))
    .filter((link) => link.from);
}

function shownRides() {
  return [...state.rides.values()].filter((ride) => rideOf(ride, product));
}

// The market cells of the product selected, or of every product together.
function shownMarket() {
  return product === null ? state.market : (state.marketByProduct.get(product) ?? new Map());
}

function buildLayers() {
  const rides = shownRides();
  drawn = driverColumns(state, driverColour, productMask(state, product));
  const changes = state.marketChanges;
  if (marketCells.state !== state || marketCells.changes !== changes || marketCells.product !== product) {
    marketCells = { state, changes, product, cells: [...shownMarket().values()] };
  }
  return [
    gridLayer(cells),
    areasLayer(state.areas),
    ...(marketMetric === 'off' ? [] : [marketLayer(marketCells.cells, marketMetric)]),
    airportLabelsLayer(state.areas, state.queues),
    rideLinksLayer(rideLinks(rides)),
    dropoffsLayer(rides),
    pickupsLayer(rides),
    headingsLayer(drawn.arrows),
    driversLayer(drawn),
  ];
}

// One render call, at most once per animation frame however many events arrived.
function render() {
  pending = false;
  layers = buildLayers();
  overlay.setProps({ layers });
  const statuses = drawn.slots.map((slot) => state.statuses[state.status[slot]]);
  showCounts(countBy(statuses), countBy(shownRides().map((r) => r.status)));
  showProductCounts(productCounts(state), state.slotOf.size);
  showFigures(product === null ? state.figures : (state.figuresByProduct[product] ?? {}));
  showAreas(state.areas, state.queues);
}

function scheduleRender() {
  if (!pending) {
    pending = true;
    requestAnimationFrame(render);
  }
}

function select(info) {
  if (!info.layer) return showDetails(null);
  if (info.layer.id === 'drivers') return showDetails(driverAt(state, drawn.slots[info.index]));
  if (info.layer.id === 'areas') {
    const { id, kind, name } = info.object.area;
    return showDetails(kind === 'airport' ? { id, kind, name, queue: state.queues[id] ?? 0 } : { id, kind, name });
  }
  const ride = info.object?.ride ?? info.object;
  return showDetails(ride ?? null);
}

function tooltip(info) {
  const text = info.object && info.layer ? describe(info.layer.id, info.object, state.queues, product) : null;
  return text && { text, className: 'ops-tooltip' };
}

function pickMarket(metric) {
  marketMetric = metric;
  scheduleRender();
}

function pickProduct(name) {
  product = name;
  showMarketScope(product);
  showDetails(null); // what was selected may no longer be drawn
  scheduleRender();
}

// The products to choose from: GET /v1/products, once the stream has taken the token.
let productsListed = false;
async function listProducts() {
  if (productsListed) return;
  try {
    const response = await fetch('/v1/products', { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' });
    if (!response.ok) return;
    const body = await response.json();
    productsListed = true;
    showProductPicker(body.products.map((p) => p.name), product, pickProduct);
    scheduleRender();
  } catch {
    // Offline for a moment: the next time the stream opens asks again.
  }
}

function onEvent(event, data) {
  if (event === 'snapshot') {
    const first = state.frames === 0;
    state = applySnapshot(state, data);
    if (first) map.jumpTo({ center: [data.area.lng, data.area.lat] });
  } else if (event === 'delta') {
    state = applyDelta(state, data);
  }
  scheduleRender();
}

map.on('moveend', () => {
  cells = gridCells(map);
  scheduleRender();
});

showLegend();
showMarketToggle(marketMetric, pickMarket);
showProductPicker([], product, pickProduct);
showMarketScope(product);
showCounts({}, {});
cells = gridCells(map);
scheduleRender();

if (!token) {
  showConnection('no ops token: open this page as /ops#token=<ops token>', true);
} else {
  follow('/v1/ops/stream', token, {
    onOpen: () => {
      showConnection('live');
      listProducts();
    },
    onEvent,
    onDown: (why) => showConnection(`reconnecting (${why})`),
    onRefused: (status) => showConnection(`stream refused (${status}): an ops token is needed`, true),
    onEnded: (reason) =>
      showConnection(
        reason === 'replaced' ? 'ended: a newer page of this token took over' : 'ended: the token expired',
        true,
      ),
  });
}

// For operators in the console and for the browser tests: what the page holds and draws.
window.opsMap = {
  map,
  overlay,
  state: () => state,
  product: () => product,
  drawnDrivers: () => drawn.length,
  layer: (id) => layers.find((layer) => layer.id === id),
  driver: (id) => driverPosition(state, id),
  marketCell: (id) => shownMarket().get(id) ?? null, // of the product selected
  // The object of a layer drawn at a point of the map (deck.gl's picking), or null.
  pick: (layerId, x, y) => overlay.pickObject({ x, y, radius: 2, layerIds: [layerId] })?.object ?? null,
  // The driver drawn at a point of the map (deck.gl's own picking), or null.
  pickDriver: (x, y) => {
    const info = overlay.pickObject({ x, y, radius: 4, layerIds: ['drivers'] });
    return info ? driverAt(state, drawn.slots[info.index]) : null;
  },
};
