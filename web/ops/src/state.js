// The page's copy of the ops stream: drivers held by slot in columns, rides by id.
// The server numbers drivers by slot (their place in the snapshot, then in order of
// arrival); deltas name slots, gap-coded (the first absolute, then differences), and move
// drivers by offsets in 1e-5 degrees; what a driver serves is a bit mask over the
// snapshot's product names. docs/api.md describes the format.

const E5 = 1e-5;
const MIN_HEADING_MOVE = 2; // in 1e-5 degrees: shorter moves are GPS jitter, not a heading

export function createState() {
  return {
    statuses: [], // status code -> name, from the snapshot
    products: [], // bit i of a driver's mask -> product name, from the snapshot
    ids: [], // by slot; null once gone
    lat: [], // by slot, in 1e-5 degrees (integers, as sent)
    lng: [],
    status: [],
    served: [], // by slot: the mask of the products the driver serves
    heading: [], // by slot: degrees clockwise from north of the last move, or null
    slotOf: new Map(), // driver id -> slot
    rides: new Map(), // ride id -> {id, status, driver, product, pickup, dropoff}
    area: null,
    figures: {}, // the last 5 minutes of ride requests (requests_per_min, match_rate, p95_eta_s)
    figuresByProduct: {}, // product -> the same, of the rides asking for it
    market: new Map(), // market cell id -> {id, supply, demand_per_min, requests, no_driver_rate, surge}
    marketByProduct: new Map(), // product -> its own cells, as `market` holds every product's
    marketChanges: 0, // counts the market's changes: the page redraws its cells only then
    areas: [], // {id, kind, name, polygons: [[[lng, lat], ...] rings, ...]}
    queues: {}, // airport id -> drivers waiting
    t: 0,
    frames: 0,
  };
}

export function applySnapshot(state, snap) {
  const fresh = createState();
  fresh.statuses = snap.statuses;
  fresh.products = snap.products ?? [];
  fresh.area = snap.area;
  fresh.figures = snap.figures ?? {};
  fresh.figuresByProduct = snap.figures_by_product ?? {};
  fresh.frames = state.frames;
  appendDrivers(fresh, snap.drivers);
  upsertRides(fresh, snap.rides);
  if (snap.market) upsertCells(fresh.market, snap.market.cells);
  for (const [product, { cells }] of Object.entries(snap.market_by_product ?? {})) {
    upsertCells(productCells(fresh, product), cells);
  }
  if (snap.areas) fresh.areas = areaRows(snap.areas);
  fresh.queues = snap.queues ?? {};
  fresh.t = snap.t;
  fresh.frames += 1;
  return fresh;
}

export function applyDelta(state, delta) {
  if (delta.moved) {
    const slots = ungap(delta.moved.slot);
    slots.forEach((slot, i) => {
      const dlat = delta.moved.dlat[i];
      const dlng = delta.moved.dlng[i];
      state.lat[slot] += dlat;
      state.lng[slot] += dlng;
      if (Math.abs(dlat) + Math.abs(dlng) >= MIN_HEADING_MOVE) {
        // The service keeps no heading; the map points where the driver last went.
        const east = dlng * Math.cos(state.lat[slot] * E5 * (Math.PI / 180));
        state.heading[slot] = (Math.atan2(east, dlat) * 180) / Math.PI;
      }
    });
  }
  if (delta.status) {
    ungap(delta.status.slot).forEach((slot, i) => {
      state.status[slot] = delta.status.status[i];
    });
  }
  if (delta.products) {
    ungap(delta.products.slot).forEach((slot, i) => {
      state.served[slot] = delta.products.products[i];
    });
  }
  if (delta.gone) {
    for (const slot of ungap(delta.gone)) {
      state.slotOf.delete(state.ids[slot]);
      state.ids[slot] = null;
    }
  }
  if (delta.added) appendDrivers(state, delta.added);
  if (delta.rides) upsertRides(state, delta.rides);
  for (const id of delta.rides_gone ?? []) state.rides.delete(id);
  if (delta.figures) state.figures = delta.figures;
  if (delta.figures_by_product) state.figuresByProduct = delta.figures_by_product;
  if (delta.market) {
    applyCells(state.market, delta.market);
    state.marketChanges += 1;
  }
  for (const [product, cells] of Object.entries(delta.market_by_product ?? {})) {
    applyCells(productCells(state, product), cells);
    state.marketChanges += 1;
  }
  if (delta.areas) state.areas = areaRows(delta.areas);
  if (delta.queues) state.queues = delta.queues;
  state.t = delta.t;
  state.frames += 1;
  return state;
}

function appendDrivers(state, cols) {
  cols.id.forEach((id, i) => {
    const slot = state.ids.length;
    state.ids.push(id);
    state.lat.push(cols.lat[i]);
    state.lng.push(cols.lng[i]);
    state.status.push(cols.status[i]);
    state.served.push(cols.products?.[i] ?? 0);
    state.heading.push(null);
    if (id !== null) state.slotOf.set(id, slot); // null: an empty slot of a snapshot
  });
}

function upsertRides(state, cols) {
  cols.id.forEach((id, i) => {
    state.rides.set(id, {
      id,
      status: cols.status[i],
      driver: cols.driver[i],
      product: cols.product?.[i] ?? null, // null: requested before there were products
      pickup: [cols.pickup_lng[i] * E5, cols.pickup_lat[i] * E5],
      dropoff: cols.dropoff_lat[i] === null ? null : [cols.dropoff_lng[i] * E5, cols.dropoff_lat[i] * E5],
    });
  });
}

function productCells(state, product) {
  if (!state.marketByProduct.has(product)) state.marketByProduct.set(product, new Map());
  return state.marketByProduct.get(product);
}

function applyCells(market, { cells, removed }) {
  upsertCells(market, cells);
  for (const id of removed) market.delete(id);
}

function upsertCells(market, cols) {
  cols.id.forEach((id, i) => {
    market.set(id, {
      id,
      supply: cols.supply[i],
      demand_per_min: cols.demand_per_min[i],
      requests: cols.requests[i],
      no_driver_rate: cols.no_driver_rate[i],
      surge: cols.surge[i],
    });
  });
}

function areaRows(cols) {
  return cols.id.map((id, i) => ({ id, kind: cols.kind[i], name: cols.name[i], polygons: cols.polygons[i] }));
}

function ungap(gaps) {
  const out = new Array(gaps.length);
  let at = 0;
  gaps.forEach((gap, i) => {
    at = i === 0 ? gap : at + gap;
    out[i] = at;
  });
  return out;
}

// The mask a driver serving `product` has a bit of; null (every driver) for no product,
// 0 (no driver) for one the stream does not name.
export function productMask(state, product) {
  if (product === null) return null;
  const bit = state.products.indexOf(product);
  return bit < 0 ? 0 : 2 ** bit;
}

// Whether a ride is one of `product` (null: every ride).
export function rideOf(ride, product) {
  return product === null || ride.product === product;
}

// How many drivers serve each product, by name (a driver serving two counts in both).
export function productCounts(state) {
  const counts = Object.fromEntries(state.products.map((name) => [name, 0]));
  state.ids.forEach((id, slot) => {
    if (id === null) return;
    state.products.forEach((name, bit) => {
      if (state.served[slot] & (2 ** bit)) counts[name] += 1;
    });
  });
  return counts;
}

// The drivers to draw (those serving a product of `mask`, or all for null), packed for
// deck.gl's binary attributes; `slots` maps a drawn index back to its slot (for picking).
export function driverColumns(state, colourOf, mask = null) {
  const slots = [];
  state.ids.forEach((id, slot) => {
    if (id !== null && (mask === null || (state.served[slot] & mask) !== 0)) slots.push(slot);
  });
  const positions = new Float64Array(slots.length * 2);
  const colours = new Uint8Array(slots.length * 4);
  const headed = slots.filter((slot) => state.heading[slot] !== null);
  const arrows = {
    length: headed.length,
    positions: new Float64Array(headed.length * 2),
    angles: new Float32Array(headed.length),
    colours: new Uint8Array(headed.length * 4),
  };
  slots.forEach((slot, i) => {
    positions[2 * i] = state.lng[slot] * E5;
    positions[2 * i + 1] = state.lat[slot] * E5;
    const [r, g, b] = colourOf(state.statuses[state.status[slot]]);
    colours.set([r, g, b, 230], 4 * i);
  });
  headed.forEach((slot, i) => {
    arrows.positions[2 * i] = state.lng[slot] * E5;
    arrows.positions[2 * i + 1] = state.lat[slot] * E5;
    arrows.angles[i] = -state.heading[slot]; // deck.gl turns counter-clockwise
    const [r, g, b] = colourOf(state.statuses[state.status[slot]]);
    arrows.colours.set([r, g, b, 230], 4 * i);
  });
  return { length: slots.length, slots, positions, colours, arrows };
}

export function driverAt(state, slot) {
  const heading = state.heading[slot];
  return {
    id: state.ids[slot],
    status: state.statuses[state.status[slot]],
    products: state.products.filter((_, bit) => state.served[slot] & (2 ** bit)),
    lat: state.lat[slot] * E5,
    lng: state.lng[slot] * E5,
    heading: heading === null ? null : Math.round((heading + 360) % 360),
  };
}

export function driverPosition(state, driverId) {
  const slot = state.slotOf.get(driverId);
  return slot === undefined ? null : [state.lng[slot] * E5, state.lat[slot] * E5];
}

export function countBy(values) {
  const counts = {};
  for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}
