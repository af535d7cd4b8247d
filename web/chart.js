// A tiny line chart on a <canvas>: a rolling window of points per series, y axis from 0 (or
// the data's minimum) to a rounded maximum with labels, a time axis, and a legend that also
// writes each series' latest value as text (`.latest[data-series=NAME]`, raw number in
// `data-value`), so the numbers can be read without looking at pixels.
//
// Markup it expects:
//   <figure class="chart"><figcaption>…</figcaption><canvas id="…"></canvas><ul class="legend"></ul></figure>
// Colours come from the stylesheet (`.palette .s0` … `.s7`, axes from the canvas' `color`), so
// the chart follows light and dark mode without inline styles.

const PALETTE_SIZE = 8;

let palette = null;

function readPalette() {
  if (palette) return palette;
  const holder = document.createElement('div');
  holder.className = 'palette';
  const probes = [];
  for (let i = 0; i < PALETTE_SIZE; i += 1) {
    const probe = document.createElement('span');
    probe.className = 's' + i;
    holder.append(probe);
    probes.push(probe);
  }
  document.body.append(holder);
  palette = probes.map((p) => getComputedStyle(p).color);
  holder.remove();
  return palette;
}

/** The smallest of 1, 2, 5 × 10^n at or above `v`. */
export function niceCeil(v) {
  if (!(v > 0)) return 1;
  const exp = 10 ** Math.floor(Math.log10(v));
  const f = v / exp;
  const nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
  return nice * exp;
}

/** A compact number: 1234 → "1.23k", 0.0042 → "0.0042". */
export function compact(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(2).replace(/\.?0+$/, '') + 'G';
  if (a >= 1e6) return (v / 1e6).toFixed(2).replace(/\.?0+$/, '') + 'M';
  if (a >= 1e4) return (v / 1e3).toFixed(1).replace(/\.0$/, '') + 'k';
  if (a >= 100 || Number.isInteger(v)) return String(Math.round(v));
  if (a >= 1) return v.toFixed(1).replace(/\.0$/, '');
  if (a === 0) return '0';
  return v.toPrecision(2);
}

export class LineChart {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {object} options
   *   capacity: points kept per series (120);
   *   intervalMs: the expected time between points (1000), for the time axis;
   *   unit: appended to the axis labels ("ms");
   *   format(v): text of a value (compact);
   *   latestText(name, v): text of a latest value (format + unit);
   *   min: fixed y minimum (0), or null to follow the data;
   *   max: fixed y maximum, or null to round the data's maximum up.
   */
  constructor(canvas, options = {}) {
    this.canvas = canvas;
    this.figure = canvas.closest('figure') || canvas.parentElement;
    this.legend = this.figure.querySelector('.legend');
    this.capacity = options.capacity || 120;
    this.intervalMs = options.intervalMs || 1000;
    this.unit = options.unit || '';
    this.format = options.format || compact;
    this.latestText = options.latestText || ((_, v) => (v === null ? '–' : this.format(v) + (this.unit ? ' ' + this.unit : '')));
    this.fixedMin = options.min === undefined ? 0 : options.min;
    this.fixedMax = options.max === undefined ? null : options.max;
    this.times = [];
    this.series = new Map(); // name → {index, values: [], li, latest}
    this.pending = false;
    if (window.ResizeObserver) {
      new ResizeObserver(() => this.draw()).observe(canvas);
    } else {
      window.addEventListener('resize', () => this.draw());
    }
  }

  seriesFor(name) {
    let s = this.series.get(name);
    if (!s) {
      const index = this.series.size % PALETTE_SIZE;
      s = { index, values: new Array(this.times.length).fill(null) };
      const swatch = document.createElement('span');
      swatch.className = 'swatch s' + index;
      const label = document.createElement('span');
      label.className = 'series-name';
      label.textContent = name;
      const latest = document.createElement('span');
      latest.className = 'latest';
      latest.dataset.series = name;
      latest.textContent = '–';
      const li = document.createElement('li');
      li.dataset.series = name;
      li.append(swatch, label, latest);
      if (this.legend) this.legend.append(li);
      s.li = li;
      s.latest = latest;
      this.series.set(name, s);
    }
    return s;
  }

  /** Adds one point per named series at `atMs`; series not named get a gap. */
  push(atMs, values) {
    for (const name of Object.keys(values)) this.seriesFor(name);
    this.times.push(atMs);
    for (const [name, s] of this.series) {
      const raw = values[name];
      const v = typeof raw === 'number' && Number.isFinite(raw) ? raw : null;
      s.values.push(v);
      const text = name in values ? this.latestText(name, v) : '–';
      s.latest.textContent = text;
      s.latest.dataset.value = v === null ? '' : String(v);
    }
    if (this.times.length > this.capacity) {
      const drop = this.times.length - this.capacity;
      this.times.splice(0, drop);
      for (const s of this.series.values()) s.values.splice(0, drop);
    }
    // Series that have been silent for the whole window leave the legend.
    for (const [name, s] of this.series) {
      if (s.values.every((v) => v === null) && !(name in values)) {
        s.li.remove();
        this.series.delete(name);
      }
    }
    this.scheduleDraw();
  }

  scheduleDraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const canvas = this.canvas;
    const cssWidth = canvas.clientWidth;
    const cssHeight = canvas.clientHeight;
    if (!cssWidth || !cssHeight) return;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.round(cssWidth * dpr);
    const h = Math.round(cssHeight * dpr);
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssWidth, cssHeight);
    const colors = readPalette();
    const axis = getComputedStyle(canvas).color;

    // The y range.
    let lo = Infinity;
    let hi = -Infinity;
    for (const s of this.series.values()) {
      for (const v of s.values) {
        if (v === null) continue;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    const hasData = hi >= lo;
    let min = this.fixedMin !== null ? this.fixedMin : hasData ? lo : 0;
    let max = this.fixedMax !== null ? this.fixedMax : niceCeil(hasData ? Math.max(hi, min) : 1);
    if (this.fixedMax !== null && hasData && hi > max) max = niceCeil(hi);
    if (max <= min) max = min + 1;

    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';
    const unit = this.unit ? ' ' + this.unit : '';
    const maxLabel = this.format(max) + unit;
    const minLabel = this.format(min) + unit;
    const left = Math.ceil(Math.max(ctx.measureText(maxLabel).width, ctx.measureText(minLabel).width)) + 8;
    const top = 8;
    const bottom = cssHeight - 18;
    const right = cssWidth - 6;
    const plotW = Math.max(1, right - left);
    const plotH = Math.max(1, bottom - top);

    // Grid and labels.
    ctx.strokeStyle = axis;
    ctx.fillStyle = axis;
    ctx.globalAlpha = 0.25;
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (const y of [top, top + plotH / 2, bottom]) {
      ctx.moveTo(left, Math.round(y) + 0.5);
      ctx.lineTo(right, Math.round(y) + 0.5);
    }
    ctx.stroke();
    ctx.globalAlpha = 1;
    ctx.textAlign = 'right';
    ctx.fillText(maxLabel, left - 4, top);
    ctx.fillText(minLabel, left - 4, bottom);
    // The time axis spans the history kept, from 30 s up to the whole window, so that a chart
    // that has just started is not squeezed against the right edge.
    const fullMs = this.capacity * this.intervalMs;
    const spanMs = this.times.length > 1 ? this.times[this.times.length - 1] - this.times[0] : 0;
    const windowMs = Math.min(fullMs, Math.max(30000, spanMs));
    ctx.textAlign = 'left';
    ctx.textBaseline = 'alphabetic';
    ctx.fillText(`−${Math.round(windowMs / 1000)} s`, left, cssHeight - 4);
    ctx.textAlign = 'right';
    ctx.fillText('now', right, cssHeight - 4);
    if (!hasData) {
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.fillText('no data yet', left + plotW / 2, top + plotH / 2);
      return;
    }

    // The lines: time on x (newest at the right edge), gaps where a value is missing.
    const newest = this.times[this.times.length - 1];
    const x = (t) => right - ((newest - t) / windowMs) * plotW;
    const y = (v) => bottom - ((Math.min(Math.max(v, min), max) - min) / (max - min)) * plotH;
    ctx.lineWidth = 1.75;
    ctx.lineJoin = 'round';
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top - 2, plotW + 2, plotH + 4);
    ctx.clip();
    for (const s of this.series.values()) {
      ctx.strokeStyle = colors[s.index];
      ctx.fillStyle = colors[s.index];
      ctx.beginPath();
      let drawing = false;
      let last = null;
      for (let i = 0; i < s.values.length; i += 1) {
        const v = s.values[i];
        if (v === null) {
          drawing = false;
          continue;
        }
        const px = x(this.times[i]);
        const py = y(v);
        if (drawing) ctx.lineTo(px, py);
        else ctx.moveTo(px, py);
        drawing = true;
        last = [px, py];
      }
      ctx.stroke();
      if (last && s.values[s.values.length - 1] !== null) {
        ctx.beginPath();
        ctx.arc(last[0], last[1], 2.5, 0, Math.PI * 2);
        ctx.fill();
      }
    }
    ctx.restore();
  }
}
