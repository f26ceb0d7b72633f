// The H3 grid drawn for orientation (there is no basemap by default): the cells around the
// view's centre, at a resolution that suits the zoom, capped so a zoomed-out view stays cheap.
import { getHexagonEdgeLengthAvg, gridDisk, latLngToCell, UNITS } from 'h3-js';

const MAX_RINGS = 30;

export function resolutionFor(zoom) {
  if (zoom >= 14) return 9;
  if (zoom >= 12.5) return 8;
  if (zoom >= 11) return 7;
  return 6;
}

export function gridCells(map) {
  const res = resolutionFor(map.getZoom());
  const centre = map.getCenter();
  const bounds = map.getBounds();
  const halfDiagonalM = centre.distanceTo(bounds.getNorthEast());
  const edgeM = getHexagonEdgeLengthAvg(res, UNITS.m);
  const rings = Math.min(MAX_RINGS, Math.ceil(halfDiagonalM / (1.5 * edgeM)) + 1);
  return gridDisk(latLngToCell(centre.lat, centre.lng, res), rings);
}
