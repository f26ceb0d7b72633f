// Colours shared by the layers and the legend, as [r, g, b] (deck.gl's colour format).
export const DRIVER_COLOURS = {
  available: [46, 204, 113],
  reserved: [241, 196, 15],
  on_ride: [52, 152, 219],
  offline: [127, 140, 141],
};
export const RIDE_COLOURS = {
  offered: [241, 196, 15],
  accepted: [230, 126, 34],
  arrived: [155, 89, 182],
  in_progress: [52, 152, 219],
};
export const AREA_COLOURS = {
  service_area: [120, 144, 255],
  no_pickup: [231, 76, 60],
  airport: [236, 112, 201],
};
// The market layer's hexagons: one colour per metric, stronger as the value grows; surge
// runs from yellow (a little) to red (the default cap, 3.0, and above).
export const MARKET_COLOURS = {
  supply: [46, 204, 113],
  demand: [255, 159, 67],
  surge: [255, 45, 85],
};
export const SURGE_LOW = [255, 214, 10];
export const SURGE_SPAN = 2.0; // from 1.0 to the default cap
export const DROPOFF_COLOUR = [236, 240, 241];
export const GRID_COLOUR = [70, 96, 128];
export const UNKNOWN_COLOUR = [200, 200, 200];

export function css([r, g, b]) {
  return `rgb(${r}, ${g}, ${b})`;
}
