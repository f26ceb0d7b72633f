// One small function per layer, each building it from the page's state; buildLayers() in
// main.js lists them, bottom first.
import { H3HexagonLayer } from '@deck.gl/geo-layers';
import { IconLayer, LineLayer, PolygonLayer, ScatterplotLayer, TextLayer } from '@deck.gl/layers';

import {
  AREA_COLOURS,
  DROPOFF_COLOUR,
  GRID_COLOUR,
  MARKET_COLOURS,
  RIDE_COLOURS,
  SURGE_LOW,
  SURGE_SPAN,
  UNKNOWN_COLOUR,
} from './palette.js';

export function gridLayer(cells) {
  return new H3HexagonLayer({
    id: 'h3-grid',
    data: cells,
    getHexagon: (cell) => cell,
    filled: false,
    stroked: true,
    extruded: false,
    getLineColor: [...GRID_COLOUR, 140],
    lineWidthUnits: 'pixels',
    getLineWidth: 1,
    pickable: false,
  });
}

export function driversLayer(columns) {
  return new ScatterplotLayer({
    id: 'drivers',
    data: {
      length: columns.length,
      attributes: {
        getPosition: { value: columns.positions, size: 2 },
        getFillColor: { value: columns.colours, size: 4, normalized: true },
      },
    },
    radiusUnits: 'pixels',
    getRadius: 4,
    radiusMinPixels: 3,
    stroked: true,
    getLineColor: [14, 22, 33, 255],
    lineWidthMinPixels: 1,
    pickable: true,
  });
}

// A wedge pointing north, drawn once on a canvas (nothing is fetched); tinted per driver.
const ARROW_ATLAS = (() => {
  const canvas = document.createElement('canvas');
  canvas.width = 64;
  canvas.height = 64;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff';
  ctx.beginPath();
  ctx.moveTo(32, 0);
  ctx.lineTo(50, 34);
  ctx.lineTo(14, 34);
  ctx.closePath();
  ctx.fill();
  return canvas;
})();
const ARROW_MAPPING = { arrow: { x: 0, y: 0, width: 64, height: 64, mask: true } };

// Each moving driver's heading: a wedge under its dot, its tip out where it last went.
export function headingsLayer(arrows) {
  return new IconLayer({
    id: 'driver-headings',
    data: {
      length: arrows.length,
      attributes: {
        getPosition: { value: arrows.positions, size: 2 },
        getAngle: { value: arrows.angles, size: 1 },
        getColor: { value: arrows.colours, size: 4, normalized: true },
      },
    },
    iconAtlas: ARROW_ATLAS,
    iconMapping: ARROW_MAPPING,
    getIcon: () => 'arrow',
    sizeUnits: 'pixels',
    getSize: 20,
    pickable: false,
  });
}

function rideColour(ride) {
  return [...(RIDE_COLOURS[ride.status] ?? UNKNOWN_COLOUR), 255];
}

// The line from a ride's driver to where it is heading: the pickup, or once the trip is
// under way the drop-off. Rides whose driver is not drawn have none.
export function rideLinksLayer(links) {
  return new LineLayer({
    id: 'ride-links',
    data: links,
    getSourcePosition: (link) => link.from,
    getTargetPosition: (link) => link.to,
    getColor: (link) => rideColour(link.ride),
    widthUnits: 'pixels',
    getWidth: 2,
    pickable: true,
  });
}

export function pickupsLayer(rides) {
  return new ScatterplotLayer({
    id: 'pickups',
    data: rides,
    getPosition: (ride) => ride.pickup,
    getFillColor: [0, 0, 0, 0],
    getLineColor: rideColour,
    stroked: true,
    filled: true,
    radiusUnits: 'pixels',
    getRadius: 7,
    lineWidthUnits: 'pixels',
    getLineWidth: 2,
    pickable: true,
  });
}

export function dropoffsLayer(rides) {
  return new ScatterplotLayer({
    id: 'dropoffs',
    data: rides.filter((ride) => ride.dropoff !== null),
    getPosition: (ride) => ride.dropoff,
    getFillColor: [...DROPOFF_COLOUR, 200],
    radiusUnits: 'pixels',
    getRadius: 3,
    pickable: true,
  });
}

// Service areas, no-pickup areas and airports: one row per polygon (holes kept), tinted by
// kind; no-pickup areas filled more strongly, as they refuse rides. Service areas are the
// large ones around the others: drawn first, so the others stay on top (and are picked).
const AREA_ORDER = { service_area: 0, airport: 1, no_pickup: 2 };

// The rows of each areas list the stream sent: kept while it stands, so deck.gl tessellates
// the polygons once per change, not once per frame.
const AREA_ROWS = new WeakMap();

function areaRows(areas) {
  if (!AREA_ROWS.has(areas)) {
    const rows = [...areas]
      .sort((a, b) => (AREA_ORDER[a.kind] ?? 3) - (AREA_ORDER[b.kind] ?? 3))
      .flatMap((area) => area.polygons.map((polygon) => ({ area, polygon })));
    AREA_ROWS.set(areas, rows);
  }
  return AREA_ROWS.get(areas);
}

export function areasLayer(areas) {
  const rows = areaRows(areas);
  const colour = (row) => AREA_COLOURS[row.area.kind] ?? UNKNOWN_COLOUR;
  return new PolygonLayer({
    id: 'areas',
    data: rows,
    getPolygon: (row) => row.polygon,
    getFillColor: (row) => [...colour(row), row.area.kind === 'no_pickup' ? 70 : 30],
    getLineColor: (row) => [...colour(row), 230],
    lineWidthUnits: 'pixels',
    getLineWidth: 2,
    pickable: true,
  });
}

// Above the middle of a polygon's outline: the label stays clear of the drivers inside.
function topMiddle(ring) {
  const lngs = ring.map((p) => p[0]);
  const lats = ring.map((p) => p[1]);
  return [(Math.min(...lngs) + Math.max(...lngs)) / 2, Math.max(...lats)];
}

// Each airport's name and how many drivers wait in its queue, over its first polygon.
export function airportLabelsLayer(areas, queues) {
  const airports = areas.filter((area) => area.kind === 'airport');
  return new TextLayer({
    id: 'airport-labels',
    data: airports,
    getPosition: (area) => topMiddle(area.polygons[0][0]),
    getText: (area) => `${area.name}: ${queues[area.id] ?? 0} in queue`,
    getColor: [...AREA_COLOURS.airport, 255],
    getSize: 14,
    sizeUnits: 'pixels',
    getTextAnchor: 'middle',
    getAlignmentBaseline: 'bottom',
    getPixelOffset: [0, -4],
    fontWeight: 600,
    fontFamily: 'system-ui, sans-serif',
    outlineWidth: 3,
    outlineColor: [14, 22, 33, 255],
    fontSettings: { sdf: true },
    updateTriggers: { getText: queues },
    pickable: false,
  });
}

// The value a market cell is coloured by, and how strong (0-1) it is in this view.
function strength(metric, cell, max) {
  if (metric === 'surge') return Math.min(1, (cell.surge - 1) / SURGE_SPAN);
  const value = metric === 'supply' ? cell.supply : cell.demand_per_min;
  return max > 0 ? value / max : 0;
}

function marketColour(metric, t) {
  const [r, g, b] = MARKET_COLOURS[metric];
  if (metric !== 'surge') return [r, g, b, Math.round(40 + 170 * t)];
  const mix = (lo, hi) => Math.round(lo + (hi - lo) * t);
  return [mix(SURGE_LOW[0], r), mix(SURGE_LOW[1], g), mix(SURGE_LOW[2], b), Math.round(110 + 100 * t)];
}

// Supply, demand or surge per market cell (the metric the side panel's toggle picked);
// cells with nothing of it are left out. Hovering one shows all its figures.
// Kept per cells array and metric, so an unchanged market is not recomputed every frame.
const SHOWN = new WeakMap();

function shownCells(cells, metric) {
  const byMetric = SHOWN.get(cells) ?? {};
  if (!byMetric[metric]) {
    const value = (cell) => (metric === 'surge' ? cell.surge - 1 : metric === 'supply' ? cell.supply : cell.demand_per_min);
    const shown = cells.filter((cell) => value(cell) > 0);
    byMetric[metric] = { shown, max: Math.max(0, ...shown.map(value)) };
    SHOWN.set(cells, byMetric);
  }
  return byMetric[metric];
}

export function marketLayer(cells, metric) {
  const { shown, max } = shownCells(cells, metric);
  return new H3HexagonLayer({
    id: 'market',
    data: shown,
    getHexagon: (cell) => cell.id,
    filled: true,
    stroked: true,
    extruded: false,
    getFillColor: (cell) => marketColour(metric, strength(metric, cell, max)),
    getLineColor: [...MARKET_COLOURS[metric], 200],
    lineWidthUnits: 'pixels',
    getLineWidth: 1,
    pickable: true,
    updateTriggers: { getFillColor: [metric, max], getLineColor: metric },
  });
}
