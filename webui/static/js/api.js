// The only module that calls fetch. Every API error has the shape
// {ok: false, error, status}; it is thrown as an ApiError with that message.

export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

function url(path, params) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, v);
  }
  return u;
}

async function check(res) {
  if (res.ok) return res;
  let message = `${res.status} ${res.statusText}`;
  try { const body = await res.json(); if (body && body.error) message = body.error; } catch (_) { /* not JSON */ }
  throw new ApiError(message, res.status);
}

export async function getJSON(path, params) {
  return (await check(await fetch(url(path, params)))).json();
}

export async function postJSON(path, body, params) {
  const res = await fetch(url(path, params), {
    method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body || {}),
  });
  return (await check(res)).json();
}

export async function postForm(path, form, params) {
  return (await check(await fetch(url(path, params), {method: 'POST', body: form}))).json();
}

// Binary arrays: uint32 header length, JSON header, then 8-byte-aligned arrays
// (the framing of webui/framing.py). Returns {meta, arrays: {name: TypedArray}}
// and each typed array carries its .shape. The compact columns are decoded:
// a "quant" spec (uint stand-ins for floats) into a Float32Array, NaN where the
// raw value is above its steps; dtype "bits" (packed booleans) into 0/1 bytes.
const TYPES = {float32: Float32Array, int32: Int32Array, uint8: Uint8Array, float64: Float64Array, int16: Int16Array, uint16: Uint16Array, uint32: Uint32Array, int8: Int8Array};

function dequantise(raw, {lo, hi, steps}) {
  const out = new Float32Array(raw.length);
  const cols = lo.length;
  const scale = lo.map((l, c) => (hi[c] - l) / steps);
  for (let i = 0; i < raw.length; i++) {
    const c = i % cols;
    out[i] = raw[i] > steps ? NaN : lo[c] + raw[i] * scale[c];
  }
  return out;
}

function unpackBits(buffer, offset, n) {
  const packed = new Uint8Array(buffer, offset, Math.ceil(n / 8));
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (packed[i >> 3] >> (i & 7)) & 1;
  return out;
}

export function decodeBinary(buffer) {
  const headerLen = new DataView(buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, headerLen)));
  const base = 4 + headerLen;
  const arrays = {};
  for (const spec of header.arrays) {
    const count = spec.shape.reduce((a, b) => a * b, 1);
    let arr;
    if (spec.dtype === 'bits') arr = unpackBits(buffer, base + spec.offset, count);
    else {
      arr = new TYPES[spec.dtype](buffer, base + spec.offset, count);
      if (spec.quant) arr = dequantise(arr, spec.quant);
    }
    arr.shape = spec.shape;
    arrays[spec.name] = arr;
  }
  return {meta: header.meta, arrays};
}

export async function getBinary(path, params) {
  const res = await check(await fetch(url(path, params)));
  return decodeBinary(await res.arrayBuffer());
}

export function thumbURL(run, probeId) {
  return `/api/runs/${encodeURIComponent(run)}/probes/${probeId}/thumbnail.png`;
}
