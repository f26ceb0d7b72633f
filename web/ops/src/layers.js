// One small function per layer, each building it from the page's state. The market
// (supply, demand, surge hexagons) and area (service, no-pickup, airport) layers come from
// their own issues: add a builder here and list it in buildLayers() in main.js.
import { H3HexagonLayer } from '@deck.gl/geo-layers';
import { IconLayer, LineLayer, ScatterplotLayer } from '@deck.gl/layers';

import { DROPOFF_COLOUR, GRID_COLOUR, RIDE_COLOURS, UNKNOWN_COLOUR } from './palette.js';

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
