// Trails: each point's path across every step of the aligned layout
// sequence, for the highlighted images (or the one selected image), the
// current step marked. At most MAX_TRAILS paths, so a big selection stays legible.

export const MAX_TRAILS = 300;

// mask: the highlighted rows (or null); selRow: the selected image's row (or -1).
// at(step) -> {xy} from the layout cache. Returns what scatter.setTrails takes.
export async function trailsFor(steps, at, step, mask, selRow) {
  const rows = [];
  if (mask) { for (let i = 0; i < mask.length && rows.length < MAX_TRAILS; i++) if (mask[i]) rows.push(i); } else if (selRow >= 0) rows.push(selRow);
  if (!rows.length) return {rows, xy: [], current: -1, cut: false};
  const layouts = await Promise.all(steps.map((s) => at(s)));
  if (layouts.some((l) => !l.xy)) return {rows: [], xy: [], current: -1, cut: false}; // the first layout is still being computed
  const cut = !!mask && mask.reduce((a, b) => a + b, 0) > rows.length;
  return {rows, xy: layouts.map((l) => l.xy), current: steps.indexOf(step), cut};
}
