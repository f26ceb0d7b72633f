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
export const DROPOFF_COLOUR = [236, 240, 241];
export const GRID_COLOUR = [70, 96, 128];
export const UNKNOWN_COLOUR = [200, 200, 200];

export function css([r, g, b]) {
  return `rgb(${r}, ${g}, ${b})`;
}
